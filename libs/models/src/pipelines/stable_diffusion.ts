import { tf, setWasmConvWeightCache, setWasmMatMulWeightCache } from '@museum/tensor';
import type { Module } from '../nn/module';
import type { Tokenizer } from '../tokenizers/tokenizer';
import { NoiseScheduler } from '../schedulers/base';
import { SamplerName, createScheduler } from '../schedulers';
import { SchedulerConfigInput } from '../schedulers/schedule';
import { Generator, createBatchGenerator } from '../schedulers/random';
import { SavePipelineFolderOptions, loadPipelineFolder, savePipelineFolder } from '../loaders/pipeline_folder';
import { LoadModelFolderOptions } from '../loaders/model_folder';
import { NO_SAMPLING_DEFAULTS, isGuidanceInterval, isGuidanceRescale, resolveGuidanceShaping, saveSamplingConfig, type SamplingDefaults } from '../loaders/sampling_config';

/** What the pipeline needs of a denoising UNet (UNet2DConditionModel fits). */
export interface DenoisingUNet {
  readonly config: { in_channels: number; sample_size?: number | null };
  /** NHWC sample [B, h, w, C], one timestep for the batch, context [B, L, D] → prediction [B, h, w, C]. */
  forward(sample: tf.Tensor, timestep: number | tf.Tensor, encoderHiddenStates: tf.Tensor): tf.Tensor;
  dispose(): void;
}

/** What the pipeline needs of a text encoder (CLIPTextModel fits). */
export interface PromptEncoder {
  readonly config?: { max_position_embeddings?: number };
  /** ids [B, L] → [B, L, D]. */
  lastHiddenState(inputIds: tf.Tensor): tf.Tensor;
  dispose(): void;
}

/** What the pipeline needs of a VAE (AutoencoderKL fits). */
export interface LatentDecoder {
  readonly config: { scaling_factor: number; block_out_channels: number[] };
  /** Unscaled latents NHWC → images NHWC in about [-1, 1]. */
  decode(latents: tf.Tensor): tf.Tensor;
  dispose(): void;
}

export interface StableDiffusionParts {
  tokenizer: Tokenizer;
  textEncoder: PromptEncoder;
  unet: DenoisingUNet;
  vae: LatentDecoder;
  /** The training noise schedule (scheduler_config.json); defaults to Stable Diffusion's. */
  schedulerConfig?: SchedulerConfigInput;
  /** The folder's recommended guidance shaping (sampling_config.json); default: none. */
  samplingDefaults?: SamplingDefaults;
}

/** Stable Diffusion 1.x's scheduler_config.json (PNDMScheduler in the published folder). */
export const SD_SCHEDULER_CONFIG: Readonly<SchedulerConfigInput> = Object.freeze({
  _class_name: 'PNDMScheduler',
  num_train_timesteps: 1000,
  beta_start: 0.00085,
  beta_end: 0.012,
  beta_schedule: 'scaled_linear',
  set_alpha_to_one: false,
  skip_prk_steps: true,
  steps_offset: 1,
  clip_sample: false,
  prediction_type: 'epsilon',
});

/** Thrown when a generation is cancelled through its AbortSignal (name 'AbortError', as DOM aborts). */
/** Float32 weight bytes above which the wasm weight-pack caches are turned off. */
export const LARGE_MODEL_BYTES = 1.5 * 2 ** 30;

export class AbortError extends Error {
  readonly code = 'ABORT_ERR';
  constructor(message = 'generation aborted') {
    super(message);
    this.name = 'AbortError';
  }
}

export function isAbortError(err: unknown): err is Error {
  return err instanceof Error && err.name === 'AbortError';
}

/** Conditional and unconditional text embeddings [B, L, D]; the caller owns both. */
export interface PromptEmbeddings {
  embeddings: tf.Tensor3D;
  negativeEmbeddings: tf.Tensor3D;
}

