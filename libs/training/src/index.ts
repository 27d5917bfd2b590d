/** @museum/training: optimizers, schedules, EMA and multi-core data parallelism for TF.js training. */
export * from './adamw';
export * from './ema';
export * from './schedule';
export * from './all-reduce';
export * from './flat';
export * from './flat_optim';
export * from './worker_script';
