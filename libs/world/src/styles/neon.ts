/**
 * `neon`: a glowing tube along the shape's outline on a black wall: a hot near-white core, a
 * tight and a wide glow in the content colour, a faint lit interior. Black content is drawn
 * backlit instead (a black silhouette with a cold halo), so it stays visible.
 */
import { PIXELS, type RGB } from '../content';
import { clamp01, contentColour, expNeg, fbm, hsl, mixRgb, type StyleRenderer } from './common';

// Math functions bound at module scope: global lookups are slow inside vm contexts (jest).
const { abs } = Math;

export const neon: StyleRenderer = {
  exactWithin: 8,
  render(f, rng, img) {
    const { colour } = f.content;
    const wallT = fbm(rng, 12, 2);
    const flicker = fbm(rng, 8, 1);
    const { d, cov } = f;
    if (colour === 'black') {
      const wall = hsl(rng.range(200, 280), rng.range(0.15, 0.3), rng.range(0.13, 0.18));
      const halo: RGB = hsl(rng.range(190, 230), rng.range(0.3, 0.7), rng.range(0.8, 0.9));
      const sigma = rng.range(2.2, 3.4);
      const gain = rng.range(0.8, 1.0);
      for (let i = 0; i < PIXELS; i++) {
        const t = 1 + 0.25 * wallT[i];
        const h = d[i] > 0 ? gain * expNeg(d[i] / sigma) * (1 + 0.1 * flicker[i]) : 0;
        const inside = cov[i];
        for (let c = 0; c < 3; c++) {
          const v = wall[c] * t + halo[c] * h;
          img[i * 3 + c] = v * (1 - inside) + 0.01 * inside;
        }
      }
      return;
    }
    const col = contentColour(colour, rng, 0.5);
    const glow: RGB = colour === 'white' ? hsl(rng.range(190, 230), 0.25, 0.85) : col;
    const core = mixRgb(col, [1, 1, 1], rng.range(0.45, 0.7));
    const wall = hsl(rng.range(200, 300), rng.range(0.2, 0.5), rng.range(0.02, 0.06));
    const w = rng.range(1.2, 2.2);
    const inset = rng.range(0, 1.5);
    const s1 = rng.range(1, 1.6);
    const s2 = rng.range(2.8, 4);
    const a1 = rng.range(0.6, 0.9);
    const a2 = rng.range(0.3, 0.5);
    const fillA = rng.range(0.05, 0.14);
    for (let i = 0; i < PIXELS; i++) {
      const t = 1 + 0.3 * wallT[i];
      const e = abs(d[i] + inset);
      const g = (a1 * expNeg(e / s1) + a2 * expNeg(e / s2)) * (1 + 0.12 * flicker[i]) + fillA * cov[i];
      const k = clamp01(w * 0.5 + 0.5 - e);
      for (let c = 0; c < 3; c++) {
        const v = wall[c] * t + glow[c] * g;
        img[i * 3 + c] = v + (core[c] - v) * k;
      }
    }
  },
};
