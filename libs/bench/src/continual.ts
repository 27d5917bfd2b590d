/**
 * `museum bench continual`: the continual style benchmark of BENCHMARK.md.
 *
 * For every method, from the same base model folder and seeds: learn the benchmark styles one after another
 * (each from its 8 few-shot images, same step budget) into a museum of its own; after each task t judge every
 * style s ≤ t on the held-out prompt grid `a {colour} {shape} in <s>` (8 shapes × colours × seeds) with the
 * style and shape instruments → S[t][s], C[t][s], plus the Gram style distance to held-out references; judge the
 * base prompts `a {colour} {shape}` before the first task (once, shared: every method starts from the same
 * base) and after the last → base retention.
 *
 * A full run is hours, so everything is checkpointed in a work folder and a rerun continues where it stopped:
 *
 *   <work>/config.json                 the protocol (a rerun with another protocol is refused unless `fresh`)
 *   <work>/base.json                   base prompts judged on the base model (base_before)
 *   <work>/methods/<m>/settings.json   the learning settings and loss weights the method reads (`settingsUsedBy`):
 *                                      a rerun that changes them is refused unless the method is redone, one that
 *                                      changes only others' (MuseumMaker's regularization for a baseline) resumes
 *   <work>/methods/<m>/museum/         the method's museum (one version per learned style)
 *   <work>/methods/<m>/rows.json       judged rows so far (row t = after task t + 1)
 *   <work>/methods/<m>/cells/*.png     the first image of every (task, style) cell (for the gallery)
 *   <work>/methods/<m>/result.json     the method's finished measurements
 *
 * Jobs (`base` and one per method) run in this process, or with `workers` > 1 in that many child processes
 * (one core each on the wasm backend).
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { fork } from 'child_process';
import { initBackend, tf } from '@museum/tensor';
import { workerScript } from '@museum/training';
import { StableDiffusionPipeline, type SamplerName } from '@museum/models';
import {
  DEFAULT_LEARN_SETTINGS,
  DEFAULT_LOSS_WEIGHTS,
  METHOD_NAMES,
  Museum,
  MuseumRuntime,
  baseRefFromFolder,
  isMethodName,
  learnStyle,
  modelsFromPipeline,
  type LearnSettings,
  type LossWeights,
  type MethodName,
  type MethodSettings,
  type VersionManifest,
  settingsUsedBy,
} from '@museum/museum';
import {
  BENCHMARK_STYLES,
  COLOURS,
  SHAPES,
  contentPrompt,
  decodePng,
  encodePng,
  evaluationPrompts,
  fewShotSet,
  heldOutReferences,
  heldOutShapes,
  imagesToTensor,
  isBenchmarkStyle,
  type BenchmarkStyle,
} from '@museum/world';
import {
  defaultGramNet,
  disposeGramStatistics,
  disposeInstruments,
  gramDistance,
  instrumentsDir,
  loadInstruments,
  MissingInstrumentError,
  toInstrumentRange,
  type GramStatistics,
  type InstrumentConfigFile,
  type Instruments,
} from '@museum/instruments';
import { agreement, continualScores, countByShape, labelCounts, type ShapeCounts, type TaskMatrix } from './continual_metrics';
import { batchImageRgb, galleryPng, heatCell, type GalleryBlock } from './gallery';

// ------------------------------------------------------------------------------------------------ configuration

/** The protocol of a run: everything that makes two runs' numbers comparable. */
export interface ContinualConfig {
  model_dir: string;
  /** `sha256:` of the base model folder (as museums reference it). */
  model_hash: string;
  instruments_dir: string;
  /** sha256 of the instruments' weight files, style/shape/colour. */
  instruments_hash: string;
  /** Benchmark styles in learning order. */
  styles: BenchmarkStyle[];
  methods: MethodName[];
  /**
   * learnStyle settings every method gets, fully resolved (library defaults + overrides). Each method is held to
   * the part it reads (methods/<m>/settings.json): a change of the library's defaults that a method reads is a
   * change of its protocol, so its results made under the old ones are not continued.
   */
  learn: LearnSettings;
  /** Loss-term weights every method gets (each method switches on only its own terms), fully resolved. */
  weights: LossWeights;
  sampler: SamplerName;
  sampler_steps: number;
  guidance: number;
  /** Held-out prompts per style: 8 shapes × colours_per_shape, each once per seed. */
  seeds: number[];
  colours_per_shape: number;
  /** Base prompts: 8 shapes × base_colours_per_shape, each once per base seed. */
  base_seeds: number[];
  base_colours_per_shape: number;
  /** Held-out reference renders per style for the Gram style distance. */
  gram_references: number;
  /** Images per pipeline call. */
  batch: number;
  quick: boolean;
}

/** The default methods: MuseumMaker, its ablations, the continual baselines and the two references. */
export const CONTINUAL_METHODS: readonly MethodName[] = METHOD_NAMES;

/** What `--quick` changes (CI: minutes, not hours). */
export const QUICK_CONTINUAL = Object.freeze({
  methods: ['museummaker', 'finetune'] as MethodName[],
  steps: 8,
  samplerSteps: 8,
  seeds: [1],
  coloursPerShape: 1,
  baseSeeds: [1],
  baseColoursPerShape: 1,
  gramReferences: 8,
});

