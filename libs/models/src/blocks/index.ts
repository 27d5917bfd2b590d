export * from './activations';
export * from './common';
export * from './embeddings';
export * from './resnet';
export * from './attention';
export * from './transformer_2d';
export * from './unet_2d_blocks';
