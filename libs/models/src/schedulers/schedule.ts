import { tf } from '@museum/tensor';

export type BetaSchedule = 'linear' | 'scaled_linear' | 'squaredcos_cap_v2';
export type PredictionType = 'epsilon' | 'v_prediction' | 'sample';
export type TimestepSpacing = 'leading' | 'trailing' | 'linspace';

/**
 * The fields every noise scheduler shares, named as in diffusers' `scheduler_config.json`.
 * Unknown upstream fields (e.g. PNDM's `skip_prk_steps`) are kept so that a config round-trips.
 */
export interface SchedulerConfig {
  num_train_timesteps: number;
  beta_start: number;
  beta_end: number;
  beta_schedule: BetaSchedule;
  trained_betas: number[] | null;
  prediction_type: PredictionType;
  set_alpha_to_one: boolean;
  steps_offset: number;
  timestep_spacing: TimestepSpacing;
  clip_sample: boolean;
  clip_sample_range: number;
  [extra: string]: unknown;
}

export type SchedulerConfigInput = Partial<SchedulerConfig> & Record<string, unknown>;

export const SCHEDULER_CONFIG_DEFAULTS: SchedulerConfig = {
  num_train_timesteps: 1000,
  beta_start: 0.0001,
  beta_end: 0.02,
  beta_schedule: 'linear',
  trained_betas: null,
  prediction_type: 'epsilon',
  set_alpha_to_one: true,
  steps_offset: 0,
  timestep_spacing: 'leading',
  clip_sample: false,
  clip_sample_range: 1.0,
};

/** Defaults, then the class's own defaults, then every field of `input` that is not null/undefined. */
export function resolveConfig<C extends SchedulerConfig>(classDefaults: Partial<C>, input: SchedulerConfigInput = {}): C {
  const out: Record<string, unknown> = { ...SCHEDULER_CONFIG_DEFAULTS, ...classDefaults };
  for (const [k, v] of Object.entries(input)) {
    if (v === undefined) continue;
    if (v === null && k !== 'trained_betas') continue;
    out[k] = v;
  }
  for (const k of ['_class_name', '_diffusers_version']) delete out[k];
  const c = out as C;
  if (!['linear', 'scaled_linear', 'squaredcos_cap_v2'].includes(c.beta_schedule)) {
    throw new Error(`beta_schedule '${c.beta_schedule}' is not supported`);
  }
  if (!['epsilon', 'v_prediction', 'sample'].includes(c.prediction_type)) {
    throw new Error(`prediction_type '${c.prediction_type}' is not supported`);
  }
  if (!['leading', 'trailing', 'linspace'].includes(c.timestep_spacing)) {
    throw new Error(`timestep_spacing '${c.timestep_spacing}' is not supported`);
  }
  return c;
}

/** The training noise schedule: β_t, α_t = 1 − β_t and ᾱ_t = ∏ α_s, as float32 like upstream. */
export interface NoiseSchedule {
  betas: Float32Array;
  alphas: Float32Array;
  alphasCumprod: Float32Array;
}

/** torch.linspace(start, end, n): the step in double, the second half counted back from `end`, then float32. */
function linspace32(start: number, end: number, n: number): Float32Array {
  const out = new Float32Array(n);
  if (n === 1) {
    out[0] = start;
    return out;
  }
  const s = Math.fround(start);
  const e = Math.fround(end);
  const step = (e - s) / (n - 1);
  const half = Math.floor(n / 2);
  for (let i = 0; i < n; i++) out[i] = i < half ? s + step * i : e - step * (n - 1 - i);
  return out;
}

/** The cosine schedule of Nichol & Dhariwal: β_t = 1 − ᾱ(t+1)/ᾱ(t), capped at 0.999 (computed in double). */
function cosineBetas(n: number, maxBeta = 0.999): Float32Array {
  const alphaBar = (t: number) => Math.cos(((t + 0.008) / 1.008) * (Math.PI / 2)) ** 2;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.min(1 - alphaBar((i + 1) / n) / alphaBar(i / n), maxBeta);
  return out;
}

const scheduleCache = new Map<string, NoiseSchedule>();

/**
 * β, α and ᾱ for a config. ᾱ is accumulated in double and stored as float32, which is what
 * torch.cumprod does on float32 input (its CPU accumulator is double).
 */
export function noiseSchedule(config: SchedulerConfig): NoiseSchedule {
  const key = JSON.stringify([config.num_train_timesteps, config.beta_start, config.beta_end, config.beta_schedule, config.trained_betas]);
  const cached = scheduleCache.get(key);
  if (cached) return cached;
  const n = config.num_train_timesteps;
  let betas: Float32Array;
  if (config.trained_betas && config.trained_betas.length > 0) {
    betas = Float32Array.from(config.trained_betas);
  } else if (config.beta_schedule === 'linear') {
    betas = linspace32(config.beta_start, config.beta_end, n);
  } else if (config.beta_schedule === 'scaled_linear') {
    // Stable Diffusion's schedule: linear in √β.
    const roots = linspace32(Math.sqrt(config.beta_start), Math.sqrt(config.beta_end), n);
    betas = roots.map((r) => Math.fround(r * r));
  } else {
    betas = cosineBetas(n);
  }
  const alphas = betas.map((b) => 1 - b);
  const alphasCumprod = new Float32Array(betas.length);
  let prod = 1;
  for (let i = 0; i < alphas.length; i++) {
    prod *= alphas[i];
    alphasCumprod[i] = prod;
  }
  const schedule = { betas, alphas, alphasCumprod };
  scheduleCache.set(key, schedule);
  return schedule;
}

