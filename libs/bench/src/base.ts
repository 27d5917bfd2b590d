/**
 * `museum bench base`: does the base model draw what it is asked? Every `a {colour} {shape}` prompt
 * (64) × seeds is generated and judged by the shipped instruments (shape and colour classifiers);
 * every pre-training style is prompted on a subset of contents and judged by the style classifier.
 * Deterministic for fixed seeds; also draws the contact sheet (rows: shapes, columns: colours).
 */
import { tf, imageGrid, encodePng } from '@museum/tensor';
import { resolveGuidanceShaping, type StableDiffusionPipeline, type SamplerName } from '@museum/models';
import { COLOURS, SHAPES, PRETRAIN_STYLES, contentPrompt } from '@museum/world';
import { toInstrumentRange, type Instruments } from '@museum/instruments';
import { labelCounts } from './continual_metrics';
import { batchImageRgb, galleryPng } from './gallery';

export interface BaseBenchOptions {
  seeds?: number[];
  steps?: number;
  guidance?: number;
  /** diffusers' `guidance_rescale` φ (default: the model folder's sampling_config.json, else 0: off). */
  guidanceRescale?: number;
  /** Guide only at timesteps in [from, to]; null: every step (default: the model folder's sampling_config.json, else every step). */
  guidanceInterval?: readonly [number, number] | null;
  sampler?: SamplerName;
  /** Images per pipeline call. */
  batch?: number;
  /**
   * Images per pre-training style for style accuracy (cycled over shapes × colours, seed styleSeedStart + k);
   * the first n of a larger count are the images of a smaller one.
   */
  styleSamples?: number;
  /** First seed of the styled images (default 1000); another value with other `seeds` gives a validation split. */
  styleSeedStart?: number;
  onProgress?: (done: number, total: number) => void;
}

export interface BaseBenchResult {
  shape_acc: number;
  colour_acc: number;
  style_acc: Record<string, number>;
  /** Per shape and per colour accuracies (where the model is weak). */
  shape_acc_by_shape: Record<string, number>;
  colour_acc_by_colour: Record<string, number>;
  /** Per prompted rendering, what the style classifier called the images (where style accuracy goes). */
  style_confusion: Record<string, Record<string, number>>;
  images: number;
  seconds: number;
  config: { seeds: number[]; steps: number; guidance: number; guidance_rescale: number; guidance_interval: readonly [number, number] | null; sampler: SamplerName; style_samples: number; style_seed_start: number };
  /** The first seed's image of every content prompt as a PNG contact sheet (rows: shapes, columns: colours). */
  contactSheetPng?: Buffer;
  /**
   * Where style accuracy goes, as a picture: a block per prompted rendering, its first images judged right, then a
   * row per wrong label with the images the style classifier gave it (PNG).
   */
  styleMissesPng?: Buffer;
}

/** Images shown per row of the misses sheet. */
const MISSES_PER_ROW = 12;

interface Job {
  prompt: string;
  seed: number;
  shape: string;
  colour: string;
  style: string | null;
}

async function generateAll(pipe: StableDiffusionPipeline, jobs: Job[], o: Required<Pick<BaseBenchOptions, 'steps' | 'guidance' | 'guidanceRescale' | 'guidanceInterval' | 'sampler' | 'batch'>>, progress: (n: number) => void): Promise<tf.Tensor4D[]> {
  const out: tf.Tensor4D[] = [];
  for (let i = 0; i < jobs.length; i += o.batch) {
    const chunk = jobs.slice(i, i + o.batch);
    // One call per chunk; each image keeps its own seed so results do not depend on batching.
    const images = await pipe.generate({ prompt: chunk.map((j) => j.prompt), seed: chunk.map((j) => j.seed), steps: o.steps, guidance: o.guidance, guidanceRescale: o.guidanceRescale, guidanceInterval: o.guidanceInterval, sampler: o.sampler });
    out.push(images as tf.Tensor4D);
    progress(Math.min(jobs.length, i + o.batch));
  }
  return out;
}

/** Share of predictions equal to the truth (0 for none). */
export function accuracy(pred: string[], truth: string[]): number {
  return pred.filter((p, i) => p === truth[i]).length / Math.max(1, pred.length);
}

