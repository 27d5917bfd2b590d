import { initBackend, tf } from '@museum/tensor';
import {
  cloraPenalty,
  ewcPenalty,
  disposeEarlierUpdateGroup,
  disposeEarlierUpdates,
  featureRegularization,
  groupEarlierUpdates,
  inputSubspaceRegularization,
  blockUpdate,
  lowRankDifference,
  lowRankInner,
  predictCleanLatent,
  stackEarlierInputSubspaces,
  stackEarlierUpdates,
  stackedInputSubspaceRegularization,
  styleDistillationLoss,
  trainingNoise,
  weightRegularization,
  type LowRank,
} from '../src';

const val = (t: tf.Tensor) => {
  const v = t.dataSync()[0];
  t.dispose();
  return v;
};

/** e_i as a column [n, 1] / row [1, n]. */
function col(n: number, i: number, s = 1): tf.Tensor2D {
  const a = new Float32Array(n);
  a[i] = s;
  return tf.tensor2d(a, [n, 1]);
}
function row(n: number, i: number, s = 1): tf.Tensor2D {
  const a = new Float32Array(n);
  a[i] = s;
  return tf.tensor2d(a, [1, n]);
}

beforeAll(async () => {
  await initBackend({ log: () => {} });
});

describe('weight regularization (squared cosine of LoRA updates, low-rank form)', () => {
  it('computes Frobenius inner products of P·Q without forming them', () => {
    const a: LowRank = { P: tf.randomNormal([6, 3], 0, 1, 'float32', 1) as tf.Tensor2D, Q: tf.randomNormal([3, 5], 0, 1, 'float32', 2) as tf.Tensor2D };
    const b: LowRank = { P: tf.randomNormal([6, 2], 0, 1, 'float32', 3) as tf.Tensor2D, Q: tf.randomNormal([2, 5], 0, 1, 'float32', 4) as tf.Tensor2D };
    const dense = val(tf.sum(tf.mul(tf.matMul(a.P, a.Q), tf.matMul(b.P, b.Q))));
    expect(val(lowRankInner(a, b))).toBeCloseTo(dense, 4);
    tf.dispose([a.P, a.Q, b.P, b.Q]);
  });

  it('is zero for orthogonal updates and grows with their overlap, up to 1 per earlier style', () => {
    const n = 6;
    // earlier style: ΔW_s = e0 ⊗ f0 (rank 1)
    const earlierUpdate: LowRank = { P: col(n, 0), Q: row(n, 0) };
    const earlier = new Map([['layer', stackEarlierUpdates([earlierUpdate])]]);
    const regFor = (theta: number) => {
      // ΔW_t = e0 ⊗ (cosθ f0 + sinθ f1): cos(ΔW_t, ΔW_s) = cosθ
      const Q = tf.tidy(() => tf.add(row(n, 0, Math.cos(theta)), row(n, 1, Math.sin(theta)))) as tf.Tensor2D;
      const cur = new Map([['layer', { P: col(n, 0), Q }]]);
      const r = val(weightRegularization(cur, earlier));
      tf.dispose([cur.get('layer')!.P, Q]);
      return r;
    };
    expect(regFor(Math.PI / 2)).toBeCloseTo(0, 6);
    const values = [Math.PI / 2, Math.PI / 3, Math.PI / 4, Math.PI / 6, 0].map(regFor);
    for (let i = 1; i < values.length; i++) expect(values[i]).toBeGreaterThan(values[i - 1]);
    expect(values[1]).toBeCloseTo(0.25, 4); // cos² 60°
    expect(values[4]).toBeCloseTo(1, 4);
    expect(regFor(Math.PI)).toBeCloseTo(1, 4); // the opposite direction interferes as much

    // an update orthogonal to two earlier ones costs nothing; one inside their span costs the sum of cos²
    const two = new Map([['layer', stackEarlierUpdates([earlierUpdate, { P: col(n, 1), Q: row(n, 1) }])]]);
    const orth = new Map([['layer', { P: col(n, 2), Q: row(n, 2) }]]);
    expect(val(weightRegularization(orth, two))).toBeCloseTo(0, 6);
    const mixed = new Map([['layer', { P: tf.concat([col(n, 0), col(n, 1)], 1) as tf.Tensor2D, Q: tf.concat([row(n, 0), row(n, 1)], 0) as tf.Tensor2D }]]);
    expect(val(weightRegularization(mixed, two))).toBeCloseTo(1, 4); // cos² = ½ with each
    for (const m of [earlier, two]) for (const e of m.values()) disposeEarlierUpdates(e);
    for (const m of [orth, mixed]) for (const c of m.values()) tf.dispose([c.P, c.Q]);
    tf.dispose([earlierUpdate.P, earlierUpdate.Q]);
  });

  it('sees the difference of consecutive adapters as the task update', () => {
    const down = tf.randomNormal([5, 2], 0, 1, 'float32', 5) as tf.Tensor2D;
    const up1 = tf.randomNormal([2, 4], 0, 1, 'float32', 6) as tf.Tensor2D;
    const up2 = tf.randomNormal([2, 4], 0, 1, 'float32', 7) as tf.Tensor2D;
    const d = lowRankDifference({ down, up: up2, scale: 0.5 }, { down, up: up1, scale: 0.5 });
    const dense = tf.matMul(d.P, d.Q);
    const expected = tf.mul(tf.matMul(down, tf.sub(up2, up1)), 0.5);
    expect(val(tf.max(tf.abs(tf.sub(dense, expected))))).toBeLessThan(1e-5);
    tf.dispose([down, up1, up2, d.P, d.Q, dense, expected]);
  });
});