export interface ContinualBenchOptions {
  /** The base model: a diffusers pipeline folder. */
  modelDir: string;
  /** Checkpoints and intermediate results (a rerun resumes from them). */
  workDir: string;
  /** Default: models/instruments (or $MUSEUM_INSTRUMENTS_DIR). */
  instrumentsDir?: string;
  quick?: boolean;
  methods?: MethodName[];
  styles?: BenchmarkStyle[];
  /** Optimiser steps per style (default 400; quick 8). */
  steps?: number;
  /** Other learnStyle settings, the same for every method. */
  learn?: Partial<LearnSettings>;
  /** Loss-term weights, the same for every method. */
  weights?: Partial<LossWeights>;
  sampler?: SamplerName;
  samplerSteps?: number;
  guidance?: number;
  seeds?: number[];
  coloursPerShape?: number;
  baseSeeds?: number[];
  baseColoursPerShape?: number;
  gramReferences?: number;
  batch?: number;
  /** Jobs run in parallel in child processes when > 1 (default 1: in this process). */
  workers?: number;
  /** Delete the work folder's earlier results instead of resuming. */
  fresh?: boolean;
  /** Delete these methods' earlier results (e.g. after changing settings they read); the rest resume. */
  redo?: MethodName[];
  onEvent?: (e: ContinualEvent) => void;
}

/** Progress of a job (`base` or a method name). */
export interface ContinualEvent {
  job: string;
  phase: 'start' | 'learn' | 'eval' | 'base' | 'done' | 'cached';
  /** 1-based task being learned or judged. */
  task?: number;
  style?: string;
  step: number;
  total: number;
  losses?: Record<string, number>;
  etaSeconds?: number;
}

function checkPositiveInt(name: string, v: number): void {
  if (!Number.isInteger(v) || v < 1) throw new Error(`${name} must be a positive integer, got ${v}`);
}

/** sha256 over files (absent files are an error). */
function hashFiles(files: string[]): string {
  const h = crypto.createHash('sha256');
  for (const f of files) {
    if (!fs.existsSync(f)) throw new MissingInstrumentError(f);
    h.update(path.basename(path.dirname(f)) + '\0');
    h.update(fs.readFileSync(f));
  }
  return `sha256:${h.digest('hex')}`;
}

const INSTRUMENT_FILES = ['style', 'shape', 'colour'].map((k) => path.join(k, 'model.safetensors'));

/** Resolve options into the protocol (defaults of BENCHMARK.md; `quick` for CI). */
export function resolveContinualConfig(o: ContinualBenchOptions): ContinualConfig {
  const q = o.quick ?? false;
  const modelDir = path.resolve(o.modelDir);
  if (!fs.existsSync(path.join(modelDir, 'model_index.json'))) throw new Error(`no model at ${modelDir} (model_index.json missing): pass --model DIR`);
  const instDir = path.resolve(instrumentsDir(o.instrumentsDir));
  const methods = o.methods ?? (q ? QUICK_CONTINUAL.methods : [...CONTINUAL_METHODS]);
  for (const m of methods) if (!isMethodName(m)) throw new Error(`unknown method '${m}'; one of ${METHOD_NAMES.join(', ')}`);
  if (methods.length === 0 || new Set(methods).size !== methods.length) throw new Error('methods must be a non-empty list without repeats');
  const styles = o.styles ?? [...BENCHMARK_STYLES];
  for (const s of styles) if (!isBenchmarkStyle(s)) throw new Error(`'${s}' is not a benchmark style; one of ${BENCHMARK_STYLES.join(', ')}`);
  if (styles.length === 0 || new Set(styles).size !== styles.length) throw new Error('styles must be a non-empty list without repeats');
  const cfg: ContinualConfig = {
    model_dir: modelDir,
    model_hash: baseRefFromFolder(modelDir).hash,
    instruments_dir: instDir,
    instruments_hash: hashFiles(INSTRUMENT_FILES.map((f) => path.join(instDir, f))),
    styles,
    methods,
    learn: { ...DEFAULT_LEARN_SETTINGS, ...o.learn, steps: o.steps ?? o.learn?.steps ?? (q ? QUICK_CONTINUAL.steps : DEFAULT_LEARN_SETTINGS.steps) },
    weights: { ...DEFAULT_LOSS_WEIGHTS, ...o.weights },
    sampler: o.sampler ?? 'ddim',
    sampler_steps: o.samplerSteps ?? (q ? QUICK_CONTINUAL.samplerSteps : 25),
    guidance: o.guidance ?? 7.5,
    seeds: o.seeds ?? (q ? QUICK_CONTINUAL.seeds : [1, 2]),
    colours_per_shape: o.coloursPerShape ?? (q ? QUICK_CONTINUAL.coloursPerShape : 2),
    base_seeds: o.baseSeeds ?? (q ? QUICK_CONTINUAL.baseSeeds : [1]),
    base_colours_per_shape: o.baseColoursPerShape ?? (q ? QUICK_CONTINUAL.baseColoursPerShape : COLOURS.length),
    gram_references: o.gramReferences ?? (q ? QUICK_CONTINUAL.gramReferences : 32),
    batch: o.batch ?? 16,
    quick: q,
  };
  checkPositiveInt('steps', cfg.learn.steps);
  checkPositiveInt('sampler steps', cfg.sampler_steps);
  checkPositiveInt('colours per shape', cfg.colours_per_shape);
  checkPositiveInt('base colours per shape', cfg.base_colours_per_shape);
  checkPositiveInt('gram references', cfg.gram_references);
  checkPositiveInt('batch', cfg.batch);
  if (cfg.colours_per_shape > COLOURS.length || cfg.base_colours_per_shape > COLOURS.length) throw new Error(`at most ${COLOURS.length} colours per shape`);
  if (!Number.isFinite(cfg.guidance) || cfg.guidance < 0) throw new Error(`guidance must be a number ≥ 0, got ${cfg.guidance}`);
  for (const list of [cfg.seeds, cfg.base_seeds]) {
    if (list.length === 0 || list.some((s) => !Number.isInteger(s) || s < 0)) throw new Error('seeds must be a non-empty list of non-negative integers');
  }
  return cfg;
}

