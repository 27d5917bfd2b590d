/** Parsing of numeric command-line flags, with one wording for every command's errors. */
import { InvalidArgumentError } from 'commander';
import { DEFAULT_LEARN_SETTINGS, DEFAULT_LOSS_WEIGHTS, isLearnSettingName, parseLearnSetting, type LearnSettings, type LossWeights } from '@museum/museum';
import { isGuidanceInterval, isGuidanceRescale } from '@museum/models';

/** An integer flag ≥ lo (and ≤ hi when given); undefined stays undefined. */
export function intFlag(name: string, value: string | undefined, lo = 1, hi = Infinity): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < lo || n > hi) {
    const range = hi === Infinity ? (lo === 1 ? 'a positive integer' : `an integer ≥ ${lo}`) : `an integer in [${lo}, ${hi}]`;
    throw new InvalidArgumentError(`${name} must be ${range}, got '${value}'`);
  }
  return n;
}

/** A commander argument parser for an integer flag in [lo, hi] (keeps the string: callers convert). */
export function intInRange(name: string, lo: number, hi: number): (v: string) => string {
  return (v: string) => {
    intFlag(name, v, lo, hi);
    return v;
  };
}

/** `--set` overrides of style learning: settings by name, loss weights as `weights.<term>`. */
export interface LearnOverrides {
  learn: Partial<LearnSettings>;
  weights: Partial<LossWeights>;
}

/** commander collector of a repeatable flag. */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/**
 * Parse `key=value` pairs (`lr=3e-3`, `loraTargets=all-attention`, `weights.sdl=1`) against the library's
 * defaults: an unknown key or a value of the wrong type is refused with the list of what exists.
 */
export function learnOverrides(pairs: readonly string[] = []): LearnOverrides {
  const out: LearnOverrides = { learn: {}, weights: {} };
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new InvalidArgumentError(`--set takes key=value, got '${pair}'`);
    const key = pair.slice(0, eq).trim();
    const raw = pair.slice(eq + 1).trim();
    if (key.startsWith('weights.')) {
      const term = key.slice('weights.'.length);
      if (!(term in DEFAULT_LOSS_WEIGHTS)) throw new InvalidArgumentError(`--set ${key}: no loss term '${term}'; one of ${Object.keys(DEFAULT_LOSS_WEIGHTS).join(', ')}`);
      const n = Number(raw);
      if (raw === '' || !Number.isFinite(n) || n < 0) throw new InvalidArgumentError(`--set ${key} must be a number ≥ 0, got '${raw}'`);
      (out.weights as Record<string, number>)[term] = n;
      continue;
    }
    if (!isLearnSettingName(key)) {
      throw new InvalidArgumentError(`--set: no setting '${key}'; one of ${Object.keys(DEFAULT_LEARN_SETTINGS).join(', ')}, or weights.<${Object.keys(DEFAULT_LOSS_WEIGHTS).join('|')}>`);
    }
    let value: unknown;
    try {
      value = parseLearnSetting(key, raw);
    } catch (err) {
      throw new InvalidArgumentError(`--set ${key} ${(err as Error).message}`);
    }
    (out.learn as Record<string, unknown>)[key] = value;
  }
  return out;
}

/**
 * `--guidance-interval from,to` as timesteps (refused unless two numbers with 0 ≤ from ≤ to), or `none`:
 * null, guidance at every step whatever the model's sampling_config.json recommends.
 */
export function guidanceIntervalFlag(text: string | undefined): [number, number] | null | undefined {
  if (text === undefined) return undefined;
  if (text.trim() === 'none') return null;
  const bounds = text.split(',').map((b) => Number(b.trim()));
  if (bounds.length !== 2 || !Number.isFinite(bounds[1]) || !isGuidanceInterval(bounds[0], bounds[1])) {
    throw new InvalidArgumentError(`--guidance-interval must be from,to timesteps with 0 ≤ from ≤ to (e.g. 0,600) or none (every step), got '${text}'`);
  }
  return [bounds[0], bounds[1]];
}

/** `--seeds 1,2`: comma-separated non-negative integer seeds, at least one, no repeats. */
export function seedListFlag(text: string | undefined): number[] | undefined {
  if (text === undefined) return undefined;
  const seeds = text.split(',').map((s) => s.trim());
  if (seeds.some((s) => s === '' || !Number.isInteger(Number(s)) || Number(s) < 0) || new Set(seeds.map(Number)).size !== seeds.length) {
    throw new InvalidArgumentError(`--seeds must be distinct non-negative integers separated by commas (e.g. 1,2), got '${text}'`);
  }
  return seeds.map(Number);
}

/** `--guidance-rescale φ` in [0, 1]; undefined stays undefined (the model's default). */
export function guidanceRescaleFlag(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const phi = Number(text);
  if (text.trim() === '' || !isGuidanceRescale(phi)) throw new InvalidArgumentError(`--guidance-rescale must be a number in [0, 1], got '${text}'`);
  return phi;
}
