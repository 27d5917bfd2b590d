/** @museum/models: Stable-Diffusion-compatible models, tokenizers, schedulers and loaders in TF.js. */
export * from './nn/module';
export * from './nn/layers';
export * from './nn/attention';
