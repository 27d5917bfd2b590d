import { gradientKernelNames, initBackend, tf } from '@museum/tensor';
import { Input, input, randn, runOn, maxRelError } from './kernels-helpers';

beforeAll(async () => {
  await initBackend({ log: () => {} });
  await tf.setBackend('wasm');
});

type Fn = (...xs: tf.Tensor[]) => tf.Tensor;

interface Case {
  inputs: Input[];
  f: Fn;
  /** Finite differences are skipped where the op is piecewise and eps could straddle a kink. */
  fd?: boolean;
}

const positive = (i: Input): Input => ({ ...i, values: (i.values as Float32Array).map((v) => Math.abs(v) + 0.5) });
const int32 = (values: number[]): tf.Tensor1D => tf.tensor1d(values, 'int32');
const nhwc = (t: tf.Tensor) => t as tf.Tensor4D;

const cases: Record<string, Case> = {
  'conv2d stride 1 valid': { inputs: [input([2, 6, 6, 3], 1), input([3, 3, 3, 4], 2)], f: (x, w) => tf.conv2d(nhwc(x), nhwc(w), 1, 'valid') },
  'conv2d stride 1 same': { inputs: [input([1, 5, 5, 4], 3), input([3, 3, 4, 2], 4)], f: (x, w) => tf.conv2d(nhwc(x), nhwc(w), 1, 'same') },
  'conv2d stride 2 (tf.pad then valid)': {
    inputs: [input([2, 8, 8, 3], 5), input([3, 3, 3, 5], 6)],
    f: (x, w) => tf.conv2d(nhwc(tf.pad(x, [[0, 0], [0, 1], [0, 1], [0, 0]])), nhwc(w), 2, 'valid'),
  },
  'conv2d 1x1': { inputs: [input([1, 4, 4, 6], 7), input([1, 1, 6, 3], 8)], f: (x, w) => tf.conv2d(nhwc(x), nhwc(w), 1, 'valid') },
  matMul: { inputs: [input([5, 7], 9), input([7, 4], 10)], f: (a, b) => tf.matMul(a, b) },
  'matMul transposeB': { inputs: [input([5, 7], 11), input([4, 7], 12)], f: (a, b) => tf.matMul(a, b, false, true) },
  'matMul transposeA': { inputs: [input([7, 5], 13), input([7, 4], 14)], f: (a, b) => tf.matMul(a, b, true, false) },
  'matMul batched transposeA+B': { inputs: [input([3, 7, 5], 15), input([3, 4, 7], 16)], f: (a, b) => tf.matMul(a, b, true, true) },
  'matMul broadcast weight': { inputs: [input([2, 5, 7], 17), input([7, 4], 18)], f: (a, b) => tf.matMul(a, b) },
  'gather (embedding rows)': { inputs: [input([10, 4], 19)], f: (t) => tf.gather(t, int32([1, 3, 3, 0, 9])) },
  'gather axis 1': { inputs: [input([3, 6, 2], 20)], f: (t) => tf.gather(t, int32([5, 0, 5]), 1) },
  pad: { inputs: [input([2, 3], 21)], f: (x) => tf.pad(x, [[1, 0], [0, 2]]) },
  transpose: { inputs: [input([2, 3, 4], 22)], f: (x) => tf.transpose(x, [2, 0, 1]) },
  reshape: { inputs: [input([2, 3, 4], 23)], f: (x) => tf.reshape(x, [4, 6]) },
  'expandDims/squeeze': { inputs: [input([3, 1, 4], 24)], f: (x) => tf.expandDims(tf.squeeze(x, [1]), 0) },
  slice: { inputs: [input([4, 5, 3], 25)], f: (x) => tf.slice(x, [1, 1, 0], [2, -1, 2]) },
  concat: { inputs: [input([2, 3], 26), input([2, 4], 27)], f: (a, b) => tf.concat([a, b], 1) },
  split: { inputs: [input([6, 3], 28)], f: (x) => tf.mul(tf.split(x, [2, 4], 0)[1], 2) },
  softmax: { inputs: [input([3, 6], 29)], f: (x) => tf.softmax(x) },
  logSoftmax: { inputs: [input([3, 6], 30)], f: (x) => tf.logSoftmax(x) },
  erf: { inputs: [input([12], 31)], f: (x) => tf.erf(x) },
  sigmoid: { inputs: [input([12], 32)], f: (x) => tf.sigmoid(x) },
  tanh: { inputs: [input([12], 33)], f: (x) => tf.tanh(x) },
  exp: { inputs: [input([12], 34)], f: (x) => tf.exp(x) },
  log: { inputs: [positive(input([12], 35))], f: (x) => tf.log(x) },
  sqrt: { inputs: [positive(input([12], 36))], f: (x) => tf.sqrt(x) },
  rsqrt: { inputs: [positive(input([12], 37))], f: (x) => tf.rsqrt(x) },
  square: { inputs: [input([12], 38)], f: (x) => tf.square(x) },
  'moments (group-norm style)': {
    inputs: [input([2, 4, 4, 6], 39)],
    f: (x) => {
      const { mean, variance } = tf.moments(x, [1, 2], true);
      return tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, 1e-5)));
    },
  },
  mean: { inputs: [input([3, 5], 40)], f: (x) => tf.mean(x, 1) },
  sum: { inputs: [input([3, 5], 41)], f: (x) => tf.sum(x, 0, true) },
  variance: { inputs: [input([3, 5], 42)], f: (x) => tf.moments(x, -1).variance },
  'mul broadcast': { inputs: [input([2, 3, 4], 43), input([4], 44)], f: (a, b) => tf.mul(a, b) },
  'add broadcast': { inputs: [input([2, 3, 4], 45), input([3, 1], 46)], f: (a, b) => tf.add(a, b) },
  'sub broadcast': { inputs: [input([2, 1, 4], 47), input([2, 3, 1], 48)], f: (a, b) => tf.sub(a, b) },
  'div broadcast': { inputs: [input([2, 3], 49), positive(input([1, 3], 50))], f: (a, b) => tf.div(a, b) },
  'maximum broadcast': { inputs: [input([2, 3], 51), input([3], 52)], f: (a, b) => tf.maximum(a, b), fd: false },
  'minimum broadcast': { inputs: [input([2, 3], 53), input([3], 54)], f: (a, b) => tf.minimum(a, b), fd: false },
  'resizeNearestNeighbor 2x (Upsample2D)': {
    inputs: [input([1, 3, 4, 2], 55)],
    f: (x) => tf.image.resizeNearestNeighbor(nhwc(x), [6, 8]),
  },
  avgPool: { inputs: [input([1, 4, 4, 3], 56)], f: (x) => tf.avgPool(nhwc(x), 2, 2, 'valid') },
  maxPool: { inputs: [input([1, 4, 4, 3], 57)], f: (x) => tf.maxPool(nhwc(x), 2, 2, 'valid'), fd: false },
  cast: { inputs: [input([6], 58)], f: (x) => tf.mul(tf.cast(x, 'float32'), 3) },
  stack: { inputs: [input([2, 3], 59), input([2, 3], 60)], f: (a, b) => tf.stack([a, b], 1) },
  unstack: { inputs: [input([2, 3], 61)], f: (x) => { const u = tf.unstack(x, 1); return tf.add(u[0], tf.mul(u[2], 2)); } },
  tile: { inputs: [input([2, 3], 62)], f: (x) => tf.tile(x, [2, 3]) },
  'where/select': { inputs: [input([2, 3], 63), input([2, 3], 64)], f: (a, b) => tf.where(tf.greater(a, b), a, b), fd: false },
  clipByValue: { inputs: [input([12], 65)], f: (x) => tf.clipByValue(x, -0.5, 0.5), fd: false },
  abs: { inputs: [input([12], 66)], f: (x) => tf.abs(x), fd: false },
  neg: { inputs: [input([12], 67)], f: (x) => tf.neg(x) },
  cumsum: { inputs: [input([2, 5], 68)], f: (x) => tf.cumsum(x, 1) },
  'cumsum exclusive reverse': { inputs: [input([5, 2], 69)], f: (x) => tf.cumsum(x, 0, true, true) },
  relu: { inputs: [input([12], 70)], f: (x) => tf.relu(x), fd: false },
  pow: { inputs: [positive(input([6], 71)), input([6], 72)], f: (a, b) => tf.pow(a, b) },
  'squaredDifference': { inputs: [input([2, 3], 73), input([3], 74)], f: (a, b) => tf.squaredDifference(a, b) },
  max: { inputs: [input([3, 5], 75)], f: (x) => tf.max(x, 1), fd: false },
  softplus: { inputs: [input([12], 76)], f: (x) => tf.softplus(x) },
  'sin/cos': { inputs: [input([12], 77)], f: (x) => tf.add(tf.sin(x), tf.cos(x)) },
  reverse: { inputs: [input([3, 4], 78)], f: (x) => tf.mul(tf.reverse(x, 1), tf.range(0, 4)) },
};