export interface DenoiseOptions {
  /** Conditional context [B, L, D]: B images are made. */
  embeddings: tf.Tensor;
  /** Unconditional context [B, L, D]; needed when guidance > 1. */
  negativeEmbeddings?: tf.Tensor | null;
  /** One seed per image, or one seed s for image 0 (image i then uses s + i), so a batched image equals the same seed alone. */
  seed: number | number[];
  /** Sampler steps (default 25). */
  steps?: number;
  /** Classifier-free guidance scale (default 7.5; ≤ 1 turns guidance off). */
  guidance?: number;
  /**
   * diffusers' `guidance_rescale` φ (default 0: off): the guided prediction is rescaled to the conditional
   * one's standard deviation and mixed in at φ, against the over-exposure that strong guidance causes
   * (Lin et al. 2023, §3.4; they use 0.7). Undefined: the folder's sampling_config.json (0 without one).
   */
  guidanceRescale?: number;
  /**
   * Guide only at timesteps in [from, to] (inclusive, on the scheduler's 0…num_train_timesteps − 1 scale);
   * elsewhere the conditional prediction alone. Default: every step. Guidance at the highest noise levels
   * decides the image's low frequencies (ground colour) and can collapse them (Kynkäänniemi et al. 2024).
   * Undefined: the folder's sampling_config.json (every step without one); null: every step.
   */
  guidanceInterval?: readonly [number, number] | null;
  sampler?: SamplerName;
  /** Image size in pixels (default: the UNet's sample_size × the VAE factor); multiples of the VAE factor. */
  height?: number;
  width?: number;
  /** DDIM's η (default 0). */
  eta?: number;
  /** Starting latents [B, h, w, C] (already at the first timestep's noise level), instead of seeded noise. */
  latents?: tf.Tensor;
  /** Called after each step with the current latents (borrowed: valid only during the call). */
  onStep?: (step: number, total: number, latents?: tf.Tensor) => void;
  /** Cancels between steps: the run frees its tensors and throws an AbortError. */
  signal?: AbortSignal;
}

/** One sampler step done: `latents` is borrowed (valid until the generator is resumed). */
export interface DenoiseProgress {
  step: number;
  total: number;
  timestep: number;
  latents: tf.Tensor4D;
}

export interface GenerateOptions extends Omit<DenoiseOptions, 'embeddings' | 'negativeEmbeddings'> {
  prompt: string | string[];
  /** Negative prompt(s); default empty (the unconditional prompt of classifier-free guidance). */
  negativePrompt?: string | string[];
}

/** Whether classifier-free guidance applies at timestep t: at every step unless an interval [from, to] leaves t out. */
export function guidesAt(t: number, interval?: readonly [number, number] | null): boolean {
  return !interval || (t >= interval[0] && t <= interval[1]);
}

/** Refuses a guidance rescale φ outside [0, 1] and a guidance interval that breaks 0 ≤ from ≤ to. */
export function checkGuidanceShaping(rescale: number, interval?: readonly [number, number] | null): void {
  if (!isGuidanceRescale(rescale)) throw new Error(`denoise: guidanceRescale must be in [0, 1], got ${rescale}`);
  if (interval && !isGuidanceInterval(interval[0], interval[1])) {
    throw new Error(`denoise: guidanceInterval must satisfy 0 <= from <= to timesteps, got [${interval[0]}, ${interval[1]}]`);
  }
}

/**
 * The guided noise prediction from a UNet call on [unconditional; conditional] rows: uncond + g (cond − uncond),
 * then diffusers' rescale at φ = `rescale` (0: none).
 */
export function combineGuidance(pred: tf.Tensor, guidance: number, rescale = 0): tf.Tensor {
  return tf.tidy(() => {
    const [uncond, cond] = tf.split(pred, 2, 0);
    const guided = tf.add(uncond, tf.mul(tf.sub(cond, uncond), guidance));
    return rescale > 0 ? rescaleGuidedPrediction(guided, cond, rescale) : guided;
  });
}

/**
 * diffusers' `rescale_noise_cfg`: per image, scale the guided prediction to the standard deviation of the
 * conditional one, then take φ of that and 1 − φ of the guided prediction.
 */
