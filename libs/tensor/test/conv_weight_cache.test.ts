import { initBackend, setWasmConvWeightCache, tf } from '@museum/tensor';
import { input, maxRelError, runOn } from './kernels-helpers';

beforeAll(async () => {
  await initBackend({ log: () => {} });
  await tf.setBackend('wasm');
});

const TOL = 1e-4;

describe('wasm Conv2D with the filter cache switched off', () => {
  const cases: Array<[string, number[], number[], number, 'same' | 'valid' | [[number, number], [number, number], [number, number], [number, number]]]> = [
    ['3×3 same', [2, 7, 6, 5], [3, 3, 5, 4], 1, 'same'],
    ['3×3 stride 2 valid', [1, 9, 8, 3], [3, 3, 3, 6], 2, 'valid'],
    ['3×3 explicit pads', [2, 5, 5, 4], [3, 3, 4, 3], 1, [[0, 0], [1, 0], [0, 1], [0, 0]]],
    ['1×1', [2, 4, 4, 8], [1, 1, 8, 2], 1, 'valid'],
  ];
  for (const [name, xs, ws, stride, pad] of cases) {
    test(`${name}: same result as the cached kernel and as cpu, call after call`, async () => {
      const x = input(xs, 11);
      const w = input(ws, 12);
      const conv = (a: tf.Tensor, b: tf.Tensor) => [tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, stride, pad)];
      const ref = await runOn('cpu', [x, w], conv);
      const cached = await runOn('wasm', [x, w], conv);
      setWasmConvWeightCache(false);
      try {
        // twice with the same filter tensor: the second call must not see a freed operator
        const twice = await runOn('wasm', [x, w], (a, b) => [...conv(a, b), ...conv(tf.mul(a, 2), b)]);
        expect(maxRelError([twice[0]], ref)).toBeLessThan(TOL);
        expect(maxRelError([twice[0]], cached)).toBe(0);
        expect(maxRelError([twice[1]], [ref[0].map((v) => 2 * v)])).toBeLessThan(TOL);
      } finally {
        setWasmConvWeightCache(true);
      }
    });
  }

  test('leaves no data ids behind, and the cached path works again afterwards', async () => {
    await tf.setBackend('wasm');
    const x = tf.randomNormal([1, 6, 6, 3]);
    const w = tf.randomNormal([3, 3, 3, 4]);
    const before = (tf.backend() as unknown as { numDataIds(): number }).numDataIds();
    setWasmConvWeightCache(false);
    let off: Float32Array;
    try {
      off = tf.tidy(() => tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 1, 'same').dataSync() as Float32Array).slice();
    } finally {
      setWasmConvWeightCache(true);
    }
    const on = tf.tidy(() => tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 1, 'same').dataSync() as Float32Array).slice();
    expect(maxRelError([on], [off])).toBe(0);
    expect((tf.backend() as unknown as { numDataIds(): number }).numDataIds()).toBe(before);
    tf.dispose([x, w]);
  });
});
