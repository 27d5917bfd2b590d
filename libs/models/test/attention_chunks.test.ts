import { initBackend, tf } from '@museum/tensor';
import { multiHeadAttention, setAttentionLogitsBudget } from '../src';

/** Chunked attention (long sequences, e.g. SD 1.5 at 64×64 latents) must compute what the one-shot version does. */
describe('multiHeadAttention in chunks', () => {
  const b = 2;
  const heads = 3;
  const lq = 10;
  const lk = 6;
  const c = heads * 4;
  let q: tf.Tensor;
  let k: tf.Tensor;
  let v: tf.Tensor;

  beforeAll(async () => {
    await initBackend({ log: () => {} });
    q = tf.randomNormal([b, lq, c], 0, 1, 'float32', 1);
    k = tf.randomNormal([b, lk, c], 0, 1, 'float32', 2);
    v = tf.randomNormal([b, lk, c], 0, 1, 'float32', 3);
  });
  afterAll(() => tf.dispose([q, k, v]));

  function withBudget<T>(floats: number, fn: () => T): T {
    const prev = setAttentionLogitsBudget(floats);
    try {
      return fn();
    } finally {
      setAttentionLogitsBudget(prev);
    }
  }
  const maxAbsDiff = (x: tf.Tensor, y: tf.Tensor) => tf.tidy(() => tf.max(tf.abs(tf.sub(x, y))).dataSync()[0]);

  const masks: Array<[string, () => tf.Tensor | undefined]> = [
    ['no mask', () => undefined],
    ['per-head key mask [B·heads, 1, Lk]', () => tf.mul(tf.cast(tf.greater(tf.randomUniform([b * heads, 1, lk], 0, 1, 'float32', 4), 0.3), 'float32'), -10000)],
    ['shared [Lq, Lk] bias', () => tf.randomNormal([lq, lk], 0, 1, 'float32', 5)],
    ['full [B·heads, Lq, Lk] bias', () => tf.randomNormal([b * heads, lq, lk], 0, 1, 'float32', 6)],
  ];
  // budgets: whole problem, two heads per chunk, one head per chunk, 3 query rows per chunk
  const budgets = [b * heads * lq * lk, 2 * lq * lk, lq * lk, 3 * lk];

  for (const [name, makeMask] of masks) {
    it(`gives the one-shot result with ${name} for every chunking`, () => {
      const mask = makeMask();
      const full = multiHeadAttention(q, k, v, heads, mask);
      for (const budget of budgets.slice(1)) {
        const before = tf.memory().numTensors;
        const chunked = withBudget(budget, () => multiHeadAttention(q, k, v, heads, mask));
        expect(tf.memory().numTensors).toBe(before + 1); // only the result survives
        expect(chunked.shape).toEqual([b, lq, c]);
        expect(maxAbsDiff(chunked, full)).toBeLessThan(1e-5);
        chunked.dispose();
      }
      tf.dispose([full, mask as tf.Tensor]);
    });
  }

  it('has the same gradients chunked (by rows) as in one piece', () => {
    const loss = (qq: tf.Tensor, kk: tf.Tensor, vv: tf.Tensor) => tf.sum(tf.mul(multiHeadAttention(qq, kk, vv, heads), tf.range(0, c, 1, 'float32')));
    const g = tf.grads(loss);
    const full = g([q, k, v]);
    const chunked = withBudget(3 * lk, () => g([q, k, v]));
    full.forEach((t, i) => expect(maxAbsDiff(chunked[i], t)).toBeLessThan(1e-4));
    tf.dispose([...full, ...chunked]);
  });

  it('rejects a mask that does not broadcast over batch·heads', () => {
    const bad = tf.zeros([b, 1, lk]); // per sample, not per head: [2, 1, 6] vs 6 = batch·heads
    expect(() => withBudget(lq * lk, () => multiHeadAttention(q, k, v, heads, bad))).toThrow(/broadcast/);
    bad.dispose();
  });
});
