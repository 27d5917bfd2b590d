export * from './stable_diffusion';