export function rescaleGuidedPrediction(guided: tf.Tensor, cond: tf.Tensor, phi: number): tf.Tensor {
  return tf.tidy(() => {
    const axes = guided.shape.map((_, i) => i).slice(1);
    const std = (x: tf.Tensor) => tf.sqrt(tf.moments(x, axes, true).variance);
    const rescaled = tf.mul(guided, tf.div(std(cond), std(guided)));
    return tf.add(tf.mul(rescaled, phi), tf.mul(guided, 1 - phi));
  });
}

const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

function throwIfAborted(signal?: AbortSignal): void {
  if (signal?.aborted) {
    const reason = signal.reason;
    throw new AbortError(reason instanceof Error ? reason.message : typeof reason === 'string' ? reason : 'generation aborted');
  }
}

/**
 * Text-to-image with a latent diffusion model, as diffusers' StableDiffusionPipeline: encode the
 * prompt with CLIP, denoise seeded latent noise with the UNet under classifier-free guidance (the
 * unconditional and conditional branches batched into one UNet call), decode with the VAE.
 * Each generation makes its own scheduler, so several may run concurrently on one pipeline.
 * Tensors are NHWC; images come out in [0, 1].
 */
export class StableDiffusionPipeline {
  readonly tokenizer: Tokenizer;
  readonly textEncoder: PromptEncoder;
  readonly unet: DenoisingUNet;
  readonly vae: LatentDecoder;
  readonly schedulerConfig: SchedulerConfigInput;
  /** Guidance shaping used when a call leaves it unset (sampling_config.json). */
  readonly samplingDefaults: SamplingDefaults;

  constructor(parts: StableDiffusionParts) {
    this.tokenizer = parts.tokenizer;
    this.textEncoder = parts.textEncoder;
    this.unet = parts.unet;
    this.vae = parts.vae;
    this.schedulerConfig = { ...(parts.schedulerConfig ?? SD_SCHEDULER_CONFIG) };
    this.samplingDefaults = { ...(parts.samplingDefaults ?? NO_SAMPLING_DEFAULTS) };
  }

  /** Load a diffusers pipeline folder (model_index.json + parts). */
  static fromPretrained(dir: string, options: Pick<LoadModelFolderOptions, 'strict'> = {}): StableDiffusionPipeline {
    const f = loadPipelineFolder(dir, options);
    // wasm addresses 4 GiB: a Stable-Diffusion-sized model cannot also keep XNNPACK's packed weight copies.
    const params = [f.unet, f.vae, f.textEncoder].reduce((n, m) => n + m.parameterCount(), 0);
    if (params * 4 > LARGE_MODEL_BYTES) {
      setWasmMatMulWeightCache(false);
      setWasmConvWeightCache(false);
    }
    return new StableDiffusionPipeline({
      tokenizer: f.tokenizer,
      textEncoder: f.textEncoder as unknown as PromptEncoder,
      unet: f.unet as unknown as DenoisingUNet,
      vae: f.vae as unknown as LatentDecoder,
      schedulerConfig: f.schedulerConfig,
      samplingDefaults: f.samplingDefaults,
    });
  }

  /** Write the pipeline as a diffusers folder (its parts must be registered model classes). */
  save(dir: string, options: SavePipelineFolderOptions = {}): void {
    savePipelineFolder(
      dir,
      {
        tokenizer: this.tokenizer,
        textEncoder: this.textEncoder as unknown as Module,
        unet: this.unet as unknown as Module,
        vae: this.vae as unknown as Module,
        schedulerConfig: this.schedulerConfig,
      },
      options,
    );
    const d = this.samplingDefaults;
    if (d.guidanceInterval !== null || d.guidanceRescale !== 0) saveSamplingConfig(dir, d);
  }

  /** Pixels per latent cell: 2^(VAE blocks − 1), 8 for Stable Diffusion. */
  get vaeScaleFactor(): number {
    return 2 ** (this.vae.config.block_out_channels.length - 1);
  }

  /** The default image side: the UNet's sample_size in pixels (512 for SD 1.5). */
  get defaultSize(): number {
    return (this.unet.config.sample_size ?? 64) * this.vaeScaleFactor;
  }

