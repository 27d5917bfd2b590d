/**
 * Contact sheets with text labels, drawn in plain RGB bytes (no font library): a block per method, one row per
 * style, one column per task — the museum as it grew. Labels use a built-in 5×8 pixel font (lower case,
 * digits and a little punctuation; other characters print as `?`).
 */
import { tf, imageToBytes } from '@museum/tensor';
import { encodePng, type RgbImage } from '@museum/world';

const GLYPH_W = 5;
/** 7 rows above the baseline and one for descenders (g, j, p, q, y, comma). */
const GLYPH_H = 8;

// Each glyph: rows of 5 pixels top down, '#' = ink (7 rows, or 8 with a descender).
const GLYPHS: Record<string, string> = {
  a: '.....|.....|.###.|....#|.####|#...#|.####',
  b: '#....|#....|####.|#...#|#...#|#...#|####.',
  c: '.....|.....|.####|#....|#....|#....|.####',
  d: '....#|....#|.####|#...#|#...#|#...#|.####',
  e: '.....|.....|.###.|#...#|#####|#....|.###.',
  f: '..##.|.#...|####.|.#...|.#...|.#...|.#...',
  g: '.....|.....|.####|#...#|#...#|.####|....#|.###.',
  h: '#....|#....|####.|#...#|#...#|#...#|#...#',
  i: '..#..|.....|.##..|..#..|..#..|..#..|.###.',
  j: '...#.|.....|..##.|...#.|...#.|...#.|#..#.|.##..',
  k: '#....|#....|#..#.|#.#..|##...|#.#..|#..#.',
  l: '.##..|..#..|..#..|..#..|..#..|..#..|.###.',
  m: '.....|.....|##.#.|#.#.#|#.#.#|#.#.#|#.#.#',
  n: '.....|.....|####.|#...#|#...#|#...#|#...#',
  o: '.....|.....|.###.|#...#|#...#|#...#|.###.',
  p: '.....|.....|####.|#...#|#...#|####.|#....|#....',
  q: '.....|.....|.####|#...#|#...#|.####|....#|....#',
  r: '.....|.....|#.##.|##..#|#....|#....|#....',
  s: '.....|.....|.####|#....|.###.|....#|####.',
  t: '.#...|.#...|####.|.#...|.#...|.#..#|..##.',
  u: '.....|.....|#...#|#...#|#...#|#..##|.##.#',
  v: '.....|.....|#...#|#...#|#...#|.#.#.|..#..',
  w: '.....|.....|#...#|#...#|#.#.#|#.#.#|.#.#.',
  x: '.....|.....|#...#|.#.#.|..#..|.#.#.|#...#',
  y: '.....|.....|#...#|#...#|#...#|.####|....#|.###.',
  z: '.....|.....|#####|...#.|..#..|.#...|#####',
  '0': '.###.|#...#|#..##|#.#.#|##..#|#...#|.###.',
  '1': '..#..|.##..|..#..|..#..|..#..|..#..|.###.',
  '2': '.###.|#...#|....#|...#.|..#..|.#...|#####',
  '3': '####.|....#|....#|.###.|....#|....#|####.',
  '4': '...#.|..##.|.#.#.|#..#.|#####|...#.|...#.',
  '5': '#####|#....|####.|....#|....#|#...#|.###.',
  '6': '..##.|.#...|#....|####.|#...#|#...#|.###.',
  '7': '#####|....#|...#.|..#..|.#...|.#...|.#...',
  '8': '.###.|#...#|#...#|.###.|#...#|#...#|.###.',
  '9': '.###.|#...#|#...#|.####|....#|...#.|.##..',
  ' ': '.....|.....|.....|.....|.....|.....|.....',
  '-': '.....|.....|.....|#####|.....|.....|.....',
  '+': '.....|..#..|..#..|#####|..#..|..#..|.....',
  '=': '.....|.....|#####|.....|#####|.....|.....',
  '<': '...#.|..#..|.#...|#....|.#...|..#..|...#.',
  '>': '.#...|..#..|...#.|....#|...#.|..#..|.#...',
  '.': '.....|.....|.....|.....|.....|.##..|.##..',
  ',': '.....|.....|.....|.....|.##..|..#..|.#...',
  ':': '.....|.##..|.##..|.....|.##..|.##..|.....',
  '/': '.....|....#|...#.|..#..|.#...|#....|.....',
  '%': '##...|##..#|...#.|..#..|.#...|#..##|...##',
  '(': '...#.|..#..|.#...|.#...|.#...|..#..|...#.',
  ')': '.#...|..#..|...#.|...#.|...#.|..#..|.#...',
  _: '.....|.....|.....|.....|.....|.....|#####',
  '?': '.###.|#...#|....#|...#.|..#..|.....|..#..',
};

