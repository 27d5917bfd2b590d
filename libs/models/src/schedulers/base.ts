import { tf } from '@museum/tensor';
import {
  NoiseSchedule,
  SchedulerConfig,
  SchedulerConfigInput,
  StepOptions,
  noiseSchedule,
  perSample,
  resolveConfig,
  timestepArray,
} from './schedule';

/**
 * What every scheduler offers, in the manner of diffusers' SchedulerMixin. A scheduler instance is
 * one sampling run: `setTimesteps` starts a run (and resets any multistep history), so concurrent
 * generations each make their own instance (`createScheduler` is cheap: the tables are cached).
 * Every tensor returned is new and owned by the caller; inputs are never disposed.
 */
export abstract class NoiseScheduler<C extends SchedulerConfig = SchedulerConfig> {
  /** The upstream class name written as `_class_name` in scheduler_config.json. */
  abstract readonly className: string;
  readonly config: C;
  readonly schedule: NoiseSchedule;
  /** The timesteps of the current run, descending (empty before `setTimesteps`). */
  timesteps: number[] = [];
  /** How many model outputs a step may combine (1 for single-step samplers). */
  readonly order: number = 1;

  constructor(classDefaults: Partial<C>, config: SchedulerConfigInput = {}) {
    this.config = resolveConfig<C>(classDefaults, config);
    this.schedule = noiseSchedule(this.config);
  }

  get alphasCumprod(): Float32Array {
    return this.schedule.alphasCumprod;
  }

  get numInferenceSteps(): number {
    return this.timesteps.length;
  }

  /** The standard deviation of the initial latent noise. */
  get initNoiseSigma(): number {
    return 1;
  }

  /** Start a sampling run of `steps` steps. */
  abstract setTimesteps(steps: number): void;

  /** The model input at timestep `t` (identity for the DDPM-style samplers). */
  scaleModelInput(sample: tf.Tensor, _t: number): tf.Tensor {
    return tf.clone(sample);
  }

  /** One reverse step from `t`: the sample at the next (less noisy) timestep. */
  abstract step(modelOutput: tf.Tensor, t: number, sample: tf.Tensor, options?: StepOptions): tf.Tensor;

  /** Free any state a run keeps (multistep history). Safe to call more than once. */
  dispose(): void {}

  /** The forward process q(x_t | x_0): √ᾱ_t · x0 + √(1 − ᾱ_t) · noise, with one timestep per sample. */
  addNoise(x0: tf.Tensor, noise: tf.Tensor, timesteps: number[] | Int32Array | tf.Tensor): tf.Tensor {
    const ts = this.batchTimesteps(timesteps, x0.shape[0]);
    const ac = this.schedule.alphasCumprod;
    return tf.tidy(() => {
      const a = perSample(ts.map((t) => Math.sqrt(ac[t])), x0.rank);
      const s = perSample(ts.map((t) => Math.sqrt(1 - ac[t])), x0.rank);
      return tf.add(tf.mul(x0, a), tf.mul(noise, s));
    });
  }

  /** The v-prediction target √ᾱ_t · noise − √(1 − ᾱ_t) · x0. */
  getVelocity(x0: tf.Tensor, noise: tf.Tensor, timesteps: number[] | Int32Array | tf.Tensor): tf.Tensor {
    const ts = this.batchTimesteps(timesteps, x0.shape[0]);
    const ac = this.schedule.alphasCumprod;
    return tf.tidy(() => {
      const a = perSample(ts.map((t) => Math.sqrt(ac[t])), x0.rank);
      const s = perSample(ts.map((t) => Math.sqrt(1 - ac[t])), x0.rank);
      return tf.sub(tf.mul(noise, a), tf.mul(x0, s));
    });
  }

  /** The config as scheduler_config.json holds it. */
  toJSON(diffusersVersion = '0.21.4'): Record<string, unknown> {
    return { _class_name: this.className, _diffusers_version: diffusersVersion, ...this.config };
  }

  protected batchTimesteps(timesteps: number[] | Int32Array | tf.Tensor, batch: number): number[] {
    let ts = timestepArray(timesteps);
    if (ts.length === 1 && batch > 1) ts = new Array(batch).fill(ts[0]);
    if (ts.length !== batch) throw new Error(`${ts.length} timesteps for a batch of ${batch}`);
    const n = this.config.num_train_timesteps;
    for (const t of ts) {
      if (!Number.isInteger(t) || t < 0 || t >= n) throw new Error(`training timestep ${t} is not an integer in [0, ${n})`);
    }
    return ts;
  }
}
