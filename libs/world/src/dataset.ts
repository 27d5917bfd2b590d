/**
 * Samples and datasets of the world: single renders, endless seeded streams for pre-training
 * and classifier training, on-disk datasets, and the benchmark's fixed few-shot sets.
 */
import * as fs from 'fs';
import * as path from 'path';
import { caption } from './captions';
import { COLOURS, SHAPES, SIZE, sampleContent, type Colour, type ContentParams, type Shape } from './content';
import { encodePng } from './png';
import { Rng, deriveSeed } from './rng';
import { ALL_STYLES, BENCHMARK_STYLES, renderStyle, type BenchmarkStyle, type Style } from './styles';

export interface SampleSpec {
  style: Style;
  seed: number;
  /** Random (from the seed) when omitted. */
  shape?: Shape;
  colour?: Colour;
}

export interface Sample {
  /** 64*64*3 bytes, interleaved RGB, row-major. */
  rgb: Uint8Array;
  width: number;
  height: number;
  caption: string;
  shape: Shape;
  colour: Colour;
  style: Style;
  seed: number;
  content: ContentParams;
}

/**
 * Renders one image. The placement depends only on (seed, shape, colour), the style's own
 * variation on (seed, style): the same seed in two styles shows the same content.
 */
export function renderSample(spec: SampleSpec): Sample {
  const contentRng = new Rng(deriveSeed(spec.seed, 'content'));
  const content = sampleContent(contentRng, { shape: spec.shape, colour: spec.colour });
  const rgb = renderStyle(spec.style, content, new Rng(deriveSeed(spec.seed, 'style', spec.style)));
  return {
    rgb,
    width: SIZE,
    height: SIZE,
    caption: caption(content.colour, content.shape, spec.style),
    shape: content.shape,
    colour: content.colour,
    style: spec.style,
    seed: spec.seed,
    content,
  };
}

export interface GenerateOptions {
  styles?: readonly Style[];
  /** Number of samples; unbounded when omitted. */
  count?: number;
  seed?: number;
  shapes?: readonly Shape[];
  colours?: readonly Colour[];
  /** Relative sampling weight per entry of `styles` (uniform by default). */
  styleWeights?: readonly number[];
}

/** Seed of the i-th sample of a generated stream. */
export function datasetSampleSeed(seed: number, index: number): number {
  return deriveSeed(seed, 'dataset', index);
}

/** Deterministic stream of random samples; sample i depends only on (seed, i). */
export function* generateDataset(opts: GenerateOptions = {}): Generator<Sample> {
  const styles = opts.styles ?? ALL_STYLES;
  const shapes = opts.shapes ?? SHAPES;
  const colours = opts.colours ?? COLOURS;
  const seed = opts.seed ?? 0;
  if (styles.length === 0 || shapes.length === 0 || colours.length === 0) throw new Error('generateDataset: empty styles/shapes/colours');
  const w = opts.styleWeights;
  if (w && w.length !== styles.length) throw new Error('generateDataset: styleWeights must match styles');
  const cum: number[] = [];
  if (w) w.reduce((acc, v, i) => (cum[i] = acc + v), 0);
  for (let i = 0; opts.count === undefined || i < opts.count; i++) {
    const s = datasetSampleSeed(seed, i);
    const rng = new Rng(s);
    let style: Style;
    if (w) {
      const u = rng.float() * cum[cum.length - 1];
      style = styles[cum.findIndex((c) => u < c)];
    } else style = rng.pick(styles);
    yield renderSample({ style, seed: s, shape: rng.pick(shapes), colour: rng.pick(colours) });
  }
}

/**
 * Rendering speed of the world (all styles mixed), in images per second of this process's CPU
 * time, after a JIT warm-up. A machine figure for `museum doctor`, not a test: pre-training
 * renders its batches on the fly and needs this well above its ~10 images/s of training.
 */
export function measureRenderRate(opts: { count?: number; seed?: number } = {}): number {
  const cpu = (): number => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1e6;
  };
  const count = opts.count ?? 2000;
  for (const _ of generateDataset({ count: Math.max(50, count >> 3), seed: (opts.seed ?? 0) + 1 }));
  const t0 = cpu();
  for (const _ of generateDataset({ count, seed: opts.seed ?? 0 }));
  return count / Math.max(cpu() - t0, 1e-6);
}

/** One line of `captions.jsonl`. */
export interface CaptionRecord {
  file: string;
  caption: string;
  shape: Shape;
  colour: Colour;
  style: Style;
  seed: number;
}

/**
 * Writes samples as `NNNNNN.png` plus `captions.jsonl` (one CaptionRecord per line) into `dir`.
 * Accepts generator options or any iterable of samples (e.g. a few-shot set).
 */
