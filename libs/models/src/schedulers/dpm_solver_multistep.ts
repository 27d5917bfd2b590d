import { tf } from '@museum/tensor';
import { NoiseScheduler } from './base';
import { SchedulerConfig, SchedulerConfigInput, StepOptions, indexOfTimestep, linspace64, predictOriginal, roundHalfEven } from './schedule';

export interface DPMSolverMultistepSchedulerConfig extends SchedulerConfig {
  solver_order: number;
  algorithm_type: 'dpmsolver++';
  solver_type: 'midpoint';
  lower_order_final: boolean;
  thresholding: boolean;
  use_karras_sigmas: boolean;
  lambda_min_clipped: number;
}

/**
 * DPM-Solver++ (Lu et al. 2022), multistep, in its data-prediction form: each step turns the
 * model output into an x0 estimate and integrates the diffusion ODE in λ = log(α/σ) with an
 * exponential integrator, using the last two x0 estimates for a second-order ("2M") update.
 * Supported: algorithm_type 'dpmsolver++', solver_type 'midpoint', solver_order 1 or 2.
 */
export class DPMSolverMultistepScheduler extends NoiseScheduler<DPMSolverMultistepSchedulerConfig> {
  readonly className = 'DPMSolverMultistepScheduler';
  override readonly order: number;
  /** The last x0 estimates of this run, oldest first (kept out of any surrounding tidy). */
  private modelOutputs: tf.Tensor[] = [];
  private lowerOrderNums = 0;

  constructor(config: SchedulerConfigInput = {}) {
    super(
      {
        solver_order: 2,
        algorithm_type: 'dpmsolver++',
        solver_type: 'midpoint',
        lower_order_final: true,
        thresholding: false,
        use_karras_sigmas: false,
        lambda_min_clipped: -Infinity,
        timestep_spacing: 'linspace',
      },
      config,
    );
    const c = this.config;
    if (c.algorithm_type !== 'dpmsolver++') throw new Error(`DPMSolverMultistepScheduler: algorithm_type '${c.algorithm_type}' is not supported`);
    if (c.solver_type !== 'midpoint') throw new Error(`DPMSolverMultistepScheduler: solver_type '${c.solver_type}' is not supported`);
    if (c.solver_order !== 1 && c.solver_order !== 2) throw new Error(`DPMSolverMultistepScheduler: solver_order ${c.solver_order} is not supported`);
    if (c.thresholding) throw new Error('DPMSolverMultistepScheduler: thresholding is not supported');
    if (c.use_karras_sigmas) throw new Error('DPMSolverMultistepScheduler: use_karras_sigmas is not supported');
    this.order = c.solver_order;
  }

  /** α_t = √ᾱ_t, σ_t = √(1 − ᾱ_t) and λ_t = log α_t − log σ_t at a training timestep. */
  private coefficients(t: number): { alpha: number; sigma: number; lambda: number } {
    const ac = this.schedule.alphasCumprod[t];
    const alpha = Math.sqrt(ac);
    const sigma = Math.sqrt(1 - ac);
    return { alpha, sigma, lambda: Math.log(alpha) - Math.log(sigma) };
  }

  setTimesteps(steps: number): void {
    this.dispose();
    const n = this.config.num_train_timesteps;
    if (!Number.isInteger(steps) || steps < 1 || steps > n) throw new Error(`number of steps must be in [1, ${n}], got ${steps}`);
    // timesteps whose λ is below lambda_min_clipped are never visited (cosine schedules need it)
    let clipped = 0;
    for (let t = 0; t < n; t++) if (this.coefficients(t).lambda < this.config.lambda_min_clipped) clipped++;
    const last = n - clipped;
    let ts: number[];
    const spacing = this.config.timestep_spacing;
    if (spacing === 'linspace') {
      ts = linspace64(0, last - 1, steps + 1).map(roundHalfEven).reverse().slice(0, -1);
    } else if (spacing === 'leading') {
      const ratio = Math.floor(last / (steps + 1));
      ts = Array.from({ length: steps + 1 }, (_, i) => i * ratio + this.config.steps_offset).reverse().slice(0, -1);
    } else {
      const ratio = n / steps;
      ts = [];
      for (let i = 0; last - i * ratio > 0; i++) ts.push(roundHalfEven(last - i * ratio) - 1);
    }
    this.timesteps = ts;
  }

  step(modelOutput: tf.Tensor, t: number, sample: tf.Tensor, _options?: StepOptions): tf.Tensor {
    const ts = this.timesteps;
    const i = indexOfTimestep(ts, t);
    const isLast = i === ts.length - 1;
    const prevT = isLast ? 0 : ts[i + 1];
    // with few steps, the last steps fall back to lower order for stability
    const lowerOrderFinal = isLast && this.config.lower_order_final && ts.length < 15;

    const s0 = this.coefficients(t);
    const x0 = tf.keep(tf.tidy(() => {
      const { x0: pred } = predictOriginal(this.config.prediction_type, modelOutput, sample, this.schedule.alphasCumprod[t]);
      return pred === modelOutput ? tf.clone(pred) : pred;
    }));
    this.modelOutputs.push(x0);
    while (this.modelOutputs.length > this.order) this.modelOutputs.shift()!.dispose();

    const target = this.coefficients(prevT);
    const h = target.lambda - s0.lambda;
    const expm = Math.expm1(-h); // e^{−h} − 1, accurate for small h
    let prevSample: tf.Tensor;
    if (this.order === 1 || this.lowerOrderNums < 1 || lowerOrderFinal) {
      // first order = DDIM in the data-prediction form
      prevSample = tf.tidy(() => tf.sub(tf.mul(sample, target.sigma / s0.sigma), tf.mul(x0, target.alpha * expm)));
    } else {
      const s1 = this.coefficients(ts[i - 1]);
      const r0 = (s0.lambda - s1.lambda) / h;
      const [m1, m0] = this.modelOutputs;
      prevSample = tf.tidy(() => {
        const d1 = tf.mul(tf.sub(m0, m1), 1 / r0);
        return tf.sub(tf.sub(tf.mul(sample, target.sigma / s0.sigma), tf.mul(m0, target.alpha * expm)), tf.mul(d1, 0.5 * target.alpha * expm));
      });
    }
    if (this.lowerOrderNums < this.order) this.lowerOrderNums++;
    return prevSample;
  }

  override dispose(): void {
    for (const m of this.modelOutputs) m.dispose();
    this.modelOutputs = [];
    this.lowerOrderNums = 0;
  }
}
