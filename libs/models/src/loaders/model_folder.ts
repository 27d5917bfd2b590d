import * as fs from 'fs';
import * as path from 'path';
import { tf, SafetensorsReader, saveSafetensors } from '@museum/tensor';
import { Module } from '../nn/module';
import { LoadStateDictOptions, LoadStateDictResult, StateDictError, TensorSource, disposeStateDict, loadStateDict, safetensorsSource, stateDict } from './state_dict';
import { ModelLibrary, classNameOf, getModelClass } from './registry';

/** The diffusers release whose file formats (config fields, names, layouts) we write. */
export const DIFFUSERS_VERSION = '0.21.4';
export const TRANSFORMERS_VERSION = '4.33.0';

export const DIFFUSERS_WEIGHTS_NAME = 'diffusion_pytorch_model.safetensors';
export const TRANSFORMERS_WEIGHTS_NAME = 'model.safetensors';
export const CONFIG_NAME = 'config.json';

// ---------------------------------------------------------------------------------------------------------
// JSON files

const NON_FINITE = '\u0000museum-number:';

/**
 * JSON.parse that also accepts the NaN / Infinity / -Infinity that Python's json module writes
 * (e.g. DPMSolverMultistepScheduler's `lambda_min_clipped: -Infinity`).
 */
export function parsePythonJson(text: string): unknown {
  const patched = text.replace(/("(?:[^"\\]|\\.)*")|(-?Infinity|NaN)/g, (m, str: string | undefined) => (str ? m : JSON.stringify(NON_FINITE + m)));
  return JSON.parse(patched, (_k, v) => (typeof v === 'string' && v.startsWith(NON_FINITE) ? Number(v.slice(NON_FINITE.length)) : v));
}