describe('weight regularization, input-subspace form (cosine of input-side Grams)', () => {
  const n = 6;
  it('is zero for orthogonal input directions and grows to 1 as they align (cos² for rank 1), whatever the outputs do', () => {
    const earlierUpdate: LowRank = { P: col(n, 0), Q: row(n, 0) };
    const earlier = new Map([['layer', stackEarlierInputSubspaces([earlierUpdate])]]);
    const earlierCosine = new Map([['layer', stackEarlierUpdates([earlierUpdate])]]);
    const regFor = (theta: number, outputIndex: number) => {
      // ΔW_t = (cosθ e0 + sinθ e1) ⊗ f_out: reads input direction at angle θ to the earlier one's
      const P = tf.tidy(() => tf.add(col(n, 0, Math.cos(theta)), col(n, 1, Math.sin(theta)))) as tf.Tensor2D;
      const Q = row(n, outputIndex, 3);
      const r = val(inputSubspaceRegularization(new Map([['layer', { P, Q }]]), earlier));
      tf.dispose([P, Q]);
      return r;
    };
    expect(regFor(Math.PI / 2, 0)).toBeCloseTo(0, 6);
    const values = [Math.PI / 2, Math.PI / 3, Math.PI / 4, Math.PI / 6, 0].map((th) => regFor(th, 0));
    for (let i = 1; i < values.length; i++) expect(values[i]).toBeGreaterThan(values[i - 1]);
    expect(values[1]).toBeCloseTo(0.25, 4);
    expect(values[4]).toBeCloseTo(1, 4);
    // same input direction, orthogonal output: the matrix cosine sees nothing, the input-subspace form sees it all
    expect(regFor(0, 3)).toBeCloseTo(1, 4);
    const Pt = col(n, 0);
    const Qt = row(n, 3);
    expect(val(weightRegularization(new Map([['layer', { P: Pt, Q: Qt }]]), earlierCosine))).toBeCloseTo(0, 6);
    tf.dispose([Pt, Qt, earlierUpdate.P, earlierUpdate.Q]);
    for (const e of [...earlier.values(), ...earlierCosine.values()]) disposeEarlierUpdates(e);
  });

  it('style blocks: the block form of each update gives the same penalty as the difference of whole adapters', () => {
    // rank 6 in blocks of 2; version 1 trained block 0, version 2 block 1, the current style trains block 2
    const rnd = (shape: [number, number], seed: number) => tf.randomNormal(shape, 0, 1, 'float32', seed) as tf.Tensor2D;
    const withBlock = (base: tf.Tensor2D, fresh: tf.Tensor2D, start: number, axis: 0 | 1) =>
      tf.tidy(() => {
        const idx = tf.range(0, base.shape[axis], 1, 'int32');
        const inBlock = tf.logicalAnd(tf.greaterEqual(idx, start), tf.less(idx, start + 2));
        return tf.where(axis === 1 ? tf.reshape(inBlock, [1, -1]) : tf.reshape(inBlock, [-1, 1]), fresh, base) as tf.Tensor2D;
      });
    const down0 = rnd([7, 6], 10); // the init every block's down starts from
    const up0 = tf.zeros([6, 5]) as tf.Tensor2D;
    const f1 = { down: withBlock(down0, rnd([7, 6], 11), 0, 1), up: withBlock(up0, rnd([6, 5], 12), 0, 0), scale: 0.7 };
    const f2 = { down: withBlock(f1.down, rnd([7, 6], 13), 2, 1), up: withBlock(f1.up, rnd([6, 5], 14), 2, 0), scale: 0.7 };
    const f3 = { down: withBlock(f2.down, rnd([7, 6], 15), 4, 1), up: withBlock(f2.up, rnd([6, 5], 16), 4, 0), scale: 0.7 };
    const whole = stackEarlierInputSubspaces([lowRankDifference(f1, undefined), lowRankDifference(f2, f1)]);
    const blocks = stackEarlierInputSubspaces([blockUpdate(f1, 0, 2), blockUpdate(f2, 2, 2)]);
    const viaWhole = val(inputSubspaceRegularization(new Map([['a', lowRankDifference(f3, f2)]]), new Map([['a', whole]])));
    const viaBlocks = val(inputSubspaceRegularization(new Map([['a', blockUpdate(f3, 4, 2)]]), new Map([['a', blocks]])));
    expect(viaWhole).toBeGreaterThan(0.01);
    expect(viaBlocks).toBeCloseTo(viaWhole, 4);
    const u = blockUpdate(f3, 4, 2);
    expect(u.P.shape).toEqual([7, 2]);
    expect(u.Q.shape).toEqual([2, 5]);
    disposeEarlierUpdates(whole);
    disposeEarlierUpdates(blocks);
    tf.dispose([down0, up0, f1.down, f1.up, f2.down, f2.up, f3.down, f3.up, u.P, u.Q]);
  });

  it('equals ⟨G_t, G_s⟩ / (‖G_t‖‖G_s‖) of the dense updates, summed over earlier styles and averaged over layers', () => {
    const rnd = (shape: [number, number], seed: number) => tf.randomNormal(shape, 0, 1, 'float32', seed) as tf.Tensor2D;
    const ups: LowRank[] = [{ P: rnd([7, 2], 1), Q: rnd([2, 5], 2) }, { P: rnd([7, 4], 3), Q: rnd([4, 5], 4) }];
    const cur: LowRank = { P: rnd([7, 3], 5), Q: rnd([3, 5], 6) };
    const gram = (u: LowRank) => tf.tidy(() => { const w = tf.matMul(u.P, u.Q); return tf.matMul(w, w, false, true); });
    const gt = gram(cur);
    let expected = 0;
    for (const u of ups) {
      const gs = gram(u);
      expected += val(tf.div(tf.sum(tf.mul(gt, gs)), tf.mul(tf.norm(gt), tf.norm(gs))));
      gs.dispose();
    }
    const two = stackEarlierInputSubspaces(ups);
    // layer b has no earlier update: it does not count in the average
    const got = val(inputSubspaceRegularization(new Map([['a', cur], ['b', cur]]), new Map([['a', two]])));
    expect(got).toBeCloseTo(expected, 4);
    expect(got).toBeGreaterThan(0);
    // a zero update (the first step of a task) costs nothing
    const zero: LowRank = { P: tf.zeros([7, 3]) as tf.Tensor2D, Q: tf.zeros([3, 5]) as tf.Tensor2D };
    expect(val(inputSubspaceRegularization(new Map([['a', zero]]), new Map([['a', two]])))).toBe(0);
    disposeEarlierUpdates(two);
    tf.dispose([gt, cur.P, cur.Q, zero.P, zero.Q, ...ups.flatMap((u) => [u.P, u.Q])]);
  });

  it('stays finite and exact when the two adapters of an earlier update nearly agree (near-singular S_s S_sᵀ)', () => {
    const rnd = (shape: [number, number], seed: number) => tf.randomNormal(shape, 0, 1, 'float32', seed) as tf.Tensor2D;
    // ΔW_s = A_s B_s − A_{s−1} B_{s−1} with B_s ≈ B_{s−1} and more rows than outputs (rank 2·8 > 4 outputs, as
    // rank-32 adapters on 64-wide layers): S_s = [B_s; B_{s−1}] [16, 4] has rank 4, S_s S_sᵀ is far from full rank
    const B = rnd([8, 4], 1);
    const nearlyB = tf.tidy(() => tf.add(B, tf.mul(rnd([8, 4], 2), 1e-6))) as tf.Tensor2D;
    const earlierUpdate: LowRank = { P: rnd([8, 16], 3), Q: tf.concat([B, nearlyB], 0) as tf.Tensor2D };
    const cur: LowRank = { P: rnd([8, 3], 4), Q: rnd([3, 4], 5) };
    const gram = (u: LowRank) => tf.tidy(() => { const w = tf.matMul(u.P, u.Q); return tf.matMul(w, w, false, true); });
    const [gt, gs] = [gram(cur), gram(earlierUpdate)];
    const expected = val(tf.div(tf.sum(tf.mul(gt, gs)), tf.mul(tf.norm(gt), tf.norm(gs))));
    const earlier = stackEarlierInputSubspaces([earlierUpdate]);
    const got = val(inputSubspaceRegularization(new Map([['layer', cur]]), new Map([['layer', earlier]])));
    expect(Number.isFinite(got)).toBe(true);
    expect(got).toBeCloseTo(expected, 4);
    disposeEarlierUpdates(earlier);
    tf.dispose([B, nearlyB, earlierUpdate.P, earlierUpdate.Q, cur.P, cur.Q, gt, gs]);
  });

  it('stacked by layer shape, has the value and the gradient of the per-layer dense definition', () => {
    const rnd = (shape: [number, number], seed: number) => tf.randomNormal(shape, 0, 1, 'float32', seed) as tf.Tensor2D;
    // four layers of two shapes; each has two earlier updates of ranks 2 and 4 (6 on the [6, 5] layers: more rows
    // than outputs, so S_s S_sᵀ is singular), the current update rank 3
    const shapes: Record<string, [number, number]> = { a: [7, 5], b: [6, 5], c: [7, 5], d: [6, 5] };
    const layers = Object.entries(shapes).map(([key, [inDim, outDim]], i) => ({
      key,
      ups: [2, inDim === 6 ? 6 : 4].map((r, u) => ({ P: rnd([inDim, r], 10 * i + 2 * u + 1), Q: rnd([r, outDim], 10 * i + 2 * u + 2) })),
      P: rnd([inDim, 3], 10 * i + 5),
      Q: rnd([3, outDim], 10 * i + 6),
    }));
    const earlier = new Map(layers.map((l) => [l.key, stackEarlierInputSubspaces(l.ups)]));
    const groups = groupEarlierUpdates(earlier);
    expect(groups.map((g) => g.keys)).toEqual([['a', 'c'], ['b', 'd']]);
    const gram = (P: tf.Tensor, Q: tf.Tensor) => { const w = tf.matMul(P, Q); return tf.matMul(w, w, false, true); };
    const dense = (Ps: tf.Tensor[]) =>
      tf.div(tf.addN(layers.map((l, i) => {
        const gt = gram(Ps[i], l.Q);
        return tf.addN(l.ups.map((u) => { const gs = gram(u.P, u.Q); return tf.div(tf.sum(tf.mul(gt, gs)), tf.mul(tf.norm(gt), tf.norm(gs))); }));
      })), layers.length) as tf.Scalar;
    const stacked = (Ps: tf.Tensor[]) => {
      const at = (key: string) => layers.findIndex((l) => l.key === key);
      const cur = groups.map((g) => ({ P: tf.stack(g.keys.map((k) => Ps[at(k)])) as tf.Tensor3D, Q: tf.stack(g.keys.map((k) => layers[at(k)].Q)) as tf.Tensor3D }));
      return stackedInputSubspaceRegularization(cur, groups);
    };
    const Ps = layers.map((l) => l.P);
    const want = tf.grads((...p: tf.Tensor[]) => dense(p))(Ps);
    const got = tf.grads((...p: tf.Tensor[]) => stacked(p))(Ps);
    expect(val(tf.tidy(() => stacked(Ps)))).toBeCloseTo(val(tf.tidy(() => dense(Ps))), 5);
    for (let i = 0; i < Ps.length; i++) {
      const scale = val(tf.max(tf.abs(want[i])));
      expect(scale).toBeGreaterThan(1e-4);
      expect(val(tf.max(tf.abs(tf.sub(got[i], want[i]))))).toBeLessThan(1e-3 * scale);
    }
    // the map form (tests above, and the cosine form's callers) agrees with the stacked one
    expect(val(inputSubspaceRegularization(new Map(layers.map((l) => [l.key, { P: l.P, Q: l.Q }])), earlier))).toBeCloseTo(val(tf.tidy(() => stacked(Ps))), 5);
    groups.forEach(disposeEarlierUpdateGroup);
    for (const e of earlier.values()) disposeEarlierUpdates(e);
    tf.dispose([...want, ...got, ...layers.flatMap((l) => [l.P, l.Q, ...l.ups.flatMap((u) => [u.P, u.Q])])]);
  });
});

