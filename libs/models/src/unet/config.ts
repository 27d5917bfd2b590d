/**
 * UNet2DConditionModel configuration with diffusers' field names (a `config.json` parses straight into it).
 * Fields not listed are ignored; values this implementation cannot honour are rejected by `resolveUNetConfig`.
 */
export interface UNet2DConditionConfig {
  sample_size?: number | null;
  in_channels?: number;
  out_channels?: number;
  center_input_sample?: boolean;
  flip_sin_to_cos?: boolean;
  freq_shift?: number;
  down_block_types?: string[];
  mid_block_type?: string | null;
  up_block_types?: string[];
  only_cross_attention?: boolean | boolean[];
  block_out_channels?: number[];
  layers_per_block?: number | number[];
  downsample_padding?: number;
  mid_block_scale_factor?: number;
  dropout?: number;
  act_fn?: string;
  norm_num_groups?: number | null;
  norm_eps?: number;
  cross_attention_dim?: number | number[];
  transformer_layers_per_block?: number | number[];
  /** In diffusers ≤ 0.21 this is the number of heads per block (see `num_attention_heads`). */
  attention_head_dim?: number | number[];
  /** Must be null: diffusers 0.21 refuses it and takes the head count from `attention_head_dim`. */
  num_attention_heads?: number | number[] | null;
  dual_cross_attention?: boolean;
  use_linear_projection?: boolean;
  upcast_attention?: boolean;
  resnet_time_scale_shift?: string;
  resnet_skip_time_act?: boolean;
  resnet_out_scale_factor?: number;
  time_embedding_type?: string;
  time_embedding_dim?: number | null;
  time_embedding_act_fn?: string | null;
  timestep_post_act?: string | null;
  time_cond_proj_dim?: number | null;
  conv_in_kernel?: number;
  conv_out_kernel?: number;
  class_embed_type?: string | null;
  num_class_embeds?: number | null;
  addition_embed_type?: string | null;
  encoder_hid_dim?: number | null;
  encoder_hid_dim_type?: string | null;
  attention_type?: string;
  cross_attention_norm?: string | null;
  [extra: string]: unknown;
}

/** The configuration after defaults, with per-block lists expanded; what the model is built from. */
export type ResolvedUNetConfig = {
  sample_size: number | null;
  in_channels: number;
  out_channels: number;
  center_input_sample: boolean;
  flip_sin_to_cos: boolean;
  freq_shift: number;
  down_block_types: string[];
  mid_block_type: string | null;
  up_block_types: string[];
  block_out_channels: number[];
  layers_per_block: number[];
  downsample_padding: number;
  mid_block_scale_factor: number;
  act_fn: string;
  norm_num_groups: number;
  norm_eps: number;
  cross_attention_dim: number[];
  transformer_layers_per_block: number[];
  /** Heads per block (upstream: `num_attention_heads or attention_head_dim`). */
  num_attention_heads: number[];
  /** The same per-block head counts under the field name diffusers 0.21 reads them from. */
  attention_head_dim: number[];
  use_linear_projection: boolean;
  upcast_attention: boolean;
  time_embedding_dim: number | null;
  timestep_post_act: string | null;
  time_embedding_act_fn: string | null;
  conv_in_kernel: number;
  conv_out_kernel: number;
};

const DOWN_TYPES = ['CrossAttnDownBlock2D', 'DownBlock2D'];
const UP_TYPES = ['CrossAttnUpBlock2D', 'UpBlock2D'];

function perBlock<T>(name: string, v: T | T[], n: number): T[] {
  if (Array.isArray(v)) {
    if (v.length !== n) throw new Error(`UNet config: ${name} has ${v.length} entries but there are ${n} down blocks`);
    return [...v];
  }
  return new Array<T>(n).fill(v);
}

function unsupported(field: string, value: unknown, why = ''): never {
  throw new Error(`UNet config: ${field}=${JSON.stringify(value)} is not supported${why ? ` (${why})` : ''}`);
}

