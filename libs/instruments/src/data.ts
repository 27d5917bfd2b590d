/**
 * Labelled batches of fresh world images for the instruments: every rendering, shape and colour
 * drawn uniformly. Training and held-out images come from disjoint halves of the 32-bit seed
 * space (training seeds < 2^31 ≤ held-out seeds), so no held-out image is ever trained on.
 */
import { tf } from '@museum/tensor';
import { ALL_STYLES, COLOURS, Rng, SHAPES, SIZE, renderSample, rgbToFloat, type Sample } from '@museum/world';
import { augmentImage, DEFAULT_AUGMENT, type AugmentOptions } from './augment';
import { classesOf, type InstrumentKind } from './classifier';

export type SeedSplit = 'train' | 'heldout';

/** The label of a sample for an instrument. */
export function labelOf(kind: InstrumentKind, s: Pick<Sample, 'style' | 'shape' | 'colour'>): string {
  return kind === 'style' ? s.style : kind === 'shape' ? s.shape : s.colour;
}

/** A render seed in the split's half of the seed space. */
export function splitSeed(rng: Rng, split: SeedSplit): number {
  const u = rng.uint32() & 0x7fffffff;
  return split === 'train' ? u : (u | 0x80000000) >>> 0;
}

/** n random samples (uniform style, shape, colour) with seeds in `split`'s range. */
export function drawSamples(rng: Rng, n: number, split: SeedSplit): Sample[] {
  const out: Sample[] = [];
  for (let i = 0; i < n; i++) {
    const style = rng.pick(ALL_STYLES);
    const shape = rng.pick(SHAPES);
    const colour = rng.pick(COLOURS);
    out.push(renderSample({ style, shape, colour, seed: splitSeed(rng, split) }));
  }
  return out;
}

export interface LabelledBatch {
  /** [B, 64, 64, 3] in [-1, 1]. */
  x: tf.Tensor4D;
  /** [B] int32 class indices. */
  y: tf.Tensor1D;
  labels: number[];
}

/** Stacks samples into a batch for `kind`, degrading each image when `augment` is given. */
export function makeBatch(kind: InstrumentKind, samples: Sample[], augment?: { rng: Rng; options?: AugmentOptions }): LabelledBatch {
  const classes = classesOf(kind);
  const per = SIZE * SIZE * 3;
  const data = new Float32Array(samples.length * per);
  const labels = samples.map((s, k) => {
    const img = rgbToFloat(s.rgb);
    data.set(augment ? augmentImage(img, augment.rng, augment.options ?? DEFAULT_AUGMENT) : img, k * per);
    return classes.indexOf(labelOf(kind, s));
  });
  return { x: tf.tensor4d(data, [samples.length, SIZE, SIZE, 3]), y: tf.tensor1d(labels, 'int32'), labels };
}
