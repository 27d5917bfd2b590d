/**
 * The wasm `Conv2D` with a switch for XNNPACK's packed-filter cache.
 *
 * The stock kernel creates one XNNPACK operator per filter id and keeps it (with a packed copy of the
 * filter) until the filter is disposed: fast for repeated calls, but it doubles the heap used by conv
 * weights. A model whose weights alone nearly fill the 4 GB wasm heap (Stable Diffusion 1.5's UNet:
 * 2.4 GB of conv filters) cannot afford that; with the cache off, each call runs on a temporary view
 * id of the filter, and releasing the view frees the operator right after the product.
 */
import * as tf from '@tensorflow/tfjs-core';
import { WasmBackend, asWasm, dataOf, registerView, releaseView } from './wasm_util';

const MARK = '__museumConv2DWeightCache';

let weightCache = true;

/**
 * Whether conv filters keep their XNNPACK-packed copy between calls (the stock behaviour). Turn off,
 * with `setWasmMatMulWeightCache(false)`, for models near the 4 GB heap limit.
 */
export function setWasmConvWeightCache(enabled: boolean): void {
  weightCache = enabled;
}

type Conv2DFn = (...args: number[]) => void;
const conv2dFns = new WeakMap<object, Conv2DFn>();

function conv2dFn(backend: WasmBackend): Conv2DFn {
  let fn = conv2dFns.get(backend);
  if (!fn) {
    // xId, batch, inH, inW, filterId, fh, fw, padTop, padRight, padBottom, padLeft, isSamePad,
    // dilationH, dilationW, strideH, strideW, inChannels, outChannels, outId
    fn = backend.wasm.cwrap('Conv2D', null, new Array<string>(19).fill('number')) as unknown as Conv2DFn;
    conv2dFns.set(backend, fn);
  }
  return fn;
}

interface Conv2DAttrs {
  strides: number | [number, number];
  pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;
  dataFormat: 'NHWC' | 'NCHW';
  dilations: number | [number, number];
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

export function makeConv2D(original: tf.KernelFunc): tf.KernelFunc {
  const kernel = (args: { inputs: tf.NamedTensorInfoMap; backend: object; attrs?: tf.NamedAttrMap }) => {
    if (weightCache) return original(args);
    const backend = asWasm(args.backend);
    const { x, filter } = args.inputs as { x: tf.TensorInfo; filter: tf.TensorInfo };
    const a = args.attrs as unknown as Conv2DAttrs;
    const info = tf.backend_util.computeConv2DInfo(
      x.shape as [number, number, number, number], filter.shape as [number, number, number, number],
      a.strides, a.dilations, a.pad, a.dimRoundingMode, false, tf.backend_util.convertConv2DDataFormat(a.dataFormat));
    if (info.dataFormat !== 'channelsLast') return original(args); // the stock kernel reports the error
    const out = backend.makeOutput(info.outShape, 'float32');
    const p = info.padInfo;
    const filterView = registerView(backend, filter, 0, tf.util.sizeFromShape(filter.shape));
    try {
      conv2dFn(backend)(
        dataOf(backend, x).id, x.shape[0], x.shape[1], x.shape[2], filterView, info.filterHeight, info.filterWidth,
        p.top, p.right, p.bottom, p.left, p.type === 'SAME' ? 1 : 0, info.dilationHeight, info.dilationWidth,
        info.strideHeight, info.strideWidth, info.inChannels, info.outChannels, dataOf(backend, out).id);
    } finally {
      releaseView(backend, filterView); // also deletes the operator (and its packed filter) cached on the view
    }
    return out;
  };
  (kernel as unknown as Record<string, boolean>)[MARK] = true;
  return kernel as unknown as tf.KernelFunc;
}

/** Puts the switchable Conv2D in place of the stock wasm kernel; a no-op when already done. */
export function registerConv2DWeightCacheSwitch(): boolean {
  const current = tf.getKernel('Conv2D', 'wasm');
  if (!current) return false;
  if ((current.kernelFunc as unknown as Record<string, boolean>)[MARK]) return false;
  tf.unregisterKernel('Conv2D', 'wasm');
  tf.registerKernel({
    kernelName: 'Conv2D',
    backendName: 'wasm',
    setupFunc: current.setupFunc,
    disposeFunc: current.disposeFunc,
    kernelFunc: makeConv2D(current.kernelFunc),
  });
  return true;
}
