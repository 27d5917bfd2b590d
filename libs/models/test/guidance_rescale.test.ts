import { initBackend, tf } from '@museum/tensor';
import { rescaleGuidedPrediction } from '@museum/models';

beforeAll(() => initBackend({ log: () => {} }));

/** Population standard deviation of one image's values. */
function std(values: number[]): number {
  const mean = values.reduce((a, v) => a + v, 0) / values.length;
  return Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / values.length);
}

describe('guidance rescale (diffusers rescale_noise_cfg)', () => {
  // Two images of 2×2×1: the guided prediction is wider than the conditional one in image 0, narrower in image 1.
  const guidedValues = [[3, -1, 2, -4], [0.5, 0.25, -0.5, 0]];
  const condValues = [[1, -0.5, 0.5, -1], [1, -1, 2, -2]];
  const guided = () => tf.tensor4d(guidedValues.flat(), [2, 2, 2, 1]);
  const cond = () => tf.tensor4d(condValues.flat(), [2, 2, 2, 1]);

  test('φ = 1 gives every image the conditional prediction\'s spread, φ = 0 changes nothing, between them it mixes', () => {
    const before = tf.memory().numTensors;
    const [g, c] = [guided(), cond()];
    const full = rescaleGuidedPrediction(g, c, 1).arraySync() as number[][][][];
    const none = rescaleGuidedPrediction(g, c, 0).dataSync();
    const part = rescaleGuidedPrediction(g, c, 0.7).dataSync();
    for (let b = 0; b < 2; b++) {
      const out = full[b].flat(2);
      expect(std(out)).toBeCloseTo(std(condValues[b]), 5);
      const ratio = std(condValues[b]) / std(guidedValues[b]);
      for (let i = 0; i < 4; i++) {
        expect(out[i]).toBeCloseTo(guidedValues[b][i] * ratio, 5);
        expect(none[b * 4 + i]).toBeCloseTo(guidedValues[b][i], 6);
        expect(part[b * 4 + i]).toBeCloseTo(0.7 * guidedValues[b][i] * ratio + 0.3 * guidedValues[b][i], 5);
      }
    }
    tf.dispose([g, c]);
    // Three results were returned and read: only they remain (the helper frees its intermediates).
    expect(tf.memory().numTensors).toBe(before + 3);
  });
});
