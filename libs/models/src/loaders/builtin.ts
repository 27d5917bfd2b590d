import { CLIPTextModel } from '../clip/modeling_clip';
import { clipTextConfigFromJson } from '../clip/config';
import { UNet2DConditionModel } from '../unet/unet_2d_condition';
import { UNet2DConditionConfig } from '../unet/config';
import { AutoencoderKL } from '../vae/autoencoder_kl';
import { AutoencoderKLConfig } from '../vae/config';
import { registerLazily, registerModelClass } from './registry';

/**
 * The project's model classes under their upstream names, registered on first use of the registry.
 * The configs written back are upstream's (e.g. the UNet's per-block head counts go to
 * `attention_head_dim`, as diffusers 0.21 reads them).
 */
function registerBuiltins(): void {
  registerModelClass<UNet2DConditionModel>('UNet2DConditionModel', {
    library: 'diffusers',
    ctor: UNet2DConditionModel,
    create: (config) => new UNet2DConditionModel(config as UNet2DConditionConfig),
    configOf: (m) => {
      const { num_attention_heads, ...rest } = m.config;
      return { ...rest, attention_head_dim: num_attention_heads, num_attention_heads: null };
    },
  });

  registerModelClass<AutoencoderKL>('AutoencoderKL', {
    library: 'diffusers',
    ctor: AutoencoderKL,
    create: (config) => new AutoencoderKL(config as AutoencoderKLConfig),
  });

  registerModelClass<CLIPTextModel>('CLIPTextModel', {
    library: 'transformers',
    ctor: CLIPTextModel,
    create: (config) => new CLIPTextModel(clipTextConfigFromJson(config)),
    // Added placeholder tokens are saved as upstream does after `resize_token_embeddings`: one
    // bigger token table, and `vocab_size` counting the new rows.
    configOf: (m) => ({ model_type: 'clip_text_model', ...m.config, vocab_size: m.numTokens }),
    exportState: (m, sd) => {
      if (m.numTokens === m.config.vocab_size) return;
      const key = 'text_model.embeddings.token_embedding.weight';
      sd.get(key)?.dispose();
      sd.set(key, m.embeddings.mergedTokenTable());
    },
  });
}

registerLazily(registerBuiltins);
