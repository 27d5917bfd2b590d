import { tf } from '@museum/tensor';

/**
 * Multi-head scaled dot-product attention on [B, L, heads·d] tensors.
 * Written as batched matMuls over [B·heads, L, d]; on wasm the project's BatchMatMul kernel
 * (libs/tensor) turns these into fast 2-D products, so this stays the plain math.
 * `mask`, when given, is added to the logits (broadcast to [B·heads, Lq, Lk]), e.g. a causal mask of -inf.
 */
export function multiHeadAttention(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, heads: number, mask?: tf.Tensor, scale?: number): tf.Tensor {
  return tf.tidy(() => {
    const [b, lq, c] = q.shape;
    const lk = k.shape[1]!;
    const d = c / heads;
    if (!Number.isInteger(d)) throw new Error(`attention: ${c} channels not divisible by ${heads} heads`);
    const s = scale ?? 1 / Math.sqrt(d);
    const split = (t: tf.Tensor, l: number) => tf.reshape(tf.transpose(tf.reshape(t, [b, l, heads, d]), [0, 2, 1, 3]), [b * heads, l, d]);
    const qh = split(tf.mul(q, s), lq);
    const kt = tf.reshape(tf.transpose(tf.reshape(k, [b, lk, heads, d]), [0, 2, 3, 1]), [b * heads, d, lk]);
    const vh = split(v, lk);
    let logits = tf.matMul(qh as tf.Tensor3D, kt as tf.Tensor3D);
    if (mask) logits = tf.add(logits, mask);
    const probs = tf.softmax(logits, -1);
    const out = tf.matMul(probs as tf.Tensor3D, vh as tf.Tensor3D);
    return tf.reshape(tf.transpose(tf.reshape(out, [b, heads, lq, d]), [0, 2, 1, 3]), [b, lq, c]);
  });
}
