/** @museum/bench: the project's benchmarks (base model quality; continual learning and performance come next). */
export * from './base';
export * from './perf_models';
export * from './perf_spawn';
export * from './continual_metrics';
export * from './continual';
export * from './gallery';
export * from './perf';
export * from './codec';