export function writeDataset(dir: string, source: GenerateOptions | Iterable<Sample>): CaptionRecord[] {
  fs.mkdirSync(dir, { recursive: true });
  const samples: Iterable<Sample> = Symbol.iterator in (source as object) ? (source as Iterable<Sample>) : generateDataset(source as GenerateOptions);
  const records: CaptionRecord[] = [];
  let i = 0;
  for (const s of samples) {
    const file = `${String(i).padStart(6, '0')}.png`;
    fs.writeFileSync(path.join(dir, file), encodePng(s.rgb, s.width, s.height));
    records.push({ file, caption: s.caption, shape: s.shape, colour: s.colour, style: s.style, seed: s.seed });
    i++;
  }
  fs.writeFileSync(path.join(dir, 'captions.jsonl'), records.map((r) => JSON.stringify(r)).join('\n') + (records.length ? '\n' : ''));
  return records;
}

/** Reads `captions.jsonl` of a dataset directory. */
export function readCaptions(dir: string): CaptionRecord[] {
  return fs
    .readFileSync(path.join(dir, 'captions.jsonl'), 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as CaptionRecord);
}

// ---- the benchmark's few-shot sets ----

/**
 * The 3 shapes each benchmark style's 8 training images use. Consecutive tasks are disjoint,
 * every shape is trained in at most two styles, and each style holds out 5 shapes.
 */
export const FEW_SHOT_SHAPES: Record<BenchmarkStyle, readonly [Shape, Shape, Shape]> = {
  stripes: ['circle', 'square', 'triangle'],
  pointillism: ['star', 'ring', 'cross'],
  blueprint: ['diamond', 'heart', 'circle'],
  mosaic: ['square', 'triangle', 'star'],
  neon: ['ring', 'cross', 'diamond'],
};

export const FEW_SHOT_SIZE = 8;
const FEW_SHOT_NAMESPACE = 'museum-fewshot-v1';
const REFERENCE_NAMESPACE = 'museum-reference-v1';

/** Shapes not present in a style's few-shot set (used for held-out content accuracy). */
export function heldOutShapes(style: BenchmarkStyle): Shape[] {
  return SHAPES.filter((s) => !FEW_SHOT_SHAPES[style].includes(s));
}

/**
 * The 8 training images of a benchmark style: fixed seeds, every colour once, shapes cycling
 * over the style's 3 few-shot shapes (3 + 3 + 2). Captions are `a {colour} {shape} in <style>`.
 */
export function fewShotSet(style: BenchmarkStyle): Sample[] {
  if (!BENCHMARK_STYLES.includes(style)) throw new Error(`fewShotSet: '${style}' is not a benchmark style`);
  const shapes = FEW_SHOT_SHAPES[style];
  const colours = new Rng(deriveSeed(FEW_SHOT_NAMESPACE, style, 'colours')).shuffle(COLOURS);
  return colours.map((colour, k) => renderSample({ style, seed: deriveSeed(FEW_SHOT_NAMESPACE, style, k), shape: shapes[k % 3], colour }));
}

/**
 * n reference images of a style (any style) for evaluation: all 8 shapes in turn, random
 * colours, seeds disjoint from the few-shot sets. Unlimited: pick another `seed` for more.
 */
export function heldOutReferences(style: Style, n: number, seed = 0, opts: { shapes?: readonly Shape[] } = {}): Sample[] {
  const shapes = opts.shapes ?? SHAPES;
  const out: Sample[] = [];
  for (let i = 0; i < n; i++) {
    const s = deriveSeed(REFERENCE_NAMESPACE, style, seed, i);
    out.push(renderSample({ style, seed: s, shape: shapes[i % shapes.length], colour: new Rng(s).pick(COLOURS) }));
  }
  return out;
}

export interface PromptCell {
  shape: Shape;
  colour: Colour;
  prompt: string;
}

/**
 * The protocol's held-out prompt grid for a benchmark style: all 8 shapes x `coloursPerShape`
 * colours (fixed, different per shape), as `a {colour} {shape} in <style>`.
 */
export function evaluationPrompts(style: BenchmarkStyle, coloursPerShape = 2): PromptCell[] {
  const cells: PromptCell[] = [];
  SHAPES.forEach((shape, j) => {
    for (let c = 0; c < coloursPerShape; c++) {
      const colour = COLOURS[(j + c * 3 + BENCHMARK_STYLES.indexOf(style)) % COLOURS.length];
      cells.push({ shape, colour, prompt: caption(colour, shape, style) });
    }
  });
  return cells;
}
