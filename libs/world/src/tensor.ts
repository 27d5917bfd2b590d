/** Bridges from world bytes to model inputs. */
import { tf } from '@museum/tensor';

/** Bytes [0, 255] -> floats [-1, 1] (the diffusion models' pixel range), optionally into `out` at `offset`. */
export function rgbToFloat(rgb: Uint8Array, out = new Float32Array(rgb.length), offset = 0): Float32Array {
  for (let i = 0; i < rgb.length; i++) out[offset + i] = rgb[i] / 127.5 - 1;
  return out;
}

/** Stacks images into an NHWC float tensor in [-1, 1]. */
export function imagesToTensor(images: ReadonlyArray<{ rgb: Uint8Array }>, size = 64): tf.Tensor4D {
  const n = images.length;
  const data = new Float32Array(n * size * size * 3);
  images.forEach((im, k) => {
    if (im.rgb.length !== size * size * 3) throw new Error(`imagesToTensor: image ${k} has ${im.rgb.length} bytes, expected ${size * size * 3}`);
    rgbToFloat(im.rgb, data, k * size * size * 3);
  });
  return tf.tensor4d(data, [n, size, size, 3]);
}

/** NHWC float tensor in [-1, 1] -> one byte image per batch entry. */
export function tensorToImages(t: tf.Tensor4D): Uint8Array[] {
  const [n, h, w, c] = t.shape;
  if (c !== 3) throw new Error('tensorToImages: expected 3 channels');
  const data = t.dataSync();
  const per = h * w * 3;
  const out: Uint8Array[] = [];
  for (let k = 0; k < n; k++) {
    const img = new Uint8Array(per);
    for (let i = 0; i < per; i++) {
      const v = (data[k * per + i] + 1) * 127.5 + 0.5;
      img[i] = v <= 0 ? 0 : v >= 255 ? 255 : v;
    }
    out.push(img);
  }
  return out;
}
