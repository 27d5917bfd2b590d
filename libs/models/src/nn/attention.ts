import { tf } from '@museum/tensor';

/**
 * Most floats of attention logits materialised at once (default 2^24, 64 MB). Above it the products run in chunks
 * of heads (and of query rows when one head alone is larger): SD 1.5 at 64×64 latents has
 * 2 × 8 × 4096 × 4096 logits per self-attention, 1 GiB for the logits and 1 GiB for the softmax,
 * which the 4 GB wasm heap next to 3.4 GB of weights cannot hold. Chunks compute the same numbers.
 */
let logitsBudget = 1 << 24;

/** Sets the chunking threshold (floats of logits per chunk); returns the previous value. For tests and tuning. */
export function setAttentionLogitsBudget(floats: number): number {
  if (!Number.isInteger(floats) || floats < 1) throw new Error(`attention logits budget must be a positive integer, got ${floats}`);
  const prev = logitsBudget;
  logitsBudget = floats;
  return prev;
}

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
    const bh = b * heads;
    const split = (t: tf.Tensor, l: number) => tf.reshape(tf.transpose(tf.reshape(t, [b, l, heads, d]), [0, 2, 1, 3]), [bh, l, d]);
    const qh = split(tf.mul(q, s), lq) as tf.Tensor3D;
    // Keys stay [bh, lk, d] and the product transposes them: the gradients then are dq = dlogits·k and
    // dk = dlogitsᵀ·q, both with the long L as the rows XNNPACK tiles over, instead of qᵀ·dlogits with only
    // d (16–64) rows and a whole [L, L] matrix repacked per head (measured 2.5x slower on wasm).
    const kh = split(k, lk) as tf.Tensor3D;
    const vh = split(v, lk) as tf.Tensor3D;
    const attend = (qc: tf.Tensor3D, kc: tf.Tensor3D, vc: tf.Tensor3D, m: tf.Tensor | undefined): tf.Tensor3D => {
      let logits: tf.Tensor = tf.matMul(qc, kc, false, true);
      if (m) logits = tf.add(logits, m);
      return tf.matMul(tf.softmax(logits, -1) as tf.Tensor3D, vc);
    };
    let out: tf.Tensor;
    if (bh * lq * lk <= logitsBudget) {
      out = attend(qh, kh, vh, mask);
    } else {
      // Chunks of whole heads, or of query rows of one head; the mask follows the chunk where it is not broadcast.
      let m3: tf.Tensor | undefined;
      if (mask) {
        const ms = mask.shape as number[];
        m3 = tf.reshape(mask, [ms.length >= 3 ? -1 : 1, ms.length >= 2 ? ms[ms.length - 2] : 1, ms[ms.length - 1]]);
        if (m3.shape[0] !== 1 && m3.shape[0] !== bh) throw new Error(`attention mask [${ms}] does not broadcast to [${bh}, ${lq}, ${lk}]`);
      }
      const headsPer = Math.max(1, Math.min(bh, Math.floor(logitsBudget / (lq * lk))));
      const rowsPer = headsPer > 1 ? lq : Math.max(1, Math.min(lq, Math.floor(logitsBudget / lk)));
      const perHead: tf.Tensor[] = [];
      for (let h0 = 0; h0 < bh; h0 += headsPer) {
        const nh = Math.min(headsPer, bh - h0);
        const kc = tf.slice(kh, [h0, 0, 0], [nh, lk, d]) as tf.Tensor3D;
        const vc = tf.slice(vh, [h0, 0, 0], [nh, lk, d]) as tf.Tensor3D;
        const rows: tf.Tensor[] = [];
        for (let r0 = 0; r0 < lq; r0 += rowsPer) {
          const nr = Math.min(rowsPer, lq - r0);
          // Each chunk's logits and probabilities are freed before the next chunk starts.
          rows.push(
            tf.tidy(() => {
              const qc = tf.slice(qh, [h0, r0, 0], [nh, nr, d]) as tf.Tensor3D;
              const [mb, ml] = m3 ? (m3.shape as number[]) : [1, 1];
              const mc = m3 ? tf.slice(m3, [mb === 1 ? 0 : h0, ml === 1 ? 0 : r0, 0], [mb === 1 ? 1 : nh, ml === 1 ? 1 : nr, lk]) : undefined;
              return attend(qc, kc, vc, mc);
            }),
          );
        }
        perHead.push(rows.length === 1 ? rows[0] : tf.concat(rows, 1));
        if (rows.length > 1) tf.dispose(rows);
        tf.dispose([kc, vc]);
      }
      out = perHead.length === 1 ? perHead[0] : tf.concat(perHead, 0);
    }
    return tf.reshape(tf.transpose(tf.reshape(out, [b, heads, lq, d]), [0, 2, 1, 3]), [b, lq, c]);
  });
}
