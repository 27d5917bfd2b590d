import { PIXELS, ROTATION_RANGE, Rng, SHAPES, SIZE, makeShape, sampleContent, shapeField, shapeMask, supersampledCoverage, type ContentParams, type Shape } from '@museum/world';

const centred = (shape: Shape, rotation = 0, size = 0.6): ContentParams => ({ shape, colour: 'red', cx: 32, cy: 32, size, rotation });

function iou(a: Float32Array, b: Float32Array): number {
  let inter = 0;
  let uni = 0;
  for (let i = 0; i < a.length; i++) {
    inter += Math.min(a[i], b[i]);
    uni += Math.max(a[i], b[i]);
  }
  return inter / uni;
}

describe('shapes', () => {
  it('have distinct coverage masks (pairwise IoU well below 1)', () => {
    const masks = SHAPES.map((s) => shapeMask(centred(s)));
    for (let i = 0; i < SHAPES.length; i++) {
      const area = masks[i].reduce((a, b) => a + b, 0);
      expect(area).toBeGreaterThan(150); // not empty
      for (let j = i + 1; j < SHAPES.length; j++) expect(iou(masks[i], masks[j])).toBeLessThan(0.85);
    }
  });

  it('keep square and diamond apart at every allowed rotation', () => {
    let worst = 0;
    const rs = ROTATION_RANGE.square;
    const rd = ROTATION_RANGE.diamond;
    for (let a = -rs; a <= rs; a += 5)
      for (let b = -rd; b <= rd; b += 5) worst = Math.max(worst, iou(shapeMask(centred('square', a)), shapeMask(centred('diamond', b))));
    expect(worst).toBeLessThan(0.75);
  });

  it('ring has a hole and circle does not', () => {
    const ring = shapeMask(centred('ring'));
    const circle = shapeMask(centred('circle'));
    const centre = 32 * SIZE + 32;
    expect(ring[centre]).toBe(0);
    expect(circle[centre]).toBe(1);
  });

  it('signed distance is negative inside, positive outside and 1-Lipschitz', () => {
    for (const shape of SHAPES) {
      const c = centred(shape, 10);
      const f = shapeField(c, 100);
      let bad = 0;
      for (let i = 0; i < PIXELS; i++) {
        if (f.cov[i] === 1 && !(f.d[i] < 0)) bad++;
        if (f.cov[i] === 0 && !(f.d[i] > 0)) bad++;
      }
      let steep = 0;
      for (let y = 0; y < SIZE; y++)
        for (let x = 0; x + 1 < SIZE; x++) steep = Math.max(steep, Math.abs(f.d[y * SIZE + x + 1] - f.d[y * SIZE + x]), Math.abs(f.d[x * SIZE + y + SIZE] - f.d[x * SIZE + y]));
      expect([shape, bad]).toEqual([shape, 0]);
      expect(steep).toBeLessThanOrEqual(1.0001);
      expect(makeShape(c).sdf(32, 32) < 0).toBe(shape !== 'ring');
    }
  });

  it('fast anti-aliased coverage matches brute-force 16x16 supersampling', () => {
    const rng = new Rng(5);
    for (const shape of SHAPES) {
      const c = sampleContent(rng, { shape });
      const fast = shapeField(c, 2).cov;
      const ref = supersampledCoverage(c, 16);
      let err = 0;
      let edge = 0;
      for (let i = 0; i < PIXELS; i++) {
        err += Math.abs(fast[i] - ref[i]);
        if (ref[i] > 0 && ref[i] < 1) edge++;
      }
      expect(edge).toBeGreaterThan(40); // there is an anti-aliased edge
      expect(err / edge).toBeLessThan(0.03); // mean error per edge pixel
    }
  });

  it('the fast far field is exact near the outline and keeps sign and margin elsewhere', () => {
    const rng = new Rng(9);
    for (const shape of SHAPES)
      for (let t = 0; t < 5; t++) {
        const c = sampleContent(rng, { shape });
        const exact = shapeField(c, 1000).d;
        const fast = shapeField(c, 3).d;
        let nearErr = 0;
        let farErr = 0;
        let badSign = 0;
        for (let i = 0; i < PIXELS; i++) {
          if (Math.abs(exact[i]) <= 3) nearErr = Math.max(nearErr, Math.abs(fast[i] - exact[i]));
          else {
            if (Math.sign(fast[i]) !== Math.sign(exact[i]) || Math.abs(fast[i]) <= 3) badSign++;
            farErr = Math.max(farErr, Math.abs(fast[i] - exact[i]));
          }
        }
        expect(nearErr).toBeLessThan(1e-4);
        expect(badSign).toBe(0);
        expect(farErr).toBeLessThan(3); // bilinear between exact block corners; worst on ridges
      }
  });

  it('sampled content stays inside the canvas with the documented size range', () => {
    const rng = new Rng(11);
    for (let k = 0; k < 200; k++) {
      const c = sampleContent(rng);
      expect(c.size).toBeGreaterThanOrEqual(0.4);
      expect(c.size).toBeLessThanOrEqual(0.75);
      expect(Math.abs(c.rotation)).toBeLessThanOrEqual(ROTATION_RANGE[c.shape]);
      const m = shapeMask(c);
      let border = 0;
      for (let t = 0; t < SIZE; t++) border += m[t] + m[(SIZE - 1) * SIZE + t] + m[t * SIZE] + m[t * SIZE + SIZE - 1];
      expect(border).toBe(0);
    }
  });
});