/** Apply diffusers 0.21.4's defaults and checks; throws a clear error for anything not implemented here. */
export function resolveUNetConfig(c: UNet2DConditionConfig): ResolvedUNetConfig {
  const down = (c.down_block_types ?? ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D']).map(String);
  const up = (c.up_block_types ?? ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D']).map(String);
  const boc = c.block_out_channels ?? [320, 640, 1280, 1280];
  const n = down.length;
  const strip = (t: string) => (t.startsWith('UNetRes') ? t.slice(7) : t);
  for (const t of down) if (!DOWN_TYPES.includes(strip(t))) unsupported('down_block_types', t, `supported: ${DOWN_TYPES.join(', ')}`);
  for (const t of up) if (!UP_TYPES.includes(strip(t))) unsupported('up_block_types', t, `supported: ${UP_TYPES.join(', ')}`);
  if (up.length !== n) throw new Error(`UNet config: ${n} down_block_types but ${up.length} up_block_types`);
  if (boc.length !== n) throw new Error(`UNet config: ${boc.length} block_out_channels but ${n} down_block_types`);

  // diffusers 0.21 refuses num_attention_heads (a naming issue) and reads the head count from attention_head_dim.
  // A value that merely repeats attention_head_dim (as resolved configs carry it) is unambiguous and accepted.
  const heads = perBlock('attention_head_dim', c.attention_head_dim ?? 8, n);
  if (c.num_attention_heads !== undefined && c.num_attention_heads !== null) {
    const given = perBlock('num_attention_heads', c.num_attention_heads, n);
    if (c.attention_head_dim === undefined || given.some((h, i) => h !== heads[i])) {
      unsupported('num_attention_heads', c.num_attention_heads, 'diffusers 0.21 takes the number of heads from attention_head_dim');
    }
  }

  const midType = c.mid_block_type === undefined ? 'UNetMidBlock2DCrossAttn' : c.mid_block_type;
  if (midType !== null && midType !== 'UNetMidBlock2DCrossAttn') unsupported('mid_block_type', midType, 'supported: UNetMidBlock2DCrossAttn or null');

  const only = c.only_cross_attention ?? false;
  if (Array.isArray(only) ? only.some(Boolean) : only) unsupported('only_cross_attention', only);
  if (c.dual_cross_attention) unsupported('dual_cross_attention', true);
  if ((c.resnet_time_scale_shift ?? 'default') !== 'default') unsupported('resnet_time_scale_shift', c.resnet_time_scale_shift, "only 'default'");
  if ((c.time_embedding_type ?? 'positional') !== 'positional') unsupported('time_embedding_type', c.time_embedding_type, "only 'positional'");
  if ((c.attention_type ?? 'default') !== 'default') unsupported('attention_type', c.attention_type);
  for (const f of ['class_embed_type', 'num_class_embeds', 'addition_embed_type', 'encoder_hid_dim', 'encoder_hid_dim_type', 'time_cond_proj_dim', 'cross_attention_norm'] as const) {
    if (c[f] !== undefined && c[f] !== null) unsupported(f, c[f]);
  }
  if ((c.dropout ?? 0) !== 0) unsupported('dropout', c.dropout, 'dropout is not implemented');
  if (c.norm_num_groups === null) unsupported('norm_num_groups', null);
  const convIn = c.conv_in_kernel ?? 3;
  const convOut = c.conv_out_kernel ?? 3;
  if (convIn % 2 !== 1) unsupported('conv_in_kernel', convIn, 'odd sizes only');
  if (convOut % 2 !== 1) unsupported('conv_out_kernel', convOut, 'odd sizes only');

  return {
    sample_size: c.sample_size ?? null,
    in_channels: c.in_channels ?? 4,
    out_channels: c.out_channels ?? 4,
    center_input_sample: c.center_input_sample ?? false,
    flip_sin_to_cos: c.flip_sin_to_cos ?? true,
    freq_shift: c.freq_shift ?? 0,
    down_block_types: down.map(strip),
    mid_block_type: midType,
    up_block_types: up.map(strip),
    block_out_channels: [...boc],
    layers_per_block: perBlock('layers_per_block', c.layers_per_block ?? 2, n),
    downsample_padding: c.downsample_padding ?? 1,
    mid_block_scale_factor: c.mid_block_scale_factor ?? 1,
    act_fn: c.act_fn ?? 'silu',
    norm_num_groups: c.norm_num_groups ?? 32,
    norm_eps: c.norm_eps ?? 1e-5,
    cross_attention_dim: perBlock('cross_attention_dim', c.cross_attention_dim ?? 1280, n),
    transformer_layers_per_block: perBlock('transformer_layers_per_block', c.transformer_layers_per_block ?? 1, n),
    num_attention_heads: heads,
    attention_head_dim: [...heads],
    use_linear_projection: c.use_linear_projection ?? false,
    upcast_attention: c.upcast_attention ?? false,
    time_embedding_dim: c.time_embedding_dim ?? null,
    timestep_post_act: c.timestep_post_act ?? null,
    time_embedding_act_fn: c.time_embedding_act_fn ?? null,
    conv_in_kernel: convIn,
    conv_out_kernel: convOut,
  };
}

/** runwayml/stable-diffusion-v1-5 `unet/config.json` (860M parameters). */
export const SD15_UNET_CONFIG: Readonly<UNet2DConditionConfig> = Object.freeze({
  act_fn: 'silu',
  attention_head_dim: 8,
  block_out_channels: [320, 640, 1280, 1280],
  center_input_sample: false,
  cross_attention_dim: 768,
  down_block_types: ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'],
  downsample_padding: 1,
  flip_sin_to_cos: true,
  freq_shift: 0,
  in_channels: 4,
  layers_per_block: 2,
  mid_block_scale_factor: 1,
  norm_eps: 1e-5,
  norm_num_groups: 32,
  out_channels: 4,
  sample_size: 64,
  up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'],
});
