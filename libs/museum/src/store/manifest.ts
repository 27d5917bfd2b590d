/**
 * What a museum version records. A version is immutable once committed: `manifest.json` plus the files it
 * names, each with its sha256, in `versions/<NNNNNN>/`.
 */
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { SAMPLING_CONFIG_NAME, type LoraTargetKind, type Module } from '@museum/models';
import { MuseumError } from '../errors';
import { listFilesRecursive, sha256File } from './fsutil';

export const VERSION_FORMAT = 'museum-version/1';

/** The frozen base model every version of a museum builds on. */
export interface BaseModelRef {
  /** `folder`: a diffusers pipeline folder; `weights`: models built in-process (tests, benches), hashed by parameters. */
  kind: 'folder' | 'weights';
  /** Absolute path of the folder when known (informative only: the hash is what binds a museum to its base). */
  path: string | null;
  /** `sha256:<hex>` over the per-file (or per-parameter) hashes below. */
  hash: string;
  /** Relative path → sha256 of each file hashed (folders only): model_index.json, configs, weights, tokenizer. */
  files?: Record<string, string>;
}

/** A file of a version folder with its content hash. */
export interface FileRef {
  file: string;
  sha256: string;
  bytes: number;
}

/** Which layers the shared LoRA adapts (mirrors `injectLora`'s options). */
export interface LoraConfigRecord {
  rank: number;
  alpha: number;
  targets: LoraTargetKind;
  projections: string[];
}

/** How a style's `<name>` reaches the text encoder. */
export type StyleEmbedding =
  /** A learned row of the token table (tokens.safetensors), initialised from `initWord` (null: random). */
  | { kind: 'token'; initWord: string | null }
  /** No token of its own: `<name>` is replaced by a fixed word in prompts (the `museummaker-token` ablation). */
  | { kind: 'word'; word: string };

export interface TrainingImageRecord {
  sha256: string;
  caption: string;
  /** Size as given, before the centre crop / resize to the model's resolution. */
  width: number;
  height: number;
}

export interface StyleRecord {
  name: string;
  /** The placeholder typed in prompts, `<name>`. */
  token: string;
  embedding: StyleEmbedding;
  /** 1 for the first style of the museum, 2 for the next, … */
  index: number;
  /** The version that added the style. */
  version: number;
  method: string;
  images: TrainingImageRecord[];
  /** The resolved training options. */
  settings: Record<string, unknown>;
  metrics: Record<string, number>;
  trainSeconds: number;
  createdAt: string;
  /** Its own adapter (the `separate` method), a file of every later version folder too. */
  adapter?: FileRef & LoraConfigRecord;
}

export interface VersionManifest {
  format: typeof VERSION_FORMAT;
  version: number;
  parent: number | null;
  createdAt: string;
  base: BaseModelRef;
  /** The continual-learning method of the museum (fixed by its first style); null before any style. */
  method: string | null;
  /** The shared LoRA after the latest style (peft/diffusers names, `unet.` prefix), or null. */
  lora: (FileRef & LoraConfigRecord) | null;
  /** The task-token table, one [hidden] row per learned token, in textual-inversion format. */
  tokens: FileRef | null;
  styles: StyleRecord[];
  /** Per-method state kept with the version (e.g. `ewc_fisher`, `joint_images`). */
  state: Record<string, FileRef>;
  /** Bytes of this version's files (manifest excluded). */
  bytes: number;
}

export function versionName(n: number): string {
  return String(n).padStart(6, '0');
}

export function parseVersionName(name: string): number | null {
  return /^\d{6}$/.test(name) ? Number(name) : null;
}

function combine(entries: Array<[string, string]>): string {
  const h = crypto.createHash('sha256');
  for (const [k, v] of entries) h.update(`${k}\0${v}\n`);
  return `sha256:${h.digest('hex')}`;
}

/**
 * Reference a diffusers pipeline folder: sha256 of every file (model_index.json, each part's config and
 * weights, the tokenizer, the scheduler config), combined in path order.
 */
export function baseRefFromFolder(dir: string): BaseModelRef {
  const abs = path.resolve(dir);
  if (!fs.existsSync(path.join(abs, 'model_index.json'))) throw new MuseumError('NOT_FOUND', `no base model at ${abs} (model_index.json missing)`);
  const files: Record<string, string> = {};
  for (const rel of listFilesRecursive(abs)) {
    // Sampling defaults recommend how to generate; they are not the model a museum's styles were learned on.
    if (rel.endsWith('.tmp') || rel === SAMPLING_CONFIG_NAME) continue;
    files[rel] = sha256File(path.join(abs, rel));
  }
  return { kind: 'folder', path: abs, hash: combine(Object.entries(files)), files };
}

/** Reference models built in-process: sha256 over every parameter's name, shape and float32 bytes. */
export function baseRefFromModules(modules: Record<string, Module>): BaseModelRef {
  const h = crypto.createHash('sha256');
  for (const key of Object.keys(modules).sort()) {
    for (const [name, p] of modules[key].namedParameters(`${key}.`)) {
      h.update(`${name}[${p.variable.shape.join(',')}]`);
      const v = p.variable.dataSync() as Float32Array;
      h.update(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
    }
  }
  return { kind: 'weights', path: null, hash: `sha256:${h.digest('hex')}` };
}

/** Light structural check of a parsed manifest (a corrupt or foreign file is DATA_LOSS, not a crash later). */
export function checkManifest(json: unknown, expectedVersion: number, file: string): VersionManifest {
  const m = json as Partial<VersionManifest>;
  const bad = (why: string) => new MuseumError('DATA_LOSS', `${file}: ${why}`);
  if (!m || typeof m !== 'object') throw bad('not a JSON object');
  if (m.format !== VERSION_FORMAT) throw bad(`unknown format ${JSON.stringify(m.format)}`);
  if (m.version !== expectedVersion) throw bad(`records version ${m.version}, expected ${expectedVersion}`);
  if (!Array.isArray(m.styles) || !m.base || typeof m.base.hash !== 'string') throw bad('styles or base missing');
  if (m.styles.length !== expectedVersion) throw bad(`version ${expectedVersion} must hold ${expectedVersion} styles, has ${m.styles.length}`);
  return m as VersionManifest;
}
