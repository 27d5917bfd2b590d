/**
 * Image files ⇄ tensors. Decoding and encoding go through sharp (libvips); everything geometric happens
 * on tensors so it runs on the same backend as the models.
 *
 * Convention: an image tensor is HWC float32 RGB in [0, 1]; models take [-1, 1] NHWC (see
 * `loadImageAsModelInput`).
 */
import { promises as fsp } from 'fs';
import type { OutputInfo, Sharp, SharpOptions } from 'sharp';
import * as tf from '@tensorflow/tfjs-core';

/** sharp loads libvips; load it on first use so that processes that never touch images do not pay for it. */
async function sharp(input: Uint8Array, options: SharpOptions): Promise<Sharp> {
  const lib = (await import('sharp')).default;
  return lib(input, options);
}

export class ImageDecodeError extends Error {
  constructor(message: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'ImageDecodeError';
  }
}

export type PixelRange = '0,1' | '-1,1';

/**
 * Decode PNG / JPEG / WebP / GIF / TIFF / AVIF bytes into an [H, W, 3] float32 tensor in [0, 1]:
 * EXIF orientation applied, alpha composited on white, greyscale / CMYK / 16-bit converted to 8-bit sRGB.
 */
export async function decodeImage(bytes: Uint8Array | Buffer): Promise<tf.Tensor3D> {
  if (!(bytes instanceof Uint8Array) || bytes.length === 0) throw new ImageDecodeError('image bytes are empty');
  let raw: { data: Buffer; info: OutputInfo };
  try {
    raw = await (await sharp(bytes, { failOn: 'error' }))
      .rotate() // no angle: orient by EXIF, then drop the tag
      .flatten({ background: { r: 255, g: 255, b: 255 } })
      .toColourspace('srgb')
      .removeAlpha()
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
  } catch (err) {
    throw new ImageDecodeError(`cannot decode image (${bytes.length} bytes): ${(err as Error).message}`, err);
  }
  const { width, height, channels } = raw.info;
  if (channels !== 3 || raw.data.length !== width * height * 3) {
    throw new ImageDecodeError(`decoder produced ${channels} channels for a ${width}x${height} image; expected RGB`);
  }
  const values = new Float32Array(raw.data.length);
  for (let i = 0; i < values.length; i++) values[i] = raw.data[i] / 255;
  return tf.tensor3d(values, [height, width, 3], 'float32');
}

/** `decodeImage` of a file; errors name the file. */
export async function decodeImageFile(file: string): Promise<tf.Tensor3D> {
  const bytes = await fsp.readFile(file);
  try {
    return await decodeImage(bytes);
  } catch (err) {
    if (err instanceof ImageDecodeError) throw new ImageDecodeError(`${file}: ${err.message}`, err.cause);
    throw err;
  }
}

/**
 * An image tensor ([H, W, C] or [1, H, W, C], C = 1, 3 or 4) as interleaved uint8 pixels: values in `range`
 * are clipped and rounded to 0..255.
 */
export async function imageToBytes(
  t: tf.Tensor3D | tf.Tensor4D,
  options: { range?: PixelRange } = {},
): Promise<{ data: Uint8Array; width: number; height: number; channels: 1 | 3 | 4 }> {
  const range = options.range ?? '0,1';
  if (range !== '0,1' && range !== '-1,1') throw new Error(`range must be '0,1' or '-1,1', got ${String(range)}`);
  let shape = t.shape as number[];
  if (shape.length === 4) {
    if (shape[0] !== 1) throw new Error(`expected a single image, got a batch of ${shape[0]} (shape [${shape.join(',')}])`);
    shape = shape.slice(1);
  }
  if (shape.length !== 3) throw new Error(`expected an [H,W,C] or [1,H,W,C] image tensor, got shape [${shape.join(',')}]`);
  const [height, width, channels] = shape;
  if (channels !== 1 && channels !== 3 && channels !== 4) throw new Error(`expected 1, 3 or 4 channels, got ${channels}`);
  if (height === 0 || width === 0) throw new Error(`cannot encode an empty image [${shape.join(',')}]`);
  const q = tf.tidy(() => {
    let x = tf.cast(t, 'float32');
    if (range === '-1,1') x = tf.div(tf.add(x, 1), 2);
    return tf.round(tf.mul(tf.clipByValue(x, 0, 1), 255));
  });
  const values = await q.data();
  q.dispose();
  const data = new Uint8Array(values.length);
  for (let i = 0; i < values.length; i++) data[i] = values[i]; // NaN becomes 0
  return { data, width, height, channels: channels as 1 | 3 | 4 };
}

/** Encode an image tensor as PNG (lossless, so decode → encode → decode is exact on uint8 data). */
export async function encodePng(t: tf.Tensor3D | tf.Tensor4D, options: { range?: PixelRange } = {}): Promise<Buffer> {
  const { data, width, height, channels } = await imageToBytes(t, options);
  const img = await sharp(data, { raw: { width, height, channels } });
  // sharp would otherwise widen a single channel to sRGB; keep greyscale as a greyscale PNG
  return (channels === 1 ? img.toColourspace('b-w') : img).png().toBuffer();
}

