/** Small raster toolkit shared by the styles: float RGB canvases, colour maths, noise. */
import { PIXELS, SIZE, type Colour, COLOUR_RGB, type RGB, type ShapeField } from '../content';
import { Rng } from '../rng';

// Math functions bound at module scope: global lookups are slow inside vm contexts (jest).
const { abs, ceil, exp, floor } = Math;

/** An RGB canvas: PIXELS * 3 floats in [0, 1], row-major, interleaved. */
export type Canvas = Float32Array;

let canvas: Canvas | null = null;

/** The shared render canvas, cleared to black (valid until the next call). */
export function newCanvas(): Canvas {
  if (!canvas) canvas = new Float32Array(PIXELS * 3);
  canvas.fill(0);
  return canvas;
}

/** exp(-t) for t >= 0 by table (t beyond 16 gives 0): glows and falloffs need no precision. */
const EXP_STEP = 32;
const EXP_LUT = Float32Array.from({ length: 16 * EXP_STEP + 2 }, (_, i) => exp(-i / EXP_STEP));
export function expNeg(t: number): number {
  if (t <= 0) return 1;
  const f = t * EXP_STEP;
  if (f >= 16 * EXP_STEP) return 0;
  const i = f | 0;
  const a = EXP_LUT[i];
  return a + (EXP_LUT[i + 1] - a) * (f - i);
}

export function fill(img: Canvas, c: RGB): void {
  for (let i = 0; i < PIXELS * 3; i += 3) {
    img[i] = c[0];
    img[i + 1] = c[1];
    img[i + 2] = c[2];
  }
}

/** img = mix(img, c, a) at pixel i. */
export function blend(img: Canvas, i: number, c: RGB, a: number): void {
  if (a <= 0) return;
  if (a > 1) a = 1;
  const k = i * 3;
  img[k] += (c[0] - img[k]) * a;
  img[k + 1] += (c[1] - img[k + 1]) * a;
  img[k + 2] += (c[2] - img[k + 2]) * a;
}

/** Rounds to bytes with clamping. */
export function toBytes(img: Canvas, out: Uint8Array = new Uint8Array(PIXELS * 3)): Uint8Array {
  for (let i = 0; i < img.length; i++) {
    const v = img[i] * 255 + 0.5;
    out[i] = v <= 0 ? 0 : v >= 255 ? 255 : v;
  }
  return out;
}

export const clamp01 = (v: number): number => (v < 0 ? 0 : v > 1 ? 1 : v);
export const smoothstep = (e0: number, e1: number, x: number): number => {
  const t = clamp01((x - e0) / (e1 - e0));
  return t * t * (3 - 2 * t);
};
export const mixRgb = (a: RGB, b: RGB, t: number): RGB => [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t];
export const scaleRgb = (a: RGB, s: number): RGB => [clamp01(a[0] * s), clamp01(a[1] * s), clamp01(a[2] * s)];
export const luminance = (c: RGB): number => 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];

export function hsl(h: number, s: number, l: number): RGB {
  h = ((h % 360) + 360) % 360;
  const c = (1 - abs(2 * l - 1)) * s;
  const hp = h / 60;
  const x = c * (1 - abs((hp % 2) - 1));
  let r = 0;
  let g = 0;
  let b = 0;
  if (hp < 1) [r, g, b] = [c, x, 0];
  else if (hp < 2) [r, g, b] = [x, c, 0];
  else if (hp < 3) [r, g, b] = [0, c, x];
  else if (hp < 4) [r, g, b] = [0, x, c];
  else if (hp < 5) [r, g, b] = [x, 0, c];
  else [r, g, b] = [c, 0, x];
  const m = l - c / 2;
  return [r + m, g + m, b + m];
}

/**
 * The content colour with a small per-image jitter (brightness and per-channel), small enough
 * that a red stays red and an orange never drifts into yellow.
 */
export function contentColour(colour: Colour, rng: Rng, amount = 1): RGB {
  const base = COLOUR_RGB[colour];
  const s = 1 + rng.range(-0.06, 0.06) * amount;
  return [
    clamp01(base[0] * s + rng.range(-0.03, 0.03) * amount),
    clamp01(base[1] * s + rng.range(-0.03, 0.03) * amount),
    clamp01(base[2] * s + rng.range(-0.03, 0.03) * amount),
  ];
}

/** Light pastel background: random hue, low saturation. */
export function pastel(rng: Rng, lo = 0.84, hi = 0.94): RGB {
  return hsl(rng.range(0, 360), rng.range(0.08, 0.35), rng.range(lo, hi));
}

