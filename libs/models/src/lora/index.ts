export * from './lora';
export * from './lora_io';
