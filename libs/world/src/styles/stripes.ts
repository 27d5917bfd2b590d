/**
 * `stripes`: the shape filled with bold diagonal stripes (content colour alternating with a
 * contrasting light or dark stripe), a crisp rim in the content colour, flat light background.
 */
import { SIZE, type RGB } from '../content';
import { clamp01, contentColour, fill, hsl, hueAvoiding, scaleRgb, type StyleRenderer } from './common';

// Math functions bound at module scope: global lookups are slow inside vm contexts (jest).
const { PI, abs, cos, floor, sin } = Math;

export const stripes: StyleRenderer = {
  exactWithin: 2,
  render(f, rng, img) {
    const { colour } = f.content;
    const col = contentColour(colour, rng);
    const bg =
      colour === 'white'
        ? hsl(rng.range(0, 360), rng.range(0.1, 0.3), rng.range(0.32, 0.45))
        : hsl(hueAvoiding(rng, colour), rng.range(0.05, 0.3), rng.range(0.86, 0.95));
    // The second stripe keeps the shape's overall lightness: white shapes alternate white with
    // light grey, black shapes black with mid grey, colours alternate with near-white.
    const other: RGB =
      colour === 'white'
        ? hsl(rng.range(0, 360), 0.1, rng.range(0.66, 0.76))
        : colour === 'black'
          ? hsl(rng.range(0, 360), 0.05, rng.range(0.42, 0.52))
          : hsl(rng.range(0, 360), 0.15, rng.range(0.95, 1));
    const rim: RGB = colour === 'white' || colour === 'black' ? col : scaleRgb(col, 0.8);
    const angle = ((rng.range(30, 60) * rng.sign()) * PI) / 180;
    const period = rng.range(5, 9);
    const duty = rng.range(0.42, 0.6);
    const phase = rng.float();
    const rimW = rng.range(1, 1.8);
    const ca = cos(angle) / period;
    const sa = sin(angle) / period;
    fill(img, bg);
    const { d, cov } = f;
    for (let y = 0; y < SIZE; y++)
      for (let x = 0; x < SIZE; x++) {
        const i = y * SIZE + x;
        const c = cov[i];
        if (c <= 0 && d[i] > rimW) continue;
        const t = (x + 0.5) * ca + (y + 0.5) * sa + phase;
        const dist = abs(t - floor(t) - 0.5) * period;
        const s = clamp01(duty * period * 0.5 - dist + 0.5);
        const r0 = other[0] + (col[0] - other[0]) * s;
        const g0 = other[1] + (col[1] - other[1]) * s;
        const b0 = other[2] + (col[2] - other[2]) * s;
        const k = i * 3;
        img[k] += (r0 - img[k]) * c;
        img[k + 1] += (g0 - img[k + 1]) * c;
        img[k + 2] += (b0 - img[k + 2]) * c;
        const o = clamp01(rimW * 0.5 + 0.5 - abs(d[i] + rimW * 0.5));
        if (o > 0) {
          img[k] += (rim[0] - img[k]) * o;
          img[k + 1] += (rim[1] - img[k + 1]) * o;
          img[k + 2] += (rim[2] - img[k + 2]) * o;
        }
      }
  },
};