// Scratch buffers reused across renders (rendering is synchronous, so one arena suffices):
// avoids allocating ~10 off-heap typed arrays per image.
const POOL: Float32Array[] = [];
let poolUsed = 0;

/** Marks all scratch buffers free; called at the start of every render. */
export function resetScratch(): void {
  poolUsed = 0;
}

/** A PIXELS-long scratch buffer, valid until the next `resetScratch` (contents undefined). */
export function scratch(): Float32Array {
  // Renderers called without a reset fall back to plain allocation instead of growing the pool.
  if (poolUsed >= 32) return new Float32Array(PIXELS);
  if (poolUsed === POOL.length) POOL.push(new Float32Array(PIXELS));
  return POOL[poolUsed++];
}

const ROWS = new Float32Array(34 * SIZE);
const LATTICE = new Float32Array(34 * 34);

/**
 * Smooth value noise in [-1, 1] on the pixel grid with lattice spacing `cell` px (>= 2;
 * bilinear with smoothstep weights, random phase).
 */
export function valueNoise(rng: Rng, cell: number, out: Float32Array = scratch()): Float32Array {
  if (cell < 2) cell = 2;
  const n = ceil(SIZE / cell) + 2;
  for (let i = 0; i < n * n; i++) LATTICE[i] = rng.float() * 2 - 1;
  const ox = rng.float();
  const oy = rng.float();
  const inv = 1 / cell;
  // Interpolate along x once per lattice row, then only along y per pixel.
  for (let r = 0; r < n; r++) {
    const base = r * n;
    for (let x = 0; x < SIZE; x++) {
      const fx = (x + 0.5) * inv + ox;
      const ix = floor(fx);
      let t = fx - ix;
      t = t * t * (3 - 2 * t);
      const a = LATTICE[base + ix];
      ROWS[r * SIZE + x] = a + (LATTICE[base + ix + 1] - a) * t;
    }
  }
  for (let y = 0; y < SIZE; y++) {
    const fy = (y + 0.5) * inv + oy;
    const iy = floor(fy);
    let ty = fy - iy;
    ty = ty * ty * (3 - 2 * ty);
    const r0 = iy * SIZE;
    const r1 = r0 + SIZE;
    const o = y * SIZE;
    for (let x = 0; x < SIZE; x++) {
      const a = ROWS[r0 + x];
      out[o + x] = a + (ROWS[r1 + x] - a) * ty;
    }
  }
  return out;
}

/** Sum of value-noise octaves (cell halves, amplitude halves), roughly in [-1, 1]. */
export function fbm(rng: Rng, cell: number, octaves: number): Float32Array {
  const out = scratch();
  out.fill(0);
  const tmp = scratch();
  let amp = 1;
  let total = 0;
  for (let o = 0; o < octaves; o++) {
    valueNoise(rng, cell, tmp);
    for (let i = 0; i < PIXELS; i++) out[i] += amp * tmp[i];
    total += amp;
    amp *= 0.5;
    cell /= 2;
  }
  for (let i = 0; i < PIXELS; i++) out[i] /= total;
  return out;
}

/** Independent uniform noise in [-1, 1] per pixel (paper grain). */
export function grain(rng: Rng): Float32Array {
  const out = scratch();
  for (let i = 0; i < PIXELS; i++) out[i] = rng.float() * 2 - 1;
  return out;
}

/** Adds grayscale texture t * amount to every channel. */
export function addTexture(img: Canvas, t: Float32Array, amount: number): void {
  for (let i = 0; i < PIXELS; i++) {
    const v = t[i] * amount;
    img[i * 3] += v;
    img[i * 3 + 1] += v;
    img[i * 3 + 2] += v;
  }
}

/** Approximate hue (degrees) of each chromatic content colour; null for white/black. */
export const COLOUR_HUE: Record<Colour, number | null> = {
  red: 0,
  orange: 30,
  yellow: 52,
  green: 130,
  blue: 222,
  purple: 282,
  white: null,
  black: null,
};

/** A hue at least `gap` degrees away from the content colour's hue. */
export function hueAvoiding(rng: Rng, colour: Colour, gap = 60): number {
  const h = COLOUR_HUE[colour];
  if (h === null) return rng.range(0, 360);
  return h + gap + rng.range(0, 360 - 2 * gap);
}

/** A style: renders a shape field into a float canvas, drawing all its variation from `rng`. */
export interface StyleRenderer {
  /** How far outside the shape (px) the style needs exact distances. */
  exactWithin: number;
  render(field: ShapeField, rng: Rng, img: Canvas): void;
}