  /** A fresh scheduler (one sampling run) of the chosen sampler over this pipeline's noise schedule. */
  createScheduler(sampler: SamplerName): NoiseScheduler {
    return createScheduler(sampler, this.schedulerConfig);
  }

  /**
   * Embed prompts and their negatives (default: the empty prompt), both padded to the tokenizer's
   * max length as upstream, through one text-encoder call.
   */
  encodePrompt(prompts: string | string[], negative?: string | string[] | null): PromptEmbeddings {
    const cond = typeof prompts === 'string' ? [prompts] : prompts;
    if (cond.length === 0) throw new Error('encodePrompt: no prompt');
    let uncond: string[];
    if (negative === undefined || negative === null) uncond = cond.map(() => '');
    else if (typeof negative === 'string') uncond = cond.map(() => negative);
    else if (negative.length === cond.length) uncond = negative;
    else throw new Error(`encodePrompt: ${negative.length} negative prompts for ${cond.length} prompts`);
    const maxPositions = this.textEncoder.config?.max_position_embeddings ?? Infinity;
    const maxLength = Math.min(this.tokenizer.modelMaxLength, maxPositions);
    const batch = this.tokenizer.encodeBatch([...uncond, ...cond], { maxLength, padding: 'max_length', truncation: true });
    const [negativeEmbeddings, embeddings] = tf.tidy(() => {
      const ids = tf.tensor2d(batch.flat, [2 * cond.length, batch.length], 'int32');
      const h = this.textEncoder.lastHiddenState(ids);
      return tf.split(h, 2, 0) as [tf.Tensor3D, tf.Tensor3D];
    });
    return { embeddings, negativeEmbeddings };
  }

  private latentShape(batch: number, height: number, width: number): [number, number, number, number] {
    const f = this.vaeScaleFactor;
    if (!Number.isInteger(height / f) || !Number.isInteger(width / f) || height <= 0 || width <= 0) {
      throw new Error(`height and width must be positive multiples of ${f}, got ${height}×${width}`);
    }
    return [batch, height / f, width / f, this.unet.config.in_channels];
  }

  /**
   * The denoising loop as an async generator: yields after every step (so a consumer can stream
   * progress and previews) and returns the final latents [B, h, w, C] (owned by the caller).
   * Stopping early (`return()` on the generator, or an abort) frees every tensor of the run.
   */
  async *denoiseSteps(options: DenoiseOptions): AsyncGenerator<DenoiseProgress, tf.Tensor4D, void> {
    const { embeddings, signal } = options;
    const steps = options.steps ?? 25;
    const guidance = options.guidance ?? 7.5;
    const { guidanceRescale, guidanceInterval } = resolveGuidanceShaping(this.samplingDefaults, options);
    checkGuidanceShaping(guidanceRescale, guidanceInterval);
    const sampler = options.sampler ?? 'dpmpp-2m';
    const eta = options.eta ?? 0;
    if (embeddings.rank !== 3) throw new Error(`denoise: embeddings must be [B, L, D], got [${embeddings.shape}]`);
    const batch = embeddings.shape[0];
    const cfg = guidance > 1;
    const negative = options.negativeEmbeddings ?? null;
    if (cfg) {
      if (!negative) throw new Error('denoise: guidance > 1 needs negativeEmbeddings (see encodePrompt)');
      if (negative.shape.join(',') !== embeddings.shape.join(',')) {
        throw new Error(`denoise: negativeEmbeddings [${negative.shape}] differ from embeddings [${embeddings.shape}]`);
      }
    }
    const seeds = typeof options.seed === 'number' ? Array.from({ length: batch }, (_, i) => (options.seed as number) + i) : options.seed;
    if (seeds.length !== batch) throw new Error(`denoise: ${seeds.length} seeds for ${batch} images`);
    const generator: Generator = createBatchGenerator(seeds);
    const shape = this.latentShape(batch, options.height ?? this.defaultSize, options.width ?? this.defaultSize);
    throwIfAborted(signal);

    const scheduler = this.createScheduler(sampler);
    scheduler.setTimesteps(steps);
    let context: tf.Tensor | null = null;
    let latents: tf.Tensor | null = null;
    try {
      // unconditional first, as upstream: one UNet call computes both branches
      context = cfg ? tf.concat([negative!, embeddings], 0) : tf.clone(embeddings);
      if (options.latents) {
        if (options.latents.shape.join(',') !== shape.join(',')) throw new Error(`denoise: latents [${options.latents.shape}] differ from [${shape}]`);
        latents = tf.clone(options.latents);
      } else {
        const sigma = scheduler.initNoiseSigma;
        latents = tf.tidy(() => tf.mul(generator.normal(shape), sigma));
      }
      const timesteps = scheduler.timesteps;
      for (let i = 0; i < timesteps.length; i++) {
        throwIfAborted(signal);
        const t = timesteps[i];
        const x: tf.Tensor = latents;
        const ctx: tf.Tensor = context;
        const next = tf.tidy(() => {
          // Outside the guidance interval only the conditional half is needed: skip the unconditional UNet pass.
          const guided = cfg && guidesAt(t, guidanceInterval);
          const input = scheduler.scaleModelInput(guided ? tf.concat([x, x], 0) : x, t);
          const pred = this.unet.forward(input, t, guided || !cfg ? ctx : embeddings);
          return scheduler.step(guided ? combineGuidance(pred, guidance, guidanceRescale) : pred, t, x, { generator, eta });
        });
        latents.dispose();
        latents = next;
        yield { step: i + 1, total: timesteps.length, timestep: t, latents: latents as tf.Tensor4D };
        await yieldToEventLoop();
      }
      throwIfAborted(signal);
      const out = latents as tf.Tensor4D;
      latents = null;
      return out;
    } finally {
      latents?.dispose();
      context?.dispose();
      scheduler.dispose();
    }
  }

