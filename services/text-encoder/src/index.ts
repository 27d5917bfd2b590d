/** @museum/text-encoder: the museum.v1.TextEncoderService server. */
export * from './service';
export * from './model';
export * from './versions';
export { encode } from './encode';
export * from './museum_source';
