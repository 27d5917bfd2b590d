/**
 * Gradient functions for the kernels the project differentiates through.
 *
 * tfjs-core's CommonJS bundle (what Node loads) ships no gradient registrations — the upstream ones
 * live in ESM-only files that only the `@tensorflow/tfjs` umbrella package registers — so without
 * these `tf.grads`/`tf.variableGrads` fail with "gradient function not found" on every backend.
 * Written from the calculus of each op; registered only for kernels that have no gradient yet.
 */
import * as tf from '@tensorflow/tfjs-core';

type Tensor = tf.Tensor;
type Grads = Record<string, () => Tensor>;

/** Sums a broadcast gradient back down to `shape`. */
function unbroadcast(dx: Tensor, shape: number[]): Tensor {
  if (tf.util.arraysEqual(dx.shape, shape)) return dx;
  const axes = tf.broadcast_util.getReductionAxes(shape, dx.shape);
  // Leading axes that `shape` does not have at all are reduced as well.
  const extra = dx.rank - shape.length;
  const all = new Set<number>(axes);
  for (let i = 0; i < extra; i++) all.add(i);
  const reduced = all.size > 0 ? tf.sum(dx, [...all].sort((a, b) => a - b)) : dx;
  return tf.reshape(reduced, shape);
}

/** Reduction gradient: reshape dy to keep the reduced axes, then broadcast over x. */
function expandReduced(dy: Tensor, x: Tensor, axisAttr: unknown): Tensor {
  const axes = tf.util.parseAxisParam(axisAttr as number | number[], x.shape);
  const kept = x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
  // A broadcasting add instead of broadcastTo: wasm's Tile kernel is ~9x slower than its binary ops.
  return tf.add(tf.reshape(dy, kept), tf.zeros(x.shape, dy.dtype));
}

function zeroGrads(names: string[]): (dy: Tensor | Tensor[], saved: Tensor[]) => Grads {
  return (_dy, saved) => Object.fromEntries(names.map((n, i) => [n, () => tf.zeros(saved[i].shape, 'float32')]));
}

function unary(kernelName: string, grad: (dy: Tensor, x: Tensor, y: Tensor | undefined, attrs: tf.NamedAttrMap) => Tensor, useOutput = false): tf.GradConfig {
  return {
    kernelName,
    inputsToSave: ['x'],
    outputsToSave: useOutput ? [true] : undefined,
    gradFunc: (dy, saved, attrs) => ({ x: () => grad(dy as Tensor, saved[0], saved[1], attrs) }),
  };
}

function binary(
  kernelName: string,
  gradA: (dy: Tensor, a: Tensor, b: Tensor) => Tensor,
  gradB: (dy: Tensor, a: Tensor, b: Tensor) => Tensor,
): tf.GradConfig {
  return {
    kernelName,
    inputsToSave: ['a', 'b'],
    gradFunc: (dy, saved) => {
      const [a, b] = saved;
      return {
        a: () => unbroadcast(gradA(dy as Tensor, a, b), a.shape),
        b: () => unbroadcast(gradB(dy as Tensor, a, b), b.shape),
      };
    },
  };
}

const TWO_OVER_SQRT_PI = 2 / Math.sqrt(Math.PI);

