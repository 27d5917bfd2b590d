/**
 * Loading one part of a diffusers pipeline folder: each stage service loads only its own model
 * (the text encoder never holds the UNet's weights), which is what lets the stages scale apart.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Module, loadModelFolder, loadTokenizer, readJsonFile, type Tokenizer } from '@museum/models';
import { failedPrecondition } from './errors';

export type PipelinePart = 'unet' | 'vae' | 'text_encoder';

/** model_index.json of a pipeline folder; a clear error when the folder is not a model. */
export function readModelIndex(dir: string): Record<string, unknown> {
  const file = path.join(dir, 'model_index.json');
  if (!fs.existsSync(file)) {
    throw failedPrecondition(
      `no model at ${dir} (model_index.json missing). Get the bundled Atelier model with \`npx museum pretrain\` ` +
        '(trains it from the procedural world and exports models/atelier), or point --model / MUSEUM_MODEL_DIR at a diffusers Stable Diffusion 1.x folder',
    );
  }
  return readJsonFile(file);
}

/** Load one model part (`unet/`, `vae/` or `text_encoder/`) with the class model_index.json names. */
export function loadPipelinePart<M extends Module = Module>(dir: string, part: PipelinePart): { model: M; config: Record<string, unknown> } {
  const index = readModelIndex(dir);
  const entry = index[part];
  const className = Array.isArray(entry) && typeof entry[1] === 'string' ? entry[1] : undefined;
  if (!className) throw failedPrecondition(`${path.join(dir, 'model_index.json')} has no ${part} entry`);
  const r = loadModelFolder<M>(path.join(dir, part), { className });
  return { model: r.model, config: r.config };
}

export function loadPipelineTokenizer(dir: string): Tokenizer {
  readModelIndex(dir);
  return loadTokenizer(path.join(dir, 'tokenizer'));
}

/** scheduler/scheduler_config.json (the training noise schedule). */
export function loadSchedulerConfig(dir: string): Record<string, unknown> {
  const file = path.join(dir, 'scheduler', 'scheduler_config.json');
  return fs.existsSync(file) ? readJsonFile(file) : {};
}
