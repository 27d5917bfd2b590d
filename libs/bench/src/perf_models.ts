/**
 * Model folders the performance benchmark and the load tests run on while the real Atelier model is
 * not trained: `tiny` (libs/rpc's 16×16 test pipeline: measures the serving machinery, not the
 * model) or `atelier-random` (the Atelier architecture, 64×64 images from 16×16×4 latents, with
 * seeded random weights: the real model's compute, not its pictures). Either is written as a
 * regular diffusers folder, so the services load it exactly as they load models/atelier.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { savePipelineFolder } from '@museum/models';
import { writeTinyPipelineFolder } from '@museum/rpc';
import { ATELIER_SCHEDULER_CONFIG, buildAtelierModels } from '@museum/atelier';
import { pngFromRgbBytes } from '@museum/tensor';

export const PERF_MODEL_KINDS = ['tiny', 'atelier-random'] as const;
export type PerfModelKind = (typeof PERF_MODEL_KINDS)[number];

export interface PerfModel {
  /** `tiny`, `atelier-random`, or `folder` (a given pipeline folder). */
  kind: PerfModelKind | 'folder';
  dir: string;
  /** Pixels of a generated image (the model's default size). */
  imageSize: number;
  /** Prompts the model's tokenizer knows. */
  prompts: string[];
  description: string;
}

const DESCRIPTIONS: Record<PerfModelKind, string> = {
  tiny: 'tiny random pipeline (libs/rpc writeTinyPipelineFolder: 1-layer CLIP, 2-level UNet of 8/16 channels, 16x16 images): measures the serving machinery, not model compute',
  'atelier-random': 'Atelier-sized pipeline with seeded random weights (libs/atelier buildAtelierModels: 3-layer CLIP 128, UNet 64/128/128, VAE 32/64/64, 64x64 images from 16x16x4 latents): the real model compute, not its pictures',
};

/** Write a model folder of this kind into `dir` (kept if it already holds one). */
export function writePerfModelFolder(kind: PerfModelKind, dir: string, seed = 7): PerfModel {
  if (!fs.existsSync(path.join(dir, 'model_index.json'))) {
    if (kind === 'tiny') writeTinyPipelineFolder(dir, { seed });
    else {
      const m = buildAtelierModels(seed);
      try {
        savePipelineFolder(dir, { tokenizer: m.tokenizer, textEncoder: m.textEncoder, unet: m.unet, vae: m.vae, schedulerConfig: { _class_name: 'DDIMScheduler', ...ATELIER_SCHEDULER_CONFIG } });
      } finally {
        m.unet.dispose();
        m.vae.dispose();
        m.textEncoder.dispose();
      }
    }
  }
  return describeModelFolder(dir, kind);
}

/** What the benchmark needs to know of a pipeline folder. */
export function describeModelFolder(dir: string, kind: PerfModelKind | 'folder' = 'folder'): PerfModel {
  const read = (p: string) => JSON.parse(fs.readFileSync(path.join(dir, p), 'utf8')) as Record<string, unknown>;
  const unet = read('unet/config.json');
  const vae = read('vae/config.json');
  const factor = 2 ** (((vae.block_out_channels as number[] | undefined)?.length ?? 4) - 1);
  const imageSize = ((unet.sample_size as number | undefined) ?? 64) * factor;
  const prompts = kind === 'tiny' ? ['a red star', 'a blue circle on the grass', 'a green square'] : ['a red star', 'a blue circle', 'a green square', 'a yellow heart'];
  return { kind, dir, imageSize, prompts, description: kind === 'folder' ? `pipeline folder ${dir}` : DESCRIPTIONS[kind] };
}

/** `n` small training PNGs of `size`² pixels: diagonal stripes of two colours (a "style"). */
export async function stylePngs(n: number, size: number): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for (let k = 0; k < n; k++) {
    const a = [200, 40 + ((k * 37) % 180), 60];
    const b = [30, 30, 120 + ((k * 53) % 120)];
    const period = 2 + (k % 4);
    const rgb = new Uint8Array(size * size * 3);
    for (let y = 0; y < size; y++) for (let x = 0; x < size; x++) rgb.set(Math.floor((x + y) / period) % 2 ? a : b, (y * size + x) * 3);
    out.push(await pngFromRgbBytes(rgb, size, size));
  }
  return out;
}