/**
 * What every method's results in a work folder share: the model and instruments (by content hash, not by where
 * a checkout keeps them), styles, judging and sampling. Methods may be added or dropped, and the learning
 * settings are held per method (`methodSettings`).
 */
function protocolOf(c: ContinualConfig): Omit<ContinualConfig, 'methods' | 'model_dir' | 'instruments_dir' | 'learn' | 'weights'> {
  const { methods: _m, model_dir: _d, instruments_dir: _i, learn: _l, weights: _w, ...rest } = c;
  return rest;
}

/** The learning settings and loss weights `method` reads under `config` (what its results depend on). */
function methodSettings(config: Pick<ContinualConfig, 'learn' | 'weights'>, method: MethodName): MethodSettings {
  return settingsUsedBy(method, config.learn, config.weights);
}

/**
 * A method's stored settings as the code of their time meant them: settings and components added since were
 * absent from the files, and had then the value written here (every method trained on zero-mean noise; the
 * feature regularization drew the empty prompt uniformly with earlier styles; a shared LoRA was trained whole; files from before components were
 * recorded had the method's components with no token kept apart).
 */
function withLegacyDefaults(stored: MethodSettings, now: MethodSettings): MethodSettings {
  // featRegEmptyShare came later; a method with feature regularization drew the empty prompt uniformly then
  const emptyShare = stored.learn.featRegBatch !== undefined ? { featRegEmptyShare: 'uniform' as const } : {};
  // loraStyleBlock came later; a shared LoRA was trained whole (0) then
  const styleBlock = stored.learn.rank !== undefined && 'loraStyleBlock' in now.learn ? { loraStyleBlock: 0 } : {};
  return {
    learn: { noiseOffset: 0, ...emptyShare, ...styleBlock, ...stored.learn },
    weights: stored.weights,
    components: stored.components ?? { ...now.components, tokenOrthogonal: false },
  };
}

/** Keys (of either object) whose values differ, each prefixed (`learn.lr`). */
function differingKeys(a: object, b: object, prefix = ''): string[] {
  const av = a as Record<string, unknown>;
  const bv = b as Record<string, unknown>;
  const keys = new Set([...Object.keys(av), ...Object.keys(bv)]);
  return [...keys].filter((k) => JSON.stringify(av[k]) !== JSON.stringify(bv[k])).map((k) => prefix + k);
}

// ------------------------------------------------------------------------------------------------ prompts

/** One generated image of the benchmark: its prompt, noise seed and the labels it should get. */
export interface PromptJob {
  prompt: string;
  seed: number;
  shape: string;
  colour: string;
}

/** Noise seed of prompt i under seed σ: the same for every method, task and style (σ·1000 + i). */
function noiseSeed(seed: number, i: number): number {
  return seed * 1000 + i;
}

/** The held-out grid of a style: evaluationPrompts(style, colours) × seeds. */
export function heldOutJobs(style: BenchmarkStyle, c: Pick<ContinualConfig, 'seeds' | 'colours_per_shape'>): PromptJob[] {
  const cells = evaluationPrompts(style, c.colours_per_shape);
  return c.seeds.flatMap((seed) => cells.map((cell, i) => ({ prompt: cell.prompt, seed: noiseSeed(seed, i), shape: cell.shape, colour: cell.colour })));
}

/** The base prompts `a {colour} {shape}`: every shape with `base_colours_per_shape` colours, once per base seed. */
export function baseJobs(c: Pick<ContinualConfig, 'base_seeds' | 'base_colours_per_shape'>): PromptJob[] {
  const cells: Array<{ shape: string; colour: string }> = [];
  SHAPES.forEach((shape, j) => {
    // 3 is prime to 8: with 8 colours per shape every colour appears once, with fewer they vary across shapes
    for (let k = 0; k < c.base_colours_per_shape; k++) cells.push({ shape, colour: COLOURS[(j + 3 * k) % COLOURS.length] });
  });
  return c.base_seeds.flatMap((seed) => cells.map((cell, i) => ({ prompt: contentPrompt(cell.colour as never, cell.shape as never), seed: noiseSeed(seed, i), ...cell })));
}

// ------------------------------------------------------------------------------------------------ judging

/** A judged (task, style) cell. */
export interface CellEval {
  style: BenchmarkStyle;
  /** Share the style instrument labels as the prompted style. */
  S: number;
  /** Share the shape instrument labels as the prompted shape. */
  C: number;
  shapes: ShapeCounts;
  /** Classifier-free Gram style distance to held-out references of the style (lower is closer). */
  gram: number;
  images: number;
  /** What the style instrument called the cell's images (label → count): where a missed style went. */
  style_labels?: Record<string, number>;
}

export interface BaseEval {
  shape_acc: number;
  colour_acc: number;
  shapes: ShapeCounts;
  images: number;
}

