/** The text half of transformers' CLIPConfig, with its field names, as stored in `text_encoder/config.json`. */
export interface CLIPTextConfig {
  vocab_size: number;
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  max_position_embeddings: number;
  hidden_act: 'quick_gelu' | 'gelu';
  layer_norm_eps: number;
  bos_token_id: number;
  eos_token_id: number;
  pad_token_id: number;
  /** Only used by CLIPTextModelWithProjection; kept so configs round-trip. */
  projection_dim?: number;
}

/** transformers' CLIPTextConfig defaults. */
export const CLIP_TEXT_CONFIG_DEFAULTS: CLIPTextConfig = {
  vocab_size: 49408,
  hidden_size: 512,
  intermediate_size: 2048,
  num_hidden_layers: 12,
  num_attention_heads: 8,
  max_position_embeddings: 77,
  hidden_act: 'quick_gelu',
  layer_norm_eps: 1e-5,
  bos_token_id: 49406,
  eos_token_id: 49407,
  pad_token_id: 1,
  projection_dim: 512,
};

/** Stable Diffusion 1.x's text encoder (OpenAI CLIP ViT-L/14's text tower), as its published config. */
export const SD15_TEXT_ENCODER_CONFIG: Readonly<CLIPTextConfig> = Object.freeze({
  vocab_size: 49408,
  hidden_size: 768,
  intermediate_size: 3072,
  num_hidden_layers: 12,
  num_attention_heads: 12,
  max_position_embeddings: 77,
  hidden_act: 'quick_gelu',
  layer_norm_eps: 1e-5,
  // The legacy ids of the published config (the tokenizer's real ones are 49406/49407).
  bos_token_id: 0,
  eos_token_id: 2,
  pad_token_id: 1,
  projection_dim: 768,
});

/** A config from a parsed `config.json` (unknown keys ignored, missing ones upstream's defaults). */
export function clipTextConfigFromJson(json: Record<string, unknown>): CLIPTextConfig {
  const out: Record<string, unknown> = { ...CLIP_TEXT_CONFIG_DEFAULTS };
  for (const key of Object.keys(CLIP_TEXT_CONFIG_DEFAULTS)) if (json[key] !== undefined && json[key] !== null) out[key] = json[key];
  const cfg = out as unknown as CLIPTextConfig;
  validateClipTextConfig(cfg);
  return cfg;
}

export function validateClipTextConfig(cfg: CLIPTextConfig): void {
  if (cfg.hidden_act !== 'quick_gelu' && cfg.hidden_act !== 'gelu') throw new Error(`CLIP text config: unsupported hidden_act ${String(cfg.hidden_act)}`);
  if (cfg.hidden_size % cfg.num_attention_heads !== 0) {
    throw new Error(`CLIP text config: hidden_size ${cfg.hidden_size} is not divisible by ${cfg.num_attention_heads} heads`);
  }
  for (const k of ['vocab_size', 'hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'max_position_embeddings'] as const) {
    if (!Number.isInteger(cfg[k]) || cfg[k] <= 0) throw new Error(`CLIP text config: ${k} must be a positive integer, got ${cfg[k]}`);
  }
}
