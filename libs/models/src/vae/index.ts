export * from './config';
export * from './vae';
export * from './autoencoder_kl';
export * from './legacy_keys';
