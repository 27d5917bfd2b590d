/**
 * LoRA updates as matrices: the factors of ΔW = scale · down · up (our [in, out] layout) read from adapter
 * sets or stored peft state dicts, the low-rank form of the difference of two adapters, dense forms.
 */
import { tf } from '@museum/tensor';
import type { LoraAdapterSet } from '@museum/models';
import type { LowRank } from './losses';

/** One adapted layer's factors: ΔW = scale · down [in, r] · up [r, out]. */
export interface LoraFactors {
  down: tf.Tensor2D;
  up: tf.Tensor2D;
  scale: number;
}

const PEFT_KEY = /^unet\.(.+)\.lora_([AB])\.weight$/;

/** path → factors from a stored state dict (torch layout: lora_A [r, in], lora_B [out, r]); new tensors. */
export function factorsFromStateDict(tensors: Map<string, tf.Tensor>, scale: number): Map<string, LoraFactors> {
  const parts = new Map<string, { A?: tf.Tensor; B?: tf.Tensor }>();
  for (const [k, t] of tensors) {
    const m = PEFT_KEY.exec(k);
    if (!m) continue;
    const e = parts.get(m[1]) ?? {};
    e[m[2] as 'A' | 'B'] = t;
    parts.set(m[1], e);
  }
  const out = new Map<string, LoraFactors>();
  for (const [path, { A, B }] of parts) {
    if (!A || !B) throw new Error(`LoRA state dict: ${path} lacks lora_${A ? 'B' : 'A'}`);
    out.set(path, { down: tf.transpose(A) as tf.Tensor2D, up: tf.transpose(B) as tf.Tensor2D, scale });
  }
  return out;
}

/** path → factors of an adapter set (copies, so the set may change or go away). */
export function factorsFromSet(set: LoraAdapterSet): Map<string, LoraFactors> {
  const out = new Map<string, LoraFactors>();
  for (const [path, w] of set.adapters) out.set(path, { down: tf.clone(w.down) as tf.Tensor2D, up: tf.clone(w.up) as tf.Tensor2D, scale: w.scale });
  return out;
}

export function disposeFactors(f: Map<string, LoraFactors>): void {
  for (const x of f.values()) tf.dispose([x.down, x.up]);
}

/**
 * The update from adapter `before` to adapter `after` of one layer in low-rank form:
 * ΔW = s_a·A_a B_a − s_b·A_b B_b = [s_a A_a, −s_b A_b] · [B_a; B_b] (rank ≤ 2r, never formed densely).
 */
export function lowRankDifference(after: LoraFactors, before: LoraFactors | undefined): LowRank {
  return tf.tidy(() => {
    const pa = tf.mul(after.down, after.scale);
    if (!before) return { P: pa as tf.Tensor2D, Q: tf.clone(after.up) as tf.Tensor2D };
    return {
      P: tf.concat([pa, tf.mul(before.down, -before.scale)], 1) as tf.Tensor2D,
      Q: tf.concat([after.up, before.up], 0) as tf.Tensor2D,
    };
  });
}

/**
 * The update a style made in its own block of ranks [start, start + size) (loraStyleBlock): with every other rank
 * unchanged and the block a zero update before, ΔW is exactly s · down[:, block] · up[block, :] (rank `size`,
 * where `lowRankDifference` of the whole adapters has rank 2r).
 */
export function blockUpdate(f: LoraFactors, start: number, size: number): LowRank {
  return tf.tidy(() => ({
    P: tf.mul(tf.slice(f.down, [0, start], [f.down.shape[0], size]), f.scale) as tf.Tensor2D,
    Q: tf.slice(f.up, [start, 0], [size, f.up.shape[1]]) as tf.Tensor2D,
  }));
}

/** s · down · up as a dense [in, out] matrix. */
export function denseUpdate(f: LoraFactors): tf.Tensor2D {
  return tf.tidy(() => tf.mul(tf.matMul(f.down, f.up), f.scale)) as tf.Tensor2D;
}

/** Copy a set's current values into the variables of another set with the same layers. */
export function copySetValues(from: LoraAdapterSet, to: LoraAdapterSet): void {
  for (const [path, w] of from.adapters) {
    const t = to.adapters.get(path);
    if (!t) throw new Error(`copySetValues: no adapter for ${path}`);
    t.down.assign(w.down);
    t.up.assign(w.up);
  }
}
