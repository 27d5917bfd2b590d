import { tf } from '@museum/tensor';
import { NoiseScheduler } from './base';
import { SchedulerConfig, SchedulerConfigInput, StepOptions, indexOfTimestep, predictOriginal, spacedTimesteps, stepNoise } from './schedule';
import { Generator } from './random';

export interface DDPMSchedulerConfig extends SchedulerConfig {
  variance_type: 'fixed_small';
}

/**
 * Denoising Diffusion Probabilistic Models (Ho et al. 2020). Used for training: the forward
 * process `addNoise`, the v target `getVelocity` and uniform timestep sampling; `step` is the
 * ancestral sampler with the "fixed small" posterior variance.
 */
export class DDPMScheduler extends NoiseScheduler<DDPMSchedulerConfig> {
  readonly className = 'DDPMScheduler';

  constructor(config: SchedulerConfigInput = {}) {
    super({ variance_type: 'fixed_small', clip_sample: true }, config);
  }

  setTimesteps(steps: number): void {
    this.timesteps = spacedTimesteps(this.config, steps);
  }

  /** `batch` training timesteps drawn uniformly from [0, num_train_timesteps). */
  sampleTimesteps(batch: number, generator: Generator): number[] {
    return Array.from({ length: batch }, () => generator.randint(0, this.config.num_train_timesteps));
  }

  step(modelOutput: tf.Tensor, t: number, sample: tf.Tensor, options?: StepOptions): tf.Tensor {
    indexOfTimestep(this.timesteps, t);
    const prev = t - Math.floor(this.config.num_train_timesteps / this.timesteps.length);
    const ac = this.schedule.alphasCumprod;
    const aT = ac[t];
    const aPrev = prev >= 0 ? ac[prev] : 1;
    const alphaT = aT / aPrev;
    const betaT = 1 - alphaT;
    const noise = t > 0 ? stepNoise(sample.shape, options, 'DDPMScheduler') : null;
    const out = tf.tidy(() => {
      let { x0 } = predictOriginal(this.config.prediction_type, modelOutput, sample, aT);
      if (this.config.clip_sample) x0 = tf.clipByValue(x0, -this.config.clip_sample_range, this.config.clip_sample_range);
      // posterior mean μ̃(x_t, x0) of q(x_{t-1} | x_t, x0)
      const cx0 = (Math.sqrt(aPrev) * betaT) / (1 - aT);
      const cxt = (Math.sqrt(alphaT) * (1 - aPrev)) / (1 - aT);
      let prevSample = tf.add(tf.mul(x0, cx0), tf.mul(sample, cxt));
      if (noise) {
        const variance = Math.max(((1 - aPrev) / (1 - aT)) * betaT, 1e-20);
        prevSample = tf.add(prevSample, tf.mul(noise, Math.sqrt(variance)));
      }
      return prevSample;
    });
    if (noise && noise !== options?.noise) noise.dispose();
    return out;
  }
}
