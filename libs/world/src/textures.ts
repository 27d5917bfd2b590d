/**
 * Generic procedural textures for the autoencoder: not world content and not any world rendering,
 * but the kinds of signal a general image codec must carry (periodic lines, fine dots, grids,
 * cell edges, glows on dark ground, noise, overlapping blobs), in random colours and scales.
 *
 * Why: Stable Diffusion's VAE is a general codec, trained on far more than the images its UNet is
 * later asked for. An Atelier VAE that only ever saw the base renderings blurs away exactly the
 * high-frequency detail new styles are made of, and no style learner can get past its decoder.
 */
import { PIXELS, SIZE, type RGB } from './content';
import { Rng } from './rng';
import { blend, clamp01, expNeg, fill, hsl, newCanvas, resetScratch, toBytes, valueNoise, type Canvas } from './styles/common';

// Math functions bound at module scope: global lookups are slow inside vm contexts (jest).
const { PI, abs, cos, floor, hypot, max, min, sin, sqrt } = Math;

export const TEXTURE_KINDS = ['grating', 'dots', 'grid', 'cells', 'glow', 'noise', 'blobs'] as const;
export type TextureKind = (typeof TEXTURE_KINDS)[number];

/** Any colour: random hue, saturation and lightness (textures are not tied to the world's palette). */
function anyColour(rng: Rng): RGB {
  return hsl(rng.range(0, 360), rng.range(0, 1), rng.range(0.05, 0.95));
}

/** Periodic stripes (sine or square wave) at a random angle and period, 1–3 colours. */
function grating(rng: Rng, img: Canvas): void {
  const a = anyColour(rng);
  const b = anyColour(rng);
  const angle = rng.range(0, PI);
  const period = rng.range(2.5, 16);
  const duty = rng.range(0.25, 0.75);
  const square = rng.float() < 0.6;
  const ux = cos(angle) / period;
  const uy = sin(angle) / period;
  const phase = rng.float();
  for (let y = 0; y < SIZE; y++) {
    for (let x = 0; x < SIZE; x++) {
      const u = x * ux + y * uy + phase;
      const f = u - floor(u);
      // Square waves anti-aliased over about a pixel's width of the period.
      const edge = 0.5 / period;
      const t = square ? clamp01((abs(f - 0.5) - (0.5 - duty / 2)) / edge + 0.5) : 0.5 + 0.5 * cos(2 * PI * u);
      const k = (y * SIZE + x) * 3;
      img[k] = a[0] + (b[0] - a[0]) * t;
      img[k + 1] = a[1] + (b[1] - a[1]) * t;
      img[k + 2] = a[2] + (b[2] - a[2]) * t;
    }
  }
}

/** A soft disc at (cx, cy) of radius r, anti-aliased. */
function disc(img: Canvas, cx: number, cy: number, r: number, c: RGB, alpha = 1): void {
  const x0 = max(0, floor(cx - r - 1));
  const x1 = min(SIZE - 1, floor(cx + r + 1));
  const y0 = max(0, floor(cy - r - 1));
  const y1 = min(SIZE - 1, floor(cy + r + 1));
  for (let y = y0; y <= y1; y++) {
    for (let x = x0; x <= x1; x++) blend(img, y * SIZE + x, c, alpha * clamp01(r + 0.5 - hypot(x + 0.5 - cx, y + 0.5 - cy)));
  }
}

/** Many small dots of several colours on a plain ground (dense or sparse). */
function dots(rng: Rng, img: Canvas): void {
  fill(img, anyColour(rng));
  const palette = Array.from({ length: 1 + floor(rng.float() * 4) }, () => anyColour(rng));
  const radius = rng.range(0.6, 2.8);
  const count = floor(rng.range(0.2, 1.2) * PIXELS / (radius * radius * 3));
  for (let n = 0; n < count; n++) {
    disc(img, rng.float() * SIZE, rng.float() * SIZE, radius * rng.range(0.7, 1.3), palette[floor(rng.float() * palette.length)]);
  }
}

/** Thin lines on a regular grid (optionally a finer sub-grid), slightly rotated. */
function grid(rng: Rng, img: Canvas): void {
  const ground = anyColour(rng);
  const line = anyColour(rng);
  fill(img, ground);
  const spacing = rng.range(3, 16);
  const width = rng.range(0.6, 2);
  const sub = rng.float() < 0.4 ? floor(rng.range(2, 5)) : 0;
  const angle = rng.range(-0.3, 0.3);
  const c = cos(angle);
  const s = sin(angle);
  const ox = rng.float() * spacing;
  const oy = rng.float() * spacing;
  for (let y = 0; y < SIZE; y++) {
    for (let x = 0; x < SIZE; x++) {
      const u = (x * c + y * s + ox) / spacing;
      const v = (-x * s + y * c + oy) / spacing;
      const du = abs(u - Math.round(u)) * spacing;
      const dv = abs(v - Math.round(v)) * spacing;
      let a = clamp01(width / 2 + 0.5 - min(du, dv));
      if (sub) {
        const su = abs(u * sub - Math.round(u * sub)) * (spacing / sub);
        const sv = abs(v * sub - Math.round(v * sub)) * (spacing / sub);
        a = max(a, 0.5 * clamp01(0.8 - min(su, sv)));
      }
      blend(img, y * SIZE + x, line, a);
    }
  }
}