/** A row of the matrices: every learned style judged after task `task` (1-based). */
export interface EvalRow {
  task: number;
  version: number;
  cells: CellEval[];
  seconds: number;
}

type Generate = (prompts: string[], seeds: number[]) => Promise<tf.Tensor4D>;

async function generateAll(gen: Generate, jobs: PromptJob[], batch: number, progress: (done: number) => void): Promise<tf.Tensor4D> {
  const parts: tf.Tensor4D[] = [];
  try {
    for (let i = 0; i < jobs.length; i += batch) {
      const chunk = jobs.slice(i, i + batch);
      parts.push(await gen(chunk.map((j) => j.prompt), chunk.map((j) => j.seed)));
      progress(Math.min(jobs.length, i + batch));
    }
    return parts.length === 1 ? parts.pop()! : (tf.concat(parts, 0) as tf.Tensor4D);
  } finally {
    tf.dispose(parts);
  }
}

/** The instruments and the Gram references of one process. */
export class ContinualJudge {
  private readonly refs = new Map<BenchmarkStyle, GramStatistics>();

  constructor(
    readonly instruments: Instruments,
    readonly gramReferences: number,
  ) {}

  private referenceStats(style: BenchmarkStyle): GramStatistics {
    let s = this.refs.get(style);
    if (!s) {
      // seed 1: disjoint from the few-shot sets and from anything a model was trained on
      const x = imagesToTensor(heldOutReferences(style, this.gramReferences, 1));
      s = defaultGramNet().statistics(x);
      x.dispose();
      this.refs.set(style, s);
    }
    return s;
  }

  /** Judge a cell's images ([0, 1], as the pipeline makes them). */
  cell(style: BenchmarkStyle, images01: tf.Tensor4D, jobs: PromptJob[]): CellEval {
    const x = toInstrumentRange(images01);
    try {
      const styles = this.instruments.style.classify(x).labels;
      const shapes = this.instruments.shape.classify(x).labels;
      const truth = jobs.map((j) => j.shape);
      const stats = defaultGramNet().statistics(x);
      let gram: number;
      try {
        gram = gramDistance(stats, this.referenceStats(style)).distance;
      } finally {
        disposeGramStatistics(stats);
      }
      return {
        style,
        S: agreement(styles, jobs.map(() => style)),
        C: agreement(shapes, truth),
        shapes: countByShape(shapes, truth),
        gram,
        images: jobs.length,
        style_labels: labelCounts(styles),
      };
    } finally {
      x.dispose();
    }
  }

  base(images01: tf.Tensor4D, jobs: PromptJob[]): BaseEval {
    const x = toInstrumentRange(images01);
    try {
      const shapes = this.instruments.shape.classify(x).labels;
      const colours = this.instruments.colour.classify(x).labels;
      const truth = jobs.map((j) => j.shape);
      return { shape_acc: agreement(shapes, truth), colour_acc: agreement(colours, jobs.map((j) => j.colour)), shapes: countByShape(shapes, truth), images: jobs.length };
    } finally {
      x.dispose();
    }
  }

  dispose(): void {
    for (const s of this.refs.values()) disposeGramStatistics(s);
    this.refs.clear();
    disposeInstruments(this.instruments);
  }
}

// ------------------------------------------------------------------------------------------------ work folder

function writeJsonAtomic(file: string, value: unknown): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(value, null, 2) + '\n');
  fs.renameSync(tmp, file);
}

function readJson<T>(file: string): T | null {
  return fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, 'utf8')) as T) : null;
}

export function methodWorkDir(workDir: string, method: string): string {
  return path.join(workDir, 'methods', method);
}

export function cellImageFile(workDir: string, method: string, task: number, style: string): string {
  return path.join(methodWorkDir(workDir, method), 'cells', `t${task}-${style}.png`);
}

function methodSettingsFile(workDir: string, method: string): string {
  return path.join(methodWorkDir(workDir, method), 'settings.json');
}

/**
 * Make `workDir` hold this protocol: a new folder gets config.json; a folder of the same protocol is resumed;
 * another protocol is refused (or wiped when `fresh`). Each method's earlier results are resumed only if they
 * were learned with the settings it reads now; otherwise refused, or discarded when the method is in `redo`.
 */
