/**
 * `Identity` on the wasm backend without a copy.
 *
 * tfjs-core runs `Identity` (via `clone`) for every input or output a kernel's gradient saves while a tape is
 * recording: thousands of calls per training step of a UNet. Upstream's wasm kernel copies the whole buffer
 * each time (a learnStyle step on the Atelier model takes 0.94× as long without the copies, paired in one run:
 * bench/experiments/identity_ab.ts, bench/results/identity-ab.json). Tensor data is immutable in tfjs
 * (a Variable's `assign` swaps its dataId, kernels only write their own fresh outputs), so the clone can share
 * the buffer and count a reference, exactly as upstream's `Reshape` does and as the cpu backend's `Identity` does.
 */
import * as tf from '@tensorflow/tfjs-core';
import { asWasm } from './wasm_util';

const SHARING_MARK = '__museumSharingIdentity';

/** Registers the sharing Identity on wasm (string tensors keep upstream's path); true when newly registered. */
export function registerSharingIdentity(): boolean {
  const cur = tf.getKernel('Identity', 'wasm');
  if (!cur || (cur.kernelFunc as unknown as Record<string, boolean>)[SHARING_MARK]) return false;
  const upstream = cur.kernelFunc;
  const sharing = (args: { inputs: tf.NamedTensorInfoMap; backend: object; attrs?: tf.NamedAttrMap }) => {
    const x = args.inputs.x as tf.TensorInfo;
    if (x.dtype === 'string') return upstream(args as Parameters<tf.KernelFunc>[0]);
    asWasm(args.backend).incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape.slice(), dtype: x.dtype };
  };
  (sharing as unknown as Record<string, boolean>)[SHARING_MARK] = true;
  tf.unregisterKernel('Identity', 'wasm');
  tf.registerKernel({ kernelName: 'Identity', backendName: 'wasm', setupFunc: cur.setupFunc, disposeFunc: cur.disposeFunc, kernelFunc: sharing as unknown as tf.KernelFunc });
  return true;
}
