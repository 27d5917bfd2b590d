/** @museum/rpc: what every Museum gRPC service shares (lifecycle, health, reflection, errors, deadlines, events, limits). */
export * from './errors';
export * from './health';
export * from './reflection';
export * from './call';
export * from './client';
export * from './host';
export * from './service';
export * from './events';
export * from './museum-events';
export * from './validate';
export * from './versions';
export * from './handlers';
export * from './model-folder';
export * from './testing';
export * from './tracing';
