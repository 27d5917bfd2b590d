export * from './methods';
export * from './options';
export * from './method_settings';
export * from './images';
export * from './losses';
export * from './lora_math';
export * from './style_features';
export * from './learn_style';