const configs: tf.GradConfig[] = [
  // ---- elementwise unary
  unary('Abs', (dy, x) => tf.mul(dy, tf.sign(x))),
  unary('Neg', (dy) => tf.neg(dy)),
  unary('Exp', (dy, _x, y) => tf.mul(dy, y as Tensor), true),
  unary('Log', (dy, x) => tf.div(dy, x)),
  unary('Log1p', (dy, x) => tf.div(dy, tf.add(x, 1))),
  unary('Sqrt', (dy, _x, y) => tf.div(dy, tf.mul(y as Tensor, 2)), true),
  unary('Rsqrt', (dy, _x, y) => tf.mul(dy, tf.mul(tf.pow(y as Tensor, 3), -0.5)), true),
  unary('Square', (dy, x) => tf.mul(dy, tf.mul(x, 2))),
  unary('Reciprocal', (dy, _x, y) => tf.neg(tf.mul(dy, tf.square(y as Tensor))), true),
  unary('Sigmoid', (dy, _x, y) => tf.mul(dy, tf.mul(y as Tensor, tf.sub(1, y as Tensor))), true),
  unary('Tanh', (dy, _x, y) => tf.mul(dy, tf.sub(1, tf.square(y as Tensor))), true),
  unary('Erf', (dy, x) => tf.mul(dy, tf.mul(tf.exp(tf.neg(tf.square(x))), TWO_OVER_SQRT_PI))),
  unary('Softplus', (dy, x) => tf.mul(dy, tf.sigmoid(x))),
  unary('Sin', (dy, x) => tf.mul(dy, tf.cos(x))),
  unary('Cos', (dy, x) => tf.neg(tf.mul(dy, tf.sin(x)))),
  unary('Relu', (dy, x) => tf.mul(dy, tf.cast(tf.greater(x, 0), 'float32'))),
  unary('Relu6', (dy, x) => tf.mul(dy, tf.cast(tf.logicalAnd(tf.greater(x, 0), tf.less(x, 6)), 'float32'))),
  unary('LeakyRelu', (dy, x, _y, attrs) => tf.where(tf.greater(x, 0), dy, tf.mul(dy, attrs.alpha as number))),
  unary('Elu', (dy, _x, y) => tf.where(tf.greater(y as Tensor, 0), dy, tf.mul(dy, tf.add(y as Tensor, 1))), true),
  unary('ClipByValue', (dy, x, _y, attrs) =>
    tf.where(tf.logicalAnd(tf.greaterEqual(x, attrs.clipValueMin as number), tf.lessEqual(x, attrs.clipValueMax as number)), dy, tf.zerosLike(dy))),
  unary('Cast', (dy) => tf.cast(dy, 'float32')),
  unary('Identity', (dy) => tf.cast(dy, 'float32')),
  unary('Reshape', (dy, x) => tf.reshape(dy, x.shape)),
  {
    kernelName: 'ExpandDims',
    inputsToSave: ['input'],
    gradFunc: (dy, saved) => ({ input: () => tf.reshape(dy as Tensor, saved[0].shape) }),
  },
  unary('Transpose', (dy, _x, _y, attrs) => {
    const perm = attrs.perm as number[];
    const inv = new Array<number>(perm.length);
    perm.forEach((p, i) => { inv[p] = i; });
    return tf.transpose(dy, inv);
  }),
  unary('Slice', (dy, x, _y, attrs) => {
    const [begin, size] = tf.slice_util.parseSliceParams(x, attrs.begin as number[], attrs.size as number[]);
    return tf.pad(dy, x.shape.map((d, i) => [begin[i], d - begin[i] - size[i]] as [number, number]));
  }),
  unary('PadV2', (dy, x, _y, attrs) => tf.slice(dy, (attrs.paddings as number[][]).map((p) => p[0]), x.shape)),
  unary('Tile', (dy, x, _y, attrs) => {
    // dy viewed as [r0, s0, r1, s1, …]: summing the r axes folds every copy back onto x.
    const reps = attrs.reps as number[];
    const split: number[] = [];
    reps.forEach((r, i) => split.push(r, x.shape[i]));
    const axes = reps.map((_, i) => 2 * i);
    return tf.reshape(tf.sum(tf.reshape(dy, split), axes), x.shape);
  }),
  unary('Reverse', (dy, _x, _y, attrs) => tf.reverse(dy, attrs.dims as number[])),
  unary('Cumsum', (dy, _x, _y, attrs) =>
    tf.cumsum(dy, attrs.axis as number, attrs.exclusive as boolean, !(attrs.reverse as boolean))),
  unary('Sum', (dy, x, _y, attrs) => expandReduced(dy, x, attrs.axis)),
  unary('Mean', (dy, x, _y, attrs) => {
    const axes = tf.util.parseAxisParam(attrs.axis as number | number[], x.shape);
    const count = axes.reduce((n, a) => n * x.shape[a], 1);
    return tf.div(expandReduced(dy, x, attrs.axis), count);
  }),
  {
    kernelName: 'Max',
    inputsToSave: ['x'],
    outputsToSave: [true],
    gradFunc: (dy, saved, attrs) => ({
      x: () => {
        const [x, y] = saved;
        const mask = tf.cast(tf.equal(x, expandReduced(y, x, attrs.reductionIndices)), 'float32');
        return tf.mul(expandReduced(dy as Tensor, x, attrs.reductionIndices), mask);
      },
    }),
  },
  {
    kernelName: 'Min',
    inputsToSave: ['x'],
    outputsToSave: [true],
    gradFunc: (dy, saved, attrs) => ({
      x: () => {
        const [x, y] = saved;
        const mask = tf.cast(tf.equal(x, expandReduced(y, x, attrs.axis)), 'float32');
        return tf.mul(expandReduced(dy as Tensor, x, attrs.axis), mask);
      },
    }),
  },
  {
    kernelName: 'Softmax',
    outputsToSave: [true],
    gradFunc: (dy, saved, attrs) => ({
      logits: () => {
        const y = saved[0];
        const dim = attrs.dim as number;
        const dyy = tf.mul(dy as Tensor, y);
        return tf.sub(dyy, tf.mul(tf.sum(dyy, dim, true), y));
      },
    }),
  },

  // ---- elementwise binary (with broadcasting)
  binary('Add', (dy) => dy, (dy) => dy),
  binary('Sub', (dy) => dy, (dy) => tf.neg(dy)),
  binary('Multiply', (dy, _a, b) => tf.mul(dy, b), (dy, a) => tf.mul(dy, a)),
  binary('RealDiv', (dy, _a, b) => tf.div(dy, b), (dy, a, b) => tf.neg(tf.div(tf.mul(dy, a), tf.square(b)))),
  binary('Maximum',
    (dy, a, b) => tf.mul(dy, tf.cast(tf.greaterEqual(a, b), 'float32')),
    (dy, a, b) => tf.mul(dy, tf.cast(tf.less(a, b), 'float32'))),
  binary('Minimum',
    (dy, a, b) => tf.mul(dy, tf.cast(tf.lessEqual(a, b), 'float32')),
    (dy, a, b) => tf.mul(dy, tf.cast(tf.greater(a, b), 'float32'))),
  binary('SquaredDifference',
    (dy, a, b) => tf.mul(dy, tf.mul(tf.sub(a, b), 2)),
    (dy, a, b) => tf.mul(dy, tf.mul(tf.sub(b, a), 2))),
  binary('Pow',
    (dy, a, b) => tf.mul(dy, tf.mul(b, tf.pow(a, tf.sub(b, 1)))),
    (dy, a, b) => {
      // d(a^b)/db = a^b·ln a, taken as 0 where a <= 0 (ln undefined there).
      const pos = tf.greater(a, 0);
      const logA = tf.where(pos, tf.log(tf.where(pos, a, tf.onesLike(a))), tf.zerosLike(a));
      return tf.mul(dy, tf.mul(tf.pow(a, b), logA));
    }),
  {
    kernelName: 'AddN',
    saveAllInputs: true,
    gradFunc: (dy, saved) => Object.fromEntries(saved.map((_, i) => [String(i), () => tf.clone(dy as Tensor)])),
  },
  {
    kernelName: 'Select',
    inputsToSave: ['condition'],
    gradFunc: (dy, saved) => {
      const [cond] = saved;
      const d = dy as Tensor;
      return {
        condition: () => tf.zeros(cond.shape, 'float32'),
        t: () => tf.where(cond, d, tf.zerosLike(d)),
        e: () => tf.where(cond, tf.zerosLike(d), d),
      };
    },
  },

  // ---- matmul and convolutions
  {
    kernelName: 'BatchMatMul',
    inputsToSave: ['a', 'b'],
    gradFunc: (dy, saved, attrs) => {
      const [a, b] = saved;
      const g = dy as Tensor;
      const tA = attrs.transposeA as boolean;
      const tB = attrs.transposeB as boolean;
      let da: () => Tensor;
      let db: () => Tensor;
      if (!tA && !tB) {
        da = () => tf.matMul(g, b, false, true);
        db = () => tf.matMul(a, g, true, false);
      } else if (!tA && tB) {
        da = () => tf.matMul(g, b);
        db = () => tf.matMul(g, a, true, false);
      } else if (tA && !tB) {
        da = () => tf.matMul(b, g, false, true);
        db = () => tf.matMul(a, g);
      } else {
        da = () => tf.matMul(b, g, true, true);
        db = () => tf.matMul(g, a, true, true);
      }
      // Broadcast batch dims: fold the gradient back onto each input's own batch shape.
      return { a: () => unbroadcast(da(), a.shape), b: () => unbroadcast(db(), b.shape) };
    },
  },
  {
    kernelName: 'Conv2D',
    inputsToSave: ['x', 'filter'],
    gradFunc: (dy, saved, attrs) => {
      const [x, filter] = saved;
      const d = attrs.dilations as number | [number, number] | undefined;
      if (d !== undefined && !(d === 1 || (Array.isArray(d) && d.every((v) => v === 1)))) {
        throw new Error('conv2d gradient: dilations > 1 are not supported');
      }
      const common = {
        strides: attrs.strides, pad: attrs.pad, dataFormat: attrs.dataFormat, dimRoundingMode: attrs.dimRoundingMode,
      } as tf.NamedAttrMap;
      return {
        x: () => tf.engine().runKernel('Conv2DBackpropInput', { dy: dy as Tensor, filter }, { ...common, inputShape: x.shape }) as Tensor,
        filter: () => tf.engine().runKernel('Conv2DBackpropFilter', { x, dy: dy as Tensor }, { ...common, filterShape: filter.shape }) as Tensor,
      };
    },
  },
  {
    kernelName: 'AvgPool',
    inputsToSave: ['x'],
    gradFunc: (dy, saved, attrs) => ({
      x: () => tf.engine().runKernel('AvgPoolGrad', { dy: dy as Tensor, input: saved[0] }, attrs) as Tensor,
    }),
  },
  {
    kernelName: 'MaxPool',
    inputsToSave: ['x'],
    outputsToSave: [true],
    gradFunc: (dy, saved, attrs) => ({
      x: () => tf.engine().runKernel('MaxPoolGrad', { dy: dy as Tensor, input: saved[0], output: saved[1] }, attrs) as Tensor,
    }),
  },
  {
    kernelName: 'ResizeNearestNeighbor',
    inputsToSave: ['images'],
    gradFunc: (dy, saved, attrs) => ({
      images: () => tf.engine().runKernel('ResizeNearestNeighborGrad', { images: saved[0], dy: dy as Tensor }, attrs) as Tensor,
    }),
  },
  {
    kernelName: 'ResizeBilinear',
    inputsToSave: ['images'],
    gradFunc: (dy, saved, attrs) => ({
      images: () => tf.engine().runKernel('ResizeBilinearGrad', { images: saved[0], dy: dy as Tensor }, attrs) as Tensor,
    }),
  },

  // ---- indexing and layout
  {
    kernelName: 'GatherV2',
    inputsToSave: ['x', 'indices'],
    gradFunc: (dy, saved, attrs) => {
      const [x, indices] = saved;
      if (((attrs.batchDims as number) ?? 0) !== 0) throw new Error('gather gradient: batchDims > 0 is not supported');
      const axis = tf.util.parseAxisParam(attrs.axis as number, x.shape)[0];
      return {
        x: () => {
          const outer = tf.util.sizeFromShape(x.shape.slice(0, axis));
          const inner = tf.util.sizeFromShape(x.shape.slice(axis + 1));
          const flatIdx = tf.reshape(indices, [indices.size]);
          // dy is x.shape[:axis] ++ indices.shape ++ x.shape[axis+1:]; put the gathered axis first.
          if (outer === 1) {
            const g = tf.reshape(dy as Tensor, [indices.size, inner]);
            return tf.reshape(tf.unsortedSegmentSum(g, flatIdx as tf.Tensor1D, x.shape[axis]), x.shape);
          }
          const g = tf.transpose(tf.reshape(dy as Tensor, [outer, indices.size, inner]), [1, 0, 2]);
          const summed = tf.unsortedSegmentSum(g, flatIdx as tf.Tensor1D, x.shape[axis]);
          return tf.reshape(tf.transpose(summed, [1, 0, 2]), x.shape);
        },
        indices: () => tf.zeros(indices.shape, 'float32'),
      };
    },
  },
  {
    kernelName: 'Concat',
    saveAllInputs: true,
    gradFunc: (dy, saved, attrs) => {
      const axis = tf.util.parseAxisParam(attrs.axis as number, saved[0].shape)[0];
      const parts = tf.split(dy as Tensor, saved.map((t) => t.shape[axis]), axis);
      return Object.fromEntries(parts.map((p, i) => [String(i), () => p]));
    },
  },
  {
    kernelName: 'Pack',
    saveAllInputs: true,
    gradFunc: (dy, saved, attrs) => {
      const parts = tf.unstack(dy as Tensor, attrs.axis as number);
      return Object.fromEntries(saved.map((_, i) => [String(i), () => parts[i]]));
    },
  },
  {
    kernelName: 'Unpack',
    gradFunc: (dy, _saved, attrs) => ({ value: () => tf.stack(dy as Tensor[], attrs.axis as number) }),
  },
  {
    kernelName: 'SplitV',
    gradFunc: (dy, _saved, attrs) => {
      const dys = Array.isArray(dy) ? dy : [dy];
      return { x: () => tf.concat(dys, attrs.axis as number) };
    },
  },
  {
    kernelName: 'BroadcastTo',
    inputsToSave: ['x'],
    gradFunc: (dy, saved) => ({ x: () => unbroadcast(dy as Tensor, saved[0].shape) }),
  },

  // ---- ops whose outputs are piecewise constant: zero gradient, so masks/comparisons on the tape don't break backprop
  ...['Sign', 'Floor', 'Ceil', 'Round', 'Step', 'OnesLike', 'ZerosLike', 'IsNan', 'IsInf', 'IsFinite', 'LogicalNot', 'ArgMax', 'ArgMin'].map(
    (kernelName): tf.GradConfig => ({ kernelName, inputsToSave: ['x'], gradFunc: zeroGrads(['x']) })),
  ...['Greater', 'GreaterEqual', 'Less', 'LessEqual', 'Equal', 'NotEqual', 'LogicalAnd', 'LogicalOr', 'FloorDiv'].map(
    (kernelName): tf.GradConfig => ({ kernelName, inputsToSave: ['a', 'b'], gradFunc: zeroGrads(['a', 'b']) })),
  { kernelName: 'OneHot', inputsToSave: ['indices'], gradFunc: zeroGrads(['indices']) },
];

/** Kernel names this module provides gradients for. */
export const gradientKernelNames: readonly string[] = configs.map((c) => c.kernelName);

/** Registers every gradient above whose kernel has none yet; returns the names it registered. */
export function registerGradients(): string[] {
  const done: string[] = [];
  for (const c of configs) {
    if (tf.getGradient(c.kernelName)) continue;
    tf.registerGradient(c);
    done.push(c.kernelName);
  }
  return done;
}
