/**
 * learnStyle: add one style to a museum. Every method of `methods.ts` runs through this one loop:
 *
 *   prepare  images → VAE latents (posterior mean/std, sampled every step); the task token `<name>` (a new row
 *            initialised from a word); the LoRA (shared: continued from the previous version; separate/joint:
 *            fresh); the regularizers' constants from earlier versions (their LoRA updates, the previous
 *            adapter as feature teacher, EWC's Fisher); the SDL target z̄ from the images' own latents.
 *   train    per step: ε-prediction loss on noised latents of a batch of the style's images, plus the method's
 *            terms: SDL on x̂0 (from the same prediction), feature regularization on earlier styles' prompts
 *            over N(0, I) or replayed latents (featRegInputs) against the previous version, weight regularization (LoRA updates kept apart),
 *            C-LoRA / EWC penalties. Only the new token's row and the LoRA get gradients; the base model's
 *            weights are never in the optimiser's list.
 *   commit   version k+1 = shared LoRA + token table + metadata (+ per-method state), atomically.
 */
import { tf } from '@museum/tensor';
import {
  DDPMScheduler,
  LoraAdapterSet,
  SD_SCHEDULER_CONFIG,
  StableDiffusionPipeline,
  applyLora,
  injectLora,
  loraFromStateDict,
  loraStateDict,
  seedInit,
  defaultLoraProjections,
  LORA_TARGET_KINDS,
} from '@museum/models';
import { AdamW, clipGradNorm, warmupCosineLr } from '@museum/training';
import { COLOURS, Rng, SHAPES, deriveSeed } from '@museum/world';
import { MuseumError, styleTokenOf } from '../errors';
import { StyleModels, disposeModels, ensureTokens, modelResolution, modelsFromPipeline, pipelineFromModels, promptLength, setTokenRows, singleTokenId } from '../models';
import type { LoraConfigRecord, StyleEmbedding, StyleRecord, VersionManifest } from '../store/manifest';
import type { LoadedVersion, Museum, TensorFile } from '../store/museum';
import { StyleImageInput, prepareImages } from './images';
import {
  EarlierInputSubspaces,
  EarlierUpdateGroup,
  EarlierUpdates,
  LowRank,
  cloraPenalty,
  diffusionLoss,
  disposeEarlierUpdateGroup,
  disposeEarlierUpdates,
  ewcPenalty,
  featureRegularization,
  groupEarlierUpdates,
  predictCleanLatent,
  stackEarlierInputSubspaces,
  stackEarlierUpdates,
  stackedInputSubspaceRegularization,
  styleDistillationLoss,
  trainingNoise,
  weightRegularization,
} from './losses';
import { LoraFactors, blockUpdate, denseUpdate, disposeFactors, factorsFromStateDict, lowRankDifference } from './lora_math';
import { LossComponents, MethodName, MethodSpec, SHARED_STYLE_WORD, methodSpec, resolveComponents } from './methods';
import { DEFAULT_LEARN_SETTINGS, DEFAULT_LOSS_WEIGHTS, LearnSettings, LearnStyleOptions, LossName, LossWeights } from './options';
import { DecoderStyleStatistics, StyleTarget, disposeStyleTarget, styleTarget } from './style_features';

export interface LearnStyleResult {
  version: number;
  manifest: VersionManifest;
  style: StyleRecord;
  trainSeconds: number;
  secondsPerStep: number;
}

const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

function throwIfAborted(signal?: AbortSignal): void {
  if (signal?.aborted) throw new MuseumError('CANCELLED', 'style learning cancelled; nothing was committed');
}

function checkOneOf(name: string, v: string, allowed: readonly string[]): void {
  if (!allowed.includes(v)) throw new MuseumError('INVALID_ARGUMENT', `${name} ${v} is not supported (${allowed.join(', ')})`);
}

function checkNumber(name: string, v: number, lo: number, integer = false, hi = Infinity): void {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < lo || v > hi || (integer && !Number.isInteger(v))) {
    const range = hi === Infinity ? `≥ ${lo}` : `in [${lo}, ${hi}]`;
    throw new MuseumError('INVALID_ARGUMENT', `${name} must be ${integer ? 'an integer' : 'a number'} ${range}, got ${v}`);
  }
}

function resolveSettings(o: LearnStyleOptions, parent: VersionManifest): LearnSettings {
  const s: LearnSettings = { ...DEFAULT_LEARN_SETTINGS };
  for (const k of Object.keys(DEFAULT_LEARN_SETTINGS) as Array<keyof LearnSettings>) {
    if (o[k] !== undefined) (s as unknown as Record<string, unknown>)[k] = o[k];
  }
  checkNumber('steps', s.steps, 1, true);
  checkNumber('batchSize', s.batchSize, 1, true);
  checkNumber('lr', s.lr, 0);
  checkNumber('tokenLr', s.tokenLr, 0);
  checkNumber('tokenNormCap', s.tokenNormCap, 0);
  checkNumber('warmup', s.warmup, 0, true);
  checkNumber('weightDecay', s.weightDecay, 0);
  checkNumber('maxGradNorm', s.maxGradNorm, 0);
  checkNumber('rank', s.rank, 1, true);
  checkNumber('alpha', s.alpha, 0);
  checkNumber('sdlTemperature', s.sdlTemperature, 1e-6);
  checkNumber('sdlUpBlocks', s.sdlUpBlocks, 0, true);
  checkNumber('featRegBatch', s.featRegBatch, 1, true);
  checkNumber('featRegReplay', s.featRegReplay, 1, true);
  checkNumber('featRegReplaySteps', s.featRegReplaySteps, 1, true);
  checkOneOf('featRegInputs', s.featRegInputs, ['noise', 'replay']);
  if (s.featRegEmptyShare !== 'uniform') checkNumber('featRegEmptyShare', s.featRegEmptyShare as number, 0, false, 1);
  checkNumber('noiseOffset', s.noiseOffset, 0);
  checkNumber('ewcFisherSamples', s.ewcFisherSamples, 1, true);
  checkOneOf('weightRegForm', s.weightRegForm, ['cosine', 'input-subspace']);
  checkOneOf('loraTargets', s.loraTargets, LORA_TARGET_KINDS);
  checkNumber('loraStyleBlock', s.loraStyleBlock, 0, true);
  if (typeof s.initWord !== 'string' || s.initWord.length === 0) throw new MuseumError('INVALID_ARGUMENT', 'initWord must be a word or "random"');
  // The shared LoRA's shape is the museum's: later styles must keep it.
  const fixed = parent.lora;
  if (fixed) {
    for (const k of ['rank', 'alpha', 'loraTargets'] as const) {
      const given = o[k];
      const stored = k === 'loraTargets' ? fixed.targets : fixed[k];
      if (given !== undefined && given !== stored) throw new MuseumError('FAILED_PRECONDITION', `the museum's shared LoRA has ${k} ${stored}; it cannot change to ${given}`);
    }
    s.rank = fixed.rank;
    s.alpha = fixed.alpha;
    s.loraTargets = fixed.targets;
  }
  return s;
}

/** Captions with the style as `in <name>` (or as the shared word for word-embedded styles). */
function resolveCaptions(name: string, n: number, captions: string[] | undefined): string[] {
  const token = styleTokenOf(name);
  if (captions === undefined) return new Array<string>(n).fill(`a picture in ${token}`);
  if (!Array.isArray(captions) || captions.length !== n) throw new MuseumError('INVALID_ARGUMENT', `${captions?.length} captions for ${n} images`);
  return captions.map((c, i) => {
    if (typeof c !== 'string') throw new MuseumError('INVALID_ARGUMENT', `caption ${i} is not a string`);
    const t = c.trim();
    return t.includes(token) ? t : `${t} in ${token}`.trim();
  });
}

