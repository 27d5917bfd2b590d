import { NoiseScheduler } from './base';
import { DDIMScheduler } from './ddim';
import { DDPMScheduler } from './ddpm';
import { DPMSolverMultistepScheduler } from './dpm_solver_multistep';
import { EulerAncestralDiscreteScheduler } from './euler_ancestral';
import { SchedulerConfigInput } from './schedule';

export * from './schedule';
export * from './random';
export * from './base';
export * from './ddpm';
export * from './ddim';
export * from './dpm_solver_multistep';
export * from './euler_ancestral';

/** The samplers a generation can pick. */
export type SamplerName = 'ddim' | 'dpmpp-2m' | 'euler-a';
export const SAMPLER_NAMES: readonly SamplerName[] = ['ddim', 'dpmpp-2m', 'euler-a'];

const SAMPLER_CLASSES: Record<SamplerName, new (config?: SchedulerConfigInput) => NoiseScheduler> = {
  ddim: DDIMScheduler,
  'dpmpp-2m': DPMSolverMultistepScheduler,
  'euler-a': EulerAncestralDiscreteScheduler,
};

/** Upstream scheduler class names we can build (PNDM's config is read for its schedule only). */
export const SCHEDULER_CLASSES: Record<string, new (config?: SchedulerConfigInput) => NoiseScheduler> = {
  DDPMScheduler,
  DDIMScheduler,
  DPMSolverMultistepScheduler,
  EulerAncestralDiscreteScheduler,
};

/**
 * A fresh scheduler (one sampling run) of the chosen sampler, from any scheduler config: like
 * upstream's `from_config`, the training schedule fields carry over and the fields of another
 * class (e.g. a PNDMScheduler's `skip_prk_steps`) are ignored. `_class_name` is dropped, so each
 * sampler keeps its own default `timestep_spacing` unless the config names one.
 */
export function createScheduler(sampler: SamplerName, config: SchedulerConfigInput = {}): NoiseScheduler {
  const cls = SAMPLER_CLASSES[sampler];
  if (!cls) throw new Error(`unknown sampler '${sampler}' (one of ${SAMPLER_NAMES.join(', ')})`);
  return new cls(config);
}