export function prepareWorkDir(workDir: string, config: ContinualConfig, fresh = false, redo: readonly MethodName[] = []): void {
  const file = path.join(workDir, 'config.json');
  if (fresh && fs.existsSync(workDir)) {
    for (const e of ['config.json', 'base.json', 'methods']) fs.rmSync(path.join(workDir, e), { recursive: true, force: true });
  }
  const stored = readJson<ContinualConfig>(file);
  if (stored && JSON.stringify(protocolOf(stored)) !== JSON.stringify(protocolOf(config))) {
    const diff = differingKeys(protocolOf(stored), protocolOf(config));
    throw new Error(`${workDir} holds a run of another protocol (differs in: ${diff.join(', ')}); use another --work-dir or --fresh`);
  }
  for (const m of redo) fs.rmSync(methodWorkDir(workDir, m), { recursive: true, force: true });
  // folders written before settings were held per method: their settings are the stored config's
  const methodsDir = path.join(workDir, 'methods');
  if (stored?.learn && stored.weights && fs.existsSync(methodsDir)) {
    for (const m of fs.readdirSync(methodsDir)) {
      if (isMethodName(m) && !fs.existsSync(methodSettingsFile(workDir, m))) writeJsonAtomic(methodSettingsFile(workDir, m), methodSettings(stored, m));
    }
  }
  const conflicts: Array<{ method: MethodName; diff: string[] }> = [];
  for (const m of config.methods) {
    const saved = readJson<MethodSettings>(methodSettingsFile(workDir, m));
    if (!saved) continue;
    const now = methodSettings(config, m);
    const before = withLegacyDefaults(saved, now);
    const diff = [...differingKeys(before.learn, now.learn, 'learn.'), ...differingKeys(before.weights, now.weights, 'weights.'), ...differingKeys(before.components, now.components, 'components.')];
    if (diff.length) conflicts.push({ method: m, diff });
  }
  if (conflicts.length) {
    const what = conflicts.map((c) => `${c.method} (differs in: ${c.diff.join(', ')})`).join('; ');
    throw new Error(`${workDir} holds results learned with other settings: ${what}; use --redo ${conflicts.map((c) => c.method).join(',')}, another --work-dir or --fresh`);
  }
  // Only what is new is written: a resumed folder's files stay as they were (its settings may lack keys added
  // since, read at their legacy values above), so reading or resuming a committed run leaves it untouched. When a
  // method's settings are (re)written, config.json follows, so its learn settings stay those of the latest learning.
  let learning = false;
  for (const m of config.methods) {
    if (fs.existsSync(methodSettingsFile(workDir, m))) continue;
    writeJsonAtomic(methodSettingsFile(workDir, m), methodSettings(config, m));
    learning = true;
  }
  if (!stored || learning) writeJsonAtomic(file, config);
}

// ------------------------------------------------------------------------------------------------ jobs

export type ContinualJob = { kind: 'base' } | { kind: 'method'; method: MethodName };

function jobName(j: ContinualJob): string {
  return j.kind === 'base' ? 'base' : j.method;
}

function genOptions(c: ContinualConfig) {
  // Every-step guidance, whatever the model folder recommends: the protocol's sampler is fixed for every run.
  return { steps: c.sampler_steps, guidance: c.guidance, guidanceInterval: null, guidanceRescale: 0, sampler: c.sampler };
}

/** base_before: the base prompts on the base model (version 0 of every museum). Cached in <work>/base.json. */
export async function runBaseJob(config: ContinualConfig, workDir: string, onEvent?: (e: ContinualEvent) => void): Promise<BaseEval> {
  const file = path.join(workDir, 'base.json');
  const cached = readJson<BaseEval>(file);
  if (cached) {
    onEvent?.({ job: 'base', phase: 'cached', step: 1, total: 1 });
    return cached;
  }
  const jobs = baseJobs(config);
  const pipe = StableDiffusionPipeline.fromPretrained(config.model_dir);
  const judge = new ContinualJudge(loadInstruments(config.instruments_dir), config.gram_references);
  try {
    onEvent?.({ job: 'base', phase: 'start', step: 0, total: jobs.length });
    const gen: Generate = async (prompts, seeds) => (await pipe.generate({ prompt: prompts, seed: seeds, ...genOptions(config) })) as tf.Tensor4D;
    const images = await generateAll(gen, jobs, config.batch, (n) => onEvent?.({ job: 'base', phase: 'base', step: n, total: jobs.length }));
    const r = judge.base(images, jobs);
    images.dispose();
    writeJsonAtomic(file, r);
    onEvent?.({ job: 'base', phase: 'done', step: jobs.length, total: jobs.length });
    return r;
  } finally {
    judge.dispose();
    pipe.dispose();
  }
}

/** Everything measured for one method (result.json); the scores are derived by `summarizeMethod`. */
export interface MethodRun {
  method: MethodName;
  styles: BenchmarkStyle[];
  rows: EvalRow[];
  base_after: BaseEval;
  /** learnStyle wall seconds of each style (prepare + train + commit), from the museum's manifests. */
  train_seconds: number[];
  /** Bytes a server holds to serve version t (shared LoRA + token table + per-style adapters), t = 1..T. */
  bytes_by_version: number[];
  /** Per-method training state kept with the last version (EWC Fisher, joint's images): not served. */
  state_bytes: number;
  /** Trained parameters of each style (LoRA + token rows). */
  params_per_style: number[];
  eval_seconds: number;
}

function servedBytes(m: VersionManifest): number {
  return (m.lora?.bytes ?? 0) + (m.tokens?.bytes ?? 0) + m.styles.reduce((s, st) => s + (st.adapter?.bytes ?? 0), 0);
}

/**
 * Learn the styles in order with `method` and judge after each task; resumes from the work folder (learned
 * versions are kept in the museum, judged rows in rows.json).
 */
