import { PIXELS, SIZE, TEXTURE_KINDS, renderTexture } from '@museum/world';

/** Mean absolute difference between horizontally and vertically adjacent pixels (0–255 scale). */
function fineDetail(rgb: Uint8Array): number {
  let sum = 0;
  let n = 0;
  for (let y = 0; y < SIZE - 1; y++) {
    for (let x = 0; x < SIZE - 1; x++) {
      for (let c = 0; c < 3; c++) {
        const i = (y * SIZE + x) * 3 + c;
        sum += Math.abs(rgb[i] - rgb[i + 3]) + Math.abs(rgb[i] - rgb[i + SIZE * 3]);
        n += 2;
      }
    }
  }
  return sum / n;
}

describe('generic textures for the autoencoder', () => {
  test('are deterministic from the seed and differ between seeds', () => {
    for (const kind of TEXTURE_KINDS) {
      const a = renderTexture(7, kind).rgb;
      expect(Buffer.from(renderTexture(7, kind).rgb).equals(Buffer.from(a))).toBe(true);
      expect(Buffer.from(renderTexture(8, kind).rgb).equals(Buffer.from(a))).toBe(false);
    }
  });

  test('every kind draws a full 64x64 RGB image that is not flat', () => {
    for (const kind of TEXTURE_KINDS) {
      for (let seed = 0; seed < 10; seed++) {
        const { rgb, kind: k } = renderTexture(seed, kind);
        expect(k).toBe(kind);
        expect(rgb.length).toBe(PIXELS * 3);
        let lo = 255;
        let hi = 0;
        for (const v of rgb) {
          lo = Math.min(lo, v);
          hi = Math.max(hi, v);
        }
        expect(hi - lo).toBeGreaterThan(8);
      }
    }
  });

  test('a random kind is drawn when none is asked for, covering every kind', () => {
    const seen = new Set<string>();
    for (let seed = 0; seed < 200; seed++) seen.add(renderTexture(seed).kind);
    expect([...seen].sort()).toEqual([...TEXTURE_KINDS].sort());
  });

  test('periodic and dotted kinds carry pixel-scale detail; smooth noise carries less', () => {
    const mean = (kind: (typeof TEXTURE_KINDS)[number]) => {
      let s = 0;
      for (let seed = 0; seed < 20; seed++) s += fineDetail(renderTexture(seed, kind).rgb);
      return s / 20;
    };
    const dots = mean('dots');
    const grating = mean('grating');
    const noise = mean('noise');
    expect(dots).toBeGreaterThan(10);
    expect(grating).toBeGreaterThan(8);
    expect(noise).toBeLessThan(dots);
  });
});
