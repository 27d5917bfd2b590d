/** @museum/museum: MuseumMaker continual style learning, the versioned museum store and its runtime. */
export * from './errors';
export * from './models';
export * from './store';
export * from './learn';
export * from './runtime';
