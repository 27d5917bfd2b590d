/**
 * `watercolor`: a translucent wash with ragged soft edges that bleed into the paper, pigment
 * pooling darker along the rim, blooms and granulation, on textured cold-press paper.
 */
import { PIXELS } from '../content';
import { clamp01, contentColour, expNeg, fbm, grain, hsl, smoothstep, valueNoise, type StyleRenderer } from './common';

// Math functions bound at module scope: global lookups are slow inside vm contexts (jest).
const { exp, log, max, min } = Math;

export const watercolor: StyleRenderer = {
  exactWithin: 6,
  render(f, rng, img) {
    const { colour } = f.content;
    const col = contentColour(colour, rng, 0.6);
    // White pigment is opaque gouache on dark toned paper. One warm paper tone, not two: from a warm/cool
    // mix the model learned to paint the average, a flat grey ground the instruments read as `stripes`.
    const gouache = colour === 'white';
    const paper = gouache
      ? hsl(25 + rng.range(-15, 15), rng.range(0.15, 0.35), rng.range(0.3, 0.42))
      : hsl(rng.range(38, 52), rng.range(0.25, 0.5), rng.range(0.93, 0.97));
    const tex = fbm(rng, 6, 2);
    const g = grain(rng);
    const edge = fbm(rng, rng.range(10, 16), 2);
    const bloom = valueNoise(rng, rng.range(7, 12));
    const gran = valueNoise(rng, 2);
    const amp = rng.range(1.6, 2.6) * (f.content.size / 0.6); // raggedness grows with the shape
    const soft = rng.range(0.9, 1.5);
    const base = rng.range(0.38, 0.55);
    const pool = rng.range(0.6, 1.0);
    const poolW = rng.range(1.0, 1.8);
    const bleed = rng.range(0.12, 0.25);
    // Transmittance tables pigment^(k * density) for density in [0, 4).
    const k = 1.35;
    const STEPS = 64;
    const tr = new Float32Array(3 * 4 * STEPS + 3);
    for (let c = 0; c < 3; c++) {
      const lc = log(max(col[c], 0.02));
      for (let q = 0; q <= 4 * STEPS; q++) tr[c * (4 * STEPS + 1) + q] = exp((lc * k * q) / STEPS);
    }
    const stride = 4 * STEPS + 1;
    const d = f.d;
    for (let i = 0; i < PIXELS; i++) {
      const t = 1 + 0.04 * tex[i] + 0.02 * g[i];
      let r = paper[0] * t;
      let gg = paper[1] * t;
      let b = paper[2] * t;
      const dd = d[i] + amp * edge[i];
      let alpha = smoothstep(soft, -soft, dd);
      if (dd > 0) alpha = max(alpha, bleed * expNeg(dd / 2));
      if (alpha > 0.002) {
        const rim = dd >= 0 ? 1 : expNeg(-dd / poolW);
        const dens = alpha * (base * (1 + 0.55 * bloom[i]) + pool * rim) * (1 + 0.3 * gran[i]);
        if (gouache) {
          const a = clamp01(dens * 1.1);
          r += (col[0] - r) * a;
          gg += (col[1] - gg) * a;
          b += (col[2] - b) * a;
        } else {
          // Beer-Lambert style glazing: transmittance = pigment^(density).
          const q = min(4 * STEPS - 1, max(0, dens * STEPS));
          const qi = q | 0;
          const qf = q - qi;
          r *= tr[qi] + (tr[qi + 1] - tr[qi]) * qf;
          gg *= tr[stride + qi] + (tr[stride + qi + 1] - tr[stride + qi]) * qf;
          b *= tr[2 * stride + qi] + (tr[2 * stride + qi + 1] - tr[2 * stride + qi]) * qf;
        }
      }
      img[i * 3] = r;
      img[i * 3 + 1] = gg;
      img[i * 3 + 2] = b;
    }
  },
};