/** How a style's placeholder reads in a caption for the text encoder. */
function textFor(caption: string, style: { token: string; embedding: StyleEmbedding }): string {
  return style.embedding.kind === 'word' ? caption.split(style.token).join(style.embedding.word) : caption;
}

/** Cycles through shuffled permutations of [0, n): every image is seen once before any is seen twice. */
class BatchSampler {
  private order: number[] = [];
  constructor(
    private readonly n: number,
    private readonly rng: Rng,
  ) {}
  next(b: number): number[] {
    const out: number[] = [];
    while (out.length < b) {
      if (this.order.length === 0) this.order = this.rng.shuffle(Array.from({ length: this.n }, (_, i) => i));
      out.push(this.order.pop()!);
    }
    return out;
  }
}

interface TrainingItem {
  caption: string;
  /** Index of the item's style in `run.styles`. */
  style: number;
}

/** One call of learnStyle: everything it allocates is registered and freed in `dispose`. */
class StyleLearningRun {
  readonly spec: MethodSpec;
  readonly components: LossComponents;
  readonly settings: LearnSettings;
  readonly weights: LossWeights;
  readonly parent: VersionManifest;
  readonly token: string;
  readonly embedding: StyleEmbedding;
  private readonly owned: Array<tf.Tensor | { dispose(): void }> = [];
  private readonly scheduler: DDPMScheduler;
  private readonly T: number;
  private readonly sf: number;

  // data
  private latentMean!: tf.Tensor4D;
  private latentStd!: tf.Tensor4D;
  private items: TrainingItem[] = [];
  private captionIds!: tf.Tensor2D;
  /** Contexts of every caption when no token trains (constant through training). */
  private fixedContexts: tf.Tensor3D | null = null;
  /** The styles of the training items: the new one (last), plus earlier ones for `joint`. */
  private styles: Array<{ name: string; token: string; embedding: StyleEmbedding }> = [];
  private imageRecords: StyleRecord['images'] = [];
  private newPixels!: tf.Tensor4D;

  // trainables
  private lora: LoraAdapterSet | null = null;
  private prevLora: LoraAdapterSet | null = null;
  private tokenVar: tf.Variable | null = null;
  private tokenMask: tf.Tensor | null = null;
  private loraOpt: AdamW | null = null;
  /** loraStyleBlock: per LoRA variable, 1 on this style's block of ranks and 0 elsewhere (null: the whole rank trains). */
  private loraGradMasks: Map<string, tf.Tensor> | null = null;
  private tokenOpt: AdamW | null = null;
  /** Norm bound of learned token rows (null: unbounded). */
  private tokenMaxNorm: number | null = null;
  /** tokenOrthogonal: an orthonormal basis [k, d] of the earlier styles' token rows. */
  private earlierTokenBasis: tf.Tensor2D | null = null;

  // regularizers
  private stats: DecoderStyleStatistics | null = null;
  private targets: StyleTarget[] = [];
  private prevFactors = new Map<string, LoraFactors>();
  /** cosine form: the earlier styles' updates per layer. */
  private earlier = new Map<string, EarlierUpdates>();
  /** input-subspace form: the earlier updates grouped by layer shape, with the previous version's factors stacked alike. */
  private earlierGroups: Array<EarlierUpdateGroup & { prevP: tf.Tensor3D; prevQ: tf.Tensor3D; scale: number }> = [];
  private cloraMasks = new Map<string, tf.Tensor2D>();
  private prevDense = new Map<string, tf.Tensor2D>();
  private ewcFisher: tf.Tensor[] = [];
  private ewcAnchors: tf.Tensor[] = [];
  private featStyles: Array<{ token: string; embedding: StyleEmbedding } | null> = [];
  /** `replay`: clean latents the previous version generated, their prompts' contexts and the empty prompt's. */
  private replay: { latents: tf.Tensor4D; contexts: tf.Tensor3D; empty: tf.Tensor3D } | null = null;

  private loaded: LoadedVersion | null = null;
  private rng: Rng;
  secondsPerStep = 0;
  private lastLosses: Array<Partial<Record<LossName, number>>> = [];

  constructor(
    readonly museum: Museum,
    readonly name: string,
    readonly models: StyleModels,
    readonly options: LearnStyleOptions,
  ) {
    this.parent = museum.manifest(museum.latestVersion());
    const method = options.method ?? (this.parent.method as MethodName | null) ?? 'museummaker';
    this.spec = methodSpec(method);
    if (this.parent.method !== null && this.parent.method !== method) {
      throw new MuseumError('FAILED_PRECONDITION', `this museum learns with method '${this.parent.method}', not '${method}'`);
    }
    this.components = resolveComponents(this.spec, options.components);
    this.settings = resolveSettings(options, this.parent);
    this.weights = { ...DEFAULT_LOSS_WEIGHTS, ...options.weights };
    for (const [k, v] of Object.entries(this.weights)) checkNumber(`weights.${k}`, v, 0);
    this.token = styleTokenOf(name);
    this.embedding = this.spec.embedding === 'word' ? { kind: 'word', word: SHARED_STYLE_WORD } : { kind: 'token', initWord: this.settings.initWord === 'random' ? null : this.settings.initWord };
    this.scheduler = new DDPMScheduler(models.schedulerConfig ?? SD_SCHEDULER_CONFIG);
    this.T = this.scheduler.config.num_train_timesteps;
    this.sf = models.vae.config.scaling_factor;
    this.rng = new Rng(deriveSeed('museum-learn', this.settings.seed, name));
  }

  private own<T extends tf.Tensor | { dispose(): void }>(x: T): T {
    this.owned.push(x);
    return x;
  }

  get totalSteps(): number {
    const scale = this.spec.lora === 'joint' && this.settings.jointScaleSteps ? this.styles.length : 1;
    return this.settings.steps * Math.max(1, scale);
  }

  // ------------------------------------------------------------------------------------------------ prepare