/** Loss = Σ f(xs) ⊙ w with a fixed pseudo-random cotangent w, so every output element matters. */
function weightedLoss(f: Fn, xs: tf.Tensor[]): tf.Scalar {
  const y = f(...xs);
  return tf.sum(tf.mul(y, tf.tensor(randn(y.size, 4242), y.shape)));
}

function gradsOf(f: Fn) {
  return (...xs: tf.Tensor[]): tf.Tensor[] => tf.grads((...ys: tf.Tensor[]) => weightedLoss(f, ys))(xs);
}

describe('gradients: wasm matches cpu (max rel. error < 1e-4)', () => {
  for (const [name, c] of Object.entries(cases)) {
    test(name, async () => {
      const ref = await runOn('cpu', c.inputs, gradsOf(c.f));
      const got = await runOn('wasm', c.inputs, gradsOf(c.f));
      await tf.setBackend('wasm');
      ref.forEach((g, i) => expect(g.length).toBe(c.inputs[i].values.length));
      expect(maxRelError(got, ref)).toBeLessThan(1e-4);
    });
  }
});

describe('gradients are the true derivatives (central finite differences on cpu)', () => {
  const eps = 1e-2;
  for (const [name, c] of Object.entries(cases)) {
    if (c.fd === false) continue;
    test(name, async () => {
      const dirs = c.inputs.map((inp, k) => randn(inp.values.length, 900 + k));
      const shifted = (sign: number): Input[] =>
        c.inputs.map((inp, k) => ({ ...inp, values: (inp.values as Float32Array).map((v, i) => v + sign * eps * dirs[k][i]) }));
      const [plus] = await runOn('cpu', shifted(1), (...xs) => [weightedLoss(c.f, xs)]);
      const [minus] = await runOn('cpu', shifted(-1), (...xs) => [weightedLoss(c.f, xs)]);
      const grads = await runOn('cpu', c.inputs, gradsOf(c.f));
      await tf.setBackend('wasm');
      const numeric = (plus[0] - minus[0]) / (2 * eps);
      let analytic = 0;
      grads.forEach((g, k) => g.forEach((v, i) => { analytic += v * dirs[k][i]; }));
      expect(Math.abs(numeric - analytic)).toBeLessThan(2e-2 * Math.max(1, Math.abs(analytic)));
    });
  }
});

