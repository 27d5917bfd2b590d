/**
 * Content of a world image: one shape of one colour, placed, sized and rotated at random.
 * Shapes are exact signed-distance functions in pixel space (negative inside), so styles can
 * draw fills, outlines, glows and dot tests from the same field.
 */
import { Rng } from './rng';

// Math functions bound at module scope: global lookups are slow inside vm contexts (jest).
const { PI, SQRT2, abs, cos, hypot, max, min, sin, sqrt } = Math;

/** Canvas side in pixels; every world image is SIZE x SIZE RGB. */
export const SIZE = 64;
export const PIXELS = SIZE * SIZE;

export const SHAPES = ['circle', 'square', 'triangle', 'star', 'ring', 'cross', 'diamond', 'heart'] as const;
export type Shape = (typeof SHAPES)[number];

export const COLOURS = ['red', 'orange', 'yellow', 'green', 'blue', 'purple', 'white', 'black'] as const;
export type Colour = (typeof COLOURS)[number];

export type RGB = readonly [number, number, number];

/** Reference colour of each name, linear-ish sRGB in [0, 1]. Per-image jitter stays near these. */
export const COLOUR_RGB: Record<Colour, RGB> = {
  red: [0.86, 0.12, 0.12],
  orange: [0.97, 0.52, 0.05],
  yellow: [0.97, 0.85, 0.1],
  green: [0.13, 0.65, 0.22],
  blue: [0.12, 0.32, 0.88],
  purple: [0.55, 0.18, 0.72],
  white: [0.98, 0.98, 0.98],
  black: [0.07, 0.07, 0.07],
};

/**
 * Rotation range per shape, in degrees either side of upright. Square and diamond stay within
 * ±15° and the diamond is a tall rhombus, so the two never meet; the cross never becomes an X.
 */
export const ROTATION_RANGE: Record<Shape, number> = {
  circle: 180,
  ring: 180,
  square: 15,
  diamond: 15,
  triangle: 25,
  star: 30,
  cross: 18,
  heart: 20,
};

/** Shape size as a fraction of the canvas side (the shape's nominal diameter). */
export const SIZE_RANGE: readonly [number, number] = [0.4, 0.75];

export interface ContentParams {
  shape: Shape;
  colour: Colour;
  /** Centre in pixels (x right, y down). */
  cx: number;
  cy: number;
  /** Nominal diameter as a fraction of the canvas. */
  size: number;
  /** Counter-clockwise rotation in degrees. */
  rotation: number;
}

/** Random placement of a given (or random) shape and colour, fully inside the canvas. */
export function sampleContent(rng: Rng, opts: { shape?: Shape; colour?: Colour } = {}): ContentParams {
  const shape = opts.shape ?? rng.pick(SHAPES);
  const colour = opts.colour ?? rng.pick(COLOURS);
  const size = rng.range(SIZE_RANGE[0], SIZE_RANGE[1]);
  const range = ROTATION_RANGE[shape];
  const rotation = rng.range(-range, range);
  // Place by the real bounding box so that large rotated shapes are never clipped.
  const probe = makeShape({ shape, colour, cx: 0, cy: 0, size, rotation });
  const margin = 2;
  const lox = margin - probe.bbox[0];
  const hix = SIZE - margin - probe.bbox[2];
  const loy = margin - probe.bbox[1];
  const hiy = SIZE - margin - probe.bbox[3];
  const cx = hix > lox ? rng.range(lox, hix) : (lox + hix) / 2;
  const cy = hiy > loy ? rng.range(loy, hiy) : (loy + hiy) / 2;
  return { shape, colour, cx, cy, size, rotation };
}

/** A placed shape: exact signed distance in pixels (negative inside) and its bounds. */
export interface PlacedShape {
  sdf(x: number, y: number): number;
  /** [minX, minY, maxX, maxY] in pixels. */
  bbox: readonly [number, number, number, number];
  /** Radius around (cx, cy) that contains the whole shape. */
  boundRadius: number;
}

type Vec = readonly [number, number];

/** Outline of each polygonal shape in local units (y up), fitting the unit circle. */
function polygonOf(shape: Shape): Vec[] | null {
  switch (shape) {
    case 'square':
      return [
        [-0.8, -0.8],
        [0.8, -0.8],
        [0.8, 0.8],
        [-0.8, 0.8],
      ];
    case 'diamond':
      // A tall rhombus: reads as a diamond at any allowed tilt, never as a square.
      return [
        [0, 1],
        [0.64, 0],
        [0, -1],
        [-0.64, 0],
      ];
    case 'triangle': {
      const r = 1.05;
      const shift = -0.26; // centre the bounding box rather than the centroid
      return [90, 210, 330].map((a) => [r * cos((a * PI) / 180), r * sin((a * PI) / 180) + shift] as Vec);
    }
    case 'star': {
      const pts: Vec[] = [];
      for (let i = 0; i < 10; i++) {
        const r = i % 2 === 0 ? 1 : 0.42;
        const a = PI / 2 + (i * PI) / 5;
        pts.push([r * cos(a), r * sin(a) - 0.095]);
      }
      return pts;
    }
    case 'cross': {
      const a = 0.3;
      const l = 0.92;
      return [
        [-a, l],
        [a, l],
        [a, a],
        [l, a],
        [l, -a],
        [a, -a],
        [a, -l],
        [-a, -l],
        [-a, -a],
        [-l, -a],
        [-l, a],
        [-a, a],
      ];
    }
    default:
      return null;
  }
}