  async prepare(images: readonly StyleImageInput[]): Promise<void> {
    const m = this.models;
    const { size } = modelResolution(m);
    const captions = resolveCaptions(this.name, images.length, this.options.captions);
    const prepared = await prepareImages(images, size);
    this.newPixels = this.own(prepared.pixels);
    this.imageRecords = prepared.hashes.map((sha256, i) => ({ sha256, caption: captions[i], ...prepared.sizes[i] }));
    this.loaded = this.own(this.museum.loadVersion(this.parent.version));

    // the training items: this style's images, and for `joint` every earlier style's stored images
    let pixels: tf.Tensor4D = this.newPixels;
    if (this.spec.lora === 'joint' && this.parent.styles.length > 0) {
      const stored = this.museum.loadState(this.parent.version, 'joint_images');
      try {
        const parts: tf.Tensor[] = [];
        for (const s of this.parent.styles) {
          const t = stored.tensors.get(s.name);
          if (!t) throw new MuseumError('DATA_LOSS', `joint_images of version ${this.parent.version} lacks ${s.name}`);
          this.styles.push({ name: s.name, token: s.token, embedding: s.embedding });
          s.images.forEach((im) => this.items.push({ caption: im.caption, style: this.styles.length - 1 }));
          parts.push(t);
        }
        pixels = this.own(tf.concat([...parts, this.newPixels], 0) as tf.Tensor4D);
      } finally {
        for (const t of stored.tensors.values()) t.dispose();
      }
    }
    this.styles.push({ name: this.name, token: this.token, embedding: this.embedding });
    captions.forEach((c) => this.items.push({ caption: c, style: this.styles.length - 1 }));

    // latents: posterior mean and std, scaled (sampled afresh every step)
    const means: tf.Tensor[] = [];
    const stds: tf.Tensor[] = [];
    try {
      for (let i = 0; i < pixels.shape[0]; i++) {
        const x = tf.slice(pixels, [i], [1]);
        const post = m.vae.encode(x);
        x.dispose();
        means.push(tf.tidy(() => tf.mul(post.mean, this.sf)));
        stds.push(tf.tidy(() => tf.mul(post.std, this.sf)));
        post.dispose();
      }
      this.latentMean = this.own(tf.concat(means, 0) as tf.Tensor4D);
      this.latentStd = this.own(tf.concat(stds, 0) as tf.Tensor4D);
    } finally {
      tf.dispose([...means, ...stds]);
    }

    this.prepareTokens();
    const enc = m.tokenizer.encodeBatch(
      this.items.map((it) => textFor(it.caption, this.styles[it.style])),
      { maxLength: promptLength(m), padding: 'max_length', truncation: true },
    );
    this.captionIds = this.own(tf.tensor2d(enc.flat, [this.items.length, enc.length], 'int32'));
    if (!this.tokenVar) this.fixedContexts = this.own(m.textEncoder.lastHiddenState(this.captionIds));
    this.prepareLora();
    await this.prepareRegularizers();
  }

  /** Token rows: earlier styles' rows as the parent version holds them, the new row from a word (or random). */
  private prepareTokens(): void {
    const m = this.models;
    const tokenStyles = this.parent.styles.filter((s) => s.embedding.kind === 'token');
    const wanted = tokenStyles.map((s) => s.token);
    if (this.embedding.kind === 'token') wanted.push(this.token);
    if (wanted.length === 0) return;
    const ids = ensureTokens(m, wanted);
    const rows = new Map<string, ArrayLike<number> | tf.Tensor>();
    for (const s of tokenStyles) rows.set(s.token, this.loaded!.tokens.get(s.token)!);
    setTokenRows(m, rows);
    const trainTokens: string[] = [];
    if (this.embedding.kind === 'token') trainTokens.push(this.token);
    // `joint` relearns every token from scratch, as if the styles came all at once.
    if (this.spec.lora === 'joint') trainTokens.push(...tokenStyles.map((s) => s.token));
    const init = new Map<string, tf.Tensor>();
    try {
      for (const t of trainTokens) init.set(t, this.initialRow(t));
      setTokenRows(m, init);
    } finally {
      tf.dispose([...init.values()]);
    }
    this.tokenVar = m.textEncoder.extraTokenRows;
    if (!this.tokenVar || trainTokens.length === 0) {
      this.tokenVar = null;
      return;
    }
    // Only the rows being learned move: the gradient is masked to them (earlier styles' rows stay bit-identical).
    const base = m.textEncoder.embeddings.baseTokens;
    const mask = new Float32Array(this.tokenVar.shape[0]);
    for (const t of trainTokens) mask[ids.get(t)! - base] = 1;
    this.tokenMask = this.own(tf.tensor2d(mask, [mask.length, 1]));
    this.tokenOpt = this.own(new AdamW([this.tokenVar], { lr: this.settings.tokenLr, weightDecay: 0 }));
    if (this.settings.tokenNormCap > 0) {
      const table = m.textEncoder.embeddings.token_embedding.weight.value;
      const largest = tf.tidy(() => tf.max(tf.norm(table, 'euclidean', 1)));
      this.tokenMaxNorm = this.settings.tokenNormCap * largest.dataSync()[0];
      largest.dispose();
    }
    if (this.components.tokenOrthogonal && tokenStyles.length > 0) {
      const basis = orthonormalRows(tokenStyles.map((s) => Float64Array.from(this.loaded!.tokens.get(s.token)!.dataSync())));
      if (basis.length >= m.textEncoder.config.hidden_size) {
        throw new MuseumError('FAILED_PRECONDITION', `the ${basis.length} earlier task tokens span the whole ${m.textEncoder.config.hidden_size}-dimensional embedding space: no direction is left for a new one (learn with components.tokenOrthogonal off)`);
      }
      if (basis.length > 0) this.earlierTokenBasis = this.own(tf.tensor2d(basis.flatMap((r) => Array.from(r)), [basis.length, basis[0].length]));
      this.constrainTokens();
    }
  }

  /** After every token step: tokenOrthogonal's projection, then the norm cap (other rows are untouched). */
  private constrainTokens(): void {
    const basis = this.earlierTokenBasis;
    if (basis && this.tokenVar && this.tokenMask) {
      const v = this.tokenVar;
      const projected = tf.tidy(() => tf.sub(v, tf.mul(tf.matMul(tf.matMul(v, basis, false, true), basis), this.tokenMask!)));
      v.assign(projected);
      projected.dispose();
    }
    this.capTokenNorms();
  }

  /** Project the learned rows back into the ball of radius tokenMaxNorm (other rows are untouched). */
  private capTokenNorms(): void {
    if (this.tokenMaxNorm === null || !this.tokenVar || !this.tokenMask) return;
    const v = this.tokenVar;
    const capped = tf.tidy(() => {
      const norms = tf.norm(v, 'euclidean', 1, true); // [rows, 1]
      const shrink = tf.minimum(1, tf.div(this.tokenMaxNorm!, tf.maximum(norms, 1e-12)));
      const mask = this.tokenMask!;
      return tf.mul(v, tf.add(tf.mul(shrink, mask), tf.sub(1, mask)));
    });
    v.assign(capped);
    capped.dispose();
  }

  private initialRow(token: string): tf.Tensor {
    const m = this.models;
    const word = this.settings.initWord;
    if (word !== 'random') return m.textEncoder.getTokenEmbedding(singleTokenId(m.tokenizer, word));
    return tf.tidy(() => {
      const table = m.textEncoder.embeddings.token_embedding.weight.value;
      const std = tf.sqrt(tf.moments(table).variance).dataSync()[0];
      return tf.randomNormal([m.textEncoder.config.hidden_size], 0, std, 'float32', deriveSeed('museum-token', this.settings.seed, token));
    });
  }

  private loraConfig(): LoraConfigRecord {
    return { rank: this.settings.rank, alpha: this.settings.alpha, targets: this.settings.loraTargets, projections: [...defaultLoraProjections(this.settings.loraTargets)] };
  }

  private freshLora(): LoraAdapterSet {
    seedInit(deriveSeed('museum-lora', this.settings.seed, this.name));
    return injectLora(this.models.unet, { rank: this.settings.rank, alpha: this.settings.alpha, targets: this.settings.loraTargets, name: this.name, apply: false });
  }

