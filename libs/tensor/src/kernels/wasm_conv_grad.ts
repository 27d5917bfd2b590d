/**
 * Convolution gradients for the wasm backend, built on its fast XNNPACK paths.
 *
 * - `Conv2DBackpropFilter` (missing upstream): im2col in chunks of output pixels, then
 *   dW[kh·kw·Cin, Cout] += colsᵀ[kh·kw·Cin, P] · dy[P, Cout] with the fast batch-1 matmul.
 * - `Conv2DBackpropInput` (upstream is a naive loop at ~1–2 GFLOP/s): forward Conv2Ds of dy with the
 *   spatially flipped, in/out-swapped filter — one for stride 1, one per output phase for stride s
 *   (each phase sees only every s-th tap, so no work is spent on the zeros a dilated dy would hold).
 */
import * as tf from '@tensorflow/tfjs-core';
import {
  WasmBackend, asWasm, callKernel, dataOf, dispose, f32View, matmulIds, registerView, releaseView,
} from './wasm_util';

/** Upper bound on floats in one im2col chunk (64 MB). */
const COLS_BUDGET = 16 * 1024 * 1024;
/** Output pixels per im2col chunk. */
const CHUNK_PIXELS = 4096;

type Pad = 'valid' | 'same' | number | tf.backend_util.ExplicitPadding;

interface ConvGradAttrs {
  strides: number | [number, number];
  pad: Pad;
  dataFormat: 'NHWC' | 'NCHW';
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

function convInfoOf(xShape: number[], filterShape: number[], attrs: ConvGradAttrs): tf.backend_util.Conv2DInfo {
  const info = tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number], filterShape as [number, number, number, number],
    attrs.strides, 1, attrs.pad, attrs.dimRoundingMode, false,
    tf.backend_util.convertConv2DDataFormat(attrs.dataFormat ?? 'NHWC'));
  if (info.dataFormat !== 'channelsLast') throw new Error('wasm conv gradients support NHWC only');
  return info;
}

