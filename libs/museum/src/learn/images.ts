/** Training images in any form → one NHWC batch in [-1, 1] at the model's resolution, with content hashes. */
import * as crypto from 'crypto';
import { tf, centerCropResize, decodeImage } from '@museum/tensor';
import { MuseumError } from '../errors';

/** Raw interleaved 8-bit RGB pixels (e.g. a `@museum/world` sample). */
export interface RgbImage {
  rgb: Uint8Array;
  width: number;
  height: number;
}

/**
 * A training image: an RGB tensor [H, W, 3] (or [1, H, W, 3]) with values in [0, 1] (int32 tensors are read as
 * 0..255), the bytes of an image file (PNG, JPEG, WebP, …), or raw RGB pixels.
 */
export type StyleImageInput = tf.Tensor | Uint8Array | Buffer | RgbImage;

export interface PreparedImages {
  /** [N, size, size, 3] in [-1, 1]. */
  pixels: tf.Tensor4D;
  /** sha256 of each input as given (file bytes, raw pixels, or the tensor's float32 values and shape). */
  hashes: string[];
  sizes: Array<{ width: number; height: number }>;
}

function isRgbImage(x: unknown): x is RgbImage {
  return typeof x === 'object' && x !== null && (x as RgbImage).rgb instanceof Uint8Array && Number.isInteger((x as RgbImage).width);
}

async function toHwc01(img: StyleImageInput, i: number): Promise<{ t: tf.Tensor3D; hash: string }> {
  if (img instanceof tf.Tensor) {
    let t = img;
    if (t.rank === 4 && t.shape[0] === 1) t = tf.squeeze(t, [0]);
    if (t.rank !== 3 || t.shape[2] !== 3) {
      if (t !== img) t.dispose();
      throw new MuseumError('INVALID_ARGUMENT', `image ${i}: expected an RGB tensor [H, W, 3], got [${img.shape}]`);
    }
    const h = crypto.createHash('sha256').update(`tensor:${img.dtype}:[${t.shape}]`);
    const values = t.dataSync();
    const f32 = values instanceof Float32Array ? values : Float32Array.from(values as ArrayLike<number>);
    h.update(new Uint8Array(f32.buffer, f32.byteOffset, f32.byteLength));
    const out = tf.tidy(() => (t.dtype === 'int32' ? tf.div(tf.cast(t, 'float32'), 255) : tf.cast(t, 'float32'))) as tf.Tensor3D;
    if (t !== img) t.dispose();
    return { t: out, hash: h.digest('hex') };
  }
  if (isRgbImage(img)) {
    const { rgb, width, height } = img;
    if (rgb.length !== width * height * 3) throw new MuseumError('INVALID_ARGUMENT', `image ${i}: ${rgb.length} bytes for ${width}x${height} RGB`);
    const values = new Float32Array(rgb.length);
    for (let k = 0; k < rgb.length; k++) values[k] = rgb[k] / 255;
    const hash = crypto.createHash('sha256').update(`rgb:${width}x${height}:`).update(rgb).digest('hex');
    return { t: tf.tensor3d(values, [height, width, 3]), hash };
  }
  if (img instanceof Uint8Array) {
    try {
      return { t: await decodeImage(img), hash: crypto.createHash('sha256').update(img).digest('hex') };
    } catch (err) {
      throw new MuseumError('INVALID_ARGUMENT', `image ${i}: ${(err as Error).message}`, { cause: err });
    }
  }
  throw new MuseumError('INVALID_ARGUMENT', `image ${i}: expected a tensor, image bytes or raw RGB pixels`);
}

/** Centre-crop and resize every image to `size` and scale to [-1, 1]. */
export async function prepareImages(images: readonly StyleImageInput[], size: number): Promise<PreparedImages> {
  if (!Array.isArray(images) || images.length === 0) throw new MuseumError('INVALID_ARGUMENT', 'learnStyle needs at least one image');
  const tiles: tf.Tensor3D[] = [];
  const hashes: string[] = [];
  const sizes: Array<{ width: number; height: number }> = [];
  try {
    for (let i = 0; i < images.length; i++) {
      const { t, hash } = await toHwc01(images[i], i);
      sizes.push({ width: t.shape[1], height: t.shape[0] });
      hashes.push(hash);
      tiles.push(tf.tidy(() => tf.sub(tf.mul(centerCropResize(t, size), 2), 1)) as tf.Tensor3D);
      t.dispose();
    }
    return { pixels: tf.stack(tiles) as tf.Tensor4D, hashes, sizes };
  } finally {
    tf.dispose(tiles);
  }
}
