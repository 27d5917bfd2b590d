/**
 * A tiny random Stable-Diffusion-shaped pipeline folder (word tokenizer, 1-layer CLIP, 2-level UNet,
 * 2-level VAE: 16x16 images from 8x8x4 latents), for tests and smoke runs of the services without
 * the real model. Written with the real model classes and savePipelineFolder, so the services load
 * it exactly as they load models/atelier.
 */
import { AutoencoderKL, CLIPTextModel, SD_SCHEDULER_CONFIG, UNet2DConditionModel, WordTokenizer, clipTextConfigFromJson, savePipelineFolder, seedInit } from '@museum/models';

export interface TinyPipelineOptions {
  /** Initialiser seed (default 7). */
  seed?: number;
  /** Tokenizer max length (default 16). */
  maxLength?: number;
}

export const TINY_WORDS = ['a red star', 'a blue circle on the grass', 'a green square', 'sketch watercolor pixel', 'ugly blurry', 'in the style of'];

/** Write the tiny pipeline folder into `dir` (created if needed). */
export function writeTinyPipelineFolder(dir: string, o: TinyPipelineOptions = {}): void {
  seedInit(o.seed ?? 7);
  const tokenizer = WordTokenizer.fromCorpus(TINY_WORDS, { modelMaxLength: o.maxLength ?? 16 });
  const textEncoder = new CLIPTextModel(
    clipTextConfigFromJson({
      vocab_size: tokenizer.vocabSize,
      hidden_size: 16,
      intermediate_size: 32,
      num_hidden_layers: 1,
      num_attention_heads: 2,
      max_position_embeddings: o.maxLength ?? 16,
      eos_token_id: tokenizer.eosId,
      bos_token_id: tokenizer.bosId,
      pad_token_id: tokenizer.padId,
    }),
  );
  const unet = new UNet2DConditionModel({
    block_out_channels: [8, 16],
    down_block_types: ['CrossAttnDownBlock2D', 'DownBlock2D'],
    up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D'],
    norm_num_groups: 4,
    cross_attention_dim: 16,
    attention_head_dim: 2,
    layers_per_block: 1,
    sample_size: 8,
  });
  const vae = new AutoencoderKL({
    block_out_channels: [8, 8],
    down_block_types: ['DownEncoderBlock2D', 'DownEncoderBlock2D'],
    up_block_types: ['UpDecoderBlock2D', 'UpDecoderBlock2D'],
    norm_num_groups: 4,
    layers_per_block: 1,
    latent_channels: 4,
  });
  try {
    savePipelineFolder(dir, { tokenizer, textEncoder, unet, vae, schedulerConfig: SD_SCHEDULER_CONFIG });
  } finally {
    textEncoder.dispose();
    unet.dispose();
    vae.dispose();
  }
}