  private prepareLora(): void {
    const mode = this.spec.lora;
    if (mode === 'none') return;
    const stored = this.loaded!.lora;
    if (mode === 'shared' && stored) {
      // continue the shared LoRA; a frozen copy is the previous version (feature teacher, EWC anchor, ΔW base)
      const opts = { prefix: 'unet', metadata: stored.metadata, alpha: stored.config.alpha, name: 'shared' };
      this.lora = this.own(loraFromStateDict(stored.tensors, opts));
      this.prevLora = this.own(loraFromStateDict(stored.tensors, { ...opts, name: 'previous' }));
      this.prevFactors = factorsFromStateDict(stored.tensors, stored.config.alpha / stored.config.rank);
    } else {
      this.lora = this.own(this.freshLora());
    }
    applyLora(this.models.unet, this.lora);
    if (this.styleBlock()) this.prepareStyleBlock();
    this.loraOpt = this.own(new AdamW(this.lora.variables(), { lr: this.settings.lr, weightDecay: this.settings.weightDecay }));
  }

  /** loraStyleBlock: this style trains its own block of ranks; the gradient masks keep every other rank as it is. */
  private prepareStyleBlock(): void {
    const { rank, weightDecay } = this.settings;
    const { start, size: b } = this.styleBlock()!;
    const end = start + b;
    if (end > rank) {
      throw new MuseumError('FAILED_PRECONDITION', `the museum's shared LoRA (rank ${rank}) holds ${Math.floor(rank / b)} styles of loraStyleBlock ${b}; it has ${start / b} already`);
    }
    // decoupled weight decay would shrink the frozen blocks even with their gradients masked
    if (weightDecay > 0) throw new MuseumError('INVALID_ARGUMENT', 'loraStyleBlock needs weightDecay 0: decay would move the earlier styles’ blocks');
    const inBlock = tf.tidy(() => tf.cast(tf.logicalAnd(tf.greaterEqual(tf.range(0, rank, 1, 'int32'), start), tf.less(tf.range(0, rank, 1, 'int32'), end)), 'float32'));
    // down [in, r]: a column per rank; up [r, out]: a row per rank (two masks shared by every layer)
    const downMask = this.own(tf.reshape(inBlock, [1, rank]));
    const upMask = this.own(tf.reshape(inBlock, [rank, 1]));
    inBlock.dispose();
    this.loraGradMasks = new Map();
    for (const w of this.lora!.adapters.values()) {
      this.loraGradMasks.set(w.down.name, downMask);
      this.loraGradMasks.set(w.up.name, upMask);
    }
    // This style's block must be unused (up rows 0, so it starts as a zero update): earlier styles learned with
    // the whole rank, or with another block size, have written into it.
    for (const w of this.lora!.adapters.values()) {
      const used = tf.tidy(() => tf.any(tf.notEqual(tf.mul(w.up, this.loraGradMasks!.get(w.up.name)!), 0)).dataSync()[0]);
      if (used) throw new MuseumError('FAILED_PRECONDITION', `loraStyleBlock ${b}: ranks ${start}–${end - 1} of the shared LoRA already hold earlier styles (learned with another loraStyleBlock)`);
    }
  }

  /** Constants of the regularizers, from the earlier versions kept in the museum. */
  private async prepareRegularizers(): Promise<void> {
    const c = this.components;
    if (c.sdl) {
      this.stats = this.own(new DecoderStyleStatistics(this.models.vae, { upBlocks: this.settings.sdlUpBlocks }));
      for (let s = 0; s < this.styles.length; s++) {
        const idx = this.items.map((it, i) => (it.style === s ? i : -1)).filter((i) => i >= 0);
        const z = tf.tidy(() => tf.div(tf.gather(this.latentMean, idx), this.sf)) as tf.Tensor4D;
        const target = styleTarget(this.stats, z);
        z.dispose();
        this.targets.push(target);
      }
    }
    if (c.featReg) {
      // "earlier styles" include the base model's own renderings (prompts without a style, and the empty prompt)
      this.featStyles = [null, ...this.parent.styles.map((s) => ({ token: s.token, embedding: s.embedding }))];
      if (this.settings.featRegInputs === 'replay') await this.prepareReplay();
    }
    if ((c.weightReg || c.clora) && this.parent.styles.length > 0) this.prepareEarlierUpdates(c.weightReg, c.clora);
    if (c.clora && this.prevFactors.size > 0) {
      for (const [path, f] of this.prevFactors) this.prevDense.set(path, denseUpdate(f));
    }
    if (c.ewc && this.prevLora) {
      const fisherMap = this.parent.state.ewc_fisher ? this.museum.loadState(this.parent.version, 'ewc_fisher').tensors : null;
      try {
        if (fisherMap) {
          for (const [path, w] of this.prevLora.adapters) {
            const fa = fisherMap.get(`unet.${path}.lora_A.weight`);
            const fb = fisherMap.get(`unet.${path}.lora_B.weight`);
            if (!fa || !fb) throw new MuseumError('DATA_LOSS', `ewc_fisher of version ${this.parent.version} lacks ${path}`);
            this.ewcFisher.push(tf.transpose(fa), tf.transpose(fb));
            this.ewcAnchors.push(w.down, w.up);
          }
        }
      } finally {
        if (fisherMap) for (const t of fisherMap.values()) t.dispose();
      }
    }
  }

  /** Each earlier style's update ΔW_s = A_s B_s − A_{s−1} B_{s−1}, read from versions s and s−1 of the museum. */
  private prepareEarlierUpdates(lowRank: boolean, dense: boolean): void {
    const perLayer = new Map<string, LowRank[]>();
    const masks = new Map<string, tf.Tensor2D>();
    let before: Map<string, LoraFactors> | null = null;
    const blocks = this.styleBlock();
    try {
      for (let v = 1; v <= this.parent.version; v++) {
        const man = this.museum.manifest(v);
        let after: Map<string, LoraFactors> | null = null;
        if (man.lora) {
          const lv = this.museum.loadVersion(v);
          try {
            after = factorsFromStateDict(lv.lora!.tensors, man.lora.alpha / man.lora.rank);
          } finally {
            lv.dispose();
          }
        }
        if (after) {
          for (const [path, f] of after) {
            // with style blocks, version v's update is its style's block (cheaper than the difference, the same ΔW)
            const u = blocks ? blockUpdate(f, (v - 1) * blocks.size, blocks.size) : lowRankDifference(f, before?.get(path));
            if (dense) {
              const abs = tf.tidy(() => tf.abs(tf.matMul(u.P, u.Q))) as tf.Tensor2D;
              const prev = masks.get(path);
              masks.set(path, prev ? (tf.tidy(() => tf.add(prev, abs)) as tf.Tensor2D) : abs);
              if (prev) {
                prev.dispose();
                abs.dispose();
              }
            }
            if (lowRank) perLayer.set(path, [...(perLayer.get(path) ?? []), u]);
            else tf.dispose([u.P, u.Q]);
          }
        }
        if (before) disposeFactors(before);
        before = after;
      }
    } finally {
      if (before) disposeFactors(before);
    }
    // each form's constants only: the input-subspace form reads them grouped by layer shape
    const subspaces = new Map<string, EarlierInputSubspaces>();
    for (const [path, list] of perLayer) {
      if (this.settings.weightRegForm === 'input-subspace') subspaces.set(path, stackEarlierInputSubspaces(list));
      else this.earlier.set(path, stackEarlierUpdates(list));
      for (const u of list) tf.dispose([u.P, u.Q]);
    }
    try {
      if (subspaces.size > 0) this.groupEarlierUpdates(subspaces);
    } finally {
      for (const e of subspaces.values()) disposeEarlierUpdates(e);
    }
    for (const [path, m] of masks) {
      // normalised to mean 1 so that λ does not depend on how large earlier updates were
      this.cloraMasks.set(path, tf.tidy(() => tf.div(m, tf.add(tf.mean(m), 1e-12))) as tf.Tensor2D);
      m.dispose();
    }
  }

