import { initBackend, tf } from '@museum/tensor';
import { AdamW, Ema, FlatAdamW, FlatEma, clipGradNorm, clipScale, flatNorm, flattenTensors } from '@museum/training';

beforeAll(() => initBackend({ log: () => {} }));

/**
 * Largest relative difference |a − b| / (max(|b|, floor) + 1e-6). The step-for-step comparison of parameters
 * floors the denominator at 1e-3: the parameters are O(1), so an element that happens to pass near zero
 * differs by float32 rounding of O(1) sums, which is not an error of the rule. The two implementations sum in
 * different orders and Adam's m/√v amplifies that where gradients are small (std 0.01 on odd steps): runs
 * differed by up to 2.3e-5 relative, so that bound is 1e-4; a wrong rule is off by O(lr) = 0.05.
 */
function maxRel(a: Float32Array, b: Float32Array, floor = 0): number {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / (Math.max(Math.abs(b[i]), floor) + 1e-6));
  return worst;
}

function values(vars: tf.Variable[]): Float32Array {
  return flattenTensors(vars, vars.map((v) => v.shape));
}

describe('fused flat AdamW / clipping / EMA', () => {
  const shapes = [[3, 4], [5], [2, 2, 2]];
  const make = (seed: number) => shapes.map((s, i) => tf.variable(tf.randomNormal(s, 0, 1, 'float32', seed + i)));

  test('follow the per-variable AdamW + clipGradNorm + Ema step for step, and stay leak-free', () => {
    const a = make(1);
    const b = make(1);
    const ref = new AdamW(a, { lr: 0.05, weightDecay: 0.01 });
    const refEma = new Ema(a, 0.9);
    const fused = new FlatAdamW(b, { lr: 0.05, weightDecay: 0.01 });
    const fusedEma = new FlatEma(b, 0.9);
    const before = tf.memory().numTensors;
    for (let step = 0; step < 6; step++) {
      // Large gradients on even steps, so clipping is exercised both ways.
      const grads = shapes.map((s, i) => tf.randomNormal(s, 0, step % 2 === 0 ? 3 : 0.01, 'float32', 100 * step + i));
      const flat = flattenTensors(grads, shapes, [42]);
      const { grads: clipped, norm } = clipGradNorm(grads, 1);
      expect(flatNorm(flat, fused.size)).toBeCloseTo(norm, 4);
      ref.apply(clipped, 0.05);
      refEma.update(step);
      fused.apply(flat, 0.05, clipScale(norm, 1));
      fusedEma.update(step, fused.params);
      tf.dispose([...grads, ...(clipped as tf.Tensor[])]);
      expect(maxRel(values(b), values(a), 1e-3)).toBeLessThan(1e-4);
      expect(maxRel(fused.params, values(a), 1e-3)).toBeLessThan(1e-4);
    }
    expect(tf.memory().numTensors).toBe(before);
    // EMA: copy both into the variables and compare.
    refEma.copyTo();
    fusedEma.copyToVariables();
    expect(maxRel(values(b), values(a), 1e-3)).toBeLessThan(1e-4);
    tf.dispose([...a, ...b]);
    ref.dispose();
    refEma.dispose();
  });

  test('resume from the per-variable AdamW checkpoint format and continue identically', () => {
    const a = make(7);
    const b = make(7);
    const ref = new AdamW(a, { lr: 0.01 });
    const g1 = shapes.map((s, i) => tf.randomNormal(s, 0, 0.1, 'float32', 50 + i));
    ref.apply(g1);
    // b takes a's weights and state.
    b.forEach((v, i) => v.assign(a[i]));
    const fused = new FlatAdamW(b, { lr: 0.01 });
    const state = ref.stateTensors();
    fused.loadState(state, ref.step);
    const g2 = shapes.map((s, i) => tf.randomNormal(s, 0, 0.1, 'float32', 60 + i));
    ref.apply(g2);
    fused.apply(flattenTensors(g2, shapes));
    expect(maxRel(values(b), values(a))).toBeLessThan(1e-5);
    const back = fused.stateTensors();
    const refState = ref.stateTensors();
    expect(maxRel(back.get('adam.v.2')!.dataSync() as Float32Array, refState.get('adam.v.2')!.dataSync() as Float32Array)).toBeLessThan(1e-5);
    tf.dispose([...refState.values()]);
    expect(() => fused.loadState(new Map(), 1)).toThrow(/adam.m.0 missing/);
    tf.dispose([...a, ...b, ...g1, ...g2, ...state.values(), ...back.values()]);
    ref.dispose();
  });
});