/** Radius in pixels of a nominal unit of local space. */
export function pixelRadius(size: number): number {
  return (size * SIZE) / 2;
}

/** Heart units: half-width 0.604 maps to local 1; the bounding box centre is at y = 0.552. */
const HEART_HALF_WIDTH = 0.604;
const HEART_CENTRE = 0.552;

const KIND_POLYGON = 0;
const KIND_CIRCLE = 1;
const KIND_RING = 2;
const KIND_HEART = 3;

/**
 * Geometry of a placed shape in pixel space. One object layout for every kind, evaluated by one
 * `sdfAt` with a switch, so the per-pixel loops stay monomorphic and get inlined.
 */
export interface ShapeGeometry {
  kind: number;
  cx: number;
  cy: number;
  /** circle: radius; ring: mid radius; heart: pixels per heart unit. */
  a: number;
  /** ring: half thickness. */
  b: number;
  cos: number;
  sin: number;
  /** polygon: vertices and per-edge vector (to the previous vertex) and 1/|e|^2. */
  vx: Float64Array;
  vy: Float64Array;
  ex: Float64Array;
  ey: Float64Array;
  ie: Float64Array;
  /** Sharp points (x, y pairs) where the edge is supersampled instead of analytic. */
  corners: Float64Array;
}

const EMPTY = new Float64Array(0);

function sdfAt(g: ShapeGeometry, px: number, py: number): number {
  switch (g.kind) {
    case KIND_POLYGON: {
      // Exact polygon SDF with a winding-independent crossing test (after Inigo Quilez).
      const { vx, vy, ex, ey, ie } = g;
      const n = vx.length;
      let d = (px - vx[0]) * (px - vx[0]) + (py - vy[0]) * (py - vy[0]);
      let s = 1;
      for (let i = 0, j = n - 1; i < n; j = i, i++) {
        const exi = ex[i];
        const eyi = ey[i];
        const wx = px - vx[i];
        const wy = py - vy[i];
        let t = (wx * exi + wy * eyi) * ie[i];
        t = t < 0 ? 0 : t > 1 ? 1 : t;
        const bx = wx - exi * t;
        const by = wy - eyi * t;
        const dd = bx * bx + by * by;
        if (dd < d) d = dd;
        const c1 = py >= vy[i];
        const c2 = py < vy[j];
        const c3 = exi * wy > eyi * wx;
        if ((c1 && c2 && c3) || (!c1 && !c2 && !c3)) s = -s;
      }
      return s * sqrt(d);
    }
    case KIND_CIRCLE: {
      const dx = px - g.cx;
      const dy = py - g.cy;
      return sqrt(dx * dx + dy * dy) - g.a;
    }
    case KIND_RING: {
      const dx = px - g.cx;
      const dy = py - g.cy;
      return abs(sqrt(dx * dx + dy * dy) - g.a) - g.b;
    }
    default: {
      // Inigo Quilez's exact heart: tip at the origin, lobes up to y≈1.10, |x|≤0.604.
      const scale = g.a;
      const dx = (px - g.cx) / scale;
      const dy = -(py - g.cy) / scale;
      let hx = dx * g.cos + dy * g.sin; // rotate by -theta
      const hy = -dx * g.sin + dy * g.cos + HEART_CENTRE;
      hx = hx < 0 ? -hx : hx;
      if (hy + hx > 1) {
        const qx = hx - 0.25;
        const qy = hy - 0.75;
        return (sqrt(qx * qx + qy * qy) - SQRT2 / 4) * scale;
      }
      const ay = hy - 1;
      const m = 0.5 * max(hx + hy, 0);
      const bx = hx - m;
      const by = hy - m;
      const d = sqrt(min(hx * hx + ay * ay, bx * bx + by * by));
      return (hx > hy ? d : -d) * scale;
    }
  }
}

/** A placed shape: exact signed distance in pixels (negative inside) and its bounds. */
export interface PlacedShape {
  sdf(x: number, y: number): number;
  /** [minX, minY, maxX, maxY] in pixels. */
  bbox: readonly [number, number, number, number];
  /** Radius around (cx, cy) that contains the whole shape. */
  boundRadius: number;
  /** Radius around (cx, cy) that lies wholly inside the shape (0 if the centre is outside). */
  innerRadius: number;
  /** Internal geometry for the fast field evaluation. */
  readonly geom: ShapeGeometry;
}

