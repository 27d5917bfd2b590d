/**
 * `pointillism`: round dabs of colour on cream paper. Dots inside the shape use varied tints of
 * the content colour; sparser dots of a soft complementary palette fill the background.
 */
import { SIZE, type RGB } from '../content';
import { addTexture, contentColour, fill, grain, hsl, hueAvoiding, mixRgb, scaleRgb, type StyleRenderer } from './common';

// Math functions bound at module scope: global lookups are slow inside vm contexts (jest).
const { ceil, floor, max, min, sqrt } = Math;

export const pointillism: StyleRenderer = {
  exactWithin: 1,
  render(f, rng, img) {
    const { colour } = f.content;
    const col = contentColour(colour, rng, 0.5);
    const paper = hsl(rng.range(38, 50), rng.range(0.35, 0.6), rng.range(0.86, 0.92));
    fill(img, paper);
    addTexture(img, grain(rng), 0.02);
    const white = colour === 'white';
    // Tints of the content colour for the shape's dots.
    const tints: RGB[] =
      colour === 'black'
        ? [col, [0.15, 0.15, 0.2], [0.05, 0.05, 0.1], [0.2, 0.12, 0.12]]
        : white
          ? [col, [1, 0.98, 0.9], [0.92, 0.95, 1], [1, 1, 1]]
          : [col, mixRgb(col, [1, 1, 1], 0.3), scaleRgb(col, 0.78), mixRgb(col, [1, 1, 1], 0.12)];
    // Background palette: two or three hues away from the content hue.
    const nb = rng.int(2, 3);
    const bgPal: RGB[] = [];
    for (let j = 0; j < nb; j++)
      bgPal.push(white ? hsl(hueAvoiding(rng, colour), rng.range(0.3, 0.5), rng.range(0.38, 0.52)) : hsl(hueAvoiding(rng, colour, 70), rng.range(0.3, 0.55), rng.range(0.66, 0.8)));
    const pBg = white ? rng.range(0.8, 0.95) : rng.range(0.3, 0.6);
    const spacing = rng.range(2.3, 3);
    const radius = rng.range(0.8, 1.1) * (spacing / 2.4);
    const n = ceil(SIZE / spacing) + 1;
    const order = new Uint32Array(n * n * 2);
    for (let j = 0; j < order.length; j++) order[j] = j;
    // Shuffle the draw order so that overlaps look hand-made.
    for (let j = order.length - 1; j > 0; j--) {
      const k = floor(rng.float() * (j + 1));
      const t = order[j];
      order[j] = order[k];
      order[k] = t;
    }
    const sdf = f.shape.sdf;
    for (let q = 0; q < order.length; q++) {
      const idx = order[q];
      const layer = idx >= n * n ? 1 : 0;
      const cell = idx - layer * n * n;
      const cx = ((cell % n) + rng.float() - 0.25) * spacing - (layer ? spacing / 2 : 0);
      const cy = (floor(cell / n) + rng.float() - 0.25) * spacing - (layer ? spacing / 2 : 0);
      let r = radius * rng.range(0.8, 1.2);
      const dc = sdf(cx, cy);
      let c: RGB;
      // Keep dots on their own side of the outline so the silhouette stays readable:
      // dots straddling the edge shrink (inside) or are dropped (outside).
      if (dc < 0) {
        c = tints[floor(rng.float() * tints.length)];
        if (dc > -r) r = max(0.55, -dc + 0.3);
      } else {
        if (dc < r + 0.3 || rng.float() > pBg * (layer ? 0.6 : 1)) continue;
        c = bgPal[floor(rng.float() * bgPal.length)];
      }
      const x0 = max(0, floor(cx - r - 1));
      const x1 = min(SIZE - 1, ceil(cx + r + 1));
      const y0 = max(0, floor(cy - r - 1));
      const y1 = min(SIZE - 1, ceil(cy + r + 1));
      for (let y = y0; y <= y1; y++)
        for (let x = x0; x <= x1; x++) {
          const dx = x + 0.5 - cx;
          const dy = y + 0.5 - cy;
          let a = r + 0.5 - sqrt(dx * dx + dy * dy);
          if (a <= 0) continue;
          if (a > 1) a = 1;
          a *= 0.95;
          const k = (y * SIZE + x) * 3;
          img[k] += (c[0] - img[k]) * a;
          img[k + 1] += (c[1] - img[k + 1]) * a;
          img[k + 2] += (c[2] - img[k + 2]) * a;
        }
    }
  },
};
