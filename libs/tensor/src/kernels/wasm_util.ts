/**
 * Low-level access to the wasm backend's heap, shared by the wasm kernels in this folder.
 *
 * The wasm backend keeps every tensor in one linear heap and names it to C++ by an integer id
 * (`registerTensor(id, size, byteOffset)`). Registering extra ids that point *into* an existing
 * tensor gives zero-copy views (batch slices), which is what makes the batched/looped kernels cheap.
 */
import * as tf from '@tensorflow/tfjs-core';

type DataId = object;

interface TensorData {
  id: number;
  memoryOffset: number;
  shape: number[];
  dtype: tf.DataType;
  refCount: number;
}

/** The parts of `BackendWasm` (not exported with types by tfjs-backend-wasm) that we use. */
export interface WasmBackend {
  wasm: {
    HEAPU8: Uint8Array;
    cwrap(name: string, ret: null, args: string[]): (...args: unknown[]) => void;
    tfjs: {
      registerTensor(id: number, size: number, byteOffset: number): void;
      disposeData(id: number): void;
    };
  };
  dataIdMap: { get(dataId: DataId): TensorData | undefined };
  dataIdNextNumber: number;
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  disposeData(dataId: DataId, force?: boolean): boolean;
  /** One more holder of a tensor's data (freed when the last holder disposes it). */
  incRef(dataId: DataId): void;
}

export function asWasm(backend: unknown): WasmBackend {
  return backend as WasmBackend;
}

export function dataOf(backend: WasmBackend, t: tf.TensorInfo): TensorData {
  const d = backend.dataIdMap.get(t.dataId);
  if (!d) throw new Error('wasm kernel: tensor data not found on the wasm backend');
  return d;
}

/** A Float32Array over a tensor's heap memory. Re-take it after any allocation (the heap may grow). */
export function f32View(backend: WasmBackend, t: tf.TensorInfo): Float32Array {
  const d = dataOf(backend, t);
  return new Float32Array(backend.wasm.HEAPU8.buffer, d.memoryOffset, tf.util.sizeFromShape(t.shape));
}

export function i32View(backend: WasmBackend, t: tf.TensorInfo): Int32Array {
  const d = dataOf(backend, t);
  return new Int32Array(backend.wasm.HEAPU8.buffer, d.memoryOffset, tf.util.sizeFromShape(t.shape));
}

/**
 * Registers a C++-side id for `size` float32s starting `elemOffset` elements into tensor `t`.
 * Release with `releaseView` (this also frees any XNNPACK operator cached on that id).
 */
export function registerView(backend: WasmBackend, t: tf.TensorInfo, elemOffset: number, size: number): number {
  const id = backend.dataIdNextNumber++;
  backend.wasm.tfjs.registerTensor(id, size, dataOf(backend, t).memoryOffset + elemOffset * 4);
  return id;
}

export function releaseView(backend: WasmBackend, id: number): void {
  backend.wasm.tfjs.disposeData(id);
}

export function dispose(backend: WasmBackend, ...infos: Array<tf.TensorInfo | null | undefined>): void {
  for (const t of infos) if (t) backend.disposeData(t.dataId);
}

type MatMulFn = (
  aId: number, aShape: Uint8Array, aRank: number,
  bId: number, bShape: Uint8Array, bRank: number,
  transposeA: boolean, transposeB: boolean, outId: number,
) => void;

const matmulFns = new WeakMap<object, MatMulFn>();

/**
 * out[M,N] = a[M,K] · b[K,N] on raw wasm ids, through the backend's own C++ `BatchMatMul`
 * with batch 1 and no transposes, which is the XNNPACK fully-connected path (~28 GFLOP/s).
 * XNNPACK packs `b` and caches the packed copy on `bId` until that id is disposed.
 */
export function matmulIds(backend: WasmBackend, aId: number, bId: number, outId: number, M: number, K: number, N: number): void {
  let fn = matmulFns.get(backend);
  if (!fn) {
    fn = backend.wasm.cwrap('BatchMatMul', null, [
      'number', 'array', 'number', 'number', 'array', 'number', 'number', 'number', 'number',
    ]) as unknown as MatMulFn;
    matmulFns.set(backend, fn);
  }
  const aShape = new Uint8Array(new Int32Array([1, M, K]).buffer);
  const bShape = new Uint8Array(new Int32Array([1, K, N]).buffer);
  fn(aId, aShape, 3, bId, bShape, 3, false, false, outId);
}

/** Calls another wasm kernel's function directly (nothing is recorded on the gradient tape). */
export function callKernel(
  name: string,
  backend: WasmBackend,
  inputs: tf.NamedTensorInfoMap,
  attrs: tf.NamedAttrMap = {},
): tf.TensorInfo {
  const k = tf.getKernel(name, 'wasm');
  if (!k) throw new Error(`wasm kernel ${name} is not registered`);
  return k.kernelFunc({ inputs, backend, attrs }) as tf.TensorInfo;
}
