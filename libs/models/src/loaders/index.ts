import './builtin';

export * from './state_dict';
export * from './registry';
export * from './model_folder';
export * from './pipeline_folder';
export * from './sampling_config';