test('piecewise ops route the gradient to the right elements', async () => {
  const [gMax] = await runOn('cpu', [{ shape: [2, 2], values: Float32Array.from([1, 3, 5, 2]) }], gradsOf((x) => tf.max(x, 1)));
  const w = randn(2, 4242);
  expect(Array.from(gMax, (v) => v + 0)).toEqual([0, w[0], w[1], 0]);
  const [gClip] = await runOn('cpu', [{ shape: [3], values: Float32Array.from([-2, 0.1, 2]) }], gradsOf((x) => tf.clipByValue(x, -1, 1)));
  expect(Array.from(gClip, (v) => v + 0)).toEqual([0, randn(3, 4242)[1], 0]);
  await tf.setBackend('wasm');
});

test('variableGrads on wasm: conv + linear + embedding, no tensor leaks', async () => {
  await tf.setBackend('wasm');
  const emb = tf.variable(tf.tensor(randn(20 * 8, 1), [20, 8]));
  const w = tf.variable(tf.tensor(randn(3 * 3 * 8 * 4, 2, 0.3), [3, 3, 8, 4]));
  const lin = tf.variable(tf.tensor(randn(4 * 5, 3), [4, 5]));
  const before = tf.memory().numTensors;
  const { value, grads } = tf.variableGrads(() => {
    const tokens = tf.gather(emb, tf.tensor1d([1, 4, 4, 7, 19, 0, 2, 3, 5], 'int32')); // [9, 8]
    const img = tf.reshape(tokens, [1, 3, 3, 8]) as tf.Tensor4D;
    const h = tf.conv2d(img, w as tf.Tensor4D, 1, 'same'); // [1, 3, 3, 4]
    const out = tf.matMul(tf.reshape(h, [9, 4]), lin);
    return tf.mean(tf.square(out));
  });
  expect(Object.keys(grads).sort()).toEqual([emb.name, lin.name, w.name].sort());
  expect(grads[emb.name].shape).toEqual([20, 8]);
  // Row 4 was gathered twice, row 6 never.
  const g = grads[emb.name].arraySync() as number[][];
  expect(g[6].every((v) => v === 0)).toBe(true);
  expect(g[4].some((v) => v !== 0)).toBe(true);
  expect(Number.isFinite(value.dataSync()[0])).toBe(true);
  tf.dispose([value, ...Object.values(grads)]);
  expect(tf.memory().numTensors).toBe(before);
  tf.dispose([emb, w, lin]);
});

test('gradients are registered for the kernels these ops need', () => {
  for (const k of ['Conv2D', 'BatchMatMul', 'GatherV2', 'Softmax', 'ResizeNearestNeighbor', 'Select', 'Greater']) {
    expect(gradientKernelNames).toContain(k);
    expect(tf.getGradient(k)).toBeTruthy();
  }
});
