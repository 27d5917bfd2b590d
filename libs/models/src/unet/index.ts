export * from './config';
export * from './unet_2d_condition';
