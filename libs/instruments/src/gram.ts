/**
 * Classifier-free style distance: how far apart two sets of images are in the Gram statistics
 * (channel co-activations, Gatys et al. 2016) of a FIXED feature extractor, averaged over layers.
 *
 * The extractor is a seeded random ReLU conv net, not the trained style classifier:
 * - it must judge styles no instrument was trained on (a user's own images), and a classifier's
 *   features are tuned to separate the 9 world renderings — and to ignore whatever does not
 *   separate them — so they are a biased ruler for anything else;
 * - it must never change: its weights are a function of this file's seed alone, so distances
 *   stay comparable across re-trained instruments, machines and time;
 * - random multi-scale conv features are known to carry texture statistics well (Ustyuzhaninov
 *   et al. 2017, "What does it take to generate natural textures?").
 *
 * Grams are centred per image (covariances of the features over positions): an image's mean
 * feature is mostly its content's colour and its background tone, which would otherwise swamp
 * the texture co-variation that makes a style (measured: with raw Grams, two sketch sets of 32
 * were farther apart than sketch and plain; centred, every style is nearest to itself).
 *
 * Layers (3x3 convs, ReLU, no norm): 3→32 at full resolution, then 32→64, 64→128, 128→128 each
 * at stride 2 — receptive fields of 3, 7, 15 and 31 pixels, from dots and hatching up to grids
 * and outlines. Works on any image size (Grams are normalised by the number of positions).
 */
import { tf } from '@museum/tensor';
import { deriveSeed, Rng } from '@museum/world';

export const GRAM_NET_SEED = 'museum-gram-features-v1';

export interface GramNetLayer {
  inChannels: number;
  outChannels: number;
  stride: number;
}

export const GRAM_NET_LAYERS: readonly GramNetLayer[] = [
  { inChannels: 3, outChannels: 32, stride: 1 },
  { inChannels: 32, outChannels: 64, stride: 2 },
  { inChannels: 64, outChannels: 128, stride: 2 },
  { inChannels: 128, outChannels: 128, stride: 2 },
];

/** Mean (centred) Gram matrix per layer of a set of images, plus how many images it summarises. */
export interface GramStatistics {
  grams: tf.Tensor2D[];
  count: number;
}

export class GramFeatureNet {
  private readonly filters: tf.Tensor4D[];

  constructor(
    readonly layers: readonly GramNetLayer[] = GRAM_NET_LAYERS,
    readonly seed: string | number = GRAM_NET_SEED,
  ) {
    // He-normal filters drawn from the project's own PRNG, so the net does not depend on TF.js's RNG.
    this.filters = layers.map((l, i) => {
      const rng = new Rng(deriveSeed(seed, 'layer', i));
      const n = 9 * l.inChannels * l.outChannels;
      const std = Math.sqrt(2 / (9 * l.inChannels));
      const w = new Float32Array(n);
      for (let k = 0; k < n; k++) w[k] = std * rng.normal();
      return tf.tensor4d(w, [3, 3, l.inChannels, l.outChannels]);
    });
  }

  /** Feature maps of NHWC images in [-1, 1], one per layer (caller disposes). */
  features(images: tf.Tensor4D): tf.Tensor4D[] {
    return tf.tidy(() => {
      const out: tf.Tensor4D[] = [];
      let h: tf.Tensor4D = images;
      this.layers.forEach((l, i) => {
        h = tf.relu(tf.conv2d(tf.pad(h, [[0, 0], [1, 1], [1, 1], [0, 0]]), this.filters[i], l.stride, 'valid'));
        out.push(h);
      });
      return out;
    });
  }

  /** Per-layer centred Gram matrices [C, C], averaged over images (caller disposes). */
  statistics(images: tf.Tensor4D, batchSize = 32): GramStatistics {
    if (images.rank !== 4 || images.shape[3] !== 3) throw new Error(`gram statistics: expected images [B,H,W,3], got [${images.shape}]`);
    const n = images.shape[0];
    if (n === 0) throw new Error('gram statistics: no images');
    let sums: tf.Tensor2D[] | null = null;
    for (let start = 0; start < n; start += batchSize) {
      const size = Math.min(batchSize, n - start);
      const next: tf.Tensor2D[] = tf.tidy(() => {
        const chunk = tf.slice(images, [start, 0, 0, 0], [size, -1, -1, -1]);
        return this.features(chunk).map((f, i) => {
          const [b, h, w, c] = f.shape;
          const flat = tf.reshape(f, [b * h * w, c]) as tf.Tensor2D;
          // Σ_b of the centred Gram F_bᵀF_b/(HW) − μ_bμ_bᵀ: two 2-D products for the whole chunk.
          const m = tf.mean(tf.reshape(f, [b, h * w, c]), 1) as tf.Tensor2D;
          const g = tf.sub(tf.div(tf.matMul(tf.transpose(flat), flat), h * w), tf.matMul(tf.transpose(m), m)) as tf.Tensor2D;
          return sums ? (tf.add(sums[i], g) as tf.Tensor2D) : g;
        });
      });
      if (sums) tf.dispose(sums);
      sums = next;
    }
    const grams = sums!.map((s) => tf.div(s, n) as tf.Tensor2D);
    tf.dispose(sums!);
    return { grams, count: n };
  }

  dispose(): void {
    tf.dispose(this.filters);
  }
}

/**
 * Distance between two sets' statistics: per layer ‖G_a − G_b‖_F / ((‖G_a‖_F + ‖G_b‖_F)/2),
 * symmetric, scale-free and in [0, 2], then the mean over layers.
 */
export function gramDistance(a: GramStatistics, b: GramStatistics): { distance: number; perLayer: number[] } {
  if (a.grams.length !== b.grams.length) throw new Error('gramDistance: statistics from different extractors');
  const perLayer = tf.tidy(() =>
    tf.stack(
      a.grams.map((ga, i) => {
        const gb = b.grams[i];
        return tf.div(tf.norm(tf.sub(ga, gb)), tf.add(tf.mul(tf.add(tf.norm(ga), tf.norm(gb)), 0.5), 1e-12));
      }),
    ),
  );
  const values = Array.from(perLayer.dataSync());
  perLayer.dispose();
  return { distance: values.reduce((s, v) => s + v, 0) / values.length, perLayer: values };
}

export function disposeGramStatistics(s: GramStatistics): void {
  tf.dispose(s.grams);
}

let defaultNet: GramFeatureNet | null = null;

/** The fixed extractor shared by every caller (created on first use, kept for the process). */
export function defaultGramNet(): GramFeatureNet {
  if (!defaultNet) defaultNet = new GramFeatureNet();
  return defaultNet;
}

/**
 * Style distance between generated images and references of the target style (both NHWC in
 * [-1, 1], any sizes and counts): small when they share a style whatever their content.
 */
export function gramStyleDistance(generated: tf.Tensor4D, references: tf.Tensor4D, net: GramFeatureNet = defaultGramNet()): number {
  const a = net.statistics(generated);
  const b = net.statistics(references);
  try {
    return gramDistance(a, b).distance;
  } finally {
    disposeGramStatistics(a);
    disposeGramStatistics(b);
  }
}