const INK: readonly [number, number, number] = [30, 30, 30];
const PAPER = 255;
const EMPTY: readonly [number, number, number] = [228, 228, 228];

/** Width in pixels of `text` at `scale` (one pixel column between letters). */
export function textWidth(text: string, scale = 1): number {
  return text.length === 0 ? 0 : (text.length * (GLYPH_W + 1) - 1) * scale;
}

export function textHeight(scale = 1): number {
  return GLYPH_H * scale;
}

function fillRect(img: RgbImage, x: number, y: number, w: number, h: number, c: readonly [number, number, number]): void {
  for (let yy = Math.max(0, y); yy < Math.min(img.height, y + h); yy++) {
    for (let xx = Math.max(0, x); xx < Math.min(img.width, x + w); xx++) {
      const o = (yy * img.width + xx) * 3;
      img.rgb[o] = c[0];
      img.rgb[o + 1] = c[1];
      img.rgb[o + 2] = c[2];
    }
  }
}

/** Draw `text` with its top-left corner at (x, y). */
export function drawText(img: RgbImage, text: string, x: number, y: number, scale = 1, colour: readonly [number, number, number] = INK): void {
  let cx = x;
  for (const ch of text.toLowerCase()) {
    const rows = (GLYPHS[ch] ?? GLYPHS['?']).split('|');
    rows.forEach((row, gy) => {
      for (let gx = 0; gx < GLYPH_W; gx++) if (row[gx] === '#') fillRect(img, cx + gx * scale, y + gy * scale, scale, scale, colour);
    });
    cx += (GLYPH_W + 1) * scale;
  }
}

/** Copy `src` into `dst` at (x, y), resized to `size`×`size` by nearest neighbour. */
function blit(dst: RgbImage, src: RgbImage, x: number, y: number, size: number): void {
  for (let yy = 0; yy < size; yy++) {
    const sy = Math.min(src.height - 1, Math.floor((yy * src.height) / size));
    for (let xx = 0; xx < size; xx++) {
      const sx = Math.min(src.width - 1, Math.floor((xx * src.width) / size));
      const si = (sy * src.width + sx) * 3;
      const di = ((y + yy) * dst.width + x + xx) * 3;
      dst.rgb[di] = src.rgb[si];
      dst.rgb[di + 1] = src.rgb[si + 1];
      dst.rgb[di + 2] = src.rgb[si + 2];
    }
  }
}

/** One labelled grid: `cells[row][column]`, null cells drawn as empty grey squares. */
export interface GalleryBlock {
  title: string;
  rowLabels: string[];
  columnLabels: string[];
  cells: Array<Array<RgbImage | null>>;
}

export interface GalleryOptions {
  /** Side of each cell in pixels (images are resized to it, nearest neighbour; default 64). */
  tile?: number;
  /** Pixel size of the font (default 2: 10×16 letters). */
  textScale?: number;
  /** Space between cells and around the sheet (default 4). */
  pad?: number;
  /** Blocks side by side before the next row of blocks starts (default 1). */
  columns?: number;
}

/**
 * Blocks laid out `columns` to a row (default 1: stacked top to bottom), each: title, column labels, then rows of
 * cells with their label on the left.
 */