export async function runContinualMethod(config: ContinualConfig, workDir: string, method: MethodName, onEvent?: (e: ContinualEvent) => void): Promise<MethodRun> {
  const dir = methodWorkDir(workDir, method);
  const resultFile = path.join(dir, 'result.json');
  const cached = readJson<MethodRun>(resultFile);
  if (cached) {
    onEvent?.({ job: method, phase: 'cached', step: 1, total: 1 });
    return cached;
  }
  fs.mkdirSync(path.join(dir, 'cells'), { recursive: true });
  const museum = Museum.openOrCreate(path.join(dir, 'museum'), { baseModelDir: config.model_dir });
  const learned = museum.listStyles();
  const T = config.styles.length;
  if (learned.length > T || learned.some((s, i) => s.name !== config.styles[i])) {
    throw new Error(`${museum.dir} holds styles [${learned.map((s) => s.name)}], not a prefix of [${config.styles}]: use --fresh`);
  }
  const rowsFile = path.join(dir, 'rows.json');
  const rows = readJson<EvalRow[]>(rowsFile) ?? [];
  let evalSeconds = rows.reduce((s, r) => s + r.seconds, 0);
  const pipe = StableDiffusionPipeline.fromPretrained(config.model_dir);
  const models = modelsFromPipeline(pipe);
  const judge = new ContinualJudge(loadInstruments(config.instruments_dir), config.gram_references);
  const emit = (e: Omit<ContinualEvent, 'job'>) => onEvent?.({ job: method, ...e });
  emit({ phase: 'start', step: 0, total: T });

  // Generate under museum version `version`, through the same runtime the services use.
  const withVersion = async <R>(version: number, fn: (gen: Generate) => Promise<R>): Promise<R> => {
    const rt = new MuseumRuntime(models, { baseHash: museum.base.hash });
    try {
      const v = rt.load(museum, version);
      return await fn((prompts, seeds) => rt.generate(v, { prompt: prompts, seed: seeds, ...genOptions(config) }));
    } finally {
      rt.dispose();
    }
  };

  try {
    for (let t = 0; t < T; t++) {
      const style = config.styles[t];
      if (museum.latestVersion() < t + 1) {
        const set = fewShotSet(style);
        await learnStyle(museum, style, set, {
          ...config.learn,
          weights: config.weights,
          method,
          models,
          captions: set.map((s) => s.caption),
          onProgress: (p) => {
            if (p.phase === 'train') emit({ phase: 'learn', task: t + 1, style, step: p.step, total: p.total, losses: p.losses as Record<string, number>, etaSeconds: p.etaSeconds });
          },
        });
      }
      if (!rows[t]) {
        const t0 = Date.now();
        const learnedStyles = config.styles.slice(0, t + 1);
        const total = learnedStyles.length * heldOutJobs(learnedStyles[0], config).length;
        let done = 0;
        const cells = await withVersion(t + 1, async (gen) => {
          const out: CellEval[] = [];
          for (const s of learnedStyles) {
            const jobs = heldOutJobs(s, config);
            const images = await generateAll(gen, jobs, config.batch, (n) => emit({ phase: 'eval', task: t + 1, style: s, step: done + n, total }));
            done += jobs.length;
            try {
              out.push(judge.cell(s, images, jobs));
              const first = await batchImageRgb(images, 0);
              fs.writeFileSync(cellImageFile(workDir, method, t + 1, s), encodePng(first.rgb, first.width, first.height));
            } finally {
              images.dispose();
            }
          }
          return out;
        });
        const seconds = (Date.now() - t0) / 1000;
        evalSeconds += seconds;
        rows[t] = { task: t + 1, version: t + 1, cells, seconds };
        writeJsonAtomic(rowsFile, rows);
      }
    }
    const t0 = Date.now();
    const bj = baseJobs(config);
    const baseAfter = await withVersion(T, async (gen) => {
      const images = await generateAll(gen, bj, config.batch, (n) => emit({ phase: 'base', task: T, step: n, total: bj.length }));
      try {
        return judge.base(images, bj);
      } finally {
        images.dispose();
      }
    });
    evalSeconds += (Date.now() - t0) / 1000;
    const manifests = Array.from({ length: T }, (_, t) => museum.manifest(t + 1));
    const last = manifests[T - 1];
    const run: MethodRun = {
      method,
      styles: config.styles,
      rows,
      base_after: baseAfter,
      train_seconds: last.styles.map((s) => s.trainSeconds),
      bytes_by_version: manifests.map(servedBytes),
      state_bytes: Object.values(last.state).reduce((s, r) => s + r.bytes, 0),
      params_per_style: last.styles.map((s) => s.metrics.trainedParameters ?? 0),
      eval_seconds: evalSeconds,
    };
    writeJsonAtomic(resultFile, run);
    emit({ phase: 'done', step: T, total: T });
    return run;
  } finally {
    judge.dispose();
    pipe.dispose();
  }
}

/** Run one job in this process (the body of a worker). */
export async function runContinualJob(config: ContinualConfig, workDir: string, job: ContinualJob, onEvent?: (e: ContinualEvent) => void): Promise<void> {
  if (job.kind === 'base') await runBaseJob(config, workDir, onEvent);
  else await runContinualMethod(config, workDir, job.method, onEvent);
}

// ------------------------------------------------------------------------------------------------ workers

/** Messages between the coordinator and a worker process. */
export type WorkerRequest = { type: 'run'; config: ContinualConfig; workDir: string; job: ContinualJob };
export type WorkerReply = { type: 'event'; event: ContinualEvent } | { type: 'done' } | { type: 'error'; message: string };

function runInWorker(config: ContinualConfig, workDir: string, job: ContinualJob, onEvent?: (e: ContinualEvent) => void): Promise<void> {
  const { file: script, execArgv } = workerScript(__filename, 'continual_worker');
  return new Promise((resolve, reject) => {
    const child = fork(script, [], { execArgv, stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
    let stderr = '';
    let failure: string | null = null;
    let finished = false;
    child.stderr?.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-4000);
    });
    child.on('message', (m: WorkerReply) => {
      if (m.type === 'event') onEvent?.(m.event);
      else if (m.type === 'done') finished = true;
      else if (m.type === 'error') failure = m.message;
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (finished && code === 0) resolve();
      else reject(new Error(`job ${jobName(job)} failed: ${failure ?? `worker exited with ${signal ?? `code ${code}`}`}${stderr && !failure ? `\n${stderr}` : ''}`));
    });
    child.send({ type: 'run', config, workDir, job } satisfies WorkerRequest);
  });
}

