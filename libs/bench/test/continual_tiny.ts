/** A tiny random pipeline folder and tiny random instruments for the continual benchmark's tests (seconds). */
import * as path from 'path';
import { AutoencoderKL, CLIPTextModel, SD_SCHEDULER_CONFIG, UNet2DConditionModel, WordTokenizer, savePipelineFolder, seedInit } from '@museum/models';
import { COLOURS, SHAPES } from '@museum/world';
import { INSTRUMENT_KINDS, WorldClassifier, defaultClassifierConfig, saveInstrument } from '@museum/instruments';

/** Tokenizer + text encoder + UNet + VAE of a few thousand parameters: 8×8 images, 4×4×4 latents. */
export function writeTinyPipeline(dir: string, seed = 5): void {
  const corpus = ['a picture in style', 'a picture'];
  for (const c of COLOURS) for (const s of SHAPES) corpus.push(`a ${c} ${s} in style`);
  const tokenizer = WordTokenizer.fromCorpus(corpus, { modelMaxLength: 12 });
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
  const unet = new UNet2DConditionModel({
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
  } as never);
  const vae = new AutoencoderKL({
    block_out_channels: [8, 8],
    down_block_types: ['DownEncoderBlock2D', 'DownEncoderBlock2D'],
    up_block_types: ['UpDecoderBlock2D', 'UpDecoderBlock2D'],
    layers_per_block: 1,
    norm_num_groups: 4,
    latent_channels: 4,
    sample_size: 8,
    scaling_factor: 0.5,
  } as never);
  try {
    savePipelineFolder(dir, { tokenizer, textEncoder, unet, vae, schedulerConfig: { ...SD_SCHEDULER_CONFIG, _class_name: 'DDIMScheduler' } });
  } finally {
    textEncoder.dispose();
    unet.dispose();
    vae.dispose();
  }
}

/** Untrained style/shape/colour instruments on 16×16 inputs (their answers are arbitrary but deterministic). */
export function writeTinyInstruments(dir: string): string {
  for (const kind of INSTRUMENT_KINDS) {
    const clf = new WorldClassifier(defaultClassifierConfig(kind, { sample_size: 16, block_out_channels: [4, 8], strides: [2, 2], norm_num_groups: 4, init_seed: 3 }));
    saveInstrument(dir, clf);
    clf.dispose();
  }
  return path.resolve(dir);
}
