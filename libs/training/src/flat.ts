import { tf } from '@museum/tensor';

/** Concatenate tensors' values into one Float32Array (plus `extra` scalars at the end). */
export function flattenTensors(tensors: Array<tf.Tensor | null>, shapes: number[][], extra: number[] = []): Float32Array {
  const sizes = shapes.map((s) => s.reduce((a, b) => a * b, 1));
  const total = sizes.reduce((a, b) => a + b, 0) + extra.length;
  const out = new Float32Array(total);
  let off = 0;
  tensors.forEach((t, i) => {
    if (t) out.set(t.dataSync() as Float32Array, off);
    off += sizes[i];
  });
  out.set(extra, off);
  return out;
}

/** Inverse of flattenTensors: new tensors of the given shapes, and the trailing extras. */
export function unflattenTensors(flat: Float32Array, shapes: number[][]): { tensors: tf.Tensor[]; extra: Float32Array } {
  let off = 0;
  const tensors = shapes.map((s) => {
    const n = s.reduce((a, b) => a * b, 1);
    const t = tf.tensor(flat.subarray(off, off + n), s, 'float32');
    off += n;
    return t;
  });
  return { tensors, extra: flat.slice(off) };
}