export function drawGallery(blocks: GalleryBlock[], options: GalleryOptions = {}): RgbImage {
  if (blocks.length === 0) throw new Error('drawGallery: no blocks');
  const tile = options.tile ?? 64;
  const scale = options.textScale ?? 2;
  const pad = options.pad ?? 4;
  const columns = Math.max(1, Math.min(options.columns ?? 1, blocks.length));
  const th = textHeight(scale);
  for (const b of blocks) {
    if (b.cells.length !== b.rowLabels.length) throw new Error(`drawGallery: ${b.cells.length} rows for ${b.rowLabels.length} labels`);
    for (const row of b.cells) if (row.length !== b.columnLabels.length) throw new Error(`drawGallery: a row of ${row.length} cells for ${b.columnLabels.length} columns`);
  }
  const labelW = Math.max(...blocks.flatMap((b) => b.rowLabels.map((l) => textWidth(l, scale))), 0);
  const left = pad + labelW + pad;
  const blockW = (b: GalleryBlock) => Math.max(left + b.columnLabels.length * (tile + pad), pad + textWidth(b.title, scale) + pad);
  // blocks are kept apart by 3 pads below their last row
  const blockH = (b: GalleryBlock) => th + pad + th + pad + b.rowLabels.length * (tile + pad) + 3 * pad;
  const gap = 6 * pad; // between blocks side by side
  const cellW = Math.max(...blocks.map(blockW)) + gap;
  const rows: GalleryBlock[][] = [];
  for (let i = 0; i < blocks.length; i += columns) rows.push(blocks.slice(i, i + columns));
  const rowH = rows.map((r) => Math.max(...r.map(blockH)));
  const width = columns * cellW - gap;
  const height = pad + rowH.reduce((s, h) => s + h, 0);
  const img: RgbImage = { rgb: new Uint8Array(width * height * 3).fill(PAPER), width, height };
  let top = pad;
  rows.forEach((r, ri) => {
    r.forEach((b, ci) => {
      const x0 = ci * cellW;
      let y = top;
      drawText(img, b.title, x0 + pad, y, scale);
      y += th + pad;
      b.columnLabels.forEach((l, c) => drawText(img, l, x0 + left + c * (tile + pad) + Math.max(0, (tile - textWidth(l, scale)) >> 1), y, scale));
      y += th + pad;
      b.rowLabels.forEach((l, rr) => {
        drawText(img, l, x0 + pad + labelW - textWidth(l, scale), y + ((tile - th) >> 1), scale);
        b.cells[rr].forEach((cell, c) => {
          const x = x0 + left + c * (tile + pad);
          if (cell) blit(img, cell, x, y, tile);
          else fillRect(img, x, y, tile, tile, EMPTY);
        });
        y += tile + pad;
      });
    });
    top += rowH[ri];
  });
  return img;
}

/**
 * A square of `size` pixels coloured by `value` in [0, 1] (red → yellow → green, so a reader sees high and low at
 * a glance) with the value as a percentage in its middle: a cell of an accuracy matrix.
 */
export function heatCell(value: number, size: number, scale = 2): RgbImage {
  const v = Math.min(1, Math.max(0, value));
  const lo: readonly number[] = [244, 165, 130];
  const mid: readonly number[] = [253, 235, 170];
  const hi: readonly number[] = [120, 198, 121];
  const [a, b, f] = v < 0.5 ? [lo, mid, v / 0.5] : [mid, hi, (v - 0.5) / 0.5];
  const colour = [0, 1, 2].map((i) => Math.round(a[i] + (b[i] - a[i]) * f)) as [number, number, number];
  const img: RgbImage = { rgb: new Uint8Array(size * size * 3), width: size, height: size };
  fillRect(img, 0, 0, size, size, colour);
  const label = String(Math.round(v * 100));
  drawText(img, label, (size - textWidth(label, scale)) >> 1, (size - textHeight(scale)) >> 1, scale);
  return img;
}

/** `drawGallery` as PNG bytes. */
export function galleryPng(blocks: GalleryBlock[], options: GalleryOptions = {}): Buffer {
  const img = drawGallery(blocks, options);
  return encodePng(img.rgb, img.width, img.height);
}

/** Image `i` of a [0, 1] RGB batch as 8-bit pixels for a gallery cell. */
export async function batchImageRgb(images: tf.Tensor4D, i: number): Promise<RgbImage> {
  const one = tf.slice(images, i, 1);
  try {
    const { data, width, height, channels } = await imageToBytes(one);
    if (channels !== 3) throw new Error(`batchImageRgb: expected RGB images, got ${channels} channels`);
    return { rgb: data, width, height };
  } finally {
    one.dispose();
  }
}
