/** @museum/models: Stable-Diffusion-compatible models, tokenizers, schedulers and loaders in TF.js. */
export * from './nn/module';
export * from './nn/layers';
export * from './nn/attention';
export * from './tokenizers/tokenizer';
export * from './tokenizers/clip_bpe';
export * from './tokenizers/word';
export * from './tokenizers/load';
export * from './schedulers';
export * from './clip/config';
export * from './clip/modeling_clip';
export * from './clip/textual_inversion';
export * from './loaders';
export * from './blocks';
export * from './unet';
export * from './vae';
export * from './lora';
export * from './pipelines';