export async function runBaseBench(pipe: StableDiffusionPipeline, inst: Instruments, options: BaseBenchOptions = {}): Promise<BaseBenchResult> {
  const o = {
    seeds: options.seeds ?? [1, 2],
    steps: options.steps ?? 25,
    guidance: options.guidance ?? 7.5,
    // Unset shaping is the model folder's recommendation; the report records what was used.
    ...resolveGuidanceShaping(pipe.samplingDefaults, options),
    sampler: options.sampler ?? ('ddim' as SamplerName),
    batch: options.batch ?? 16,
  };
  // As many styled images as unstyled ones unless asked otherwise, so every style is measured as finely as `plain`.
  const styleSamples = options.styleSamples ?? SHAPES.length * COLOURS.length * o.seeds.length;
  const styleSeedStart = options.styleSeedStart ?? 1000;
  const t0 = Date.now();
  const content: Job[] = [];
  for (const seed of o.seeds) for (const shape of SHAPES) for (const colour of COLOURS) content.push({ prompt: contentPrompt(colour, shape), seed, shape, colour, style: null });
  const styled: Job[] = [];
  for (const style of PRETRAIN_STYLES) {
    for (let k = 0; k < styleSamples; k++) {
      const shape = SHAPES[k % SHAPES.length];
      const colour = COLOURS[(k * 3 + Math.floor(k / SHAPES.length)) % COLOURS.length];
      styled.push({ prompt: `${contentPrompt(colour, shape)}, ${style}`, seed: styleSeedStart + k, shape, colour, style });
    }
  }
  const total = content.length + styled.length;
  const report = (n: number) => options.onProgress?.(n, total);

  const judge = async (jobs: Job[], offset: number) => {
    const batches = await generateAll(pipe, jobs, o, (n) => report(offset + n));
    const images = tf.concat(batches);
    batches.forEach((b) => b.dispose());
    const x = toInstrumentRange(images);
    const shape = inst.shape.classify(x).labels;
    const colour = inst.colour.classify(x).labels;
    const style = inst.style.classify(x).labels;
    x.dispose();
    return { images, shape, colour, style };
  };

  const c = await judge(content, 0);
  const s = await judge(styled, content.length);

  const byKey = (keys: readonly string[], field: 'shape' | 'colour', pred: string[]) =>
    Object.fromEntries(keys.map((k) => {
      const idx = content.map((j, i) => (j[field] === k ? i : -1)).filter((i) => i >= 0);
      return [k, accuracy(idx.map((i) => pred[i]), idx.map((i) => content[i][field]))];
    }));

  // The styled images of each pre-training style, by index into styled[].
  const styledIndex = new Map(PRETRAIN_STYLES.map((st) => [st, styled.map((j, i) => (j.style === st ? i : -1)).filter((i) => i >= 0)]));
  const styleAcc: Record<string, number> = {
    plain: accuracy(c.style, content.map(() => 'plain')),
  };
  const styleConfusion: Record<string, Record<string, number>> = { plain: labelCounts(c.style) };
  for (const [st, idx] of styledIndex) {
    styleAcc[st] = accuracy(idx.map((i) => s.style[i]), idx.map(() => st));
    styleConfusion[st] = labelCounts(idx.map((i) => s.style[i]));
  }

  const styleMissesPng = await stylesMissesSheet([
    { style: 'plain', images: c.images, labels: c.style, index: content.map((_, i) => i) },
    ...[...styledIndex].map(([st, idx]) => ({ style: st, images: s.images, labels: s.style, index: idx })),
  ]);

  // Contact sheet of the first seed: content[] is ordered seed → shape → colour.
  const firstSeed = tf.tidy(() => tf.slice(c.images, 0, SHAPES.length * COLOURS.length));
  const tiles = tf.unstack(firstSeed) as tf.Tensor3D[];
  const sheet = imageGrid(tiles, COLOURS.length, { pad: 2, background: 1 });
  const contactSheetPng = await encodePng(sheet, { range: '0,1' });
  [firstSeed, sheet, ...tiles, c.images, s.images].forEach((t) => t.dispose());

  return {
    shape_acc: accuracy(c.shape, content.map((j) => j.shape)),
    colour_acc: accuracy(c.colour, content.map((j) => j.colour)),
    style_acc: styleAcc,
    shape_acc_by_shape: byKey(SHAPES, 'shape', c.shape),
    colour_acc_by_colour: byKey(COLOURS, 'colour', c.colour),
    style_confusion: styleConfusion,
    images: total,
    seconds: (Date.now() - t0) / 1000,
    config: { seeds: o.seeds, steps: o.steps, guidance: o.guidance, guidance_rescale: o.guidanceRescale, guidance_interval: o.guidanceInterval, sampler: o.sampler, style_samples: styleSamples, style_seed_start: styleSeedStart },
    contactSheetPng,
    styleMissesPng,
  };
}

/** The misses sheet: per prompted rendering, a row of images judged right, then one row per wrong label (with its count). */
async function stylesMissesSheet(groups: Array<{ style: string; images: tf.Tensor4D; labels: string[]; index: number[] }>): Promise<Buffer> {
  const blocks = [];
  for (const { style, images, labels, index } of groups) {
    const byLabel = new Map<string, number[]>();
    for (const i of index) byLabel.set(labels[i], [...(byLabel.get(labels[i]) ?? []), i]);
    const right = byLabel.get(style) ?? [];
    const rows = [{ label: `${style} (${right.length})`, idx: right }];
    for (const [label, idx] of [...byLabel].filter(([l]) => l !== style).sort((a, b) => b[1].length - a[1].length)) rows.push({ label: `as ${label} (${idx.length})`, idx });
    const cells = [];
    for (const r of rows) cells.push(await Promise.all(Array.from({ length: MISSES_PER_ROW }, (_, k) => (k < r.idx.length ? batchImageRgb(images, r.idx[k]) : null))));
    blocks.push({ title: `${style}: ${right.length}/${index.length} judged ${style}`, rowLabels: rows.map((r) => r.label), columnLabels: new Array<string>(MISSES_PER_ROW).fill(''), cells });
  }
  return galleryPng(blocks, { tile: 64, columns: 2 });
}
