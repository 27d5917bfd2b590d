/**
 * The feature space F of the style distillation loss.
 *
 * Why these features: a style is what stays constant when the content changes: stroke, texture, palette,
 * pattern statistics. Spatial feature maps carry layout and content (where the shape is); their first- and
 * second-order statistics over all positions do not (Gatys et al. 2016; Huang & Belongie's AdaIN 2017: channel
 * means/stds and Gram correlations ARE the style). So F(x) = per-channel means, per-channel standard
 * deviations and the normalised Gram matrix (channel correlations) of activations.
 *
 * Which activations: the frozen VAE decoder's early blocks (post_quant_conv → conv_in → mid block, and the
 * first up block) applied to the (scaled-back) clean latent. They turn latents into texture-level features
 * the model itself uses to paint pixels, need no extra network, cost a fraction of a UNet pass at latent
 * resolution, and are differentiable, so gradients of the loss reach the LoRA and the token through x̂0.
 * Raw latents would be too coarse (4 channels), a full decode too costly and too close to pixels.
 *
 * The statistics are grouped (means, stds, Gram per tap), and each group is divided by a fixed scale (the
 * spread of the style's own mean feature z̄ in that group), so a single temperature τ means the same in
 * every group.
 */
import { tf } from '@museum/tensor';
import type { AutoencoderKL } from '@museum/models';

export interface StyleStatisticsOptions {
  /** Up blocks of the decoder to run after its mid block; each adds a tap (default 1: mid block + first up block). */
  upBlocks?: number;
}

/** Style statistics of decoder activations, as groups [B, d_g]. */
export class DecoderStyleStatistics {
  readonly upBlocks: number;
  private readonly triu = new Map<number, tf.Tensor1D>();

  constructor(
    readonly vae: AutoencoderKL,
    options: StyleStatisticsOptions = {},
  ) {
    this.upBlocks = Math.max(0, Math.min(options.upBlocks ?? 1, vae.decoder.up_blocks.length));
  }

  /** Indices of the strictly upper triangle of a C×C matrix, flattened (the Gram's diagonal is 1 by construction). */
  private upperIndices(c: number): tf.Tensor1D {
    let t = this.triu.get(c);
    if (!t) {
      const idx: number[] = [];
      for (let i = 0; i < c; i++) for (let j = i + 1; j < c; j++) idx.push(i * c + j);
      t = tf.keep(tf.tensor1d(idx, 'int32'));
      this.triu.set(c, t);
    }
    return t;
  }

  /** Decoder activations at each tap for diffusion latents (already divided by the VAE's scaling factor). */
  taps(z: tf.Tensor): tf.Tensor4D[] {
    return tf.tidy(() => {
      const d = this.vae.decoder;
      let h = d.mid_block.forward(d.conv_in.forward(this.vae.post_quant_conv.forward(z)));
      const out: tf.Tensor4D[] = [h as tf.Tensor4D];
      for (let i = 0; i < this.upBlocks; i++) {
        h = d.up_blocks.at(i).forward(h);
        out.push(h as tf.Tensor4D);
      }
      return out;
    });
  }

  /**
   * Statistic groups of unscaled latents [B, h, w, c]: for each tap, channel means [B, C], channel stds [B, C]
   * and the correlation (normalised Gram) matrix's upper triangle [B, C(C−1)/2].
   */
  groups(z: tf.Tensor): tf.Tensor2D[] {
    return tf.tidy(() => {
      const out: tf.Tensor2D[] = [];
      for (const a of this.taps(z)) {
        const [b, h, w, c] = a.shape;
        const x = tf.reshape(a, [b, h * w, c]);
        const { mean, variance } = tf.moments(x, 1, true); // [B, 1, C]
        const std = tf.sqrt(tf.add(variance, 1e-5));
        const xn = tf.div(tf.sub(x, mean), std);
        // [B, C, C] = xnᵀ xn / HW: the correlation of every channel pair over positions.
        const gram = tf.div(tf.matMul(xn, xn, true, false), h * w);
        const upper = tf.gather(tf.reshape(gram, [b, c * c]), this.upperIndices(c), 1);
        out.push(tf.reshape(mean, [b, c]) as tf.Tensor2D, tf.reshape(std, [b, c]) as tf.Tensor2D, upper as tf.Tensor2D);
      }
      return out;
    });
  }

  dispose(): void {
    for (const t of this.triu.values()) t.dispose();
    this.triu.clear();
  }
}

/**
 * The style set's target: z̄ (the mean feature of the training images) per group, and per-group scales.
 * Built once from the training images' own latents through the same F.
 */
export interface StyleTarget {
  /** Per group: z̄_g / s_g, [d_g]. */
  mean: tf.Tensor1D[];
  /** Per group: s_g, the spread of z̄_g's entries (a constant). */
  scales: number[];
}

/** z̄ over latents [N, h, w, c] (unscaled), computed one image at a time to bound memory. */
export function styleTarget(stats: DecoderStyleStatistics, latents: tf.Tensor4D): StyleTarget {
  const n = latents.shape[0];
  let sums: tf.Tensor[] | null = null;
  for (let i = 0; i < n; i++) {
    const g = tf.tidy(() => stats.groups(tf.slice(latents, [i], [1])).map((t) => tf.reshape(t, [-1])));
    if (!sums) sums = g;
    else {
      const next: tf.Tensor[] = sums.map((s, k) => tf.add(s, g[k]));
      tf.dispose([...sums, ...g]);
      sums = next;
    }
  }
  const means = sums!.map((s) => tf.tidy(() => tf.div(s, n)) as tf.Tensor1D);
  tf.dispose(sums!);
  const scales = means.map((m) => {
    const sd = tf.tidy(() => tf.sqrt(tf.moments(m).variance));
    const v = sd.dataSync()[0];
    sd.dispose();
    return Math.max(v, 1e-3);
  });
  const mean = means.map((m, g) => tf.tidy(() => tf.div(m, scales[g])) as tf.Tensor1D);
  tf.dispose(means);
  return { mean, scales };
}

export function disposeStyleTarget(t: StyleTarget): void {
  tf.dispose(t.mean);
}