describe('training noise', () => {
  /** The spread over images and channels of each image's per-channel mean. */
  function channelMeanStd(noise: tf.Tensor4D): number {
    return tf.tidy(() => Math.sqrt(tf.moments(tf.mean(noise, [1, 2])).variance.dataSync()[0]));
  }

  it('is white N(0, I) without an offset; an offset adds one constant per image and channel, of the given spread', () => {
    const shape = [256, 16, 16, 4];
    const white = trainingNoise(shape, 0, 7);
    const offset = trainingNoise(shape, 0.5, 7);
    // a 16×16 channel mean of white noise spreads 1/16; the offset adds 0.5 in quadrature
    expect(channelMeanStd(white)).toBeCloseTo(1 / 16, 2);
    expect(channelMeanStd(offset)).toBeCloseTo(Math.sqrt(0.25 + 1 / 256), 1);
    // the same white noise underneath: the difference is constant over each image's positions
    const diff = tf.sub(offset, white);
    const spatialSpread = tf.tidy(() => tf.max(tf.sub(tf.max(diff, [1, 2]), tf.min(diff, [1, 2]))).dataSync()[0]);
    expect(spatialSpread).toBeLessThan(1e-5);
    // deterministic in the seed; offset 0 draws exactly the white noise a run without the setting drew
    const again = trainingNoise(shape, 0, 7);
    expect(tf.tidy(() => tf.max(tf.abs(tf.sub(again, tf.randomNormal(shape, 0, 1, 'float32', 7)))).dataSync()[0])).toBe(0);
    tf.dispose([white, offset, diff, again]);
  });
});

