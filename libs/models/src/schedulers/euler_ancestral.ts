import { tf } from '@museum/tensor';
import { NoiseScheduler } from './base';
import { SchedulerConfig, SchedulerConfigInput, StepOptions, indexOfTimestep, linspace64, perSample, roundHalfEven, stepNoise, timestepArray } from './schedule';

export type EulerAncestralDiscreteSchedulerConfig = SchedulerConfig;

/**
 * Euler ancestral sampling (Karras et al. 2022, k-diffusion's `sample_euler_ancestral`) in the
 * variance-exploding parametrisation x = x0 + σ·ε with σ_t = √((1 − ᾱ_t)/ᾱ_t): an Euler step down
 * to σ_down, then fresh noise of size σ_up so that the marginal at the next σ is right.
 * Timesteps are fractional for `linspace` spacing; σ is interpolated linearly between integers.
 */
export class EulerAncestralDiscreteScheduler extends NoiseScheduler<EulerAncestralDiscreteSchedulerConfig> {
  readonly className = 'EulerAncestralDiscreteScheduler';
  /** σ of every timestep of the run, followed by a final 0. */
  sigmas: Float32Array = new Float32Array(0);
  private readonly trainSigmas: Float32Array;

  constructor(config: SchedulerConfigInput = {}) {
    super({ timestep_spacing: 'linspace' }, config);
    if (this.config.prediction_type === 'sample') throw new Error("EulerAncestralDiscreteScheduler: prediction_type 'sample' is not supported");
    this.trainSigmas = this.schedule.alphasCumprod.map((a) => Math.sqrt((1 - a) / a));
  }

  setTimesteps(steps: number): void {
    const n = this.config.num_train_timesteps;
    if (!Number.isInteger(steps) || steps < 1 || steps > n) throw new Error(`number of steps must be in [1, ${n}], got ${steps}`);
    let ts: number[];
    const spacing = this.config.timestep_spacing;
    if (spacing === 'linspace') {
      ts = linspace64(0, n - 1, steps).reverse();
    } else if (spacing === 'leading') {
      const ratio = Math.floor(n / steps);
      ts = Array.from({ length: steps }, (_, i) => Math.fround(i * ratio) + this.config.steps_offset).reverse();
    } else {
      const ratio = n / steps;
      ts = [];
      for (let i = 0; n - i * ratio > 0; i++) ts.push(Math.fround(roundHalfEven(n - i * ratio)) - 1);
    }
    this.timesteps = ts;
    this.sigmas = new Float32Array(ts.length + 1);
    ts.forEach((t, i) => (this.sigmas[i] = this.sigmaAt(t)));
  }

  /** numpy.interp of the training σ at a (possibly fractional) timestep. */
  private sigmaAt(t: number): number {
    const s = this.trainSigmas;
    if (t <= 0) return s[0];
    if (t >= s.length - 1) return s[s.length - 1];
    const lo = Math.floor(t);
    const w = t - lo;
    return w === 0 ? s[lo] : s[lo] + (s[lo + 1] - s[lo]) * w;
  }

  override get initNoiseSigma(): number {
    const max = this.sigmas.reduce((m, s) => Math.max(m, s), 0);
    return this.config.timestep_spacing === 'leading' ? Math.sqrt(max * max + 1) : max;
  }

  /** The UNet sees x / √(σ² + 1), a unit-variance input. */
  override scaleModelInput(sample: tf.Tensor, t: number): tf.Tensor {
    const sigma = this.sigmas[indexOfTimestep(this.timesteps, t)];
    return tf.tidy(() => tf.div(sample, Math.sqrt(sigma * sigma + 1)));
  }

  step(modelOutput: tf.Tensor, t: number, sample: tf.Tensor, options?: StepOptions): tf.Tensor {
    const i = indexOfTimestep(this.timesteps, t);
    const sigma = this.sigmas[i];
    const sigmaTo = this.sigmas[i + 1];
    const sigmaUp = Math.sqrt((sigmaTo * sigmaTo * (sigma * sigma - sigmaTo * sigmaTo)) / (sigma * sigma));
    const sigmaDown = Math.sqrt(sigmaTo * sigmaTo - sigmaUp * sigmaUp);
    const noise = sigmaUp > 0 ? stepNoise(sample.shape, options, 'EulerAncestralDiscreteScheduler') : null;
    const out = tf.tidy(() => {
      const x0 =
        this.config.prediction_type === 'epsilon'
          ? tf.sub(sample, tf.mul(modelOutput, sigma))
          : tf.add(tf.mul(modelOutput, -sigma / Math.sqrt(sigma * sigma + 1)), tf.div(sample, sigma * sigma + 1));
      const derivative = tf.div(tf.sub(sample, x0), sigma);
      let prev = tf.add(sample, tf.mul(derivative, sigmaDown - sigma));
      if (noise) prev = tf.add(prev, tf.mul(noise, sigmaUp));
      return prev;
    });
    if (noise && noise !== options?.noise) noise.dispose();
    return out;
  }

  /** x0 + σ_t·noise, for timesteps of the current run (img2img starts). */
  override addNoise(x0: tf.Tensor, noise: tf.Tensor, timesteps: number[] | Int32Array | tf.Tensor): tf.Tensor {
    let ts = timestepArray(timesteps);
    if (ts.length === 1 && x0.shape[0] > 1) ts = new Array(x0.shape[0]).fill(ts[0]);
    const sig = ts.map((t) => this.sigmas[indexOfTimestep(this.timesteps, t)]);
    return tf.tidy(() => tf.add(x0, tf.mul(noise, perSample(sig, x0.rank))));
  }
}
