/** Contact sheet: one row per rendering, one column per content, for looking at the world. */
import { COLOURS, SHAPES, SIZE } from './content';
import { renderSample } from './dataset';
import { encodePng, upscale, writePng } from './png';
import { deriveSeed } from './rng';
import { ALL_STYLES, type Style } from './styles';

// Math functions bound at module scope: global lookups are slow inside vm contexts (jest).
const { floor } = Math;

export interface ContactSheetOptions {
  styles?: readonly Style[];
  /** Number of columns; column j shows SHAPES[j % 8]. */
  columns?: number;
  seed?: number;
  /** Nearest-neighbour upscaling factor. */
  scale?: number;
  /** Gap between cells in output pixels. */
  gap?: number;
}

export interface ContactSheet {
  rgb: Uint8Array;
  width: number;
  height: number;
  png: Buffer;
}

/**
 * Rows are styles (plain first), columns cycle through the 8 shapes; colours shift by one per
 * row so every row shows all 8 colours and every shape appears in several colours down a column.
 * The same column uses the same seed, so a column shows one placement in every style.
 */
export function contactSheet(opts: ContactSheetOptions = {}): ContactSheet {
  const styles = opts.styles ?? ALL_STYLES;
  const columns = opts.columns ?? 8;
  const seed = opts.seed ?? 0;
  const rows = styles.map((style, r) =>
    Array.from({ length: columns }, (_, c) =>
      renderSample({
        style,
        seed: deriveSeed(seed, 'contact', c),
        shape: SHAPES[c % SHAPES.length],
        colour: COLOURS[(c + r + floor(c / SHAPES.length) * 3) % COLOURS.length],
      }).rgb,
    ),
  );
  return tileSheet(rows, { gap: opts.gap, scale: opts.scale });
}

/**
 * A grid of 64x64 RGB tiles (`rows[r][c]`, bytes HWC) with `gap` px between them on a `background` grey,
 * upscaled by `scale` (nearest neighbour), and its PNG.
 */
export function tileSheet(rows: Uint8Array[][], opts: { gap?: number; scale?: number; background?: number } = {}): ContactSheet {
  const gap = opts.gap ?? 2;
  const cell = SIZE;
  const columns = Math.max(0, ...rows.map((r) => r.length));
  const W = columns * cell + (columns + 1) * gap;
  const H = rows.length * cell + (rows.length + 1) * gap;
  const sheet = new Uint8Array(W * H * 3).fill(opts.background ?? 40);
  rows.forEach((tiles, r) => {
    tiles.forEach((rgb, c) => {
      const x0 = gap + c * (cell + gap);
      const y0 = gap + r * (cell + gap);
      for (let y = 0; y < cell; y++) sheet.set(rgb.subarray(y * cell * 3, (y + 1) * cell * 3), ((y0 + y) * W + x0) * 3);
    });
  });
  const scale = opts.scale ?? 2;
  const up = scale > 1 ? upscale(sheet, W, H, scale) : { rgb: sheet, width: W, height: H };
  return { ...up, png: encodePng(up.rgb, up.width, up.height) };
}

export function writeContactSheet(file: string, opts: ContactSheetOptions = {}): ContactSheet {
  const sheet = contactSheet(opts);
  writePng(file, sheet.rgb, sheet.width, sheet.height);
  return sheet;
}
