/** @museum/atelier: the project's own small text-to-image base model, its data and its pre-training. */
export * from './configs';
export * from './data';
export * from './pretrain/stages';
export * from './pretrain/checkpoint';
export * from './pretrain/run';
export type { WorkerConfig, WorkerMessage } from './pretrain/worker';
export * from './export';