function placed(g: ShapeGeometry, bbox: [number, number, number, number], boundRadius: number): PlacedShape {
  const centre = sdfAt(g, g.cx, g.cy);
  return { sdf: (x, y) => sdfAt(g, x, y), bbox, boundRadius, innerRadius: max(0, -centre), geom: g };
}

/** Builds the pixel-space SDF of placed content. */
export function makeShape(c: ContentParams): PlacedShape {
  const R = pixelRadius(c.size);
  const th = (c.rotation * PI) / 180;
  const cosT = cos(th);
  const sinT = sin(th);
  const { cx, cy } = c;
  const geom: ShapeGeometry = { kind: KIND_POLYGON, cx, cy, a: 0, b: 0, cos: cosT, sin: sinT, vx: EMPTY, vy: EMPTY, ex: EMPTY, ey: EMPTY, ie: EMPTY, corners: EMPTY };
  // local (u, v up) -> rotate ccw -> pixel (y down)
  const toPixel = (u: number, v: number): Vec => [cx + R * (u * cosT - v * sinT), cy - R * (u * sinT + v * cosT)];
  const boxOf = (pts: Vec[]): [number, number, number, number] => [
    min(...pts.map((p) => p[0])),
    min(...pts.map((p) => p[1])),
    max(...pts.map((p) => p[0])),
    max(...pts.map((p) => p[1])),
  ];
  const poly = polygonOf(c.shape);
  if (poly) {
    const pts = poly.map(([u, v]) => toPixel(u, v));
    const n = pts.length;
    geom.vx = Float64Array.from(pts, (p) => p[0]);
    geom.vy = Float64Array.from(pts, (p) => p[1]);
    geom.ex = new Float64Array(n);
    geom.ey = new Float64Array(n);
    geom.ie = new Float64Array(n);
    for (let i = 0, j = n - 1; i < n; j = i, i++) {
      geom.ex[i] = geom.vx[j] - geom.vx[i];
      geom.ey[i] = geom.vy[j] - geom.vy[i];
      geom.ie[i] = 1 / (geom.ex[i] * geom.ex[i] + geom.ey[i] * geom.ey[i]);
    }
    geom.corners = Float64Array.from(pts.flat());
    return placed(geom, boxOf(pts), max(...pts.map((p) => hypot(p[0] - cx, p[1] - cy))));
  }
  if (c.shape === 'circle' || c.shape === 'ring') {
    const r = 0.95 * R;
    if (c.shape === 'circle') {
      geom.kind = KIND_CIRCLE;
      geom.a = r;
    } else {
      // Outer radius 0.95, inner 0.55: a wide hole that never reads as a filled circle.
      geom.kind = KIND_RING;
      geom.a = 0.75 * R;
      geom.b = 0.2 * R;
    }
    return placed(geom, [cx - r, cy - r, cx + r, cy + r], r);
  }
  geom.kind = KIND_HEART;
  geom.a = R / HEART_HALF_WIDTH;
  const h = (1.104 - HEART_CENTRE) / HEART_HALF_WIDTH; // local half-height
  const box = [toPixel(-1, -h), toPixel(1, -h), toPixel(1, h), toPixel(-1, h)];
  // The tip (heart y = 0) and the cusp between the lobes (heart y = 1) are sharp.
  geom.corners = Float64Array.from([...toPixel(0, -HEART_CENTRE / HEART_HALF_WIDTH), ...toPixel(0, (1 - HEART_CENTRE) / HEART_HALF_WIDTH)]);
  return placed(geom, boxOf(box), R * hypot(1, h));
}

/** Per-pixel fields of a placed shape: signed distance (px) and anti-aliased coverage in [0, 1]. */
export interface ShapeField {
  content: ContentParams;
  shape: PlacedShape;
  /**
   * Signed distance at pixel centres. Exact within `exactWithin` px of the outline; farther away
   * a continuous bilinear interpolation of the exact field (right sign, magnitude > exactWithin).
   */
  d: Float32Array;
  /** Fraction of each pixel inside the shape (anti-aliased; see shapeField). */
  cov: Float32Array;
}

// 4x4 stratified sub-pixel offsets.
const SUB = [-0.375, -0.125, 0.125, 0.375];
/** Block side of the coarse pass, and the farthest a pixel centre is from its block's nearest corner. */
const BLOCK = 4;
const REACH = 1.5 * SQRT2;
const CORNER_GRID = new Float64Array((SIZE / BLOCK + 1) * (SIZE / BLOCK + 1));