  /** Stack `subspaces` by layer shape, with −s·A_{t−1} and B_{t−1} of the same layers (see `stackedUpdates`). */
  private groupEarlierUpdates(subspaces: Map<string, EarlierInputSubspaces>): void {
    for (const g of groupEarlierUpdates(subspaces)) {
      const prev = g.keys.map((k) => this.prevFactors.get(k));
      const scale = this.lora!.adapters.get(g.keys[0])?.scale;
      if (prev.some((f) => !f) || scale === undefined || g.keys.some((k) => this.lora!.adapters.get(k)?.scale !== scale)) {
        disposeEarlierUpdateGroup(g);
        throw new MuseumError('DATA_LOSS', `weight regularization: layers ${g.keys.join(', ')} lack the previous version's LoRA or share no scale`);
      }
      const stacked = tf.tidy(() => ({
        prevP: tf.stack(prev.map((f) => tf.mul(f!.down, -f!.scale))) as tf.Tensor3D,
        prevQ: tf.stack(prev.map((f) => f!.up)) as tf.Tensor3D,
      }));
      this.earlierGroups.push({ ...g, ...stacked, scale });
    }
  }

  /**
   * The current update ΔW_t = s·A_t B_t − s·A_{t−1} B_{t−1} of every grouped layer, stacked per group in low-rank
   * form (P = [s·A_t, −s·A_{t−1}], Q = [B_t; B_{t−1}]): a few ops per group, not per layer.
   */
  private stackedUpdates(): Array<{ P: tf.Tensor3D; Q: tf.Tensor3D }> {
    const block = this.styleBlock();
    return this.earlierGroups.map((g) => {
      const ws = g.keys.map((k) => this.lora!.adapters.get(k)!);
      const A = tf.mul(tf.stack(ws.map((w) => w.down)), g.scale);
      if (block) {
        // only this style's block moves, from a zero update: ΔW_t = s·A_t[:, block] B_t[block, :]
        const [G, n] = A.shape;
        const Bt = tf.stack(ws.map((w) => w.up)) as tf.Tensor3D;
        return { P: tf.slice(A, [0, 0, block.start], [G, n, block.size]) as tf.Tensor3D, Q: tf.slice(Bt, [0, block.start, 0], [G, block.size, Bt.shape[2]]) as tf.Tensor3D };
      }
      return { P: tf.concat([A, g.prevP], 2) as tf.Tensor3D, Q: tf.concat([tf.stack(ws.map((w) => w.up)), g.prevQ], 1) as tf.Tensor3D };
    });
  }

  // ------------------------------------------------------------------------------------------------ train

  private lrAt(step: number, peak: number): number {
    return warmupCosineLr(step, { peak, warmup: Math.min(this.settings.warmup, Math.floor(this.totalSteps / 4)), total: this.totalSteps, minRatio: 0.1 });
  }

  /**
   * `replay` inputs: the previous version draws featRegReplay images (as latents) of earlier styles' prompts, the
   * way a user would sample them (DDIM, guidance 7.5), before any step of this task changes the model.
   */
  private async prepareReplay(): Promise<void> {
    const m = this.models;
    const n = this.settings.featRegReplay;
    const prompts = this.featPrompts(n);
    // the previous version: its adapter when the LoRA is continued, else none (a fresh LoRA is not the base)
    applyLora(m.unet, this.prevLora);
    const pipe = pipelineFromModels(m);
    // the generation's own prompt encodings are the regularization's contexts (the negative is the empty prompt)
    const latents: tf.Tensor[] = [];
    const contexts: tf.Tensor[] = [];
    const empties: tf.Tensor[] = [];
    try {
      const chunk = 8;
      for (let i = 0; i < n; i += chunk) {
        const part = prompts.slice(i, i + chunk);
        const { embeddings, negativeEmbeddings } = pipe.encodePrompt(part);
        contexts.push(embeddings);
        empties.push(negativeEmbeddings);
        const seeds = part.map((_, j) => deriveSeed('museum-replay', this.settings.seed, this.name, i + j));
        latents.push(await pipe.denoise({ embeddings, negativeEmbeddings, seed: seeds, steps: this.settings.featRegReplaySteps, guidance: 7.5, guidanceInterval: null, guidanceRescale: 0, sampler: 'ddim', signal: this.options.signal }));
      }
      this.replay = {
        latents: this.own(tf.concat(latents, 0) as tf.Tensor4D),
        contexts: this.own(tf.concat(contexts, 0) as tf.Tensor3D),
        empty: this.own(tf.slice(empties[0], [0], [1]) as tf.Tensor3D),
      };
    } finally {
      tf.dispose([...latents, ...contexts, ...empties]);
      applyLora(m.unet, this.lora);
    }
  }

  /** The feature regularization's inputs of one step: latents, timesteps and contexts (see featRegInputs). */
  private featInputs(nf: number, seed: number, [h, w, ch]: number[]): { x: tf.Tensor; t: tf.Tensor; ctx: tf.Tensor } {
    const ts = Array.from({ length: nf }, () => this.rng.int(0, this.T - 1));
    const r = this.replay;
    if (!r) return { x: tf.randomNormal([nf, h, w, ch], 0, 1, 'float32', seed), t: tf.tensor1d(ts, 'int32'), ctx: this.encode(this.featPrompts(nf)) };
    const pick = ts.map(() => this.rng.int(0, r.latents.shape[0] - 1));
    // a replayed latent is judged under its own prompt or, as often, the empty prompt: guidance uses both branches
    const share = this.settings.featRegEmptyShare;
    const uncond = ts.map(() => this.rng.bool(share === 'uniform' ? 0.5 : share));
    return tf.tidy(() => {
      const x0 = tf.gather(r.latents, pick);
      const x = this.scheduler.addNoise(x0, tf.randomNormal([nf, h, w, ch], 0, 1, 'float32', seed), ts);
      const rows = pick.map((p, i) => (uncond[i] ? tf.clone(r.empty) : tf.slice(r.contexts, [p], [1])));
      return { x, t: tf.tensor1d(ts, 'int32'), ctx: tf.concat(rows, 0) };
    });
  }

  /** The featreg prompts of one step: `a {colour} {shape} in <s>` over earlier styles, or base prompts. */
  private featPrompts(n: number): string[] {
    const share = this.settings.featRegEmptyShare;
    return Array.from({ length: n }, () => {
      if (share !== 'uniform' && this.rng.bool(share)) return '';
      const s = this.rng.pick(this.featStyles);
      const content = `a ${this.rng.pick(COLOURS)} ${this.rng.pick(SHAPES)}`;
      if (!s) return share === 'uniform' && this.rng.bool(0.5) ? '' : content;
      return textFor(`${content} in ${s.token}`, s);
    });
  }

  private encode(texts: string[]): tf.Tensor3D {
    const m = this.models;
    const enc = m.tokenizer.encodeBatch(texts, { maxLength: promptLength(m), padding: 'max_length', truncation: true });
    return tf.tidy(() => m.textEncoder.lastHiddenState(tf.tensor2d(enc.flat, [texts.length, enc.length], 'int32')));
  }

