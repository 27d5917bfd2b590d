import { initBackend, tf } from '@museum/tensor';
import { AdamW, Ema, clipGradNorm, warmupCosineLr, flattenTensors, unflattenTensors } from '@museum/training';

beforeAll(async () => {
  await initBackend({ log: () => {} });
});

test('AdamW matches a scalar reference implementation over several steps, with decoupled decay', () => {
  const x = tf.variable(tf.tensor1d([1, -2, 0.5]));
  const opt = new AdamW([x], { lr: 0.1, weightDecay: 0.01 });
  const ref = [1, -2, 0.5];
  const m = [0, 0, 0];
  const v = [0, 0, 0];
  for (let step = 1; step <= 4; step++) {
    const gVals = ref.map((r) => 2 * r + 0.3); // gradient of r^2 + 0.3 r
    const g = tf.tensor1d(gVals);
    opt.apply([g]);
    g.dispose();
    for (let i = 0; i < 3; i++) {
      m[i] = 0.9 * m[i] + 0.1 * gVals[i];
      v[i] = 0.999 * v[i] + 0.001 * gVals[i] ** 2;
      const mh = m[i] / (1 - 0.9 ** step);
      const vh = v[i] / (1 - 0.999 ** step);
      ref[i] = ref[i] - 0.1 * (mh / (Math.sqrt(vh) + 1e-8)) - 0.1 * 0.01 * ref[i];
    }
  }
  const got = Array.from(x.dataSync());
  got.forEach((g, i) => expect(g).toBeCloseTo(ref[i], 5));
  opt.dispose();
  x.dispose();
});

test('AdamW state round-trips through stateTensors/loadState', () => {
  const a = tf.variable(tf.tensor1d([1, 2]));
  const b = tf.variable(tf.tensor1d([1, 2]));
  const o1 = new AdamW([a], { lr: 0.05 });
  const o2 = new AdamW([b], { lr: 0.05 });
  const g = tf.tensor1d([0.5, -1]);
  o1.apply([g]);
  o2.apply([g]);
  const state = o1.stateTensors();
  const o3 = new AdamW([b], { lr: 0.05 });
  o3.loadState(state, o1.step);
  o1.apply([g]);
  o3.apply([g]);
  expect(Array.from(a.dataSync())).toEqual(Array.from(b.dataSync()));
  for (const t of state.values()) t.dispose();
  [o1, o2, o3].forEach((o) => o.dispose());
  g.dispose();
  a.dispose();
  b.dispose();
});

test('clipGradNorm scales to the max norm and leaves small gradients alone', () => {
  const g = [tf.tensor1d([3, 0]), tf.tensor1d([4])];
  const { grads, norm } = clipGradNorm(g, 1);
  expect(norm).toBeCloseTo(5, 5);
  expect(grads[0]!.dataSync()[0]).toBeCloseTo(0.6, 5);
  expect(grads[1]!.dataSync()[0]).toBeCloseTo(0.8, 5);
  const small = clipGradNorm(g, 10);
  expect(small.grads[1]!.dataSync()[0]).toBeCloseTo(4, 5);
  [...g, ...grads, ...small.grads].forEach((t) => t?.dispose());
});

test('EMA moves toward the live weights and warmup-cosine has the right ends', () => {
  const w = tf.variable(tf.tensor1d([0]));
  const ema = new Ema([w], 0.9);
  w.assign(tf.tensor1d([1]));
  ema.update(1000);
  expect(ema.shadow[0].dataSync()[0]).toBeCloseTo(0.1, 5);
  ema.dispose();
  w.dispose();
  expect(warmupCosineLr(0, { peak: 1, warmup: 10, total: 100 })).toBeCloseTo(0.1);
  expect(warmupCosineLr(10, { peak: 1, warmup: 10, total: 100 })).toBeCloseTo(1);
  expect(warmupCosineLr(100, { peak: 1, warmup: 10, total: 100, minRatio: 0.1 })).toBeCloseTo(0.1);
});

test('flatten/unflatten round trip with extras', () => {
  const ts = [tf.tensor2d([[1, 2], [3, 4]]), null, tf.tensor1d([5])];
  const shapes = [[2, 2], [3], [1]];
  const flat = flattenTensors(ts, shapes, [9]);
  expect(Array.from(flat)).toEqual([1, 2, 3, 4, 0, 0, 0, 5, 9]);
  const { tensors, extra } = unflattenTensors(flat, shapes);
  expect(tensors.map((t) => t.shape)).toEqual(shapes);
  expect(Array.from(extra)).toEqual([9]);
  [...ts, ...tensors].forEach((t) => t?.dispose());
});
