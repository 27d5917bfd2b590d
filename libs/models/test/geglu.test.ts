/** GEGLU's two paths (split the product, or multiply by each half of the weight) give the same numbers, with or without a LoRA. */
import { initBackend, tf } from '@museum/tensor';
import { GEGLU, seedInit } from '@museum/models';

beforeAll(async () => {
  await initBackend({ log: () => {} });
});

/** hidden · gelu(gate) from the whole projection (the plain path), as the reference. */
function reference(g: GEGLU, x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const [h, gate] = tf.split(g.proj.forward(x), 2, -1);
    // tanh-free exact GELU, as diffusers' F.gelu
    const erf = tf.erf(tf.div(gate, Math.SQRT2));
    return tf.mul(h, tf.mul(tf.mul(gate, 0.5), tf.add(erf, 1)));
  });
}

describe.each([false, true])('GEGLU over many tokens (the per-half path), LoRA attached: %s', (withLora) => {
  test('output and gradients equal the split path', () => {
    seedInit(11);
    const g = new GEGLU(4, 6);
    const x = tf.randomNormal([2, 9, 4], 0, 1, 'float32', 3); // 18 tokens > 4 input features: per-half path
    if (withLora) g.proj.lora = { down: tf.variable(tf.randomNormal([4, 2], 0, 1, 'float32', 4)), up: tf.variable(tf.randomNormal([2, 12], 0, 1, 'float32', 5)), scale: 0.5 };
    const vars = withLora ? [g.proj.lora!.down, g.proj.lora!.up] : [g.proj.weight.value as tf.Variable];
    const before = tf.memory().numTensors;
    const got = tf.variableGrads(() => tf.sum(tf.square(g.forward(x))) as tf.Scalar, vars);
    const want = tf.variableGrads(() => tf.sum(tf.square(reference(g, x))) as tf.Scalar, vars);
    expect(Math.abs(got.value.dataSync()[0] - want.value.dataSync()[0])).toBeLessThan(1e-3 * Math.abs(want.value.dataSync()[0]));
    for (const v of vars) {
      const a = got.grads[v.name].dataSync();
      const b = want.grads[v.name].dataSync();
      const scale = Math.max(...Array.from(b, Math.abs));
      expect(scale).toBeGreaterThan(0);
      for (let i = 0; i < a.length; i++) expect(Math.abs(a[i] - b[i])).toBeLessThan(1e-4 * scale + 1e-5);
    }
    const y = g.forward(x);
    expect(y.shape).toEqual([2, 9, 6]);
    const y0 = reference(g, x);
    expect(tf.tidy(() => tf.max(tf.abs(tf.sub(y, y0))).dataSync()[0])).toBeLessThan(1e-5);
    tf.dispose([got.value, want.value, ...Object.values(got.grads), ...Object.values(want.grads), y, y0]);
    expect(tf.memory().numTensors).toBe(before);
    if (withLora) tf.dispose([g.proj.lora!.down, g.proj.lora!.up]);
    x.dispose();
    g.dispose();
  });
});
