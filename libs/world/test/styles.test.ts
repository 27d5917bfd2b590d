import {
  ALL_STYLES,
  BENCHMARK_STYLES,
  COLOURS,
  PIXELS,
  PRETRAIN_STYLES,
  SHAPES,
  deriveSeed,
  renderSample,
  shapeField,
  type Sample,
} from '@museum/world';

const HUES: Record<string, number> = { red: 0, orange: 30, yellow: 52, green: 130, blue: 222, purple: 282 };

function hsv(r: number, g: number, b: number): [number, number, number] {
  const mx = Math.max(r, g, b);
  const c = mx - Math.min(r, g, b);
  let h = 0;
  if (c > 0) h = mx === r ? ((g - b) / c) % 6 : mx === g ? (b - r) / c + 2 : (r - g) / c + 4;
  return [(h * 60 + 360) % 360, mx === 0 ? 0 : c / mx, mx];
}

/** Which reference hue most saturated pixels near the inner outline are closest to. */
function dominantHue(s: Sample, d: Float32Array): string | undefined {
  const votes: Record<string, number> = {};
  for (let i = 0; i < PIXELS; i++) {
    if (d[i] >= 0.5 || d[i] <= -4) continue;
    const [h, sat, v] = hsv(s.rgb[i * 3] / 255, s.rgb[i * 3 + 1] / 255, s.rgb[i * 3 + 2] / 255);
    if (sat < 0.35 || v < 0.2) continue;
    let best = '';
    let bd = Infinity;
    for (const [name, hh] of Object.entries(HUES)) {
      const dh = Math.min(Math.abs(h - hh), 360 - Math.abs(h - hh));
      if (dh < bd) [bd, best] = [dh, name];
    }
    votes[best] = (votes[best] ?? 0) + 1;
  }
  return Object.entries(votes).sort((a, b) => b[1] - a[1])[0]?.[0];
}

/** Mean RGB (0–255) of the pixels whose signed distance to the outline passes `where`. */
function meanRgb(s: Sample, d: Float32Array, where: (dist: number) => boolean): [number, number, number] {
  const sum = [0, 0, 0];
  let n = 0;
  for (let i = 0; i < PIXELS; i++) {
    if (!where(d[i])) continue;
    for (let c = 0; c < 3; c++) sum[c] += s.rgb[i * 3 + c];
    n++;
  }
  return [sum[0] / n, sum[1] / n, sum[2] / n];
}

/** Mean lightness of the inner band (-4 < d < -1) minus that of the far background (d > 6). */
function lightnessGap(s: Sample, d: Float32Array): number {
  let a = 0;
  let na = 0;
  let b = 0;
  let nb = 0;
  for (let i = 0; i < PIXELS; i++) {
    const l = (s.rgb[i * 3] + s.rgb[i * 3 + 1] + s.rgb[i * 3 + 2]) / 765;
    if (d[i] < -1 && d[i] > -4) [a, na] = [a + l, na + 1];
    else if (d[i] > 6) [b, nb] = [b + l, nb + 1];
  }
  return a / na - b / nb;
}

describe('styles', () => {
  it('exports the style lists', () => {
    expect(PRETRAIN_STYLES).toEqual(['sketch', 'watercolor', 'pixel']);
    expect(BENCHMARK_STYLES).toEqual(['stripes', 'pointillism', 'blueprint', 'mosaic', 'neon']);
    expect(ALL_STYLES).toEqual(['plain', ...PRETRAIN_STYLES, ...BENCHMARK_STYLES]);
    expect(SHAPES).toHaveLength(8);
    expect(COLOURS).toHaveLength(8);
  });

  it('renders are deterministic per seed and differ across seeds', () => {
    for (const style of ALL_STYLES) {
      const a = renderSample({ style, seed: 123 });
      const b = renderSample({ style, seed: 123 });
      const c = renderSample({ style, seed: 124 });
      expect(Buffer.from(a.rgb).equals(Buffer.from(b.rgb))).toBe(true);
      expect(Buffer.from(a.rgb).equals(Buffer.from(c.rgb))).toBe(false);
      // Same seed, same content in every style.
      expect(a.content).toEqual(renderSample({ style: 'plain', seed: 123 }).content);
    }
  });

  it('every shape x colour x style renders a 64x64 RGB image whose shape stands out', () => {
    for (const style of ALL_STYLES)
      for (const shape of SHAPES)
        for (const colour of COLOURS) {
          const s = renderSample({ style, seed: deriveSeed('all', shape, colour), shape, colour });
          expect(s.rgb).toBeInstanceOf(Uint8Array);
          expect(s.rgb.length).toBe(64 * 64 * 3);
          expect([s.width, s.height, s.shape, s.colour, s.style]).toEqual([64, 64, shape, colour, style]);
          // Near-outline pixels differ from far background pixels (the shape is visible).
          const d = shapeField(s.content, 20).d;
          const band = meanRgb(s, d, (x) => x > -3 && x < 0);
          const far = meanRgb(s, d, (x) => x > 6);
          const dist = Math.hypot(...band.map((v, c) => v - far[c])) / 255;
          if (dist < 0.08) throw new Error(`${style} ${colour} ${shape}: shape contrast ${dist.toFixed(3)}`);
        }
  });

  it('keeps the colour readable in every style', () => {
    for (const style of ALL_STYLES)
      for (const colour of COLOURS)
        for (const shape of SHAPES) {
          const s = renderSample({ style, seed: deriveSeed('colour', shape), shape, colour });
          const d = shapeField(s.content, 20).d;
          if (colour === 'white' || colour === 'black') {
            const gap = lightnessGap(s, d) * (colour === 'white' ? 1 : -1);
            if (gap < 0.08) throw new Error(`${style} ${colour} ${shape}: lightness gap ${gap.toFixed(3)}`);
          } else {
            expect(`${style} ${shape} ${dominantHue(s, d)}`).toBe(`${style} ${shape} ${colour}`);
          }
        }
  });

  it('paints white watercolor on one warm paper tone, not a warm/cool mix the model would average to grey', () => {
    for (let k = 0; k < 24; k++) {
      const s = renderSample({ style: 'watercolor', seed: deriveSeed('gouache', k), shape: 'circle', colour: 'white' });
      const d = shapeField(s.content, 20).d;
      const [r, g, b] = meanRgb(s, d, (x) => x > 6);
      const [h, sat, v] = hsv(r / 255, g / 255, b / 255);
      expect({ k, warm: h >= 0 && h <= 50 }).toEqual({ k, warm: true });
      expect(sat).toBeGreaterThan(0.1);
      expect(v).toBeLessThan(0.55);
    }
  });

  it('varies within a style (a distribution, not a template)', () => {
    for (const style of ALL_STYLES) {
      // Same content, different style seeds: the rendering itself must change.
      const bg = new Set<string>();
      for (let k = 0; k < 6; k++) {
        const s = renderSample({ style, seed: deriveSeed('var', k), shape: 'circle', colour: 'red' });
        const d = shapeField(s.content, 20).d;
        let r = 0;
        let n = 0;
        for (let i = 0; i < PIXELS; i++) if (d[i] > 6) [r, n] = [r + s.rgb[i * 3] + 3 * s.rgb[i * 3 + 1] + 7 * s.rgb[i * 3 + 2], n + 1];
        bg.add((r / n).toFixed(0));
      }
      expect(bg.size).toBeGreaterThan(3);
    }
  });
});
