/**
 * `sketch`: a coloured-pencil drawing on paper. A wobbly double graphite outline and
 * cross-hatching in the content colour, over a faint wash, on grainy paper.
 */
import { SIZE } from '../content';
import { clamp01, contentColour, grain, hsl, valueNoise, type StyleRenderer } from './common';

// Math functions bound at module scope: global lookups are slow inside vm contexts (jest).
const { PI, abs, cos, floor, max, sin } = Math;

export const sketch: StyleRenderer = {
  exactWithin: 3,
  render(f, rng, img) {
    const { colour } = f.content;
    const col = contentColour(colour, rng);
    // White pencil goes on toned paper; everything else on warm off-white.
    const paper =
      colour === 'white'
        ? hsl(rng.pick([30, 210]) + rng.range(-10, 10), rng.range(0.12, 0.25), rng.range(0.42, 0.55))
        : hsl(rng.range(35, 55), rng.range(0.2, 0.45), rng.range(0.9, 0.96));
    const graphite = colour === 'black' ? 0.35 : rng.range(0.18, 0.3);
    const grainT = grain(rng);
    const paperLow = valueNoise(rng, 16);
    const wob1 = valueNoise(rng, rng.range(8, 14));
    const wob2 = valueNoise(rng, rng.range(8, 14));
    const pressure = valueNoise(rng, 5);
    const hatchEdge = valueNoise(rng, 10);
    const wobAmp = rng.range(0.5, 1.1);
    const off2 = rng.range(0.4, 1.2) * rng.sign();
    const lineW = rng.range(0.7, 1.2);
    // Hatching: a dense main direction and a lighter cross direction.
    const a1 = (rng.range(30, 60) * rng.sign() * PI) / 180;
    const a2 = a1 + (rng.range(70, 110) * PI * rng.sign()) / 180;
    const p1 = rng.range(2.4, 3.4);
    const p2 = rng.range(2.8, 4);
    const ph1 = rng.float();
    const ph2 = rng.float();
    const cross = rng.bool(0.7) ? rng.range(0.35, 0.7) : 0;
    const c1 = cos(a1) / p1;
    const s1 = sin(a1) / p1;
    const c2 = cos(a2) / p2;
    const s2 = sin(a2) / p2;
    const hatchW = rng.range(0.35, 0.5); // half-width in fractions of the period
    // White chalk needs a heavier underlayer to read on toned paper.
    const washA = colour === 'white' ? rng.range(0.3, 0.45) : rng.range(0.08, 0.2);
    const shortfall = rng.range(0, 1.2);
    const d = f.d;
    for (let y = 0; y < SIZE; y++) {
      for (let x = 0; x < SIZE; x++) {
        const i = y * SIZE + x;
        const g = 1 + 0.025 * grainT[i] + 0.02 * paperLow[i];
        let r = paper[0] * g;
        let gg = paper[1] * g;
        let b = paper[2] * g;
        // Hatching inside a slightly ragged version of the shape.
        const dh = d[i] + 1.2 * hatchEdge[i] + shortfall;
        if (dh < 0.5) {
          const inside = clamp01(0.5 - dh);
          const t1 = x * c1 + y * s1 + ph1;
          const t2 = x * c2 + y * s2 + ph2;
          const f1 = abs(t1 - floor(t1) - 0.5);
          const f2 = abs(t2 - floor(t2) - 0.5);
          const l1 = clamp01((hatchW * 0.5 - f1) * p1 + 0.5);
          const l2 = clamp01((hatchW * 0.5 - f2) * p2 + 0.5) * cross;
          const pr = 0.7 + 0.3 * pressure[i];
          const a = inside * clamp01(washA + max(l1, l2) * pr * (0.8 + 0.2 * grainT[i]));
          r += (col[0] - r) * a;
          gg += (col[1] - gg) * a;
          b += (col[2] - b) * a;
        }
        // Double graphite outline with independent wobble.
        const e1 = abs(d[i] + wobAmp * wob1[i]);
        const e2 = abs(d[i] + wobAmp * wob2[i] + off2);
        const o1 = clamp01(lineW * 0.5 + 0.5 - e1);
        const o2 = clamp01(lineW * 0.4 + 0.5 - e2) * 0.6;
        const o = clamp01((o1 + o2) * (0.75 + 0.25 * grainT[i]));
        if (o > 0) {
          r += (graphite - r) * o;
          gg += (graphite - gg) * o;
          b += (graphite * 1.05 - b) * o;
        }
        img[i * 3] = r;
        img[i * 3 + 1] = gg;
        img[i * 3 + 2] = b;
      }
    }
  },
};
