/** @museum/bench: the project's benchmarks (base model quality; continual learning and performance come next). */
export * from './base';
