/**
 * `blueprint`: a technical drawing. Prussian-blue sheet with a fine and a major grid, the shape
 * as a crisp white outline over a translucent fill in the content colour, with dashed centre
 * lines and a dimension line.
 */
import { SIZE, type RGB } from '../content';
import { addTexture, blend, clamp01, contentColour, fbm, hsl, type StyleRenderer } from './common';

// Math functions bound at module scope: global lookups are slow inside vm contexts (jest).
const { abs, ceil, floor, max, min, round } = Math;

export const blueprint: StyleRenderer = {
  exactWithin: 2,
  render(f, rng, img) {
    const { colour } = f.content;
    let col = contentColour(colour, rng, 0.6);
    // Plain blue vanishes on the sheet; use a brighter azure that is still clearly "blue".
    if (colour === 'blue') col = [0.25, 0.62, 1];
    const sheet = hsl(rng.range(205, 222), rng.range(0.55, 0.8), rng.range(0.25, 0.34));
    const line: RGB = [0.93, 0.97, 1];
    for (let i = 0; i < SIZE * SIZE; i++) {
      img[i * 3] = sheet[0];
      img[i * 3 + 1] = sheet[1];
      img[i * 3 + 2] = sheet[2];
    }
    addTexture(img, fbm(rng, 16, 2), 0.025);
    // Grid.
    const g = rng.int(5, 8);
    const major = rng.int(3, 5);
    const ox = rng.int(0, g * major - 1);
    const oy = rng.int(0, g * major - 1);
    const minorA = rng.range(0.14, 0.24);
    const majorA = rng.range(0.32, 0.45);
    for (let y = 0; y < SIZE; y++)
      for (let x = 0; x < SIZE; x++) {
        const gx = (x + ox) % g === 0;
        const gy = (y + oy) % g === 0;
        if (!gx && !gy) continue;
        const mx = gx && ((x + ox) / g) % major === 0;
        const my = gy && ((y + oy) / g) % major === 0;
        blend(img, y * SIZE + x, line, mx || my ? majorA : minorA);
      }
    // Fill, outline.
    const fillA = rng.range(0.8, 0.92);
    const w = rng.range(1.1, 1.8);
    const { d, cov } = f;
    for (let i = 0; i < SIZE * SIZE; i++) {
      if (cov[i] > 0) blend(img, i, col, cov[i] * fillA);
      const o = clamp01(w * 0.5 + 0.5 - abs(d[i]));
      if (o > 0) blend(img, i, line, o * 0.97);
    }
    // Dashed centre lines through the shape, overshooting its bounds.
    const [bx0, by0, bx1, by1] = f.shape.bbox;
    const cx = round(f.content.cx - 0.5);
    const cy = round(f.content.cy - 0.5);
    const dash = rng.int(3, 4);
    const gap = 2;
    const cA = rng.range(0.45, 0.7);
    for (let x = max(0, floor(bx0 - 3)); x <= min(SIZE - 1, ceil(bx1 + 3)); x++)
      if ((x - cx + 64) % (dash + gap) < dash) blend(img, cy * SIZE + x, line, cA);
    for (let y = max(0, floor(by0 - 3)); y <= min(SIZE - 1, ceil(by1 + 3)); y++)
      if ((y - cy + 64) % (dash + gap) < dash) blend(img, y * SIZE + cx, line, cA);
    // Dimension line under (or over) the shape with end ticks.
    const yDim = by1 + 3 < SIZE - 1 ? round(by1 + 3) : by0 - 3 > 1 ? round(by0 - 3) : -1;
    if (yDim >= 1 && yDim < SIZE - 1) {
      const xa = max(0, round(bx0));
      const xb = min(SIZE - 1, round(bx1));
      for (let x = xa; x <= xb; x++) blend(img, yDim * SIZE + x, line, 0.7);
      for (const x of [xa, xb]) for (let dy = -1; dy <= 1; dy++) blend(img, (yDim + dy) * SIZE + x, line, 0.8);
    }
  },
};
