/** The classifier-free style distance: small within a style, larger across styles, fixed, leak-free. */
import { initBackend, tf } from '@museum/tensor';
import { ALL_STYLES, heldOutReferences, imagesToTensor } from '@museum/world';
import { defaultGramNet, disposeGramStatistics, GramFeatureNet, gramDistance, gramStyleDistance, type GramStatistics } from '@museum/instruments';

beforeAll(async () => {
  await initBackend({ log: () => {} });
});

function statsOf(style: (typeof ALL_STYLES)[number], n: number, seed: number): GramStatistics {
  const x = imagesToTensor(heldOutReferences(style, n, seed));
  const s = defaultGramNet().statistics(x, 24);
  x.dispose();
  return s;
}

test('every style is nearest to another set of itself (different contents), far from the rest', () => {
  // Two disjoint reference sets per style: the same style with other shapes, colours, placements.
  const a = ALL_STYLES.map((s) => statsOf(s, 48, 1));
  const b = ALL_STYLES.map((s) => statsOf(s, 48, 2));
  const same: number[] = [];
  const cross: number[] = [];
  ALL_STYLES.forEach((_, i) => {
    const row = ALL_STYLES.map((_, j) => gramDistance(a[i], b[j]).distance);
    same.push(row[i]);
    row.forEach((d, j) => {
      if (j !== i) {
        cross.push(d);
        expect(d).toBeGreaterThan(row[i]);
      }
    });
  });
  const mean = (v: number[]) => v.reduce((s, x) => s + x, 0) / v.length;
  expect(mean(cross)).toBeGreaterThan(3 * mean(same));
  [...a, ...b].forEach(disposeGramStatistics);
});

test('distance is symmetric, zero on itself, deterministic and leak-free', () => {
  const x = imagesToTensor(heldOutReferences('neon', 12, 5));
  const y = imagesToTensor(heldOutReferences('mosaic', 12, 5));
  gramStyleDistance(x, y); // first call creates the shared extractor
  const before = tf.memory().numTensors;
  const dxy = gramStyleDistance(x, y);
  const dyx = gramStyleDistance(y, x);
  expect(tf.memory().numTensors).toBe(before);
  expect(dxy).toBeCloseTo(dyx, 6);
  expect(dxy).toBeGreaterThan(0.3);
  expect(gramStyleDistance(x, x)).toBeLessThan(1e-6);
  // a second extractor from the same seed is the same ruler; another seed is a different one
  const again = new GramFeatureNet();
  expect(gramStyleDistance(x, y, again)).toBeCloseTo(dxy, 5);
  const other = new GramFeatureNet(undefined, 'another-seed');
  expect(Math.abs(gramStyleDistance(x, y, other) - dxy)).toBeGreaterThan(1e-4);
  again.dispose();
  other.dispose();
  // any image size: upscaled copies are still far closer to their own style than to another
  const big = tf.image.resizeBilinear(x, [96, 96]) as tf.Tensor4D;
  const x2 = imagesToTensor(heldOutReferences('neon', 12, 6));
  expect(gramStyleDistance(big, x2)).toBeLessThan(gramStyleDistance(big, y));
  tf.dispose([x, y, big, x2]);
});