describe('style distillation loss', () => {
  const d = 12;
  it('is zero when every sample has the set-mean features and positive otherwise', () => {
    const zbar = tf.randomNormal([d], 0, 1, 'float32', 11) as tf.Tensor1D;
    const zbar2 = tf.randomNormal([5], 0, 1, 'float32', 12) as tf.Tensor1D;
    const same = [tf.stack([zbar, zbar, zbar]), tf.stack([zbar2, zbar2, zbar2])];
    expect(val(styleDistillationLoss(same, [zbar, zbar2], 1))).toBe(0);
    expect(val(styleDistillationLoss(same, [zbar, zbar2], 0.1))).toBe(0);

    const losses = [0.1, 0.5, 1.0].map((scale) => {
      const noisy = [tf.add(same[0], tf.randomNormal([3, d], 0, scale, 'float32', 13)), same[1]];
      const l = val(styleDistillationLoss(noisy, [zbar, zbar2], 1));
      tf.dispose(noisy[0]);
      return l;
    });
    expect(losses[0]).toBeGreaterThan(0);
    expect(losses[1]).toBeGreaterThan(losses[0]);
    expect(losses[2]).toBeGreaterThan(losses[1]);
    // only deviations that change the softmax count: a constant shift of a group is no style change
    const shifted = [tf.add(same[0], 3), same[1]];
    expect(val(styleDistillationLoss(shifted, [zbar, zbar2], 1))).toBeLessThan(1e-6);
    // per-sample weights: a sample weighted 0 does not count
    const oneOff = [tf.tidy(() => tf.concat([tf.reshape(tf.add(zbar, tf.randomNormal([d], 0, 1, 'float32', 14)), [1, d]), tf.stack([zbar, zbar])])), same[1]];
    expect(val(styleDistillationLoss(oneOff, [zbar, zbar2], 1, [0, 1, 1]))).toBe(0);
    expect(val(styleDistillationLoss(oneOff, [zbar, zbar2], 1, [1, 1, 1]))).toBeGreaterThan(0);
    tf.dispose([zbar, zbar2, ...same, shifted[0], oneOff[0]]);
  });

  it('recovers x0 from an epsilon prediction', () => {
    const x0 = tf.randomNormal([2, 3, 3, 4], 0, 1, 'float32', 21);
    const eps = tf.randomNormal([2, 3, 3, 4], 0, 1, 'float32', 22);
    const ab = [0.9, 0.2];
    const xt = tf.tidy(() => tf.add(tf.mul(x0, tf.tensor(ab.map(Math.sqrt), [2, 1, 1, 1])), tf.mul(eps, tf.tensor(ab.map((a) => Math.sqrt(1 - a)), [2, 1, 1, 1]))));
    const rec = predictCleanLatent(eps, xt, ab);
    expect(val(tf.max(tf.abs(tf.sub(rec, x0))))).toBeLessThan(1e-4);
    tf.dispose([x0, eps, xt, rec]);
  });
});