/** Run jobs `workers` at a time (in this process when workers = 1); every job runs even if one fails. */
async function runJobs(jobs: ContinualJob[], workers: number, run: (j: ContinualJob) => Promise<void>): Promise<Array<{ job: ContinualJob; error: Error }>> {
  const failures: Array<{ job: ContinualJob; error: Error }> = [];
  let next = 0;
  const lane = async () => {
    while (next < jobs.length) {
      const job = jobs[next++];
      try {
        await run(job);
      } catch (err) {
        failures.push({ job, error: err as Error });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(workers, jobs.length)) }, lane));
  return failures;
}

// ------------------------------------------------------------------------------------------------ the report

/** What BENCHMARK.md asks per method, plus the extras that explain it. */
export interface MethodReport {
  /** The learning settings and loss weights this method read (methods/<m>/settings.json). */
  settings: MethodSettings;
  A: number;
  F: number | null;
  P: number;
  content_heldout: number | null;
  base_before: number;
  base_after: number;
  S: TaskMatrix;
  C: TaskMatrix;
  train_seconds_per_style: number;
  bytes_per_style: number;
  /** Gram style distance of every cell (lower is closer to the style's references). */
  G: TaskMatrix;
  /** G after the last task, per style, and its mean. */
  gram_final: number[];
  gram_mean: number;
  /** Per style, what the style instrument called its images after the last task (label → count; null for rows judged before labels were kept). */
  style_labels_final: Array<Record<string, number> | null>;
  content_heldout_by_style: Array<number | null>;
  base_colour_before: number;
  base_colour_after: number;
  train_seconds: number[];
  bytes_by_version: number[];
  /** What each version added to the served bytes (a shared LoRA's size shows up once, in version 1). */
  bytes_added_by_version: number[];
  state_bytes: number;
  params_per_style: number[];
  eval_seconds: number;
  styles: BenchmarkStyle[];
}

export function summarizeMethod(run: MethodRun, baseBefore: BaseEval, settings: MethodSettings): MethodReport {
  const T = run.styles.length;
  if (run.rows.length !== T) throw new Error(`${run.method}: ${run.rows.length} judged rows for ${T} styles`);
  const S = run.rows.map((r) => r.cells.map((c) => c.S));
  const C = run.rows.map((r) => r.cells.map((c) => c.C));
  const G = run.rows.map((r) => r.cells.map((c) => c.gram));
  const final = run.rows[T - 1].cells;
  const scores = continualScores(S, C, final.map((c) => c.shapes), run.styles.map((s) => heldOutShapes(s)));
  const gramFinal = final.map((c) => c.gram);
  return {
    settings,
    A: scores.A,
    F: scores.F,
    P: scores.P,
    content_heldout: scores.content_heldout,
    base_before: baseBefore.shape_acc,
    base_after: run.base_after.shape_acc,
    S,
    C,
    train_seconds_per_style: run.train_seconds.reduce((a, b) => a + b, 0) / T,
    bytes_per_style: run.bytes_by_version[T - 1] / T,
    G,
    gram_final: gramFinal,
    gram_mean: gramFinal.reduce((a, b) => a + b, 0) / T,
    style_labels_final: final.map((c) => c.style_labels ?? null),
    content_heldout_by_style: scores.content_heldout_by_style,
    base_colour_before: baseBefore.colour_acc,
    base_colour_after: run.base_after.colour_acc,
    train_seconds: run.train_seconds,
    bytes_by_version: run.bytes_by_version,
    bytes_added_by_version: run.bytes_by_version.map((b, t) => b - (t > 0 ? run.bytes_by_version[t - 1] : 0)),
    state_bytes: run.state_bytes,
    params_per_style: run.params_per_style,
    eval_seconds: run.eval_seconds,
    styles: run.styles,
  };
}

export interface ContinualBenchResult {
  methods: Record<string, MethodReport>;
  /** Held-out accuracies the instruments were shipped with (null when their config records none). */
  instruments: { style_acc: number | null; shape_acc: number | null };
  config: ContinualConfig & { work_dir: string; workers: number; wall_seconds: number; date: string };
}

/** Held-out accuracy recorded in an instrument's config.json. */
export function instrumentHeldOutAccuracy(dir: string, kind: 'style' | 'shape' | 'colour'): number | null {
  const file = readJson<InstrumentConfigFile>(path.join(dir, kind, 'config.json'));
  return file?.record?.heldout?.accuracy ?? null;
}