export function readJsonFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`cannot read ${file}: ${(err as Error).message}`);
  }
  let json: unknown;
  try {
    json = parsePythonJson(text);
  } catch (err) {
    throw new Error(`${file} is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Error(`${file} must hold a JSON object`);
  return json as Record<string, unknown>;
}

/** Write JSON like Python's `json.dumps(indent=2, sort_keys=True)`, atomically (temp file + rename). */
export function writeJsonFile(file: string, value: Record<string, unknown>): void {
  const sorted = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(sorted);
    if (typeof v === 'number' && !Number.isFinite(v)) return NON_FINITE + String(v);
    if (v && typeof v === 'object') {
      const out: Record<string, unknown> = {};
      for (const k of Object.keys(v).sort()) out[k] = sorted((v as Record<string, unknown>)[k]);
      return out;
    }
    return v;
  };
  const tmp = `${file}.${process.pid}.${Date.now().toString(36)}.tmp`;
  // non-finite numbers are written as Python's json module does (NaN, Infinity, -Infinity)
  const text = JSON.stringify(sorted(value), null, 2).replace(/"\\u0000museum-number:([^"]*)"/g, '$1');
  fs.writeFileSync(tmp, text + '\n');
  fs.renameSync(tmp, file);
}

// ---------------------------------------------------------------------------------------------------------
// one model folder: config.json + weights

export interface SaveModelFolderOptions {
  /** Storage type of the float weights (default F32). */
  dtype?: 'F32' | 'F16' | 'BF16';
  /** Weights file name (default `diffusion_pytorch_model.safetensors`, or `model.safetensors` for transformers classes). */
  weightsName?: string;
  /** Upstream class name; default: the registered class of `module`. */
  className?: string;
}

function libraryOf(className: string, fallback: ModelLibrary = 'diffusers'): ModelLibrary {
  try {
    return getModelClass(className).library;
  } catch {
    return fallback;
  }
}

/**
 * Write `module` as an upstream model folder: `config.json` (diffusers: with `_class_name` and
 * `_diffusers_version`; transformers: with `architectures` and `transformers_version`) and its
 * weights as safetensors under upstream names, in PyTorch layouts.
 */
export function saveModelFolder(dir: string, module: Module, config?: Record<string, unknown>, options: SaveModelFolderOptions = {}): void {
  const className = options.className ?? classNameOf(module);
  if (!className) throw new Error('saveModelFolder: the module is of no registered class; pass options.className');
  let entry: ReturnType<typeof getModelClass> | undefined;
  try {
    entry = getModelClass(className);
  } catch {
    entry = undefined;
  }
  const library = entry?.library ?? libraryOf(className);
  const dtype = options.dtype ?? 'F32';
  const cfg = config ?? entry?.configOf?.(module) ?? ((module as unknown as { config?: Record<string, unknown> }).config as Record<string, unknown> | undefined);
  if (!cfg) throw new Error(`saveModelFolder: no config for ${className}`);
  const body: Record<string, unknown> = { ...cfg };
  for (const k of ['_class_name', '_diffusers_version', '_name_or_path', 'architectures', 'transformers_version']) delete body[k];
  const json: Record<string, unknown> =
    library === 'diffusers'
      ? { _class_name: className, _diffusers_version: DIFFUSERS_VERSION, ...body }
      : { architectures: [className], ...body, torch_dtype: dtype === 'F32' ? 'float32' : dtype === 'F16' ? 'float16' : 'bfloat16', transformers_version: TRANSFORMERS_VERSION };
  fs.mkdirSync(dir, { recursive: true });
  const sd = stateDict(module);
  try {
    entry?.exportState?.(module, sd);
    const weightsName = options.weightsName ?? (library === 'diffusers' ? DIFFUSERS_WEIGHTS_NAME : TRANSFORMERS_WEIGHTS_NAME);
    saveSafetensors(path.join(dir, weightsName), sd, { dtype, metadata: { format: 'pt' } });
  } finally {
    disposeStateDict(sd);
  }
  writeJsonFile(path.join(dir, CONFIG_NAME), json);
}

export interface LoadModelFolderOptions extends Pick<LoadStateDictOptions, 'strict' | 'ignore' | 'rename'> {
  /** Override the class named in config.json. */
  className?: string;
  /** Weights file to read (default: the first of the upstream names present, F32 before fp16 variants). */
  weightsName?: string;
}

export interface LoadedModel<M extends Module = Module> {
  model: M;
  className: string;
  /** config.json as read (upstream field names, including `_class_name` etc.). */
  config: Record<string, unknown>;
  weightsFile: string;
  result: LoadStateDictResult;
}

const WEIGHT_CANDIDATES = [
  DIFFUSERS_WEIGHTS_NAME,
  TRANSFORMERS_WEIGHTS_NAME,
  'diffusion_pytorch_model.fp16.safetensors',
  'model.fp16.safetensors',
  `${DIFFUSERS_WEIGHTS_NAME}.index.json`,
  `${TRANSFORMERS_WEIGHTS_NAME}.index.json`,
];

function findWeights(dir: string, name?: string): string {
  if (name) {
    const f = path.join(dir, name);
    if (!fs.existsSync(f)) throw new Error(`no weights file ${name} in ${dir}`);
    return f;
  }
  for (const c of WEIGHT_CANDIDATES) if (fs.existsSync(path.join(dir, c))) return path.join(dir, c);
  const pickles = ['diffusion_pytorch_model.bin', 'pytorch_model.bin'].filter((f) => fs.existsSync(path.join(dir, f)));
  if (pickles.length) throw new Error(`${dir} holds only PyTorch pickles (${pickles.join(', ')}); convert them to safetensors first`);
  throw new Error(`no safetensors weights in ${dir} (looked for ${WEIGHT_CANDIDATES.join(', ')})`);
}

/** A tensor source over one safetensors file, or over the shards a `*.safetensors.index.json` names. */
function openWeights(file: string): { source: TensorSource; close(): void } {
  if (!file.endsWith('.index.json')) {
    const reader = SafetensorsReader.open(file);
    return { source: safetensorsSource(reader), close: () => reader.close() };
  }
  const index = readJsonFile(file);
  const map = index.weight_map as Record<string, string> | undefined;
  if (!map || typeof map !== 'object') throw new Error(`${file} has no weight_map`);
  const readers = new Map<string, SafetensorsReader>();
  try {
    for (const shard of new Set(Object.values(map))) readers.set(shard, SafetensorsReader.open(path.join(path.dirname(file), shard)));
  } catch (err) {
    for (const r of readers.values()) r.close();
    throw err;
  }
  const readerOf = (k: string) => readers.get(map[k])!;
  return {
    source: { keys: () => Object.keys(map), shape: (k) => readerOf(k).info(k).shape, read: (k) => readerOf(k).read(k), owned: true },
    close: () => {
      for (const r of readers.values()) r.close();
    },
  };
}

/** The upstream class a config.json names: diffusers' `_class_name` or transformers' `architectures[0]`. */
export function configClassName(config: Record<string, unknown>): string | undefined {
  if (typeof config._class_name === 'string') return config._class_name;
  const arch = config.architectures;
  if (Array.isArray(arch) && typeof arch[0] === 'string') return arch[0];
  return undefined;
}

/**
 * Build the class named by `dir/config.json` from the registry and load its weights (strict by
 * default). Tensors are read one at a time; F16/BF16 files are upcast to float32.
 */
export function loadModelFolder<M extends Module = Module>(dir: string, options: LoadModelFolderOptions = {}): LoadedModel<M> {
  const config = readJsonFile(path.join(dir, CONFIG_NAME));
  const className = options.className ?? configClassName(config);
  if (!className) throw new Error(`${path.join(dir, CONFIG_NAME)} names no class (_class_name or architectures)`);
  const entry = getModelClass(className);
  const weightsFile = findWeights(dir, options.weightsName);
  const weights = openWeights(weightsFile);
  let model: Module | null = null;
  try {
    model = entry.create(config);
    const result = loadStateDict(model, weights.source, { strict: options.strict, ignore: options.ignore, rename: options.rename });
    return { model: model as M, className, config, weightsFile, result };
  } catch (err) {
    model?.dispose();
    if (err instanceof StateDictError) throw new StateDictError(err.missing, err.unexpected, err.mismatched, `(${className} from ${weightsFile})`);
    throw err;
  } finally {
    weights.close();
  }
}

/** Read every tensor of a model folder's weights (for inspection and tests; the caller disposes them). */
export function readModelFolderTensors(dir: string, weightsName?: string): Map<string, tf.Tensor> {
  const weights = openWeights(findWeights(dir, weightsName));
  const out = new Map<string, tf.Tensor>();
  try {
    for (const k of weights.source.keys()) out.set(k, weights.source.read(k));
  } catch (err) {
    disposeStateDict(out);
    throw err;
  } finally {
    weights.close();
  }
  return out;
}