export function conv2DBackpropFilter(args: { inputs: tf.NamedTensorInfoMap; backend: object; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const backend: WasmBackend = asWasm(args.backend);
  const { x, dy } = args.inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
  const attrs = args.attrs as unknown as ConvGradAttrs & { filterShape: number[] };
  const info = convInfoOf(x.shape, attrs.filterShape, attrs);
  const { batchSize: nb, inHeight: H, inWidth: W, inChannels: cin, outHeight: ho, outWidth: wo, outChannels: cout } = info;
  const { filterHeight: kh, filterWidth: kw, strideHeight: sh, strideWidth: sw } = info;
  const pt = info.padInfo.top;
  const pl = info.padInfo.left;
  const kk = kh * kw * cin;

  // dW[kk, Cout] = Σ_chunks colsᵀ[kk, Pc] · dy[Pc, Cout]: the small dy chunk is the operand XNNPACK packs,
  // and the product lands directly in the filter layout [kh, kw, Cin, Cout].
  const out = backend.makeOutput([kh, kw, cin, cout], 'float32');
  if (nb * ho * wo === 0) {
    f32View(backend, out).fill(0);
    return out;
  }
  // Chunks run over output rows of the whole batch (image n, row oy) → g = n·ho + oy, so small feature
  // maps (4x4, 8x8) still give the matmul a long inner dimension instead of one tiny product per image.
  const rowsTotal = nb * ho;
  // At most CHUNK_PIXELS output pixels per product: longer inner dimensions fall out of cache (measured).
  const rowsPerChunk = Math.max(1, Math.min(rowsTotal, Math.floor(COLS_BUDGET / Math.max(1, wo * kk)), Math.floor(CHUNK_PIXELS / wo)));
  const chunks = Math.ceil(rowsTotal / rowsPerChunk);
  const part = chunks > 1 ? backend.makeOutput([kk, cout], 'float32') : null;
  const acc = part ? new Float32Array(kk * cout) : null;
  try {
    for (let g0 = 0; g0 < rowsTotal; g0 += rowsPerChunk) {
      const g1 = Math.min(rowsTotal, g0 + rowsPerChunk);
      const pc = (g1 - g0) * wo;
      const colsT = backend.makeOutput([kk, pc], 'float32');
      let dyId = 0;
      try {
        // Views are taken after the allocation above (the heap may have grown).
        const xv = f32View(backend, x);
        const cv = f32View(backend, colsT);
        // Transposed im2col, written row by row: row (i, j, c) holds x under tap (i, j), channel c,
        // for every output pixel of the chunk. Reads walk one input row (cache-resident) per (tap, oy).
        for (let i = 0; i < kh; i++) {
          for (let j = 0; j < kw; j++) {
            // Output columns whose tap lands inside the image: ox in [lo, hi).
            const lo = Math.min(wo, Math.max(0, Math.ceil((pl - j) / sw)));
            const hi = Math.max(lo, Math.min(wo, Math.floor((W - 1 + pl - j) / sw) + 1));
            const tapRow0 = (i * kw + j) * cin;
            for (let g = g0; g < g1; g++) {
              const n = Math.floor(g / ho);
              const oy = g - n * ho;
              const iy = oy * sh + i - pt;
              const col0 = (g - g0) * wo;
              if (iy < 0 || iy >= H) {
                for (let c = 0; c < cin; c++) {
                  const d = (tapRow0 + c) * pc + col0;
                  cv.fill(0, d, d + wo);
                }
                continue;
              }
              const rowBase = (n * H + iy) * W * cin;
              for (let c = 0; c < cin; c++) {
                const d = (tapRow0 + c) * pc + col0;
                if (lo > 0) cv.fill(0, d, d + lo);
                if (hi < wo) cv.fill(0, d + hi, d + wo);
                let src = rowBase + (lo * sw + j - pl) * cin + c;
                const step = sw * cin;
                for (let ox = lo; ox < hi; ox++, src += step) cv[d + ox] = xv[src];
              }
            }
          }
        }
        // dy rows of the chunk are contiguous across images: [g0·wo, g1·wo) × Cout.
        dyId = registerView(backend, dy, g0 * wo * cout, pc * cout);
        const target = part ?? out;
        matmulIds(backend, dataOf(backend, colsT).id, dyId, dataOf(backend, target).id, kk, pc, cout);
      } finally {
        if (dyId) releaseView(backend, dyId);
        dispose(backend, colsT);
      }
      if (part && acc) {
        const pv = f32View(backend, part);
        for (let e = 0; e < acc.length; e++) acc[e] += pv[e];
      }
    }
    if (acc) f32View(backend, out).set(acc);
  } finally {
    dispose(backend, part);
  }
  return out;
}

const FAST_MARK = '__museumFastConv2DBackpropInput';

/**
 * One output phase of a strided transposed conv along one axis: the input rows y ≡ r − pad (mod s)
 * receive only the taps i = r + s·t, so they are a stride-1 correlation of dy with those T taps.
 */
interface Phase {
  r: number;
  taps: number;
  /** First phase index u; the rows are y = u·s + r − pad for u = uMin … uMin + count − 1. */
  uMin: number;
  count: number;
  padLo: number;
  padHi: number;
}

function phasesOf(k: number, s: number, pad: number, inSize: number, outSize: number): Phase[] | null {
  const res: Phase[] = [];
  for (let r = 0; r < s; r++) {
    const taps = r < k ? Math.ceil((k - r) / s) : 0;
    const uMin = Math.ceil((pad - r) / s);
    const count = Math.floor((inSize - 1 + pad - r) / s) - uMin + 1;
    if (count <= 0) continue;
    const padLo = taps - 1 - uMin;
    const padHi = count - outSize - padLo + taps - 1;
    if (taps > 0 && (padLo < 0 || padHi < 0)) return null;
    res.push({ r, taps, uMin, count, padLo, padHi });
  }
  return res;
}

export function makeFastConv2DBackpropInput(original: tf.KernelFunc): tf.KernelFunc {
  const fast = (args: { inputs: tf.NamedTensorInfoMap; backend: object; attrs?: tf.NamedAttrMap }) => {
    const backend: WasmBackend = asWasm(args.backend);
    const { dy, filter } = args.inputs as { dy: tf.TensorInfo; filter: tf.TensorInfo };
    const attrs = args.attrs as unknown as ConvGradAttrs & { inputShape: number[] };
    if (dy.dtype !== 'float32' || (attrs.dataFormat ?? 'NHWC') !== 'NHWC') return original(args);
    const info = convInfoOf(attrs.inputShape, filter.shape, attrs);
    const { batchSize: nb, inHeight: H, inWidth: W, inChannels: cin, outHeight: ho, outWidth: wo, outChannels: cout } = info;
    const { filterHeight: kh, filterWidth: kw, strideHeight: sh, strideWidth: sw } = info;
    const rows = phasesOf(kh, sh, info.padInfo.top, H, ho);
    const cols = phasesOf(kw, sw, info.padInfo.left, W, wo);
    if (nb * ho * wo === 0 || !rows || !cols) return original(args);

    // Sub-filter of one phase pair, rotated by 180° with in/out channels swapped: [Ti, Tj, Cout, Cin].
    const subFilter = (pr: Phase, pc: Phase): tf.TensorInfo => {
      const f = backend.makeOutput([pr.taps, pc.taps, cout, cin], 'float32');
      const fv = f32View(backend, filter);
      const sv = f32View(backend, f);
      for (let mi = 0; mi < pr.taps; mi++) {
        const i = pr.r + sh * (pr.taps - 1 - mi);
        for (let mj = 0; mj < pc.taps; mj++) {
          const j = pc.r + sw * (pc.taps - 1 - mj);
          const src0 = (i * kw + j) * cin * cout;
          const dst0 = (mi * pc.taps + mj) * cout * cin;
          for (let ci = 0; ci < cin; ci++) {
            for (let co = 0; co < cout; co++) sv[dst0 + co * cin + ci] = fv[src0 + ci * cout + co];
          }
        }
      }
      return f;
    };
    const phaseConv = (pr: Phase, pc: Phase): tf.TensorInfo => {
      const f = subFilter(pr, pc);
      try {
        return callKernel('Conv2D', backend, { x: dy, filter: f }, {
          strides: [1, 1], dilations: [1, 1], dataFormat: 'NHWC',
          pad: [[0, 0], [pr.padLo, pr.padHi], [pc.padLo, pc.padHi], [0, 0]] as unknown as tf.NamedAttrMap[string],
        });
      } finally {
        dispose(backend, f);
      }
    };

    if (sh === 1 && sw === 1) {
      // One phase covering every row and column: the conv output is dx itself.
      const res = phaseConv(rows[0], cols[0]);
      res.shape = attrs.inputShape.slice();
      return res;
    }
    // Strided: one small conv per phase pair (no multiplications by inserted zeros), interleaved into dx.
    const out = backend.makeOutput(attrs.inputShape.slice(), 'float32');
    f32View(backend, out).fill(0);
    for (const pr of rows) {
      for (const pc of cols) {
        if (pr.taps === 0 || pc.taps === 0) continue; // no tap reaches these positions: dx stays 0
        const part = phaseConv(pr, pc);
        try {
          const pv = f32View(backend, part);
          const ov = f32View(backend, out);
          for (let n = 0; n < nb; n++) {
            for (let q = 0; q < pr.count; q++) {
              const y = (pr.uMin + q) * sh + pr.r - info.padInfo.top;
              for (let q2 = 0; q2 < pc.count; q2++) {
                const x = (pc.uMin + q2) * sw + pc.r - info.padInfo.left;
                const src = ((n * pr.count + q) * pc.count + q2) * cin;
                ov.set(pv.subarray(src, src + cin), ((n * H + y) * W + x) * cin);
              }
            }
          }
        } finally {
          dispose(backend, part);
        }
      }
    }
    return out;
  };
  (fast as unknown as Record<string, boolean>)[FAST_MARK] = true;
  return fast as unknown as tf.KernelFunc;
}

export function registerConvGradKernels(): string[] {
  const done: string[] = [];
  if (!tf.getKernel('Conv2DBackpropFilter', 'wasm')) {
    tf.registerKernel({ kernelName: 'Conv2DBackpropFilter', backendName: 'wasm', kernelFunc: conv2DBackpropFilter as unknown as tf.KernelFunc });
    done.push('Conv2DBackpropFilter');
  }
  const cur = tf.getKernel('Conv2DBackpropInput', 'wasm');
  if (cur && !(cur.kernelFunc as unknown as Record<string, boolean>)[FAST_MARK]) {
    tf.unregisterKernel('Conv2DBackpropInput', 'wasm');
    tf.registerKernel({
      kernelName: 'Conv2DBackpropInput', backendName: 'wasm',
      setupFunc: cur.setupFunc, disposeFunc: cur.disposeFunc,
      kernelFunc: makeFastConv2DBackpropInput(cur.kernelFunc),
    });
    done.push('Conv2DBackpropInput');
  }
  return done;
}
