/** @museum/vae-decoder: the museum.v1.VaeDecoderService server. */
export * from './service';
export { decode } from './decode';
