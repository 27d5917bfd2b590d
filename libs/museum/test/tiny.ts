/** Tiny random models (seconds to build and train) and small helpers shared by the museum tests. */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { tf } from '@museum/tensor';
import { AutoencoderKL, CLIPTextModel, UNet2DConditionModel, WordTokenizer, seedInit } from '@museum/models';
import { COLOURS, SHAPES } from '@museum/world';
import type { StyleModels } from '../src';

export const TINY_UNET = {
  sample_size: 4,
  in_channels: 4,
  out_channels: 4,
  block_out_channels: [8, 16],
  down_block_types: ['CrossAttnDownBlock2D', 'DownBlock2D'],
  up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D'],
  layers_per_block: 1,
  norm_num_groups: 4,
  cross_attention_dim: 16,
  attention_head_dim: 2,
};

export const TINY_VAE = {
  block_out_channels: [8, 8],
  down_block_types: ['DownEncoderBlock2D', 'DownEncoderBlock2D'],
  up_block_types: ['UpDecoderBlock2D', 'UpDecoderBlock2D'],
  layers_per_block: 1,
  norm_num_groups: 4,
  latent_channels: 4,
  sample_size: 8,
  scaling_factor: 0.5,
};

export function tinyTokenizer(): WordTokenizer {
  const corpus = ['a picture in style', 'a picture'];
  for (const c of COLOURS) for (const s of SHAPES) corpus.push(`a ${c} ${s} in style`);
  return WordTokenizer.fromCorpus(corpus, { modelMaxLength: 12 });
}

/** Tokenizer + text encoder + UNet + VAE, all tiny and seeded (8×8 images, 4×4×4 latents). */
export function tinyModels(seed = 7): StyleModels {
  const tokenizer = tinyTokenizer();
  seedInit(seed);
  const textEncoder = new CLIPTextModel({
    vocab_size: tokenizer.vocabSize,
    hidden_size: 16,
    intermediate_size: 32,
    num_hidden_layers: 1,
    num_attention_heads: 2,
    max_position_embeddings: 12,
    hidden_act: 'quick_gelu',
    layer_norm_eps: 1e-5,
    bos_token_id: tokenizer.bosId,
    eos_token_id: tokenizer.eosId,
    pad_token_id: tokenizer.padId,
  });
  const unet = new UNet2DConditionModel(TINY_UNET as never);
  const vae = new AutoencoderKL(TINY_VAE as never);
  return { tokenizer, textEncoder, unet, vae, schedulerConfig: { num_train_timesteps: 1000, beta_start: 0.00085, beta_end: 0.012, beta_schedule: 'scaled_linear', prediction_type: 'epsilon' } };
}

/** n random 8×8 RGB images in [0, 1], different per seed. */
export function randomImages(n: number, seed: number, size = 8): tf.Tensor3D[] {
  return Array.from({ length: n }, (_, i) => tf.randomUniform([size, size, 3], 0, 1, 'float32', seed * 100 + i) as tf.Tensor3D);
}

export function tmpDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** Small learnStyle settings that exercise every code path in well under a second per style. */
export const QUICK = { steps: 3, batchSize: 2, featRegBatch: 1, rank: 2, alpha: 2, ewcFisherSamples: 2, warmup: 1 } as const;
