/**
 * `mosaic`: irregular tiles (a jittered Voronoi tessellation) set in grout. Each tile takes a
 * quantized colour (content colour inside the shape, a stone colour outside) with a little
 * per-tile variation and a bevel; grout also follows the shape's contour.
 */
import { SIZE, type RGB } from '../content';
import { clamp01, contentColour, hsl, hueAvoiding, luminance, type StyleRenderer } from './common';

// Math functions bound at module scope: global lookups are slow inside vm contexts (jest).
const { abs, ceil, floor, min, sqrt } = Math;
const FAR = 1e30;

export const mosaic: StyleRenderer = {
  exactWithin: 2,
  render(f, rng, img) {
    const { colour } = f.content;
    const col = contentColour(colour, rng, 0.5);
    const colL = luminance(col);
    // Stone colour for the background tiles: light stone behind dark content, dark stone
    // behind light content, in a hue away from the content's.
    const stone: RGB =
      colL > 0.45
        ? hsl(hueAvoiding(rng, colour), rng.range(0.15, 0.4), rng.range(0.24, 0.36))
        : hsl(hueAvoiding(rng, colour), rng.range(0.1, 0.35), rng.range(0.7, 0.84));
    const grout: RGB = colour === 'black' ? hsl(30, 0.08, rng.range(0.6, 0.72)) : hsl(rng.range(20, 40), rng.range(0.05, 0.15), rng.range(0.13, 0.24));
    const cell = rng.range(4.4, 5.6);
    const jit = rng.range(0.25, 0.4);
    const gw = rng.range(0.45, 0.8); // half grout width in px
    const n = ceil(SIZE / cell) + 3;
    const sx = new Float32Array(n * n);
    const sy = new Float32Array(n * n);
    const shade = new Float32Array(n * n * 2); // per-tile variation, inside/outside variants
    for (let j = 0; j < n; j++)
      for (let i = 0; i < n; i++) {
        const k = j * n + i;
        sx[k] = (i - 1 + 0.5 + rng.range(-jit, jit)) * cell;
        sy[k] = (j - 1 + 0.5 + rng.range(-jit, jit)) * cell;
        shade[2 * k] = rng.range(-1, 1);
        shade[2 * k + 1] = rng.range(-1, 1);
      }
    // Bisector of each seed with its 8 grid neighbours: unit normal u and offset c, so the
    // distance of a point p inside the tile to that tile edge is c - u.p.
    const ux = new Float32Array(n * n * 8);
    const uy = new Float32Array(n * n * 8);
    const uc = new Float32Array(n * n * 8);
    for (let j = 0; j < n; j++)
      for (let i = 0; i < n; i++) {
        const k = j * n + i;
        let m = 0;
        for (let dj = -1; dj <= 1; dj++)
          for (let di = -1; di <= 1; di++) {
            if (di === 0 && dj === 0) continue;
            const q = k * 8 + m++;
            const jj = j + dj;
            const ii = i + di;
            if (jj < 0 || ii < 0 || jj >= n || ii >= n) {
              uc[q] = 1e6; // no neighbour: never the nearest edge
              continue;
            }
            const o = jj * n + ii;
            const ex = sx[o] - sx[k];
            const ey = sy[o] - sy[k];
            const len = sqrt(ex * ex + ey * ey);
            ux[q] = ex / len;
            uy[q] = ey / len;
            uc[q] = ((sx[o] + sx[k]) * 0.5 * ex + (sy[o] + sy[k]) * 0.5 * ey) / len;
          }
      }
    const { d } = f;
    const inv = 1 / cell;
    for (let y = 0; y < SIZE; y++)
      for (let x = 0; x < SIZE; x++) {
        const px = x + 0.5;
        const py = y + 0.5;
        const ci = floor(px * inv) + 1;
        const cj = floor(py * inv) + 1;
        // Nearest seed among the 3x3 neighbouring cells.
        let best = 0;
        let bd = FAR;
        for (let j = cj - 1; j <= cj + 1; j++) {
          if (j < 0 || j >= n) continue;
          for (let i = ci - 1; i <= ci + 1; i++) {
            if (i < 0 || i >= n) continue;
            const k = j * n + i;
            const dx = px - sx[k];
            const dy = py - sy[k];
            const dd = dx * dx + dy * dy;
            if (dd < bd) {
              bd = dd;
              best = k;
            }
          }
        }
        // Distance to the tile's nearest edge.
        let edge = FAR;
        for (let q = best * 8; q < best * 8 + 8; q++) {
          const e = uc[q] - ux[q] * px - uy[q] * py;
          if (e < edge) edge = e;
        }
        const idx = y * SIZE + x;
        const inside = d[idx] < 0;
        const v = shade[2 * best + (inside ? 1 : 0)];
        const base = inside ? col : stone;
        const bevel = 0.86 + 0.14 * clamp01(edge / 1.8);
        const s = (1 + (inside ? 0.09 : 0.12) * v) * bevel;
        const e2 = min(edge, abs(d[idx]));
        const g = clamp01(gw + 0.5 - e2);
        const k3 = idx * 3;
        for (let c = 0; c < 3; c++) {
          const tile = clamp01(base[c] * s + (inside ? 0 : 0.02 * v));
          img[k3 + c] = tile + (grout[c] - tile) * g;
        }
      }
  },
};
