/**
 * `UnsortedSegmentSum` for the wasm backend (the gradient of `gather`, e.g. of a token embedding
 * table). Missing upstream; done as one pass over the heap in JS: the work is a scatter-add of
 * `segmentIds.size` rows, which is memory-bound, so C++ would gain little.
 */
import * as tf from '@tensorflow/tfjs-core';
import { WasmBackend, asWasm, f32View, i32View } from './wasm_util';

export function unsortedSegmentSum(args: { inputs: tf.NamedTensorInfoMap; backend: object; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const backend: WasmBackend = asWasm(args.backend);
  const { x, segmentIds } = args.inputs as { x: tf.TensorInfo; segmentIds: tf.TensorInfo };
  const numSegments = (args.attrs as { numSegments: number }).numSegments;
  if (x.dtype !== 'float32' && x.dtype !== 'int32') throw new Error(`UnsortedSegmentSum: unsupported dtype ${x.dtype}`);
  if (segmentIds.dtype !== 'int32') throw new Error('UnsortedSegmentSum: segmentIds must be int32');
  const idRank = segmentIds.shape.length;
  tf.util.assert(
    tf.util.arraysEqual(x.shape.slice(0, idRank), segmentIds.shape),
    () => `UnsortedSegmentSum: segmentIds shape ${segmentIds.shape} must prefix x shape ${x.shape}`);
  const inner = tf.util.sizeFromShape(x.shape.slice(idRank));
  const out = backend.makeOutput([numSegments, ...x.shape.slice(idRank)], x.dtype);
  const ids = i32View(backend, segmentIds);
  const xv = x.dtype === 'float32' ? f32View(backend, x) : i32View(backend, x);
  const ov = x.dtype === 'float32' ? f32View(backend, out) : i32View(backend, out);
  ov.fill(0);
  for (let r = 0; r < ids.length; r++) {
    const seg = ids[r];
    if (seg < 0 || seg >= numSegments) continue; // out-of-range ids are dropped, like TensorFlow
    const src = r * inner;
    const dst = seg * inner;
    for (let k = 0; k < inner; k++) ov[dst + k] += xv[src + k];
  }
  return out;
}

export function registerSegmentSumKernel(): string[] {
  if (tf.getKernel('UnsortedSegmentSum', 'wasm')) return [];
  tf.registerKernel({ kernelName: 'UnsortedSegmentSum', backendName: 'wasm', kernelFunc: unsortedSegmentSum as unknown as tf.KernelFunc });
  return ['UnsortedSegmentSum'];
}