/** Voronoi cells in random (or near-identical) colours, with edges of another colour. */
function cells(rng: Rng, img: Canvas): void {
  const n = floor(rng.range(6, 90));
  const px = Float32Array.from({ length: n }, () => rng.float() * SIZE);
  const py = Float32Array.from({ length: n }, () => rng.float() * SIZE);
  const base = anyColour(rng);
  const spread = rng.range(0.05, 1);
  const cols = Array.from({ length: n }, () => {
    const c = anyColour(rng);
    return [base[0] + (c[0] - base[0]) * spread, base[1] + (c[1] - base[1]) * spread, base[2] + (c[2] - base[2]) * spread] as RGB;
  });
  const edge = anyColour(rng);
  const edgeWidth = rng.float() < 0.25 ? 0 : rng.range(0.5, 2.5);
  for (let y = 0; y < SIZE; y++) {
    for (let x = 0; x < SIZE; x++) {
      let d1 = Infinity;
      let d2 = Infinity;
      let best = 0;
      for (let k = 0; k < n; k++) {
        const d = hypot(x + 0.5 - px[k], y + 0.5 - py[k]);
        if (d < d1) {
          d2 = d1;
          d1 = d;
          best = k;
        } else if (d < d2) d2 = d;
      }
      const i = y * SIZE + x;
      const c = cols[best];
      img[i * 3] = c[0];
      img[i * 3 + 1] = c[1];
      img[i * 3 + 2] = c[2];
      // (d2 - d1) / 2 approximates the distance to the cell border.
      if (edgeWidth > 0) blend(img, i, edge, clamp01(edgeWidth / 2 + 0.5 - (d2 - d1) / 2));
    }
  }
}

/** Glowing strokes (circles, segments) on a dark ground: bright cores and soft halos. */
function glow(rng: Rng, img: Canvas): void {
  fill(img, hsl(rng.range(0, 360), rng.range(0, 0.6), rng.range(0, 0.12)));
  const strokes = 1 + floor(rng.float() * 5);
  for (let s = 0; s < strokes; s++) {
    const col = hsl(rng.range(0, 360), rng.range(0.4, 1), rng.range(0.45, 0.75));
    const sigma = rng.range(0.8, 4);
    const circle = rng.float() < 0.5;
    const cx = rng.float() * SIZE;
    const cy = rng.float() * SIZE;
    const r = rng.range(4, 28);
    const ex = rng.float() * SIZE;
    const ey = rng.float() * SIZE;
    for (let y = 0; y < SIZE; y++) {
      for (let x = 0; x < SIZE; x++) {
        let d: number;
        if (circle) d = abs(hypot(x + 0.5 - cx, y + 0.5 - cy) - r);
        else {
          const vx = ex - cx;
          const vy = ey - cy;
          const t = clamp01(((x + 0.5 - cx) * vx + (y + 0.5 - cy) * vy) / (vx * vx + vy * vy + 1e-6));
          d = hypot(x + 0.5 - cx - t * vx, y + 0.5 - cy - t * vy);
        }
        const k = (y * SIZE + x) * 3;
        const halo = expNeg(d / sigma);
        const core = clamp01(1.2 - d);
        for (let c = 0; c < 3; c++) img[k + c] = clamp01(img[k + c] + col[c] * halo + (1 - col[c]) * core * 0.8);
      }
    }
  }
}

/** Value noise mapped through a 2–3 colour ramp, coarse to pixel-fine. */
function noise(rng: Rng, img: Canvas): void {
  const ramp = Array.from({ length: 2 + floor(rng.float() * 2) }, () => anyColour(rng));
  const field = valueNoise(rng, rng.range(2, 20));
  const contrast = rng.range(0.6, 2);
  for (let i = 0; i < PIXELS; i++) {
    const t = clamp01(0.5 + 0.5 * field[i] * contrast) * (ramp.length - 1);
    const j = min(ramp.length - 2, floor(t));
    const f = t - j;
    for (let c = 0; c < 3; c++) img[i * 3 + c] = ramp[j][c] + (ramp[j + 1][c] - ramp[j][c]) * f;
  }
}

/** Overlapping ellipses, some outlined, on a plain or noisy ground. */
function blobs(rng: Rng, img: Canvas): void {
  fill(img, anyColour(rng));
  const n = 2 + floor(rng.float() * 10);
  for (let b = 0; b < n; b++) {
    const col = anyColour(rng);
    const outline = rng.float() < 0.4 ? anyColour(rng) : null;
    const cx = rng.float() * SIZE;
    const cy = rng.float() * SIZE;
    const rx = rng.range(2, 20);
    const ry = rng.range(2, 20);
    const th = rng.range(0, PI);
    const c = cos(th);
    const s = sin(th);
    const w = rng.range(0.8, 2.5);
    for (let y = 0; y < SIZE; y++) {
      for (let x = 0; x < SIZE; x++) {
        const dx = x + 0.5 - cx;
        const dy = y + 0.5 - cy;
        const u = (dx * c + dy * s) / rx;
        const v = (-dx * s + dy * c) / ry;
        // Approximate signed distance (px) to the ellipse border.
        const d = (sqrt(u * u + v * v) - 1) * min(rx, ry);
        const i = y * SIZE + x;
        blend(img, i, col, clamp01(0.5 - d));
        if (outline) blend(img, i, outline, clamp01(w / 2 + 0.5 - abs(d)));
      }
    }
  }
}

const RENDER: Record<TextureKind, (rng: Rng, img: Canvas) => void> = { grating, dots, grid, cells, glow, noise, blobs };

/** One 64x64 RGB texture (bytes, HWC), deterministic from the seed; `kind` defaults to a random one. */
export function renderTexture(seed: number, kind?: TextureKind, out?: Uint8Array): { rgb: Uint8Array; kind: TextureKind } {
  const rng = new Rng(seed);
  const k = kind ?? TEXTURE_KINDS[floor(rng.float() * TEXTURE_KINDS.length)];
  resetScratch();
  const img = newCanvas();
  RENDER[k](rng, img);
  return { rgb: toBytes(img, out), kind: k };
}
