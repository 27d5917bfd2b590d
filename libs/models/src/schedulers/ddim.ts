import { tf } from '@museum/tensor';
import { NoiseScheduler } from './base';
import { SchedulerConfig, SchedulerConfigInput, StepOptions, indexOfTimestep, predictOriginal, spacedTimesteps, stepNoise } from './schedule';

export type DDIMSchedulerConfig = SchedulerConfig;

/** η (`eta`): 0 is the deterministic DDIM sampler, 1 matches DDPM's posterior variance. */
export type DDIMStepOptions = StepOptions;

/**
 * Denoising Diffusion Implicit Models (Song et al. 2021): predict x0, then move it back to the
 * previous timestep along the predicted noise direction, with σ_t = η·√(variance) fresh noise.
 */
export class DDIMScheduler extends NoiseScheduler<DDIMSchedulerConfig> {
  readonly className = 'DDIMScheduler';

  constructor(config: SchedulerConfigInput = {}) {
    super({ set_alpha_to_one: true, timestep_spacing: 'leading' }, config);
  }

  setTimesteps(steps: number): void {
    this.timesteps = spacedTimesteps(this.config, steps);
  }

  /** ᾱ at t − N/steps, or the final ᾱ (1, or ᾱ_0 when set_alpha_to_one is false) past the start. */
  private alphaProdPrev(t: number): number {
    const prev = t - Math.floor(this.config.num_train_timesteps / this.timesteps.length);
    const ac = this.schedule.alphasCumprod;
    if (prev >= 0) return ac[prev];
    return this.config.set_alpha_to_one ? 1 : ac[0];
  }

  step(modelOutput: tf.Tensor, t: number, sample: tf.Tensor, options: DDIMStepOptions = {}): tf.Tensor {
    indexOfTimestep(this.timesteps, t);
    const eta = options.eta ?? 0;
    const aT = this.schedule.alphasCumprod[t];
    const aPrev = this.alphaProdPrev(t);
    const variance = ((1 - aPrev) / (1 - aT)) * (1 - aT / aPrev);
    const std = eta * Math.sqrt(variance);
    const noise = std > 0 ? stepNoise(sample.shape, options, 'DDIMScheduler') : null;
    const out = tf.tidy(() => {
      const pred = predictOriginal(this.config.prediction_type, modelOutput, sample, aT);
      const eps = pred.eps;
      let x0 = pred.x0;
      // like upstream (use_clipped_model_output false), ε stays the unclipped prediction
      if (this.config.clip_sample) x0 = tf.clipByValue(x0, -this.config.clip_sample_range, this.config.clip_sample_range);
      const direction = tf.mul(eps, Math.sqrt(Math.max(1 - aPrev - std * std, 0)));
      let prevSample = tf.add(tf.mul(x0, Math.sqrt(aPrev)), direction);
      if (noise) prevSample = tf.add(prevSample, tf.mul(noise, std));
      return prevSample;
    });
    if (noise && noise !== options.noise) noise.dispose();
    return out;
  }
}