  /** Run the whole denoising loop; returns the final latents [B, h, w, C] (owned by the caller). */
  async denoise(options: DenoiseOptions): Promise<tf.Tensor4D> {
    const it = this.denoiseSteps(options);
    for (;;) {
      const r = await it.next();
      if (r.done) return r.value;
      try {
        options.onStep?.(r.value.step, r.value.total, r.value.latents);
      } catch (err) {
        await it.return(undefined as never);
        throw err;
      }
    }
  }

  /** Latents → images NHWC in [0, 1] (divides by the VAE's scaling_factor; one image at a time to bound memory). */
  decode(latents: tf.Tensor): tf.Tensor4D {
    const sf = this.vae.config.scaling_factor;
    const decodeOne = (z: tf.Tensor) => tf.tidy(() => tf.clipByValue(tf.add(tf.mul(this.vae.decode(tf.div(z, sf)), 0.5), 0.5), 0, 1));
    const b = latents.shape[0];
    if (b === 1) return decodeOne(latents) as tf.Tensor4D;
    const parts: tf.Tensor[] = [];
    try {
      for (let i = 0; i < b; i++) {
        const z = tf.slice(latents, [i], [1]);
        parts.push(decodeOne(z));
        z.dispose();
      }
      return tf.concat(parts, 0) as tf.Tensor4D;
    } finally {
      tf.dispose(parts);
    }
  }

  /** Prompt → images NHWC [B, H, W, 3] in [0, 1]: encodePrompt, denoise, decode. */
  async generate(options: GenerateOptions): Promise<tf.Tensor4D> {
    throwIfAborted(options.signal);
    const guidance = options.guidance ?? 7.5;
    const { embeddings, negativeEmbeddings } = this.encodePrompt(options.prompt, options.negativePrompt);
    let latents: tf.Tensor4D;
    try {
      latents = await this.denoise({ ...options, embeddings, negativeEmbeddings: guidance > 1 ? negativeEmbeddings : null });
    } finally {
      embeddings.dispose();
      negativeEmbeddings.dispose();
    }
    try {
      throwIfAborted(options.signal);
      return this.decode(latents);
    } finally {
      latents.dispose();
    }
  }

  /** Free every model of the pipeline. */
  dispose(): void {
    this.unet.dispose();
    this.vae.dispose();
    this.textEncoder.dispose();
  }
}
