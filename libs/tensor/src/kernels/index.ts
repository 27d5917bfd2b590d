/**
 * Extra kernels and gradients, installed by `initBackend()` once the backend is chosen.
 * Every registration here is idempotent (safe to call any number of times).
 */
import * as tf from '@tensorflow/tfjs-core';
import { registerFastBatchMatMul } from './wasm_batch_matmul';
import { registerConv2DWeightCacheSwitch } from './wasm_conv2d';
import { registerConvGradKernels } from './wasm_conv_grad';
import { registerSharingIdentity } from './wasm_identity';
import { registerSegmentSumKernel } from './wasm_segment_sum';
import { registerGradients } from './gradients';

export { gradientKernelNames, registerGradients } from './gradients';
export { setWasmMatMulWeightCache, stockWasmBatchMatMul } from './wasm_batch_matmul';
export { setWasmConvWeightCache } from './wasm_conv2d';

/** Kernels this module adds to (or replaces on) the wasm backend. */
export const wasmKernelNames: readonly string[] = [
  'BatchMatMul', 'Conv2D', 'Conv2DBackpropFilter', 'Conv2DBackpropInput', 'Identity', 'UnsortedSegmentSum',
];

/**
 * Registers the wasm kernels (fast BatchMatMul and Conv2DBackpropInput wrappers, Conv2D with a switchable
 * filter cache, Conv2DBackpropFilter, a copy-free Identity, UnsortedSegmentSum). Needs `@tensorflow/tfjs-backend-wasm` loaded; returns the names newly registered.
 */
export function registerWasmKernels(): string[] {
  if (!tf.getKernel('BatchMatMul', 'wasm')) return []; // wasm backend package not loaded
  const done: string[] = [];
  if (registerFastBatchMatMul()) done.push('BatchMatMul');
  if (registerConv2DWeightCacheSwitch()) done.push('Conv2D');
  done.push(...registerConvGradKernels());
  if (registerSharingIdentity()) done.push('Identity');
  done.push(...registerSegmentSumKernel());
  return done;
}

/** What `initBackend()` runs: gradients for every backend, wasm kernels when wasm is selected. */
export function installKernels(backendName: string): void {
  registerGradients();
  if (backendName === 'wasm') registerWasmKernels();
}