  private unetFeatures(x: tf.Tensor, t: tf.Tensor, ctx: tf.Tensor): tf.Tensor[] {
    const features = { up: [] as tf.Tensor[] } as { mid?: tf.Tensor; up: tf.Tensor[] };
    const eps = this.models.unet.forward(x, t, ctx, { features });
    return [...(features.mid ? [features.mid] : []), ...features.up, eps];
  }

  /**
   * The trained model's pass of a step: the prediction for the task's batch and, when the feature regularization
   * is on, its features for the regularization inputs, from ONE UNet call over both batches concatenated. Every
   * UNet op is per-sample (GroupNorm, attention within a sample), so this is the same function as two calls, but
   * the kernels run half as often on larger operands (a UNet forward+backward at batch 6 vs 4 + 2 on the Atelier
   * model: ~4% of a step in a micro-benchmark, not measured on its own in a full run).
   */
  private studentPass(noisy: tf.Tensor, t: tf.Tensor, ctx: tf.Tensor, f: { x: tf.Tensor; t: tf.Tensor; ctx: tf.Tensor } | null): { pred: tf.Tensor; student: tf.Tensor[] | null } {
    if (!f) return { pred: this.models.unet.forward(noisy, t, ctx), student: null };
    const b = noisy.shape[0];
    const all = this.unetFeatures(tf.concat([noisy, f.x]), tf.concat([t, f.t]), tf.concat([ctx, f.ctx]));
    const eps = all[all.length - 1];
    const tail = (x: tf.Tensor) => tf.slice(x, [b], [x.shape[0] - b]);
    return { pred: tf.slice(eps, [0], [b]), student: all.map(tail) };
  }

  /** The current shared-LoRA update of every layer, ΔW_t = s·A_t B_t − s·A_{t−1} B_{t−1}, in low-rank form. */
  private currentUpdates(): Map<string, LowRank> {
    const out = new Map<string, LowRank>();
    const block = this.styleBlock();
    for (const [path, w] of this.lora!.adapters) {
      const f = { down: w.down as tf.Tensor2D, up: w.up as tf.Tensor2D, scale: w.scale };
      out.set(path, block ? blockUpdate(f, block.start, block.size) : lowRankDifference(f, this.prevFactors.get(path)));
    }
    return out;
  }

  /** loraStyleBlock: the ranks this style trains (null: the whole shared LoRA). */
  private styleBlock(): { start: number; size: number } | null {
    const b = this.settings.loraStyleBlock;
    return this.spec.lora === 'shared' && b > 0 ? { start: this.parent.styles.length * b, size: b } : null;
  }

  async train(): Promise<void> {
    const m = this.models;
    const s = this.settings;
    const c = this.components;
    const total = this.totalSteps;
    const sampler = new BatchSampler(this.items.length, this.rng);
    const vars: tf.Variable[] = [...(this.tokenVar ? [this.tokenVar] : []), ...(this.lora ? this.lora.variables() : [])];
    if (vars.length === 0) throw new MuseumError('FAILED_PRECONDITION', `method '${this.spec.name}' has nothing to train`);
    const [, h, w, ch] = this.latentMean.shape;
    const ac = this.scheduler.alphasCumprod;
    const predictionType = this.scheduler.config.prediction_type;
    const started = Date.now();
    for (let step = 0; step < total; step++) {
      throwIfAborted(this.options.signal);
      const idx = sampler.next(s.batchSize);
      const ts = idx.map(() => this.rng.int(0, this.T - 1));
      const alphaBar = ts.map((t) => ac[t]);
      const seed = deriveSeed('museum-step', s.seed, this.name, step);
      const { noisy, target, tT, sel } = this.stepTensors(idx, ts, seed, [h, w, ch], predictionType);
      const kept: Partial<Record<LossName, tf.Scalar>> = {};
      let grads: Record<string, tf.Tensor> = {};
      let value: tf.Scalar | null = null;
      let feat: { x: tf.Tensor; t: tf.Tensor; ctx: tf.Tensor; teacher: tf.Tensor[] } | null = null;
      const losses: Partial<Record<LossName, number>> = {};
      try {
        // feature regularization inputs and the previous version's features (no gradient)
        if (c.featReg) {
          feat = { ...this.featInputs(s.featRegBatch, seed + 2, [h, w, ch]), teacher: [] };
          applyLora(m.unet, this.prevLora);
          try {
            feat.teacher = this.unetFeatures(feat.x, feat.t, feat.ctx);
          } finally {
            applyLora(m.unet, this.lora);
          }
        }
        const f = feat;
        const res = tf.variableGrads(() => {
          const terms: Array<[keyof LossWeights, tf.Scalar]> = [];
          // the token's gradient flows through the text encoder; without a trained token the contexts are constant
          const ctx = this.fixedContexts ? tf.gather(this.fixedContexts, sel) : m.textEncoder.lastHiddenState(tf.gather(this.captionIds, sel));
          const { pred, student } = this.studentPass(noisy, tT, ctx, f);
          terms.push(['diffusion', diffusionLoss(pred, target)]);
          if (c.sdl) terms.push(['sdl', this.sdlLoss(pred, noisy, alphaBar, idx)]);
          if (f && student) terms.push(['featReg', featureRegularization(student, f.teacher)]);
          if (c.weightReg && this.lora) {
            const reg = s.weightRegForm === 'input-subspace' ? stackedInputSubspaceRegularization(this.stackedUpdates(), this.earlierGroups) : weightRegularization(this.currentUpdates(), this.earlier);
            terms.push(['weightReg', reg]);
          }
          if (c.clora && this.lora) terms.push(['clora', this.cloraTerm()]);
          if (c.ewc && this.lora && this.ewcFisher.length) {
            const params = [...this.lora.adapters.values()].flatMap((a) => [a.down, a.up]);
            terms.push(['ewc', ewcPenalty(params, this.ewcAnchors, this.ewcFisher)]);
          }
          let totalLoss: tf.Tensor = tf.scalar(0);
          for (const [k, t] of terms) {
            kept[k] = tf.keep(t);
            totalLoss = tf.add(totalLoss, tf.mul(t, this.weights[k]));
          }
          return totalLoss as tf.Scalar;
        }, vars);
        grads = res.grads;
        value = res.value;
        kept.total = tf.keep(tf.clone(value));
        const names = Object.keys(kept) as LossName[];
        const stacked = tf.stack(names.map((k) => kept[k]!));
        const read = stacked.dataSync();
        stacked.dispose();
        names.forEach((k, i) => (losses[k] = read[i]));
        if (!Number.isFinite(losses.total)) throw new MuseumError('FAILED_PRECONDITION', `training diverged at step ${step + 1} (loss ${losses.total})`);
        this.applyGradients(grads, step);
      } finally {
        tf.dispose([noisy, target, tT, sel, ...Object.values(grads), ...Object.values(kept)]);
        value?.dispose();
        if (feat) tf.dispose([feat.x, feat.t, feat.ctx, ...feat.teacher]);
      }
      this.lastLosses.push(losses);
      if (this.lastLosses.length > Math.max(1, Math.ceil(total / 10))) this.lastLosses.shift();

      const elapsed = (Date.now() - started) / 1000;
      this.secondsPerStep = elapsed / (step + 1);
      this.options.onProgress?.({
        phase: 'train',
        step: step + 1,
        total,
        losses,
        lr: this.lrAt(step, s.lr),
        elapsedSeconds: elapsed,
        etaSeconds: this.secondsPerStep * (total - step - 1),
        secondsPerStep: this.secondsPerStep,
      });
      await yieldToEventLoop();
    }
    throwIfAborted(this.options.signal);
  }

