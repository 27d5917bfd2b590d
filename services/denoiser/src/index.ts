/** @museum/denoiser: the museum.v1.DenoiserService server and its step-level dynamic batcher. */
export * from './service';
export * from './batcher';
export * from './versions';
export { denoise, type DenoiseModelInfo } from './denoise';
export * from './museum_source';