/** numpy.linspace(start, stop, num) in double: start + i·step, the last value exactly `stop`. */
export function linspace64(start: number, stop: number, num: number): number[] {
  if (num === 1) return [start];
  const step = (stop - start) / (num - 1);
  const out: number[] = [];
  for (let i = 0; i < num; i++) out.push(i === num - 1 ? stop : start + i * step);
  return out;
}

/** Spaced timesteps, descending, as upstream's DDIM / Euler `set_timesteps` (`leading` adds `steps_offset`). */
export function spacedTimesteps(config: SchedulerConfig, steps: number, spacing: TimestepSpacing = config.timestep_spacing): number[] {
  const n = config.num_train_timesteps;
  if (!Number.isInteger(steps) || steps < 1 || steps > n) throw new Error(`number of steps must be in [1, ${n}], got ${steps}`);
  const out: number[] = [];
  if (spacing === 'leading') {
    const ratio = Math.floor(n / steps);
    for (let i = steps - 1; i >= 0; i--) out.push(i * ratio + config.steps_offset);
  } else if (spacing === 'trailing') {
    const ratio = n / steps;
    for (let i = 0; n - i * ratio > 0; i++) out.push(roundHalfEven(n - i * ratio) - 1);
  } else {
    out.push(...linspace64(0, n - 1, steps).map(roundHalfEven).reverse());
  }
  return out;
}

/** numpy's round (half to even), so that spaced timesteps equal upstream's. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** Per-sample coefficients as a [B, 1, …] tensor that broadcasts against a rank-`rank` batch. */
export function perSample(values: ArrayLike<number>, rank: number): tf.Tensor {
  return tf.tensor(Float32Array.from(values), [values.length, ...new Array(Math.max(rank - 1, 0)).fill(1)]);
}

/** Timesteps given as numbers or an int tensor, as a plain array. */
export function timestepArray(timesteps: number[] | Int32Array | tf.Tensor): number[] {
  if (timesteps instanceof tf.Tensor) return Array.from(timesteps.dataSync());
  return Array.from(timesteps);
}

/** x0 and ε predicted from the model output at a step with ᾱ = `alphaProd`. */
export function predictOriginal(
  predictionType: PredictionType,
  modelOutput: tf.Tensor,
  sample: tf.Tensor,
  alphaProd: number,
): { x0: tf.Tensor; eps: tf.Tensor } {
  const a = Math.sqrt(alphaProd);
  const s = Math.sqrt(1 - alphaProd);
  if (predictionType === 'epsilon') {
    return { x0: tf.div(tf.sub(sample, tf.mul(modelOutput, s)), a), eps: modelOutput };
  }
  if (predictionType === 'v_prediction') {
    return { x0: tf.sub(tf.mul(sample, a), tf.mul(modelOutput, s)), eps: tf.add(tf.mul(modelOutput, a), tf.mul(sample, s)) };
  }
  return { x0: modelOutput, eps: tf.div(tf.sub(sample, tf.mul(modelOutput, a)), s) };
}

/** Options for a sampler step: where the extra noise of stochastic samplers comes from. */
export interface StepOptions {
  generator?: import('./random').Generator;
  /** Explicit noise (same shape as the sample), used instead of the generator. */
  noise?: tf.Tensor;
  /** DDIM's η (0 = deterministic); the other samplers ignore it. */
  eta?: number;
}

/** The noise a stochastic step needs, from `noise` or the generator; throws when neither is given. */
export function stepNoise(shape: number[], options: StepOptions | undefined, who: string): tf.Tensor {
  if (options?.noise) {
    if (options.noise.shape.join(',') !== shape.join(',')) throw new Error(`${who}: noise shape [${options.noise.shape}] differs from sample [${shape}]`);
    return options.noise;
  }
  if (options?.generator) return options.generator.normal(shape);
  throw new Error(`${who}: a stochastic step needs a generator (or explicit noise)`);
}

/** Index of `t` in `timesteps` (a sampler step is addressed by its timestep, like upstream). */
export function indexOfTimestep(timesteps: number[], t: number | tf.Tensor): number {
  const value = typeof t === 'number' ? t : t.dataSync()[0];
  const i = timesteps.indexOf(value);
  if (i < 0) {
    // float timesteps may come back through float32 tensors: accept the nearest within rounding
    let best = -1;
    let bestErr = Infinity;
    timesteps.forEach((u, j) => {
      const err = Math.abs(u - value);
      if (err < bestErr) {
        bestErr = err;
        best = j;
      }
    });
    if (best >= 0 && bestErr <= 1e-3 * Math.max(1, Math.abs(value))) return best;
    throw new Error(`timestep ${value} is not one of the scheduled timesteps (call setTimesteps first)`);
  }
  return i;
}