/** Encode interleaved 8-bit RGB pixels (row-major, `w*h*3` bytes) as PNG. */
export async function pngFromRgbBytes(rgb: Uint8Array, w: number, h: number): Promise<Buffer> {
  if (!Number.isInteger(w) || !Number.isInteger(h) || w <= 0 || h <= 0) throw new Error(`bad image size ${w}x${h}`);
  if (rgb.length !== w * h * 3) throw new Error(`expected ${w * h * 3} bytes for a ${w}x${h} RGB image, got ${rgb.length}`);
  return (await sharp(rgb, { raw: { width: w, height: h, channels: 3 } })).png().toBuffer();
}

/**
 * Crop the centred square of side min(H, W) and resize it to `size`×`size`. Shrinking averages over each
 * output pixel's footprint (area resampling: no aliasing on photos); enlarging is bilinear with half-pixel
 * centres. Both keep a linear ramp linear.
 */
export function centerCropResize(t: tf.Tensor3D, size: number): tf.Tensor3D {
  if (!Number.isInteger(size) || size <= 0) throw new Error(`size must be a positive integer, got ${size}`);
  if (t.rank !== 3) throw new Error(`expected an [H,W,C] tensor, got shape [${t.shape.join(',')}]`);
  const [h, w] = t.shape;
  if (h === 0 || w === 0) throw new Error(`cannot crop an empty image [${t.shape.join(',')}]`);
  return tf.tidy(() => {
    const side = Math.min(h, w);
    const top = Math.floor((h - side) / 2);
    const left = Math.floor((w - side) / 2);
    const square = tf.slice(t, [top, left, 0], [side, side, -1]);
    return resizeSquare(tf.cast(square, 'float32'), side, size);
  });
}

function resizeSquare(square: tf.Tensor3D, side: number, size: number): tf.Tensor3D {
  if (side === size) return square;
  if (side < size) return tf.image.resizeBilinear(square, [size, size], false, true);
  // Area: average k×k blocks of an image first brought (bilinearly) to k·size, with k ≥ side/size, so every
  // source pixel contributes; exact box averaging when side is a multiple of size.
  const k = Math.ceil(side / size);
  const grid = side === k * size ? square : tf.image.resizeBilinear(square, [k * size, k * size], false, true);
  return tf.avgPool(grid, k, k, 'valid');
}

/** Decode, centre-crop, resize and scale to [-1, 1]: a [1, size, size, 3] batch ready for the VAE encoder. */
export async function loadImageAsModelInput(bytes: Uint8Array | Buffer, size: number): Promise<tf.Tensor4D> {
  const img = await decodeImage(bytes);
  try {
    return tf.tidy(() => tf.expandDims(tf.sub(tf.mul(centerCropResize(img, size), 2), 1), 0) as tf.Tensor4D);
  } finally {
    img.dispose();
  }
}

/**
 * Lay tiles ([H, W, C], same C) out on a contact sheet, row by row, `columns` per row, with `pad` pixels of
 * `background` (a value, or one per channel; in the tiles' range) around and between them. Tiles of
 * different sizes are centred in cells of the largest height and width.
 */
export function imageGrid(
  tiles: tf.Tensor3D[],
  columns: number,
  options: { pad?: number; background?: number | number[] } = {},
): tf.Tensor3D {
  if (tiles.length === 0) throw new Error('imageGrid needs at least one tile');
  if (!Number.isInteger(columns) || columns <= 0) throw new Error(`columns must be a positive integer, got ${columns}`);
  const pad = options.pad ?? 0;
  if (!Number.isInteger(pad) || pad < 0) throw new Error(`pad must be a non-negative integer, got ${pad}`);
  const c = tiles[0].shape[2];
  for (const t of tiles) {
    if (t.rank !== 3 || t.shape[2] !== c) throw new Error(`all tiles must be [H,W,${c}]; got [${t.shape.join(',')}]`);
  }
  const bgIn = options.background ?? 1;
  const bg = typeof bgIn === 'number' ? new Array<number>(c).fill(bgIn) : bgIn;
  if (bg.length !== c) throw new Error(`background has ${bg.length} values for ${c}-channel tiles`);
  const cellH = Math.max(...tiles.map((t) => t.shape[0]));
  const cellW = Math.max(...tiles.map((t) => t.shape[1]));
  const rows = Math.ceil(tiles.length / columns);

  return tf.tidy(() => {
    // Work on (tile - background) so that zero padding is background, then add it back once.
    const bgT = tf.tensor1d(bg, 'float32');
    const cell = (i: number): tf.Tensor3D => {
      if (i >= tiles.length) return tf.zeros([cellH, cellW, c]);
      const t = tf.sub(tf.cast(tiles[i], 'float32'), bgT) as tf.Tensor3D;
      const dh = cellH - t.shape[0];
      const dw = cellW - t.shape[1];
      return tf.pad(t, [
        [Math.floor(dh / 2), dh - Math.floor(dh / 2)],
        [Math.floor(dw / 2), dw - Math.floor(dw / 2)],
        [0, 0],
      ]);
    };
    const rowImages: tf.Tensor3D[] = [];
    for (let r = 0; r < rows; r++) {
      const parts: tf.Tensor3D[] = [];
      for (let col = 0; col < columns; col++) {
        const x = cell(r * columns + col);
        parts.push(pad > 0 ? tf.pad(x, [[0, 0], [col === 0 ? pad : 0, pad], [0, 0]]) : x);
      }
      const row = tf.concat(parts, 1);
      rowImages.push(pad > 0 ? tf.pad(row, [[r === 0 ? pad : 0, pad], [0, 0], [0, 0]]) : row);
    }
    return tf.add(tf.concat(rowImages, 0), bgT) as tf.Tensor3D;
  });
}
