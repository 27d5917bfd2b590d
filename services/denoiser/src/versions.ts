/**
 * The shared LoRA of museum versions, as the denoiser needs it. A museum (libs/museum) provides
 * them; without one, only version 0 (the base UNet, no adapters) exists.
 */
import type { LoraAdapterSet, Module } from '@museum/models';
import { notFound } from '@museum/rpc';

export interface LoraVersionSource {
  /** The newest committed version. */
  latest(): Promise<number>;
  /** The shared LoRA of `version` for this UNet (null: the base UNet); the denoiser disposes it when evicted. */
  lora(version: number, unet: Module): Promise<LoraAdapterSet | null>;
}

export const BASE_ONLY_LORA: LoraVersionSource = {
  latest: async () => 0,
  lora: async (v) => {
    if (v !== 0) throw notFound(`museum_version ${v} does not exist (no museum is configured: only version 0, the base model)`);
    return null;
  },
};
