/**
 * Request limits and checks shared by the gateway and the stage services, each failure an
 * INVALID_ARGUMENT naming the field. The stages check again what they receive (a client may call
 * them directly), so a bad request never reaches a model.
 */
import { museum } from '@museum/proto';
import { isGuidanceInterval, isGuidanceRescale } from '@museum/models';
import { invalidArgument } from './errors';

export type SamplerName = 'ddim' | 'dpmpp-2m' | 'euler-a';

export interface GenerationLimits {
  /** Characters in one prompt (tokens are checked by the text encoder against its max length). */
  maxPromptChars: number;
  /** Prompts in one Encode call / items in one GenerateBatch. */
  maxPrompts: number;
  minSteps: number;
  maxSteps: number;
  defaultSteps: number;
  minGuidance: number;
  maxGuidance: number;
  defaultGuidance: number;
  defaultSampler: SamplerName;
  /** Image side in pixels. */
  minSide: number;
  maxSide: number;
}

export const DEFAULT_LIMITS: Readonly<GenerationLimits> = Object.freeze({
  maxPromptChars: 1000,
  maxPrompts: 16,
  minSteps: 1,
  maxSteps: 200,
  defaultSteps: 25,
  minGuidance: 0,
  maxGuidance: 30,
  defaultGuidance: 7.5,
  defaultSampler: 'dpmpp-2m',
  minSide: 8,
  maxSide: 1024,
});

const SAMPLERS: Record<number, SamplerName | undefined> = {
  [museum.v1.Sampler.SAMPLER_DDIM]: 'ddim',
  [museum.v1.Sampler.SAMPLER_DPMPP_2M]: 'dpmpp-2m',
  [museum.v1.Sampler.SAMPLER_EULER_A]: 'euler-a',
};

export function samplerName(s: museum.v1.Sampler | undefined, field = 'sampler', limits: GenerationLimits = DEFAULT_LIMITS): SamplerName {
  if (s === undefined || s === museum.v1.Sampler.SAMPLER_UNSPECIFIED) return limits.defaultSampler;
  const name = SAMPLERS[s];
  if (!name) throw invalidArgument(field, `unknown sampler ${String(s)} (DDIM, DPMPP_2M or EULER_A)`);
  return name;
}

export function checkPrompt(prompt: string, field: string, limits: GenerationLimits = DEFAULT_LIMITS, allowEmpty = false): string {
  if (typeof prompt !== 'string') throw invalidArgument(field, 'must be a string');
  if (!allowEmpty && prompt.trim().length === 0) throw invalidArgument(field, 'must not be empty');
  if (prompt.length > limits.maxPromptChars) throw invalidArgument(field, `is ${prompt.length} characters long, the limit is ${limits.maxPromptChars}`);
  return prompt;
}

export function checkSteps(steps: number, field = 'steps', limits: GenerationLimits = DEFAULT_LIMITS): number {
  if (steps === 0) return limits.defaultSteps;
  if (!Number.isInteger(steps) || steps < limits.minSteps || steps > limits.maxSteps) {
    throw invalidArgument(field, `must be an integer in [${limits.minSteps}, ${limits.maxSteps}] (0 = default ${limits.defaultSteps}), got ${steps}`);
  }
  return steps;
}

export function checkGuidance(guidance: number | undefined, field = 'guidance', limits: GenerationLimits = DEFAULT_LIMITS): number {
  if (guidance === undefined) return limits.defaultGuidance;
  if (!Number.isFinite(guidance) || guidance < limits.minGuidance || guidance > limits.maxGuidance) {
    throw invalidArgument(field, `must be a number in [${limits.minGuidance}, ${limits.maxGuidance}], got ${guidance}`);
  }
  return guidance;
}

/** diffusers' guidance_rescale φ: a number in [0, 1]; unset stays unset (the model's default applies). */
export function checkGuidanceRescale(phi: number | undefined, field = 'guidance_rescale'): number | undefined {
  if (phi === undefined) return undefined;
  if (!isGuidanceRescale(phi)) throw invalidArgument(field, `must be a number in [0, 1] (0 = off), got ${phi}`);
  return phi;
}

/**
 * A guidance interval of training timesteps, 0 ≤ from ≤ to (to may be +inf: every step from `from` on); unset stays
 * unset (the model's default applies).
 */
export function checkGuidanceInterval(interval: museum.v1.GuidanceInterval | undefined, field = 'guidance_interval'): [number, number] | undefined {
  if (interval === undefined) return undefined;
  const from = interval.fromTimestep ?? 0;
  const to = interval.toTimestep ?? 0;
  if (!isGuidanceInterval(from, to)) {
    throw invalidArgument(field, `must satisfy 0 <= from_timestep <= to_timestep, got [${from}, ${to}]`);
  }
  return [from, to];
}

/** A pixel size: 0 = `fallback`; otherwise a multiple of `multiple` in [minSide, maxSide]. */
export function checkSide(side: number, field: string, fallback: number, multiple: number, limits: GenerationLimits = DEFAULT_LIMITS): number {
  if (side === 0) return fallback;
  if (!Number.isInteger(side) || side < limits.minSide || side > limits.maxSide || side % multiple !== 0) {
    throw invalidArgument(field, `must be a multiple of ${multiple} in [${limits.minSide}, ${limits.maxSide}] (0 = default ${fallback}), got ${side}`);
  }
  return side;
}

/** A seed for `count` images: image i uses seed + i, all below 2^53. */
export function checkSeed(seed: number, count = 1, field = 'seed'): number {
  if (!Number.isSafeInteger(seed) || seed < 0 || seed + count - 1 > Number.MAX_SAFE_INTEGER) {
    throw invalidArgument(field, `must be an integer in [0, 2^53 - ${count}], got ${seed}`);
  }
  return seed;
}

/** An optional museum version: undefined = latest. */
export function checkVersion(v: number | undefined, field = 'museum_version'): number | undefined {
  if (v === undefined) return undefined;
  if (!Number.isSafeInteger(v) || v < 0) throw invalidArgument(field, `must be a non-negative integer, got ${v}`);
  return v;
}

/** Style names: lower-case letters, digits and '-', 1..48 characters. */
export const STYLE_NAME_PATTERN = /^[a-z0-9-]{1,48}$/;

/** The `<token>`s a prompt uses (anything that looks like a task token). */
export function styleTokensIn(prompt: string): string[] {
  return [...prompt.matchAll(/<[A-Za-z0-9_-]+>/g)].map((m) => m[0]);
}
