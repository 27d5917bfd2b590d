/**
 * A faster `BatchMatMul` for the wasm backend.
 *
 * The stock kernel only reaches XNNPACK (~28 GFLOP/s) for batch 1 without transposes; everything else
 * (attention's batched q·kᵀ, every matmul gradient) falls to a naive C++ loop at 0.4–2 GFLOP/s.
 * This wrapper makes every case look like the fast one: transposes are materialised with the wasm
 * Transpose kernel, and batches become a loop of batch-1 products on zero-copy heap views, each
 * writing straight into its slice of one output tensor.
 */
import * as tf from '@tensorflow/tfjs-core';
import {
  WasmBackend, asWasm, callKernel, dataOf, dispose, f32View, matmulIds, registerView, releaseView,
} from './wasm_util';

const MARK = '__museumFastBatchMatMul';

/** Shape each weight id was last multiplied as: XNNPACK caches packed `b` by id only. */
const packedAs = new WeakMap<object, string>();

let weightCache = true;

/**
 * Whether a 2-D (or batch-1) right operand keeps its XNNPACK-packed copy between calls (the stock
 * behaviour: faster repeated products with the same weights, at the cost of a second copy of each
 * weight on the wasm heap until the weight is disposed). Turn off for models near the 4 GB heap limit.
 */
export function setWasmMatMulWeightCache(enabled: boolean): void {
  weightCache = enabled;
}

function swapLastTwo(rank: number): number[] {
  const perm = Array.from({ length: rank }, (_, i) => i);
  [perm[rank - 2], perm[rank - 1]] = [perm[rank - 1], perm[rank - 2]];
  return perm;
}

/** For each flat index of the broadcast batch shape, the flat batch index into `shape`. */
function batchIndexMap(outer: number[], shape: number[]): Int32Array {
  const total = tf.util.sizeFromShape(outer);
  const rank = outer.length;
  const padded = [...new Array<number>(rank - shape.length).fill(1), ...shape];
  const strides = new Array<number>(rank).fill(0);
  for (let d = rank - 1, s = 1; d >= 0; d--) {
    strides[d] = padded[d] === 1 ? 0 : s;
    s *= padded[d];
  }
  const map = new Int32Array(total);
  for (let o = 0; o < total; o++) {
    let rem = o;
    let idx = 0;
    for (let d = rank - 1; d >= 0; d--) {
      const c = rem % outer[d];
      rem = (rem - c) / outer[d];
      idx += c * strides[d];
    }
    map[o] = idx;
  }
  return map;
}

export function makeFastBatchMatMul(original: tf.KernelFunc): tf.KernelFunc {
  const fast = (args: { inputs: tf.NamedTensorInfoMap; backend: object; attrs?: tf.NamedAttrMap }) => {
    const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
    const { transposeA, transposeB } = (args.attrs ?? {}) as { transposeA: boolean; transposeB: boolean };
    if (a.dtype !== 'float32' || b.dtype !== 'float32') return original(args);
    const backend: WasmBackend = asWasm(args.backend);

    const ra = a.shape.length;
    const rb = b.shape.length;
    const M = transposeA ? a.shape[ra - 1] : a.shape[ra - 2];
    const K = transposeA ? a.shape[ra - 2] : a.shape[ra - 1];
    const Kb = transposeB ? b.shape[rb - 1] : b.shape[rb - 2];
    const N = transposeB ? b.shape[rb - 2] : b.shape[rb - 1];
    tf.util.assert(K === Kb, () =>
      `Error in matMul: inner shapes (${K}) and (${Kb}) of Tensors with shapes ${a.shape} and ${b.shape} ` +
      `and transposeA=${transposeA} and transposeB=${transposeB} must match.`);
    const outerA = a.shape.slice(0, -2);
    const outerB = b.shape.slice(0, -2);
    const outer = tf.broadcast_util.assertAndGetBroadcastShape(outerA, outerB);
    const out = backend.makeOutput([...outer, M, N], 'float32');
    const batch = tf.util.sizeFromShape(outer);
    if (batch * M * N === 0) return out;
    if (K === 0) {
      f32View(backend, out).fill(0);
      return out;
    }

    const at = transposeA ? callKernel('Transpose', backend, { x: a }, { perm: swapLastTwo(ra) }) : null;
    const bt = transposeB ? callKernel('Transpose', backend, { x: b }, { perm: swapLastTwo(rb) }) : null;
    const A = at ?? a;
    const B = bt ?? b;
    const batchA = tf.util.sizeFromShape(outerA);
    const batchB = tf.util.sizeFromShape(outerB);
    const views: number[] = [];
    const view = (t: tf.TensorInfo, offset: number, size: number): number => {
      const id = registerView(backend, t, offset, size);
      views.push(id);
      return id;
    };
    try {
      if (batchB === 1) {
        // One product: a's batches stacked as rows, [batch·M, K]·[K, N], written straight to out.
        const aId = dataOf(backend, A).id;
        const outId = dataOf(backend, out).id;
        let bId: number;
        const key = `${K},${N}`;
        if (weightCache && bt === null && (packedAs.get(b.dataId) ?? key) === key) {
          // Keep using b's own id so XNNPACK's packed weights are reused across calls.
          bId = dataOf(backend, b).id;
          packedAs.set(b.dataId, key);
        } else {
          bId = view(B, 0, K * N);
        }
        matmulIds(backend, aId, bId, outId, batchA * M, K, N);
      } else {
        const mapA = batchIndexMap(outer, outerA);
        const mapB = batchIndexMap(outer, outerB);
        const bIds = new Map<number, number>();
        for (let o = 0; o < batch; o++) {
          const ib = mapB[o];
          let bId = bIds.get(ib);
          if (bId === undefined) {
            bId = view(B, ib * K * N, K * N);
            bIds.set(ib, bId);
          }
          const aId = view(A, mapA[o] * M * K, M * K);
          const outId = view(out, o * M * N, M * N);
          matmulIds(backend, aId, bId, outId, M, K, N);
          // Free the a/out views right away; b views may be reused by later batches.
          releaseView(backend, views.pop() as number);
          releaseView(backend, views.pop() as number);
        }
      }
    } finally {
      for (const id of views) releaseView(backend, id);
      dispose(backend, at, bt);
    }
    return out;
  };
  (fast as unknown as Record<string, boolean>)[MARK] = true;
  return fast as unknown as tf.KernelFunc;
}

let stock: tf.KernelFunc | null = null;

/** The wasm backend's own BatchMatMul kernel function (for comparisons), once the wrapper is in place. */
export function stockWasmBatchMatMul(): tf.KernelFunc | null {
  return stock;
}

/** Replaces the wasm BatchMatMul kernel with the fast wrapper; a no-op when already done. */
export function registerFastBatchMatMul(): boolean {
  const current = tf.getKernel('BatchMatMul', 'wasm');
  if (!current) return false;
  if ((current.kernelFunc as unknown as Record<string, boolean>)[MARK]) return false;
  stock = current.kernelFunc;
  tf.unregisterKernel('BatchMatMul', 'wasm');
  tf.registerKernel({
    kernelName: 'BatchMatMul',
    backendName: 'wasm',
    // The stock setup still runs on re-initialisation, so the stock kernel stays usable as fallback.
    setupFunc: current.setupFunc,
    disposeFunc: current.disposeFunc,
    kernelFunc: makeFastBatchMatMul(current.kernelFunc),
  });
  return true;
}