  /** One step's noised latents (a fresh posterior sample of each image), the regression target and index tensors. */
  private stepTensors(idx: number[], ts: number[], seed: number, [h, w, ch]: number[], predictionType: string): { noisy: tf.Tensor; target: tf.Tensor; tT: tf.Tensor; sel: tf.Tensor } {
    const B = idx.length;
    return tf.tidy(() => {
      const sel = tf.tensor1d(idx, 'int32');
      const z0 = tf.add(tf.gather(this.latentMean, sel), tf.mul(tf.gather(this.latentStd, sel), tf.randomNormal([B, h, w, ch], 0, 1, 'float32', seed)));
      const noise = trainingNoise([B, h, w, ch], this.settings.noiseOffset, seed + 1);
      const target = predictionType === 'v_prediction' ? this.scheduler.getVelocity(z0, noise, ts) : predictionType === 'sample' ? z0 : noise;
      return { noisy: this.scheduler.addNoise(z0, noise, ts), target, tT: tf.tensor1d(ts, 'int32'), sel };
    });
  }

  /** SDL over the batch: x̂0 from the prediction, its style statistics against its style's z̄ (weighted by ᾱ_t). */
  private sdlLoss(pred: tf.Tensor, noisy: tf.Tensor, alphaBar: number[], idx: number[]): tf.Scalar {
    return tf.tidy(() => {
      const x0 = predictCleanLatent(pred, noisy, alphaBar, this.scheduler.config.prediction_type);
      const groups = this.stats!.groups(tf.div(x0, this.sf));
      const parts: tf.Tensor[] = [];
      const B = idx.length;
      for (let s = 0; s < this.targets.length; s++) {
        const rows = idx.map((i, r) => (this.items[i].style === s ? r : -1)).filter((r) => r >= 0);
        if (rows.length === 0) continue;
        const target = this.targets[s];
        const sel = tf.tensor1d(rows, 'int32');
        const feats = groups.map((g, k) => tf.div(tf.gather(g, sel), target.scales[k]));
        // x̂0 is an unreliable (and, through 1/√ᾱ, amplified) estimate at high noise: weight each sample by ᾱ_t
        const loss = styleDistillationLoss(feats, target.mean, this.settings.sdlTemperature, rows.map((r) => alphaBar[r]));
        parts.push(tf.mul(loss, rows.length / B));
      }
      return (parts.length ? tf.addN(parts) : tf.scalar(0)) as tf.Scalar;
    });
  }

  private cloraTerm(): tf.Scalar {
    return tf.tidy(() => {
      const cur = new Map<string, tf.Tensor2D>();
      for (const [path, w] of this.lora!.adapters) {
        let dw: tf.Tensor = tf.mul(tf.matMul(w.down, w.up), w.scale);
        const prev = this.prevDense.get(path);
        if (prev) dw = tf.sub(dw, prev);
        cur.set(path, dw as tf.Tensor2D);
      }
      return cloraPenalty(cur, this.cloraMasks);
    });
  }

  private applyGradients(grads: Record<string, tf.Tensor>, step: number): void {
    const s = this.settings;
    if (this.tokenVar && this.tokenOpt) {
      const g = grads[this.tokenVar.name];
      if (g) {
        const masked = tf.mul(g, this.tokenMask!);
        const clipped = clipGradNorm([masked], s.maxGradNorm);
        masked.dispose();
        this.tokenOpt.apply(clipped.grads, this.lrAt(step, s.tokenLr));
        tf.dispose(clipped.grads.filter((x): x is tf.Tensor => x !== null));
        this.constrainTokens();
      }
    }
    if (this.lora && this.loraOpt) {
      const masks = this.loraGradMasks;
      const list = this.lora.variables().map((v) => {
        const g = grads[v.name];
        return g && masks ? tf.mul(g, masks.get(v.name)!) : (g ?? null);
      });
      const clipped = clipGradNorm(list, s.maxGradNorm);
      if (masks) tf.dispose(list.filter((x): x is tf.Tensor => x !== null));
      this.loraOpt.apply(clipped.grads, this.lrAt(step, s.lr));
      tf.dispose(clipped.grads.filter((x): x is tf.Tensor => x !== null));
    }
  }

  // ------------------------------------------------------------------------------------------------ EWC Fisher

  /** Diagonal empirical Fisher of the task's own diffusion loss over the LoRA parameters, mean 1 (torch layout keys). */
  async estimateFisher(): Promise<Map<string, tf.Tensor>> {
    const m = this.models;
    const set = this.lora!;
    const vars = set.variables();
    const acc: tf.Tensor[] = vars.map((v) => tf.zerosLike(v));
    const n = this.settings.ewcFisherSamples;
    const [, h, w, ch] = this.latentMean.shape;
    const newItems = this.items.map((it, i) => (it.style === this.styles.length - 1 ? i : -1)).filter((i) => i >= 0);
    try {
      for (let k = 0; k < n; k++) {
        throwIfAborted(this.options.signal);
        const i = newItems[k % newItems.length];
        const t = this.rng.int(0, this.T - 1);
        const seed = deriveSeed('museum-fisher', this.settings.seed, this.name, k);
        const { grads, value } = tf.variableGrads(() => {
          const z0 = tf.add(tf.slice(this.latentMean, [i], [1]), tf.mul(tf.slice(this.latentStd, [i], [1]), tf.randomNormal([1, h, w, ch], 0, 1, 'float32', seed)));
          const noise = trainingNoise([1, h, w, ch], this.settings.noiseOffset, seed + 1);
          const ctx = this.fixedContexts ? tf.slice(this.fixedContexts, [i], [1]) : m.textEncoder.lastHiddenState(tf.slice(this.captionIds, [i], [1]));
          const pred = m.unet.forward(this.scheduler.addNoise(z0, noise, [t]), t, ctx);
          return diffusionLoss(pred, noise);
        }, vars);
        vars.forEach((v, j) => {
          const g = grads[v.name];
          if (!g) return;
          const next = tf.tidy(() => tf.add(acc[j], tf.square(g)));
          acc[j].dispose();
          acc[j] = next;
        });
        tf.dispose([value, ...Object.values(grads)]);
        this.options.onProgress?.({ phase: 'fisher', step: k + 1, total: n, losses: {}, lr: 0, elapsedSeconds: 0, etaSeconds: 0, secondsPerStep: this.secondsPerStep });
        await yieldToEventLoop();
      }
      const meanAll = tf.tidy(() => tf.div(tf.addN(acc.map((a) => tf.sum(a))), acc.reduce((s2, a) => s2 + a.size, 0)));
      const mean = Math.max(meanAll.dataSync()[0], 1e-30);
      meanAll.dispose();
      // accumulate over tasks (online EWC): previous Fisher (mean 1 per task) + this task's, normalised
      const prev = this.parent.state.ewc_fisher ? this.museum.loadState(this.parent.version, 'ewc_fisher').tensors : new Map<string, tf.Tensor>();
      const out = new Map<string, tf.Tensor>();
      try {
        const paths = [...set.adapters.keys()];
        paths.forEach((path, p) => {
          const keys = [`unet.${path}.lora_A.weight`, `unet.${path}.lora_B.weight`];
          keys.forEach((key, j) => {
            const f = tf.tidy(() => {
              const cur = tf.transpose(tf.div(acc[2 * p + j], mean));
              const old = prev.get(key);
              return old ? tf.add(cur, old) : cur;
            });
            out.set(key, f);
          });
        });
      } finally {
        for (const t of prev.values()) t.dispose();
      }
      return out;
    } finally {
      tf.dispose(acc);
    }
  }

