import { tf } from '@museum/tensor';

const LEGACY_TO_NEW: Record<string, string> = { query: 'to_q', key: 'to_k', value: 'to_v', proj_attn: 'to_out.0' };
const LEGACY_KEY = /^(.*\bmid_block\.attentions\.\d+)\.(query|key|value|proj_attn)\.(weight|bias)$/;

/**
 * Rename the VAE mid-block attention weights of older diffusers checkpoints (query/key/value/proj_attn) to the
 * current names (to_q/to_k/to_v/to_out.0), as diffusers' `_convert_deprecated_attention_blocks` does;
 * `group_norm` keeps its name. Weights stored conv-shaped [C, C, 1, 1] are squeezed to Linear's [C, C].
 * Works with or without a prefix such as `vae.` / `first_stage_model.`. Returns a new map holding the same
 * tensors (squeezed ones are replaced by reshaped tensors and the originals disposed); keys already in the
 * new form pass through, so converting twice is harmless.
 */
export function convertLegacyVaeAttentionKeys(tensors: Map<string, tf.Tensor>): Map<string, tf.Tensor> {
  const out = new Map<string, tf.Tensor>();
  for (const [name, t] of tensors) {
    const m = LEGACY_KEY.exec(name);
    let key = name;
    if (m) key = `${m[1]}.${LEGACY_TO_NEW[m[2]]}.${m[3]}`;
    const isAttnWeight = /\bmid_block\.attentions\.\d+\.(to_q|to_k|to_v|to_out\.0)\.weight$/.test(key);
    if (isAttnWeight && t.rank === 4 && t.shape[2] === 1 && t.shape[3] === 1) {
      const squeezed = tf.reshape(t, t.shape.slice(0, 2));
      t.dispose();
      out.set(key, squeezed);
    } else {
      out.set(key, t);
    }
  }
  return out;
}
