import * as fs from 'fs';
import * as path from 'path';
import { Module } from '../nn/module';
import type { Tokenizer } from '../tokenizers/tokenizer';
import { loadTokenizer } from '../tokenizers/load';
import { ClipBpeTokenizer } from '../tokenizers/clip_bpe';
import { NoiseScheduler } from '../schedulers/base';
import { DIFFUSERS_VERSION, LoadModelFolderOptions, SaveModelFolderOptions, loadModelFolder, readJsonFile, saveModelFolder, writeJsonFile } from './model_folder';
import { classNameOf, getModelClass } from './registry';
import { loadSamplingConfig, type SamplingDefaults } from './sampling_config';

export const MODEL_INDEX_NAME = 'model_index.json';
export const SCHEDULER_CONFIG_NAME = 'scheduler_config.json';

/** The five parts of a Stable Diffusion pipeline folder. Model types stay open so any registered class fits. */
export interface PipelineParts<U extends Module = Module, V extends Module = Module, T extends Module = Module> {
  unet: U;
  vae: V;
  textEncoder: T;
  tokenizer: Tokenizer;
  /** scheduler_config.json (upstream fields; `_class_name` names the scheduler the folder was saved with). */
  schedulerConfig: Record<string, unknown>;
}

export interface LoadedPipelineFolder<U extends Module = Module, V extends Module = Module, T extends Module = Module> extends PipelineParts<U, V, T> {
  modelIndex: Record<string, unknown>;
  /** config.json of each model part as read. */
  configs: { unet: Record<string, unknown>; vae: Record<string, unknown>; textEncoder: Record<string, unknown> };
  /** model_index.json entries this loader does not build (e.g. safety_checker, feature_extractor). */
  skipped: string[];
  /** sampling_config.json (guidance shaping defaults), or none. */
  samplingDefaults: SamplingDefaults;
}

/** model_index.json keys of the parts we build, with the folder names upstream uses. */
const MODEL_PARTS = [
  { key: 'unet', field: 'unet' },
  { key: 'vae', field: 'vae' },
  { key: 'text_encoder', field: 'textEncoder' },
] as const;

function indexEntry(index: Record<string, unknown>, key: string): [string | null, string | null] | undefined {
  const v = index[key];
  if (!Array.isArray(v) || v.length !== 2) return undefined;
  return [v[0] as string | null, v[1] as string | null];
}

/**
 * Load a diffusers pipeline folder (`model_index.json` + `unet/`, `vae/`, `text_encoder/`,
 * `tokenizer/`, `scheduler/`): each model part is built from its registered class and loaded
 * strictly. Parts upstream may list but we do not run (safety checker, feature extractor) are
 * reported in `skipped`. On any error every part loaded so far is disposed.
 */
export function loadPipelineFolder<U extends Module = Module, V extends Module = Module, T extends Module = Module>(
  dir: string,
  options: Pick<LoadModelFolderOptions, 'strict'> = {},
): LoadedPipelineFolder<U, V, T> {
  const index = readJsonFile(path.join(dir, MODEL_INDEX_NAME));
  const loaded: Module[] = [];
  try {
    const models: Record<string, Module> = {};
    const configs: Record<string, Record<string, unknown>> = {};
    for (const { key, field } of MODEL_PARTS) {
      const entry = indexEntry(index, key);
      if (!entry || entry[1] === null) throw new Error(`${path.join(dir, MODEL_INDEX_NAME)} has no ${key} entry`);
      const sub = path.join(dir, key);
      if (!fs.existsSync(sub)) throw new Error(`pipeline folder ${dir} has no ${key}/ folder`);
      const r = loadModelFolder(sub, { strict: options.strict, className: entry[1] });
      loaded.push(r.model);
      models[field] = r.model;
      configs[field] = r.config;
    }
    const tokenizer = loadTokenizer(path.join(dir, 'tokenizer'));
    const schedulerFile = path.join(dir, 'scheduler', SCHEDULER_CONFIG_NAME);
    const schedulerConfig = readJsonFile(schedulerFile);
    const schedulerEntry = indexEntry(index, 'scheduler');
    if (schedulerConfig._class_name === undefined && schedulerEntry?.[1]) schedulerConfig._class_name = schedulerEntry[1];
    const known = new Set(['unet', 'vae', 'text_encoder', 'tokenizer', 'scheduler']);
    const skipped = Object.keys(index).filter((k) => !k.startsWith('_') && !known.has(k) && indexEntry(index, k)?.[1]);
    return {
      unet: models.unet as U,
      vae: models.vae as V,
      textEncoder: models.textEncoder as T,
      tokenizer,
      schedulerConfig,
      modelIndex: index,
      configs: { unet: configs.unet, vae: configs.vae, textEncoder: configs.textEncoder },
      skipped,
      samplingDefaults: loadSamplingConfig(dir),
    };
  } catch (err) {
    for (const m of loaded) m.dispose();
    throw err;
  }
}

export interface SavePipelineFolderOptions {
  /** Storage type of the model weights (default F32). */
  dtype?: SaveModelFolderOptions['dtype'];
}

/** scheduler_config.json for a scheduler instance or a config object (default class: DDIMScheduler). */
function schedulerJson(s: NoiseScheduler | Record<string, unknown>): Record<string, unknown> {
  if (s instanceof NoiseScheduler) return s.toJSON(DIFFUSERS_VERSION);
  return { _class_name: 'DDIMScheduler', ...s, _diffusers_version: DIFFUSERS_VERSION };
}

/**
 * Write a diffusers pipeline folder that upstream's `StableDiffusionPipeline.from_pretrained` can
 * read (no safety checker). model_index.json is written last, so a folder that has one is complete.
 */
export function savePipelineFolder(
  dir: string,
  parts: Omit<PipelineParts, 'schedulerConfig'> & { schedulerConfig: NoiseScheduler | Record<string, unknown> },
  options: SavePipelineFolderOptions = {},
): void {
  fs.mkdirSync(dir, { recursive: true });
  const index: Record<string, unknown> = {
    _class_name: 'StableDiffusionPipeline',
    _diffusers_version: DIFFUSERS_VERSION,
    feature_extractor: [null, null],
    safety_checker: [null, null],
    requires_safety_checker: false,
  };
  for (const { key, field } of MODEL_PARTS) {
    const model = parts[field];
    const className = classNameOf(model);
    if (!className) throw new Error(`savePipelineFolder: ${key} is of no registered model class`);
    saveModelFolder(path.join(dir, key), model, undefined, { dtype: options.dtype, className });
    index[key] = [getModelClass(className).library, className];
  }
  parts.tokenizer.save(path.join(dir, 'tokenizer'));
  index.tokenizer = parts.tokenizer instanceof ClipBpeTokenizer ? ['transformers', 'CLIPTokenizer'] : ['museum', parts.tokenizer.constructor.name];
  const sched = schedulerJson(parts.schedulerConfig);
  fs.mkdirSync(path.join(dir, 'scheduler'), { recursive: true });
  writeJsonFile(path.join(dir, 'scheduler', SCHEDULER_CONFIG_NAME), sched);
  index.scheduler = ['diffusers', sched._class_name];
  writeJsonFile(path.join(dir, MODEL_INDEX_NAME), index);
}