  // ------------------------------------------------------------------------------------------------ commit

  async commit(startedAt: number): Promise<LearnStyleResult> {
    throwIfAborted(this.options.signal);
    const m = this.models;
    const toDispose: tf.Tensor[] = [];
    const file = (tensors: Map<string, tf.Tensor>, extra: Partial<TensorFile> = {}): TensorFile => {
      toDispose.push(...tensors.values());
      return { tensors, ...extra };
    };
    try {
      const fisher = this.components.ewc && this.lora ? await this.estimateFisher() : null;
      throwIfAborted(this.options.signal);
      this.options.onProgress?.({ phase: 'commit', step: 0, total: 1, losses: {}, lr: 0, elapsedSeconds: (Date.now() - startedAt) / 1000, etaSeconds: 0, secondsPerStep: this.secondsPerStep });
      const config = this.loraConfig();
      const loraMeta = (name: string) => ({ lora_rank: String(config.rank), lora_alpha: String(config.alpha), lora_name: name });

      // token table: every token-embedded style of the new version
      const tokens = new Map<string, tf.Tensor>();
      for (const st of [...this.parent.styles, { token: this.token, embedding: this.embedding }]) {
        if (st.embedding.kind !== 'token') continue;
        tokens.set(st.token, m.textEncoder.getTokenEmbedding(m.tokenizer.tokenId(st.token)!));
      }
      toDispose.push(...tokens.values());

      const state: Record<string, TensorFile> = {};
      if (fisher) state.ewc_fisher = file(fisher);
      if (this.spec.lora === 'joint') {
        // the training images of every style so far (the non-continual reference needs them all again)
        const imgs = this.parent.state.joint_images ? this.museum.loadState(this.parent.version, 'joint_images').tensors : new Map<string, tf.Tensor>();
        imgs.set(this.name, tf.clone(this.newPixels));
        state.joint_images = file(imgs, { dtype: 'F16' });
      }
      let adapters: Record<string, TensorFile & { config: LoraConfigRecord }> | undefined;
      if (this.spec.lora === 'separate') {
        adapters = {};
        for (const [styleName, a] of this.loaded!.adapters) adapters[styleName] = { ...file(new Map([...a.tensors].map(([k, t]) => [k, tf.clone(t)]))), metadata: a.metadata, config: a.config };
        adapters[this.name] = { ...file(loraStateDict(this.lora!, 'unet')), metadata: loraMeta(this.name), config };
      }
      const shared = this.spec.lora === 'shared' || this.spec.lora === 'joint';
      const lora = shared && this.lora ? { ...file(loraStateDict(this.lora, 'unet')), metadata: loraMeta('shared'), config } : null;

      const trainSeconds = (Date.now() - startedAt) / 1000;
      const metrics: Record<string, number> = { steps: this.totalSteps, secondsPerStep: this.secondsPerStep, trainedParameters: this.trainedParameterCount() };
      const keys = new Set(this.lastLosses.flatMap((l) => Object.keys(l))) as Set<LossName>;
      for (const k of keys) {
        const vals = this.lastLosses.map((l) => l[k]).filter((v): v is number => v !== undefined);
        metrics[`loss_${k}`] = vals.reduce((a, b) => a + b, 0) / Math.max(1, vals.length);
      }
      const manifest = this.museum.commitVersion(
        {
          parent: this.parent.version,
          method: this.spec.name,
          style: {
            name: this.name,
            embedding: this.embedding,
            method: this.spec.name,
            images: this.imageRecords,
            settings: { ...this.settings, components: this.components, weights: this.weights },
            metrics,
            trainSeconds,
            createdAt: new Date().toISOString(),
          },
          lora,
          tokens,
          state,
          adapters,
        },
        this.options.commitHooks,
      );
      const style = manifest.styles[manifest.styles.length - 1];
      return { version: manifest.version, manifest, style, trainSeconds, secondsPerStep: this.secondsPerStep };
    } finally {
      tf.dispose(toDispose);
    }
  }

  private trainedParameterCount(): number {
    let tokenRows = 0;
    if (this.tokenMask) {
      const n = tf.sum(this.tokenMask);
      tokenRows = n.dataSync()[0];
      n.dispose();
    }
    return (this.lora ? this.lora.parameterCount() : 0) + tokenRows * this.models.textEncoder.config.hidden_size;
  }

  dispose(): void {
    applyLora(this.models.unet, null);
    for (const t of this.targets) disposeStyleTarget(t);
    disposeFactors(this.prevFactors);
    for (const e of this.earlier.values()) disposeEarlierUpdates(e);
    for (const g of this.earlierGroups) {
      disposeEarlierUpdateGroup(g);
      tf.dispose([g.prevP, g.prevQ]);
    }
    tf.dispose([...this.cloraMasks.values(), ...this.prevDense.values(), ...this.ewcFisher]);
    for (const x of this.owned.reverse()) x.dispose();
    this.owned.length = 0;
  }
}

/**
 * Learn style `name` from `images` and commit it as the museum's next version. See the file comment for the
 * loop and `methods.ts` for what each method trains. Nothing is committed when the run fails or is cancelled.
 */
export async function learnStyle(museum: Museum, name: string, images: readonly StyleImageInput[], options: LearnStyleOptions = {}): Promise<LearnStyleResult> {
  const startedAt = Date.now();
  museum.checkNewStyleName(name);
  throwIfAborted(options.signal);
  if (!Array.isArray(images) || images.length === 0) throw new MuseumError('INVALID_ARGUMENT', 'learnStyle needs at least one image');
  let models = options.models;
  const owns = !models;
  if (!models) {
    if (!museum.baseModelDir) throw new MuseumError('FAILED_PRECONDITION', 'the museum has no base model folder: pass options.models');
    models = modelsFromPipeline(StableDiffusionPipeline.fromPretrained(museum.baseModelDir));
  }
  let run: StyleLearningRun | null = null;
  try {
    run = new StyleLearningRun(museum, name, models, options);
    options.onProgress?.({ phase: 'prepare', step: 0, total: 0, losses: {}, lr: 0, elapsedSeconds: 0, etaSeconds: 0, secondsPerStep: 0 });
    await run.prepare(images);
    throwIfAborted(options.signal);
    await run.train();
    return await run.commit(startedAt);
  } finally {
    run?.dispose();
    if (owns) disposeModels(models);
  }
}

/** Gram–Schmidt (twice, for float stability): an orthonormal basis of the rows' span; near-dependent rows add nothing. */
function orthonormalRows(rows: Float64Array[]): Float64Array[] {
  const basis: Float64Array[] = [];
  const dot = (a: Float64Array, b: Float64Array) => a.reduce((acc, x, i) => acc + x * b[i], 0);
  for (const r of rows) {
    const v = Float64Array.from(r);
    const norm0 = Math.sqrt(dot(v, v));
    for (let pass = 0; pass < 2; pass++) {
      for (const b of basis) {
        const c = dot(v, b);
        for (let i = 0; i < v.length; i++) v[i] -= c * b[i];
      }
    }
    const n = Math.sqrt(dot(v, v));
    if (n > 1e-6 * Math.max(norm0, 1e-30)) basis.push(v.map((x) => x / n));
  }
  return basis;
}
