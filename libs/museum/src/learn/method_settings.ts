/**
 * Which learning settings and loss weights a method actually reads. Two runs of a method that agree on these
 * learn the same museum bit for bit, whatever the other settings say: a benchmark can then tune MuseumMaker's
 * regularization without invalidating the baselines it is compared with (they never read it).
 *
 * Kept next to `learnStyle`, whose reads it mirrors (test: changing only settings a method does not use leaves
 * its learned tensors bit-identical).
 */
import { METHODS, type LossComponents, type MethodName } from './methods';
import type { LearnSettings, LossWeights } from './options';

export interface MethodSettings {
  learn: Partial<LearnSettings>;
  weights: Partial<LossWeights>;
  /** The method's components (its definition can change between releases: results then no longer apply). */
  components: LossComponents;
}

/** Settings every method reads: the step budget, batches, schedule, clipping and seeds. */
const COMMON: ReadonlyArray<keyof LearnSettings> = ['steps', 'batchSize', 'warmup', 'maxGradNorm', 'seed', 'noiseOffset'];
/** Read when a new token row is trained (not when every style is prompted through a fixed word). */
const TOKEN: ReadonlyArray<keyof LearnSettings> = ['tokenLr', 'tokenNormCap', 'initWord'];
/** Read when the method has a LoRA. */
const LORA: ReadonlyArray<keyof LearnSettings> = ['lr', 'weightDecay', 'rank', 'alpha', 'loraTargets'];

/** The settings and weights `method` reads out of `learn` and `weights` (keys in a fixed order). */
export function settingsUsedBy(method: MethodName, learn: LearnSettings, weights: LossWeights): MethodSettings {
  const spec = METHODS[method];
  const c = spec.components;
  const keys: Array<keyof LearnSettings> = [...COMMON];
  if (spec.embedding === 'token') keys.push(...TOKEN);
  if (spec.lora !== 'none') keys.push(...LORA);
  if (spec.lora === 'shared') keys.push('loraStyleBlock');
  if (spec.lora === 'joint') keys.push('jointScaleSteps');
  if (c.sdl) keys.push('sdlTemperature', 'sdlUpBlocks');
  if (c.weightReg) keys.push('weightRegForm');
  if (c.featReg) keys.push('featRegBatch', 'featRegInputs', 'featRegEmptyShare', 'featRegReplay', 'featRegReplaySteps');
  if (c.ewc) keys.push('ewcFisherSamples');
  const weightKeys: Array<keyof LossWeights> = ['diffusion', ...(['sdl', 'weightReg', 'featReg', 'clora', 'ewc'] as const).filter((k) => c[k])];
  const pick = <T extends object, K extends keyof T>(from: T, ks: K[]): Partial<T> => Object.fromEntries(ks.map((k) => [k, from[k]])) as unknown as Partial<T>;
  return { learn: pick(learn, keys), weights: pick(weights, weightKeys), components: { ...c } };
}
