/** The instruments' parts, independent of the shipped weights. */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { initBackend, tf } from '@museum/tensor';
import { GroupNorm } from '@museum/models';
import { Rng, SIZE, renderSample, rgbToFloat } from '@museum/world';
import {
  augmentImage,
  classesOf,
  crossEntropy,
  DEFAULT_AUGMENT,
  defaultClassifierConfig,
  drawSamples,
  FastGroupNorm,
  gaussianBlur,
  groupNorm,
  loadInstrument,
  makeBatch,
  saveInstrument,
  shift,
  soften,
  trainInstrument,
  WorldClassifier,
  type TrainProgress,
} from '@museum/instruments';

let tmp: string;
beforeAll(async () => {
  await initBackend({ log: () => {} });
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'instruments-parts-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
}

/** GroupNorm written plainly with autodiff-able ops: the reference for the hand-written backward. */
function plainGroupNorm(x: tf.Tensor, g: tf.Tensor, b: tf.Tensor, groups: number): tf.Tensor {
  const [n, h, w, c] = x.shape;
  const xg = tf.reshape(x, [n, h * w, groups, c / groups]);
  const { mean, variance } = tf.moments(xg, [1, 3], true);
  const xhat = tf.reshape(tf.div(tf.sub(xg, mean), tf.sqrt(tf.add(variance, 1e-5))), x.shape);
  return tf.add(tf.mul(xhat, g), b);
}

test('FastGroupNorm matches GroupNorm forward and autodiff gradients', () => {
  const ref = new GroupNorm(4, 8);
  const fast = new FastGroupNorm(4, 8);
  const gamma = tf.randomNormal([8], 1, 0.3, 'float32', 3);
  const beta = tf.randomNormal([8], 0, 0.3, 'float32', 4);
  for (const m of [ref, fast]) {
    m.weight.variable.assign(gamma);
    m.bias.variable.assign(beta);
  }
  const x = tf.randomNormal([2, 5, 6, 8], 0.5, 2, 'float32', 5);
  const w = tf.randomNormal([2, 5, 6, 8], 0, 1, 'float32', 6);
  const yr = tf.tidy(() => ref.forward(x));
  const yf = tf.tidy(() => fast.forward(x));
  expect(maxAbsDiff(yr, yf)).toBeLessThan(1e-5);
  // gradients for input, gamma and beta through a non-linear loss
  const loss = (norm: (a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) => tf.Tensor) => (a: tf.Tensor, g: tf.Tensor, b: tf.Tensor) =>
    tf.sum(tf.mul(tf.square(norm(a, g, b)), w));
  const gr = tf.grads(loss((a, g, b) => plainGroupNorm(a, g, b, 4)))([x, gamma, beta]);
  const gf = tf.grads(loss((a, g, b) => groupNorm(a, g, b, 4)))([x, gamma, beta]);
  gr.forEach((g, i) => {
    const scale = tf.tidy(() => tf.max(tf.abs(g)).dataSync()[0]);
    expect(scale).toBeGreaterThan(0);
    expect(maxAbsDiff(g, gf[i])).toBeLessThan(1e-4 * Math.max(1, scale));
  });
  tf.dispose([gamma, beta, x, w, yr, yf, ...gr, ...gf]);
  ref.dispose();
  fast.dispose();
});

test('augmentations are seeded, bounded and do what they say', () => {
  const img = rgbToFloat(renderSample({ style: 'plain', seed: 5 }).rgb);
  const same = (u: Float32Array, v: Float32Array) => u.length === v.length && u.every((x, i) => x === v[i]);
  expect(same(augmentImage(img, new Rng(9)), augmentImage(img, new Rng(9)))).toBe(true);
  let differ = 0;
  for (let s = 0; s < 8; s++) {
    const c = augmentImage(img, new Rng(100 + s));
    expect(c.every((v) => v >= -1 && v <= 1)).toBe(true);
    if (!same(c, img)) differ++;
  }
  expect(differ).toBeGreaterThan(4);
  // pClean = 1 leaves the image untouched
  expect(same(augmentImage(img, new Rng(1), { ...DEFAULT_AUGMENT, pClean: 1 }), img)).toBe(true);
  // shift moves a pixel; blur and soften keep a constant image constant and the mean of any image close
  const shifted = shift(img, SIZE, 2, 1);
  expect(shifted[((10 + 1) * SIZE + (20 + 2)) * 3]).toBe(img[(10 * SIZE + 20) * 3]);
  const flat = new Float32Array(SIZE * SIZE * 3).fill(0.3);
  for (const out of [gaussianBlur(flat, SIZE, 0.8), soften(flat, SIZE)]) expect(Math.max(...out.map((v) => Math.abs(v - 0.3)))).toBeLessThan(1e-5);
  const mean = (v: Float32Array) => v.reduce((s, x) => s + x, 0) / v.length;
  expect(Math.abs(mean(gaussianBlur(img, SIZE, 1)) - mean(img))).toBeLessThan(0.02);
  expect(Math.abs(mean(soften(img, SIZE)) - mean(img))).toBeLessThan(0.02);
});

test('training and held-out images come from disjoint seed ranges, labels follow the kind', () => {
  const train = drawSamples(new Rng(1), 40, 'train');
  const held = drawSamples(new Rng(1), 40, 'heldout');
  expect(train.every((s) => s.seed < 2 ** 31)).toBe(true);
  expect(held.every((s) => s.seed >= 2 ** 31)).toBe(true);
  for (const kind of ['style', 'shape', 'colour'] as const) {
    const batch = makeBatch(kind, train.slice(0, 6));
    expect(batch.x.shape).toEqual([6, 64, 64, 3]);
    const classes = classesOf(kind);
    batch.labels.forEach((l, i) => expect(classes[l]).toBe(kind === 'style' ? train[i].style : kind === 'shape' ? train[i].shape : train[i].colour));
    expect(Array.from(batch.y.dataSync())).toEqual(batch.labels);
    tf.dispose([batch.x, batch.y]);
  }
});

test('cross-entropy equals -log softmax of the true class', () => {
  const logits = tf.tensor2d([[2, 0, -1], [0.5, 0.5, 3]]);
  const labels = tf.tensor1d([0, 2], 'int32');
  const l = crossEntropy(logits, labels);
  const p = tf.tidy(() => tf.softmax(logits).dataSync());
  expect(l.dataSync()[0]).toBeCloseTo(-(Math.log(p[0]) + Math.log(p[5])) / 2, 5);
  tf.dispose([logits, labels, l]);
});

test('a short training run lowers the loss without leaking tensors, and save -> load (F32) keeps logits exactly', () => {
  const progress: TrainProgress[] = [];
  const clf = trainInstrument('colour', {
    steps: 24,
    batchSize: 8,
    seed: 3,
    peakLr: 3e-3,
    warmup: 2,
    heldOut: 40,
    heldOutDegraded: false,
    config: { block_out_channels: [8, 16, 16, 16], strides: [2, 2, 2, 2], norm_num_groups: 4 },
    progressEvery: 4,
    onProgress: (p) => progress.push(p),
  });
  expect(progress).toHaveLength(6);
  // tensors alive stay flat across steps
  expect(new Set(progress.map((p) => p.numTensors)).size).toBe(1);
  expect(progress[progress.length - 1].loss).toBeLessThan(progress[0].loss);
  const rec = clf.record!;
  expect(rec.steps).toBe(24);
  expect(rec.heldout.count).toBe(40);
  expect(rec.heldout.confusion.flat().reduce((a, b) => a + b, 0)).toBe(40);

  saveInstrument(tmp, clf, { dtype: 'F32' });
  const again = loadInstrument(tmp, 'colour');
  expect(again.config).toEqual(clf.config);
  expect(again.record).toEqual(JSON.parse(JSON.stringify(rec)));
  const x = tf.randomUniform([3, 64, 64, 3], -1, 1, 'float32', 8) as tf.Tensor4D;
  const a = tf.tidy(() => clf.forward(x));
  const b = tf.tidy(() => again.forward(x));
  expect(Array.from(b.dataSync())).toEqual(Array.from(a.dataSync()));
  tf.dispose([x, a, b]);
  clf.dispose();
  again.dispose();
});

test('the classifier names its parameters like a torch module and checks its input', () => {
  const clf = new WorldClassifier(defaultClassifierConfig('shape'));
  const names = clf.namedParameters().map(([n]) => n);
  expect(names).toContain('stages.0.conv.weight');
  expect(names).toContain('stages.4.norm.bias');
  expect(names).toContain('head.weight');
  expect(clf.classes).toHaveLength(8);
  expect(() => clf.forward(tf.zeros([1, 32, 32, 3]) as tf.Tensor4D)).toThrow(/expected images/);
  clf.dispose();
});
