/** AutoencoderKL configuration with diffusers' field names; unknown fields are ignored. */
export interface AutoencoderKLConfig {
  in_channels?: number;
  out_channels?: number;
  down_block_types?: string[];
  up_block_types?: string[];
  block_out_channels?: number[];
  layers_per_block?: number;
  act_fn?: string;
  latent_channels?: number;
  norm_num_groups?: number;
  sample_size?: number | number[];
  /** Latents are multiplied by this after encoding and divided before decoding (by the helpers, not the model). */
  scaling_factor?: number;
  force_upcast?: boolean;
  [extra: string]: unknown;
}

export type ResolvedVaeConfig = {
  in_channels: number;
  out_channels: number;
  down_block_types: string[];
  up_block_types: string[];
  block_out_channels: number[];
  layers_per_block: number;
  act_fn: string;
  latent_channels: number;
  norm_num_groups: number;
  sample_size: number | number[];
  scaling_factor: number;
};

/** diffusers 0.21.4 defaults, with a clear error for block types other than the encoder/decoder blocks. */
export function resolveVaeConfig(c: AutoencoderKLConfig): ResolvedVaeConfig {
  const strip = (t: string) => (t.startsWith('UNetRes') ? t.slice(7) : t);
  const down = (c.down_block_types ?? ['DownEncoderBlock2D']).map(strip);
  const up = (c.up_block_types ?? ['UpDecoderBlock2D']).map(strip);
  const boc = c.block_out_channels ?? [64];
  for (const t of down) if (t !== 'DownEncoderBlock2D') throw new Error(`VAE config: down block type '${t}' is not supported (only DownEncoderBlock2D)`);
  for (const t of up) if (t !== 'UpDecoderBlock2D') throw new Error(`VAE config: up block type '${t}' is not supported (only UpDecoderBlock2D)`);
  if (down.length !== boc.length || up.length !== boc.length) {
    throw new Error(`VAE config: ${boc.length} block_out_channels but ${down.length} down and ${up.length} up block types`);
  }
  return {
    in_channels: c.in_channels ?? 3,
    out_channels: c.out_channels ?? 3,
    down_block_types: down,
    up_block_types: up,
    block_out_channels: [...boc],
    layers_per_block: c.layers_per_block ?? 1,
    act_fn: c.act_fn ?? 'silu',
    latent_channels: c.latent_channels ?? 4,
    norm_num_groups: c.norm_num_groups ?? 32,
    sample_size: c.sample_size ?? 32,
    scaling_factor: c.scaling_factor ?? 0.18215,
  };
}

/** runwayml/stable-diffusion-v1-5 `vae/config.json` (83.7M parameters). */
export const SD15_VAE_CONFIG: Readonly<AutoencoderKLConfig> = Object.freeze({
  act_fn: 'silu',
  block_out_channels: [128, 256, 512, 512],
  down_block_types: ['DownEncoderBlock2D', 'DownEncoderBlock2D', 'DownEncoderBlock2D', 'DownEncoderBlock2D'],
  in_channels: 3,
  latent_channels: 4,
  layers_per_block: 2,
  norm_num_groups: 32,
  out_channels: 3,
  sample_size: 512,
  scaling_factor: 0.18215,
  up_block_types: ['UpDecoderBlock2D', 'UpDecoderBlock2D', 'UpDecoderBlock2D', 'UpDecoderBlock2D'],
});
