export * from './paths';
export * from './program';
export * from './commands/doctor';
