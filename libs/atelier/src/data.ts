/**
 * Pre-training data: an endless, seeded stream of world images in the base renderings (plain and the
 * pre-training styles; never the benchmark styles) with caption variants, and the word vocabulary.
 */
import { WordTokenizer } from '@museum/models';
import { COLOURS, PRETRAIN_STYLES, SHAPES, Rng, deriveSeed, renderSample, renderTexture, rgbToFloat, contentPrompt, WORLD_REVISION, type Colour, type Style } from '@museum/world';
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
 * A content mode the stream draws more often than the uniform mix does: with probability `share`
 * an image is this (style, colour) rendering (shape, pose and the rest still random). Used to
 * continue pre-training on a mode the model draws badly (white watercolor: 1/32 of the uniform stream).
 */
export interface RenderingEmphasis {
  style: Style;
  colour: Colour;
  share: number;
}

/**
 * One stretch of a pre-training run's data stream: from `fromStep` on, the emphasis it used and the world
 * revision it rendered (`WORLD_REVISION`; absent in records written before revisions existed: 1).
 */
export interface StreamSegment {
  fromStep: number;
  emphasis: RenderingEmphasis[];
  world?: number;
}

/**
 * The stream record after a run (re)starts at `step` with `emphasis` on world revision `world`: unchanged
 * when both are the ones in force; otherwise a new segment from `step`. A checkpoint that predates the
 * record (`segments` empty, `step` > 0) gets the uniform revision-1 stretch before it.
 */
export function extendStreamRecord(
  segments: readonly StreamSegment[],
  step: number,
  emphasis: readonly RenderingEmphasis[],
  world: number = WORLD_REVISION,
): StreamSegment[] {
  const before = segments.length === 0 && step > 0 ? [{ fromStep: 0, emphasis: [], world: 1 }] : segments.filter((s) => s.fromStep < step);
  const current = before[before.length - 1];
  if (current && JSON.stringify(current.emphasis) === JSON.stringify(emphasis) && (current.world ?? 1) === world) return before;
  return [...before, { fromStep: step, emphasis: [...emphasis], world }];
}

/**
 * The emphasis a (re)started run uses: the one asked for, else the one the checkpoint's stream was
 * last using, so that resuming an interrupted run continues the stream it was on (`none` returns to uniform).
 */
export function resumedEmphasis(segments: readonly StreamSegment[], asked: readonly RenderingEmphasis[] | undefined): RenderingEmphasis[] {
  if (asked !== undefined) return [...asked];
  return segments.length > 0 ? [...segments[segments.length - 1].emphasis] : [];
}

/** Parses `watercolor:white=0.125[,sketch:black=0.05]`, or `none` (the uniform stream); throws with the offending entry named. */
export function parseRenderingEmphasis(text: string): RenderingEmphasis[] {
  const out: RenderingEmphasis[] = [];
  if (text.trim() === 'none') return out;
  for (const entry of text.split(',').map((e) => e.trim()).filter((e) => e.length > 0)) {
    const m = /^([a-z]+):([a-z]+)=([0-9.]+)$/.exec(entry);
    if (!m) throw new Error(`emphasis '${entry}' is not style:colour=share (e.g. watercolor:white=0.125)`);
    const [, style, colour, shareText] = m;
    if (!BASE_STYLES.includes(style as Style)) throw new Error(`emphasis '${entry}': style must be one of ${BASE_STYLES.join(', ')} (pre-training never sees benchmark styles)`);
    if (!(COLOURS as readonly string[]).includes(colour)) throw new Error(`emphasis '${entry}': colour must be one of ${COLOURS.join(', ')}`);
    const share = Number(shareText);
    if (!(share > 0 && share < 1)) throw new Error(`emphasis '${entry}': share must be in (0, 1), got ${shareText}`);
    out.push({ style: style as Style, colour: colour as Colour, share });
  }
  const total = out.reduce((a, e) => a + e.share, 0);
  if (total >= 1) throw new Error(`emphasis shares sum to ${total}: they must leave room for the uniform stream (< 1)`);
  return out;
}

/**
 * Deterministic batch `index` for data-parallel rank `rank`: seeds derive from (seed, index, rank), so
 * a resumed run sees the same stream and ranks never duplicate each other's images.
 * `dropCaption` is the classifier-free-guidance probability of an empty caption. Without `emphasis`
 * the stream is exactly the one the shipped model was trained on (no extra random draws).
 */
export function pretrainBatch(opts: { seed: number; index: number; rank: number; size: number; dropCaption?: number; emphasis?: readonly RenderingEmphasis[] }): Batch {
  const { size } = opts;
  const px = ATELIER_IMAGE_SIZE * ATELIER_IMAGE_SIZE * 3;
  const images = new Float32Array(size * px);
  const captions: string[] = [];
  const rng = new Rng(deriveSeed('pretrain', opts.seed, opts.index, opts.rank));
  const emphasis = opts.emphasis ?? [];
  for (let k = 0; k < size; k++) {
    let style = BASE_STYLES[Math.floor(rng.float() * BASE_STYLES.length)];
    let colour: Colour | undefined;
    if (emphasis.length > 0) {
      let u = rng.float();
      for (const e of emphasis) {
        if (u < e.share) {
          style = e.style;
          colour = e.colour;
          break;
        }
        u -= e.share;
      }
    }
    const sample = renderSample({ style, colour, seed: Math.floor(rng.float() * 2 ** 31) });
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
