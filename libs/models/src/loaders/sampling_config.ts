/**
 * `sampling_config.json`: the generation settings a pipeline folder recommends for itself (this project's file;
 * diffusers folders have none, and then nothing changes). Like transformers' `generation_config.json`, it is
 * read as defaults that every request may override. Only guidance shaping lives here: how strongly and when to
 * guide is a property of the trained model, measured on its own validation images.
 */
import * as fs from 'fs';
import * as path from 'path';
import { readJsonFile, writeJsonFile } from './model_folder';

export const SAMPLING_CONFIG_NAME = 'sampling_config.json';

export interface SamplingDefaults {
  /** Guide only at timesteps in [from, to]; null: at every step. */
  guidanceInterval: readonly [number, number] | null;
  /** diffusers' guidance_rescale φ (0: off). */
  guidanceRescale: number;
}

/** What a folder without `sampling_config.json` gets: plain classifier-free guidance at every step. */
export const NO_SAMPLING_DEFAULTS: Readonly<SamplingDefaults> = Object.freeze({ guidanceInterval: null, guidanceRescale: 0 });

/**
 * The shaping a generation uses: what it asked for, else the folder's default. An unset (undefined) field takes
 * the default; a null interval means every step, whatever the default.
 */
export function resolveGuidanceShaping(defaults: SamplingDefaults, asked: { guidanceRescale?: number; guidanceInterval?: readonly [number, number] | null }): SamplingDefaults {
  return {
    guidanceRescale: asked.guidanceRescale ?? defaults.guidanceRescale,
    guidanceInterval: asked.guidanceInterval === undefined ? defaults.guidanceInterval : asked.guidanceInterval,
  };
}

/**
 * The one range rule for a guidance interval, whoever asks (pipeline, sampling_config.json, CLI flags, gRPC):
 * timesteps 0 ≤ from ≤ to, `to` may be +inf (every step from `from` on). Each caller words its own error.
 */
export function isGuidanceInterval(from: number, to: number): boolean {
  return Number.isFinite(from) && from >= 0 && !Number.isNaN(to) && to >= from;
}

/** The one range rule for diffusers' guidance_rescale φ: a number in [0, 1] (0 = off). */
export function isGuidanceRescale(phi: number): boolean {
  return Number.isFinite(phi) && phi >= 0 && phi <= 1;
}

/** Checked defaults from the parsed file (field names snake_case, as the folder's other configs). */
export function parseSamplingConfig(json: Record<string, unknown>, file = SAMPLING_CONFIG_NAME): SamplingDefaults {
  const bad = (why: string) => new Error(`${file}: ${why}`);
  const interval = json.guidance_interval ?? null;
  if (interval !== null) {
    if (!Array.isArray(interval) || interval.length !== 2 || !interval.every((t) => typeof t === 'number' && Number.isFinite(t))) {
      throw bad(`guidance_interval must be [from, to] timesteps or null, got ${JSON.stringify(interval)}`);
    }
    if (!isGuidanceInterval(interval[0], interval[1])) throw bad(`guidance_interval must satisfy 0 <= from <= to, got ${JSON.stringify(interval)}`);
  }
  const rescale = json.guidance_rescale ?? 0;
  if (typeof rescale !== 'number' || !isGuidanceRescale(rescale)) throw bad(`guidance_rescale must be a number in [0, 1], got ${JSON.stringify(rescale)}`);
  return { guidanceInterval: interval === null ? null : [interval[0] as number, interval[1] as number], guidanceRescale: rescale };
}

/** The folder's sampling defaults; a folder without the file gets `NO_SAMPLING_DEFAULTS`. */
export function loadSamplingConfig(dir: string): SamplingDefaults {
  const file = path.join(dir, SAMPLING_CONFIG_NAME);
  if (!fs.existsSync(file)) return { ...NO_SAMPLING_DEFAULTS };
  return parseSamplingConfig(readJsonFile(file), file);
}

/** Writes `sampling_config.json`; `why` is kept in the file (`_comment`) so a reader learns where the numbers come from. */
export function saveSamplingConfig(dir: string, defaults: SamplingDefaults, why?: string): void {
  writeJsonFile(path.join(dir, SAMPLING_CONFIG_NAME), {
    ...(why ? { _comment: why } : {}),
    guidance_interval: defaults.guidanceInterval === null ? null : [...defaults.guidanceInterval],
    guidance_rescale: defaults.guidanceRescale,
  });
}