/** Run (or resume) the benchmark and assemble its report. */
export async function runContinualBench(o: ContinualBenchOptions): Promise<ContinualBenchResult> {
  await initBackend({ log: () => {} });
  const t0 = Date.now();
  const config = resolveContinualConfig(o);
  const workDir = path.resolve(o.workDir);
  prepareWorkDir(workDir, config, o.fresh, o.redo);
  const workers = o.workers ?? 1;
  checkPositiveInt('workers', workers);
  const jobs: ContinualJob[] = [{ kind: 'base' }, ...config.methods.map((method) => ({ kind: 'method' as const, method }))];
  // finished jobs are read back here; only jobs with work left get a process of their own
  const finished = (j: ContinualJob) => fs.existsSync(j.kind === 'base' ? path.join(workDir, 'base.json') : path.join(methodWorkDir(workDir, j.method), 'result.json'));
  const failures = await runJobs(jobs, workers, (job) =>
    workers > 1 && !finished(job) ? runInWorker(config, workDir, job, o.onEvent) : runContinualJob(config, workDir, job, o.onEvent),
  );
  if (failures.length) {
    throw new Error(`${failures.length} job(s) failed (finished ones are kept in ${workDir}; rerun to resume):\n` + failures.map((f) => `  ${jobName(f.job)}: ${f.error.message}`).join('\n'));
  }
  const baseBefore = readJson<BaseEval>(path.join(workDir, 'base.json'))!;
  const methods: Record<string, MethodReport> = {};
  for (const m of config.methods) {
    // prepareWorkDir held every method's stored settings to these
    methods[m] = summarizeMethod(readJson<MethodRun>(path.join(methodWorkDir(workDir, m), 'result.json'))!, baseBefore, methodSettings(config, m));
  }
  return {
    methods,
    instruments: { style_acc: instrumentHeldOutAccuracy(config.instruments_dir, 'style'), shape_acc: instrumentHeldOutAccuracy(config.instruments_dir, 'shape') },
    config: { ...config, work_dir: workDir, workers, wall_seconds: (Date.now() - t0) / 1000, date: new Date().toISOString() },
  };
}

// ------------------------------------------------------------------------------------------------ output

function fmt(v: number | null | undefined, digits = 3): string {
  return v === null || v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(digits);
}

/** The headline table (one line per method). */
export function formatContinualTable(r: ContinualBenchResult): string {
  const head = ['method', 'A', 'F', 'P', 'content_ho', 'base before→after', 'gram', 's/style', 'KB/style'];
  const rows = Object.entries(r.methods).map(([name, m]) => [
    name,
    fmt(m.A),
    fmt(m.F),
    fmt(m.P),
    fmt(m.content_heldout),
    `${fmt(m.base_before)}→${fmt(m.base_after)}`,
    fmt(m.gram_mean),
    fmt(m.train_seconds_per_style, 1),
    fmt(m.bytes_per_style / 1024, 1),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  const inst = `instruments: style ${fmt(r.instruments.style_acc)} / shape ${fmt(r.instruments.shape_acc)} held-out accuracy`;
  const cfg = r.config;
  const proto = `${cfg.styles.length} styles, ${cfg.learn.steps} steps/style, ${heldOutJobs(cfg.styles[0], cfg).length} images/cell, ${cfg.sampler} ${cfg.sampler_steps} steps, guidance ${cfg.guidance}${cfg.quick ? ' (quick)' : ''}`;
  return [line(head), ...rows.map(line), '', inst, proto].join('\n');
}

/**
 * The museum as it grew: one block per method (rows: styles, columns: tasks; the first image of each judged
 * cell), as a PNG. Cells of styles not yet learned are grey.
 */
export function continualGalleryPng(workDir: string, result: ContinualBenchResult, methods: string[] = Object.keys(result.methods)): Buffer {
  const blocks: GalleryBlock[] = methods.map((m) => {
    const rep = result.methods[m];
    if (!rep) throw new Error(`no results for method ${m}`);
    const styles = rep.styles;
    const cells = styles.map((s, si) =>
      styles.map((_, t) => {
        if (si > t) return null;
        const file = cellImageFile(workDir, m, t + 1, s);
        return fs.existsSync(file) ? decodePng(fs.readFileSync(file)) : null;
      }),
    );
    return { title: `${m}  a ${fmt(rep.A, 2)}  f ${fmt(rep.F, 2)}`, rowLabels: [...styles], columnLabels: styles.map((_, t) => `t${t + 1}`), cells };
  });
  return galleryPng(blocks);
}

/**
 * The accuracy matrices as one PNG: per method, S[t][s] (style accuracy of style s after task t, in %) coloured
 * from red (0) to green (100); rows = styles, columns = tasks, so forgetting reads as a row turning red.
 */
export function continualMatrixPng(result: ContinualBenchResult, methods: string[] = Object.keys(result.methods), tile = 40): Buffer {
  const blocks: GalleryBlock[] = methods.map((m) => {
    const rep = result.methods[m];
    if (!rep) throw new Error(`no results for method ${m}`);
    const styles = rep.styles;
    const cells = styles.map((_, si) => styles.map((__, t) => (si <= t && rep.S[t]?.[si] !== undefined ? heatCell(rep.S[t][si], tile) : null)));
    return {
      title: `${m}  a ${fmt(rep.A, 2)}  f ${fmt(rep.F, 2)}  p ${fmt(rep.P, 2)}`,
      rowLabels: [...styles],
      columnLabels: styles.map((_, t) => `t${t + 1}`),
      cells,
    };
  });
  return galleryPng(blocks, { tile, columns: Math.min(4, blocks.length) });
}

/** How the gallery is laid out (written into the JSON next to it). */
export function galleryLegend(result: ContinualBenchResult, methods: string[]): Record<string, unknown> {
  return {
    blocks: methods,
    rows: result.config.styles,
    columns: result.config.styles.map((s, t) => `t${t + 1}: after learning ${s}`),
    cell: 'the first held-out prompt of the style (first seed), generated with the museum version after that task; grey = style not learned yet',
  };
}