/**
 * Evaluates the shape on the pixel grid.
 *
 * Coverage: edges use the analytic coverage of the exact distance (clamp(0.5 - d)), which is
 * exact for straight edges; pixels within 1.5 px of a corner are supersampled 4x4.
 * Speed: a coarse pass evaluates the SDF on the corners of 4x4 blocks; blocks provably farther
 * than `exactWithin` from the outline get a bilinear interpolation of their corners (continuous,
 * right sign, magnitude > exactWithin) instead of 16 exact evaluations. Styles say how far from
 * the outline they need exact values.
 */
export function shapeField(content: ContentParams, exactWithin = 4, buffers?: { d: Float32Array; cov: Float32Array }): ShapeField {
  const shape = makeShape(content);
  const g = shape.geom;
  const d = buffers?.d ?? new Float32Array(PIXELS);
  const cov = buffers?.cov ?? new Float32Array(PIXELS);
  if (buffers) cov.fill(0);
  const corners = g.corners;
  const nc = corners.length;
  // Exact SDF on the block-corner lattice.
  const NB = SIZE / BLOCK;
  const grid = CORNER_GRID;
  for (let j = 0; j <= NB; j++) for (let i = 0; i <= NB; i++) grid[j * (NB + 1) + i] = sdfAt(g, i * BLOCK, j * BLOCK);
  // A pixel centre is within REACH of its block's nearest corner, so by 1-Lipschitz continuity a
  // block whose corners all exceed exactWithin + REACH (same sign) is entirely far from the outline.
  const farCut = exactWithin + REACH;
  for (let by = 0; by < NB; by++) {
    for (let bx = 0; bx < NB; bx++) {
      const x0 = bx * BLOCK;
      const y0 = by * BLOCK;
      const c00 = grid[by * (NB + 1) + bx];
      const c10 = grid[by * (NB + 1) + bx + 1];
      const c01 = grid[(by + 1) * (NB + 1) + bx];
      const c11 = grid[(by + 1) * (NB + 1) + bx + 1];
      const allOut = c00 > farCut && c10 > farCut && c01 > farCut && c11 > farCut;
      const allIn = c00 < -farCut && c10 < -farCut && c01 < -farCut && c11 < -farCut;
      if (allOut || allIn) {
        // Far block: bilinear interpolation of the corners (continuous across blocks).
        const inside = allIn ? 1 : 0;
        for (let y = y0; y < y0 + BLOCK; y++) {
          const ty = (y + 0.5 - y0) / BLOCK;
          const l = c00 + (c01 - c00) * ty;
          const r = c10 + (c11 - c10) * ty;
          for (let x = x0; x < x0 + BLOCK; x++) {
            const i = y * SIZE + x;
            d[i] = l + (r - l) * ((x + 0.5 - x0) / BLOCK);
            cov[i] = inside;
          }
        }
        continue;
      }
      for (let y = y0; y < y0 + BLOCK; y++) {
        const py = y + 0.5;
        for (let x = x0; x < x0 + BLOCK; x++) {
          const px = x + 0.5;
          const i = y * SIZE + x;
          const v = sdfAt(g, px, py);
          d[i] = v;
          if (v <= -0.75) cov[i] = 1;
          else if (v < 0.75) {
            let nearCorner = false;
            for (let k = 0; k < nc; k += 2) {
              const qx = px - corners[k];
              const qy = py - corners[k + 1];
              if (qx * qx + qy * qy < 2.25) {
                nearCorner = true;
                break;
              }
            }
            if (nearCorner) {
              let n = 0;
              for (let sy = 0; sy < 4; sy++) for (let sx = 0; sx < 4; sx++) if (sdfAt(g, px + SUB[sx], py + SUB[sy]) < 0) n++;
              cov[i] = n / 16;
            } else cov[i] = v >= 0.5 ? 0 : v <= -0.5 ? 1 : 0.5 - v;
          }
        }
      }
    }
  }
  return { content, shape, d, cov };
}

/**
 * Reference coverage by brute-force n x n supersampling of every pixel (slow; for tests and
 * for checking the fast path).
 */
export function supersampledCoverage(content: ContentParams, n = 8): Float32Array {
  const g = makeShape(content).geom;
  const cov = new Float32Array(PIXELS);
  for (let y = 0; y < SIZE; y++)
    for (let x = 0; x < SIZE; x++) {
      let k = 0;
      for (let sy = 0; sy < n; sy++) for (let sx = 0; sx < n; sx++) if (sdfAt(g, x + (sx + 0.5) / n, y + (sy + 0.5) / n) < 0) k++;
      cov[y * SIZE + x] = k / (n * n);
    }
  return cov;
}

/** Coverage mask of content (1 inside, 0 outside, fractional on the anti-aliased edge). */
export function shapeMask(content: ContentParams): Float32Array {
  return shapeField(content, 1).cov;
}
