/**
 * `pixel`: pixel art on a coarse grid of 3x3- or 4x4-pixel blocks, with a small fixed palette per colour
 * (highlight / fill / shade), a one-block dark outline and a flat retro background.
 */
import { SIZE, type Colour, type RGB } from '../content';
import { luminance, type StyleRenderer } from './common';

// Math functions bound at module scope: global lookups are slow inside vm contexts (jest).
const { abs, ceil, min } = Math;

const hex = (h: string): RGB => [parseInt(h.slice(1, 3), 16) / 255, parseInt(h.slice(3, 5), 16) / 255, parseInt(h.slice(5, 7), 16) / 255];

/** [highlight, fill, shade] per content colour. */
const RAMP: Record<Colour, [RGB, RGB, RGB]> = {
  red: [hex('#ff6b6b'), hex('#e0202a'), hex('#8f1020')],
  orange: [hex('#ffc15e'), hex('#ff8a10'), hex('#b85200')],
  yellow: [hex('#fff6a0'), hex('#ffe020'), hex('#c8a000')],
  green: [hex('#7ef08a'), hex('#20b040'), hex('#106028')],
  blue: [hex('#7ab0ff'), hex('#2058e0'), hex('#102c88')],
  purple: [hex('#d08aff'), hex('#9030c8'), hex('#501878')],
  white: [hex('#ffffff'), hex('#f0f0f0'), hex('#b8c0cc')],
  black: [hex('#505060'), hex('#181820'), hex('#000000')],
};

const BACKGROUNDS: RGB[] = ['#1d2b53', '#5f574f', '#c2c3c7', '#fff1e8', '#29adff', '#ffccaa', '#83769c', '#008751', '#7e2553', '#ab5236'].map(hex);

export const pixel: StyleRenderer = {
  exactWithin: 1,
  render(f, rng, img) {
    const { colour } = f.content;
    const ramp = RAMP[colour];
    const fillL = luminance(ramp[1]);
    const options = BACKGROUNDS.filter((c) => abs(luminance(c) - fillL) > 0.28);
    const bg = rng.pick(options);
    const bg2: RGB = [bg[0] * 0.9, bg[1] * 0.9, bg[2] * 0.9];
    const dither = rng.bool(0.5);
    const ditherRow = rng.int(10, 18);
    const outline: RGB = colour === 'black' ? hex('#e8e8f0') : luminance(bg) < 0.2 ? hex('#f4f4f4') : hex('#101018');
    const useOutline = rng.bool(0.75);
    const lightFromLeft = rng.bool(0.5);
    // Block size: 4 px for large shapes, 3 px for small ones so that stars and rings survive.
    const B = f.content.size >= 0.58 ? rng.pick([3, 4]) : 3;
    const N = ceil(SIZE / B);
    // Block occupancy from mean coverage (partial edge blocks use their visible pixels).
    const inside = new Uint8Array(N * N);
    for (let by = 0; by < N; by++)
      for (let bx = 0; bx < N; bx++) {
        let s = 0;
        let n = 0;
        for (let y = by * B; y < min(SIZE, (by + 1) * B); y++)
          for (let x = bx * B; x < min(SIZE, (bx + 1) * B); x++) {
            s += f.cov[y * SIZE + x];
            n++;
          }
        inside[by * N + bx] = s >= n * 0.45 ? 1 : 0;
      }
    const at = (bx: number, by: number): number => (bx < 0 || by < 0 || bx >= N || by >= N ? 0 : inside[by * N + bx]);
    for (let by = 0; by < N; by++)
      for (let bx = 0; bx < N; bx++) {
        let c: RGB;
        if (at(bx, by)) {
          // Light from above: top edge highlighted, bottom and far side shaded.
          const far = lightFromLeft ? at(bx + 1, by) : at(bx - 1, by);
          if (!at(bx, by + 1) || !far) c = ramp[2];
          else if (!at(bx, by - 1)) c = ramp[0];
          else c = ramp[1];
        } else if (useOutline && (at(bx - 1, by) || at(bx + 1, by) || at(bx, by - 1) || at(bx, by + 1))) {
          c = outline;
        } else {
          c = dither && by >= ditherRow && ((bx + by) % 2 === 0 || by > ditherRow + 1) ? bg2 : bg;
        }
        for (let y = by * B; y < min(SIZE, (by + 1) * B); y++)
          for (let x = bx * B; x < min(SIZE, (bx + 1) * B); x++) {
            const k = (y * SIZE + x) * 3;
            img[k] = c[0];
            img[k + 1] = c[1];
            img[k + 2] = c[2];
          }
      }
  },
};