describe('feature regularization, C-LoRA and EWC penalties', () => {
  it('feature regularization is exactly zero for equal features and grows with the difference', () => {
    const a = [tf.randomNormal([2, 4, 4, 8], 0, 1, 'float32', 31), tf.randomNormal([2, 4, 4, 4], 0, 3, 'float32', 32)];
    const copy = a.map((t) => t.clone());
    expect(val(featureRegularization(copy, a))).toBe(0);
    const near = a.map((t) => tf.add(t, 0.01));
    const far = a.map((t) => tf.add(t, 0.1));
    const ln = val(featureRegularization(near, a));
    expect(ln).toBeGreaterThan(0);
    expect(val(featureRegularization(far, a))).toBeGreaterThan(ln);
    tf.dispose([...a, ...copy, ...near, ...far]);
  });

  it('C-LoRA penalises changes only where earlier styles changed weights', () => {
    const mask = tf.tensor2d([
      [1, 0],
      [0, 0],
    ]);
    const where = tf.tensor2d([
      [0.5, 0],
      [0, 0],
    ]);
    const elsewhere = tf.tensor2d([
      [0, 0.5],
      [0.5, 0.5],
    ]);
    expect(val(cloraPenalty(new Map([['l', elsewhere]]), new Map([['l', mask]])))).toBe(0);
    expect(val(cloraPenalty(new Map([['l', where]]), new Map([['l', mask]])))).toBeCloseTo(0.25, 6);
    tf.dispose([mask, where, elsewhere]);
  });

  it('EWC is zero at the anchor and weights deviations by the Fisher', () => {
    const p = tf.tensor1d([1, 2, 3]);
    const anchor = tf.tensor1d([1, 2, 3]);
    const moved = tf.tensor1d([2, 2, 5]);
    const fisher = tf.tensor1d([1, 10, 0]);
    expect(val(ewcPenalty([p], [anchor], [fisher]))).toBe(0);
    expect(val(ewcPenalty([moved], [anchor], [fisher]))).toBeCloseTo(0.5, 6); // ½·(1·1² + 0·2²)
    tf.dispose([p, anchor, moved, fisher]);
  });
});
