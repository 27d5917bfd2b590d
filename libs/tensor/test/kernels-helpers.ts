/** Shared helpers for the kernel/gradient parity tests: run the same math on wasm and on cpu. */
import '@tensorflow/tfjs-backend-cpu';
import { tf } from '@museum/tensor';

/** Deterministic N(0,1)-ish values (sum of uniforms), so failures reproduce. */
export function randn(size: number, seed: number, scale = 1): Float32Array {
  let s = seed >>> 0 || 1;
  const next = (): number => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 4294967296;
  };
  const out = new Float32Array(size);
  for (let i = 0; i < size; i++) out[i] = (next() + next() + next() + next() - 2) * 1.7320508 * scale;
  return out;
}

export interface Input {
  shape: number[];
  values: Float32Array | Int32Array;
  dtype?: 'float32' | 'int32';
}

export function input(shape: number[], seed: number, scale = 1): Input {
  return { shape, values: randn(tf.util.sizeFromShape(shape), seed, scale) };
}

/** Runs `fn` on `backend` with fresh tensors made from `inputs`; returns plain arrays (no tensors leak). */
export async function runOn(
  backend: 'wasm' | 'cpu',
  inputs: Input[],
  fn: (...xs: tf.Tensor[]) => tf.Tensor[],
): Promise<Float32Array[]> {
  await tf.setBackend(backend);
  const xs = inputs.map((i) => tf.tensor(i.values, i.shape, i.dtype ?? 'float32'));
  try {
    const outs = tf.tidy(() => fn(...xs));
    const arrays = outs.map((t) => Float32Array.from(t.dataSync()));
    tf.dispose(outs);
    return arrays;
  } finally {
    tf.dispose(xs);
  }
}

/** max |a-b| / max |b| (b = reference), over all outputs. */
export function maxRelError(got: Float32Array[], ref: Float32Array[]): number {
  let maxDiff = 0;
  let maxRef = 0;
  expect(got.length).toBe(ref.length);
  for (let k = 0; k < ref.length; k++) {
    expect(got[k].length).toBe(ref[k].length);
    for (let i = 0; i < ref[k].length; i++) {
      maxDiff = Math.max(maxDiff, Math.abs(got[k][i] - ref[k][i]));
      maxRef = Math.max(maxRef, Math.abs(ref[k][i]));
    }
  }
  return maxDiff / Math.max(maxRef, 1e-12);
}

/** Same computation on wasm and cpu; returns the relative error of wasm against cpu. */
export async function wasmVsCpu(inputs: Input[], fn: (...xs: tf.Tensor[]) => tf.Tensor[]): Promise<number> {
  const ref = await runOn('cpu', inputs, fn);
  const got = await runOn('wasm', inputs, fn);
  await tf.setBackend('wasm');
  return maxRelError(got, ref);
}
