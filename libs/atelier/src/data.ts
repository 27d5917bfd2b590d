/**
 * Pre-training data: an endless, seeded stream of world images in the base renderings (plain and the
 * pre-training styles; never the benchmark styles) with caption variants, and the word vocabulary.
 */
import { WordTokenizer } from '@museum/models';
import { COLOURS, PRETRAIN_STYLES, SHAPES, Rng, deriveSeed, renderSample, renderTexture, rgbToFloat, contentPrompt, type Style } from '@museum/world';
import { ATELIER_IMAGE_SIZE, ATELIER_MAX_TOKENS } from './configs';

export const BASE_STYLES: readonly Style[] = ['plain', ...PRETRAIN_STYLES];

/**
 * The captions a base-model prompt can take: `a red star`, `a red star, sketch`, and the `in` form
 * `a red star in sketch` that new styles are prompted with (`a red star in <neon>`), so that the
 * text encoder knows the construction before any task token exists.
 */
export function captionVariants(colour: string, shape: string, style: Style): string[] {
  const content = contentPrompt(colour as never, shape as never);
  if (style === 'plain') return [content];
  return [`${content}, ${style}`, `${content} in ${style}`, `${content} in ${style} style`];
}

/** The word vocabulary of the Atelier text encoder: every word of every base caption variant. */
export function atelierTokenizer(): WordTokenizer {
  const corpus: string[] = ['a picture', 'a picture in style'];
  for (const c of COLOURS) for (const s of SHAPES) for (const st of BASE_STYLES) corpus.push(...captionVariants(c, s, st));
  return WordTokenizer.fromCorpus(corpus, { modelMaxLength: ATELIER_MAX_TOKENS });
}

export interface Batch {
  /** NHWC float32 in [-1, 1], batch × 64 × 64 × 3. */
  images: Float32Array;
  captions: string[];
  count: number;
  /** What each image is: a base rendering's style name, or `texture:<kind>` (autoencoder batches). */
  sources?: string[];
}

/**
 * Deterministic batch `index` for data-parallel rank `rank`: seeds derive from (seed, index, rank), so
 * a resumed run sees the same stream and ranks never duplicate each other's images.
 * `dropCaption` is the classifier-free-guidance probability of an empty caption.
 */
export function pretrainBatch(opts: { seed: number; index: number; rank: number; size: number; dropCaption?: number }): Batch {
  const { size } = opts;
  const px = ATELIER_IMAGE_SIZE * ATELIER_IMAGE_SIZE * 3;
  const images = new Float32Array(size * px);
  const captions: string[] = [];
  const rng = new Rng(deriveSeed('pretrain', opts.seed, opts.index, opts.rank));
  for (let k = 0; k < size; k++) {
    const style = BASE_STYLES[Math.floor(rng.float() * BASE_STYLES.length)];
    const sample = renderSample({ style, seed: Math.floor(rng.float() * 2 ** 31) });
    rgbToFloat(sample.rgb, images, k * px);
    const variants = captionVariants(sample.colour, sample.shape, style);
    const text = variants[Math.floor(rng.float() * variants.length)];
    captions.push(rng.float() < (opts.dropCaption ?? 0) ? '' : text);
  }
  return { images, captions, count: size };
}

/**
 * A batch for the autoencoder: each image is, with probability `textureShare`, a generic texture
 * (`renderTexture`) instead of a base rendering, so the codec learns to carry fine detail of any
 * kind and not only what the base renderings contain. Captions are unused ('').
 */
export function autoencoderBatch(opts: { seed: number; index: number; rank: number; size: number; textureShare: number }): Batch {
  const { size } = opts;
  const px = ATELIER_IMAGE_SIZE * ATELIER_IMAGE_SIZE * 3;
  const images = new Float32Array(size * px);
  const sources: string[] = [];
  const rng = new Rng(deriveSeed('autoencoder', opts.seed, opts.index, opts.rank));
  for (let k = 0; k < size; k++) {
    const seed = Math.floor(rng.float() * 2 ** 31);
    if (rng.float() < opts.textureShare) {
      const t = renderTexture(seed);
      rgbToFloat(t.rgb, images, k * px);
      sources.push(`texture:${t.kind}`);
    } else {
      const style = BASE_STYLES[Math.floor(rng.float() * BASE_STYLES.length)];
      rgbToFloat(renderSample({ style, seed }).rgb, images, k * px);
      sources.push(style);
    }
  }
  return { images, captions: new Array<string>(size).fill(''), count: size, sources };
}
