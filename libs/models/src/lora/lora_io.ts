import { tf, loadSafetensors, saveSafetensors } from '@museum/tensor';
import { LoraWeights } from '../nn/layers';
import { LoraAdapterSet } from './lora';

/** One adapter set and the key prefix it is stored under (`unet`, `text_encoder`, or '' for none). */
export interface LoraFilePart {
  prefix: string;
  set: LoraAdapterSet;
}

function withPrefix(prefix: string, key: string): string {
  return prefix ? `${prefix}.${key}` : key;
}

/**
 * The adapter set as a peft/diffusers state dict: `{prefix}.{path}.lora_A.weight` [r, in] (= downᵀ) and
 * `{prefix}.{path}.lora_B.weight` [out, r] (= upᵀ). The caller owns (and disposes) the returned tensors.
 */
export function loraStateDict(set: LoraAdapterSet, prefix = 'unet'): Map<string, tf.Tensor> {
  const out = new Map<string, tf.Tensor>();
  for (const [path, w] of set.adapters) {
    out.set(withPrefix(prefix, `${path}.lora_A.weight`), tf.transpose(w.down));
    out.set(withPrefix(prefix, `${path}.lora_B.weight`), tf.transpose(w.up));
  }
  return out;
}

/**
 * Save adapter sets as one safetensors file in diffusers' `pytorch_lora_weights.safetensors` layout (peft names,
 * `unet.` / `text_encoder.` prefixes), with rank, alpha and name in the metadata (`lora_rank`, `lora_alpha`,
 * `lora_name` for the first part, and `{prefix}:lora_rank` etc. for every part).
 */
export function saveLora(file: string, parts: LoraAdapterSet | LoraFilePart[], extraMetadata: Record<string, string> = {}): void {
  const list: LoraFilePart[] = parts instanceof LoraAdapterSet ? [{ prefix: 'unet', set: parts }] : parts;
  if (list.length === 0) throw new Error('saveLora: nothing to save');
  const tensors = new Map<string, tf.Tensor>();
  const metadata: Record<string, string> = { format: 'pt', ...extraMetadata };
  try {
    list.forEach(({ prefix, set }, i) => {
      for (const [k, t] of loraStateDict(set, prefix)) {
        if (tensors.has(k)) throw new Error(`saveLora: duplicate key ${k}`);
        tensors.set(k, t);
      }
      const fields = { lora_rank: String(set.rank), lora_alpha: String(set.alpha), lora_name: set.name };
      for (const [k, v] of Object.entries(fields)) {
        metadata[`${prefix}:${k}`] = v;
        if (i === 0) metadata[k] = v;
      }
    });
    saveSafetensors(file, tensors, { metadata });
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
}

// peft/diffusers ≥ 0.21 names, then the older diffusers attention-processor and text-encoder names.
const PEFT_KEY = /^(.+)\.lora_([AB])\.weight$/;
const OLD_PROCESSOR_KEY = /^(.+)\.processor\.(to_q|to_k|to_v|to_out)_lora\.(down|up)\.weight$/;
const OLD_TEXT_KEY = /^(.+)\.(q_proj|k_proj|v_proj|out_proj)\.lora_linear_layer\.(down|up)\.weight$/;

/** [path, 'down' | 'up'] for a LoRA weight key (prefix removed), or null for anything else. */
function parseLoraKey(key: string): [string, 'down' | 'up'] | null {
  let m = PEFT_KEY.exec(key);
  if (m) return [m[1], m[2] === 'A' ? 'down' : 'up'];
  m = OLD_PROCESSOR_KEY.exec(key);
  if (m) return [`${m[1]}.${m[2] === 'to_out' ? 'to_out.0' : m[2]}`, m[3] as 'down' | 'up'];
  m = OLD_TEXT_KEY.exec(key);
  if (m) return [`${m[1]}.${m[2]}`, m[3] as 'down' | 'up'];
  return null;
}

export interface LoraFromStateDictOptions {
  /** Key prefix to select and strip (default 'unet'; '' keeps every key as is). */
  prefix?: string;
  /** Scale numerator; default: metadata, else rank (scale 1, diffusers' behaviour without alpha). */
  alpha?: number;
  name?: string;
  metadata?: Record<string, string>;
}

/**
 * Build an adapter set from a LoRA state dict in torch layout (lora_A [r, in], lora_B [out, r], or the older
 * diffusers `…processor.to_q_lora.down/up` names). Tensors are copied: the caller keeps ownership of `tensors`.
 */
export function loraFromStateDict(tensors: Map<string, tf.Tensor>, o: LoraFromStateDictOptions = {}): LoraAdapterSet {
  const prefix = o.prefix ?? 'unet';
  const meta = o.metadata ?? {};
  const pairs = new Map<string, { down?: tf.Tensor; up?: tf.Tensor }>();
  for (const [key, t] of tensors) {
    if (prefix && !key.startsWith(`${prefix}.`)) continue;
    const parsed = parseLoraKey(prefix ? key.slice(prefix.length + 1) : key);
    if (!parsed) continue;
    const entry = pairs.get(parsed[0]) ?? {};
    entry[parsed[1]] = t;
    pairs.set(parsed[0], entry);
  }
  if (pairs.size === 0) throw new Error(`no LoRA weights under prefix '${prefix}'`);
  let rank = -1;
  for (const [path, p] of pairs) {
    if (!p.down || !p.up) throw new Error(`LoRA '${path}': ${p.down ? 'up' : 'down'} weight missing`);
    if (p.down.rank !== 2 || p.up.rank !== 2 || p.down.shape[0] !== p.up.shape[1]) {
      throw new Error(`LoRA '${path}': lora_A [${p.down.shape}] and lora_B [${p.up.shape}] do not pair`);
    }
    if (rank === -1) rank = p.down.shape[0];
    else if (rank !== p.down.shape[0]) throw new Error(`LoRA '${path}': rank ${p.down.shape[0]} differs from ${rank} (mixed ranks are not supported)`);
  }
  const metaAlpha = meta[`${prefix}:lora_alpha`] ?? meta.lora_alpha;
  const alpha = o.alpha ?? (metaAlpha !== undefined ? Number(metaAlpha) : rank);
  if (!Number.isFinite(alpha)) throw new Error(`LoRA alpha '${metaAlpha}' is not a number`);
  const set = new LoraAdapterSet(o.name ?? meta[`${prefix}:lora_name`] ?? meta.lora_name ?? 'lora', rank, alpha);
  for (const [path, p] of pairs) {
    const w: LoraWeights = {
      down: tf.tidy(() => tf.variable(tf.transpose(tf.cast(p.down!, 'float32')), true)),
      up: tf.tidy(() => tf.variable(tf.transpose(tf.cast(p.up!, 'float32')), true)),
      scale: set.scale,
    };
    set.adapters.set(path, w);
  }
  return set;
}

/** Load one adapter set (selected by key prefix, default 'unet') from a LoRA safetensors file. */
export function loadLora(file: string, o: Omit<LoraFromStateDictOptions, 'metadata'> = {}): LoraAdapterSet {
  const { tensors, metadata } = loadSafetensors(file);
  try {
    return loraFromStateDict(tensors, { ...o, metadata });
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
}
