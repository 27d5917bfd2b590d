/** Writes the finished Atelier model (EMA weights) as a diffusers pipeline folder, float16 to stay small. */
import * as fs from 'fs';
import * as path from 'path';
import { savePipelineFolder, saveSamplingConfig } from '@museum/models';
import { ATELIER_SAMPLING_DEFAULTS, ATELIER_SAMPLING_NOTE, ATELIER_SCHEDULER_CONFIG } from './configs';
import type { StreamSegment } from './data';
import { buildAtelierModels } from './pretrain/stages';
import { loadCheckpointWeights, readCheckpointState, type CheckpointState } from './pretrain/checkpoint';

export interface ExportOptions {
  checkpointsDir: string;
  outDir: string;
  seed?: number;
  dtype?: 'F32' | 'F16';
}

/** `atelier_training.json` beside the exported folder: how far each stage got, so an interim export says so. */
export interface AtelierTrainingRecord {
  finished: boolean;
  stages: Record<'vae' | 'diffusion', { step: number; totalSteps: number; imagesSeen: number; trainSeconds: number; imagesPerSecond: number }>;
  scalingFactor: number;
  /** Diffusion stage: the stretches of the data stream that were not the uniform mix (absent: uniform throughout). */
  dataStream?: StreamSegment[];
  exportedAt: string;
}

export const ATELIER_TRAINING_FILE = 'atelier_training.json';

export function exportAtelier(o: ExportOptions): { scalingFactor: number; diffusionStep: number; record: AtelierTrainingRecord } {
  const vaeDir = path.join(o.checkpointsDir, 'vae');
  const diffDir = path.join(o.checkpointsDir, 'diffusion');
  const vaeState = readCheckpointState(vaeDir);
  const diffState = readCheckpointState(diffDir);
  if (!vaeState?.scalingFactor) throw new Error(`the VAE stage has not finished (no scaling factor in ${vaeDir}/state.json)`);
  if (!diffState) throw new Error(`no diffusion checkpoint in ${diffDir}`);
  const models = buildAtelierModels(o.seed ?? vaeState.seed);
  // A fine-tuned decoder (same frozen encoder, so the same latents) replaces the VAE stage's when present.
  const decoderDir = path.join(o.checkpointsDir, 'decoder');
  loadCheckpointWeights(readCheckpointState(decoderDir) ? decoderDir : vaeDir, { vae: models.vae });
  loadCheckpointWeights(diffDir, { text_encoder: models.textEncoder, unet: models.unet });
  (models.vae.config as { scaling_factor: number }).scaling_factor = vaeState.scalingFactor;
  savePipelineFolder(o.outDir, {
    unet: models.unet,
    vae: models.vae,
    textEncoder: models.textEncoder,
    tokenizer: models.tokenizer,
    schedulerConfig: { _class_name: 'DDIMScheduler', ...ATELIER_SCHEDULER_CONFIG },
  }, { dtype: o.dtype ?? 'F16' });
  saveSamplingConfig(o.outDir, ATELIER_SAMPLING_DEFAULTS, ATELIER_SAMPLING_NOTE);
  for (const m of [models.vae, models.unet, models.textEncoder]) m.dispose();
  const stage = (st: CheckpointState) => ({
    step: st.step,
    totalSteps: st.totalSteps,
    imagesSeen: st.imagesSeen,
    trainSeconds: Math.round(st.trainSeconds),
    imagesPerSecond: st.trainSeconds > 0 ? Number((st.imagesSeen / st.trainSeconds).toFixed(2)) : 0,
  });
  const record: AtelierTrainingRecord = {
    finished: vaeState.step >= vaeState.totalSteps && diffState.step >= diffState.totalSteps,
    stages: { vae: stage(vaeState), diffusion: stage(diffState) },
    scalingFactor: vaeState.scalingFactor,
    ...(diffState.streamSegments ? { dataStream: diffState.streamSegments as StreamSegment[] } : {}),
    exportedAt: new Date().toISOString(),
  };
  fs.writeFileSync(path.join(o.outDir, ATELIER_TRAINING_FILE), JSON.stringify(record, null, 2) + '\n');
  return { scalingFactor: vaeState.scalingFactor, diffusionStep: diffState.step, record };
}
