/**
 * Degradations applied to clean world renders while training the instruments, so that they
 * judge generated images — which are a little soft, noisy, shifted and off-colour — by the same
 * labels as the renders. Every draw comes from the caller's Rng: a batch is a function of its seed.
 *
 * Images are HWC float arrays in [-1, 1] (the layout and range of `rgbToFloat`).
 */
import { SIZE, type Rng } from '@museum/world';

export interface AugmentOptions {
  /** Probability of leaving an image untouched (keeps clean accuracy sharp). */
  pClean: number;
  /** Integer shift of up to ±maxShift pixels in x and y, edges replicated. */
  pShift: number;
  maxShift: number;
  /** 2x box downscale then bilinear upscale (the softness of a VAE decoder). */
  pSoften: number;
  /** Gaussian blur with sigma drawn in `blurSigma`. */
  pBlur: number;
  blurSigma: [number, number];
  /** Brightness offset, contrast and saturation about the image mean, per-channel gain. */
  pJitter: number;
  brightness: number;
  contrast: number;
  saturation: number;
  channelGain: number;
  /** Additive Gaussian noise with std drawn up to `noiseStd` (in [-1, 1] units). */
  pNoise: number;
  noiseStd: number;
}

export const DEFAULT_AUGMENT: AugmentOptions = {
  pClean: 0.15,
  pShift: 0.5,
  maxShift: 3,
  pSoften: 0.25,
  pBlur: 0.35,
  blurSigma: [0.3, 1.0],
  pJitter: 0.7,
  brightness: 0.08,
  contrast: 0.12,
  saturation: 0.12,
  channelGain: 0.04,
  pNoise: 0.5,
  noiseStd: 0.08,
};

/** One randomly degraded copy of `img` (HWC, [-1, 1]); the input is not modified. */
export function augmentImage(img: Float32Array, rng: Rng, opts: AugmentOptions = DEFAULT_AUGMENT, size = SIZE): Float32Array {
  let x: Float32Array = Float32Array.from(img);
  if (rng.bool(opts.pClean)) return x;
  if (rng.bool(opts.pShift)) x = shift(x, size, rng.int(-opts.maxShift, opts.maxShift), rng.int(-opts.maxShift, opts.maxShift));
  if (rng.bool(opts.pSoften)) x = soften(x, size);
  if (rng.bool(opts.pBlur)) x = gaussianBlur(x, size, rng.range(opts.blurSigma[0], opts.blurSigma[1]));
  if (rng.bool(opts.pJitter)) {
    colourJitter(x, {
      brightness: rng.range(-opts.brightness, opts.brightness),
      contrast: 1 + rng.range(-opts.contrast, opts.contrast),
      saturation: 1 + rng.range(-opts.saturation, opts.saturation),
      gain: [0, 1, 2].map(() => 1 + rng.range(-opts.channelGain, opts.channelGain)),
    });
  }
  if (rng.bool(opts.pNoise)) {
    const std = rng.range(0, opts.noiseStd);
    for (let i = 0; i < x.length; i++) x[i] += std * rng.normal();
  }
  for (let i = 0; i < x.length; i++) x[i] = x[i] < -1 ? -1 : x[i] > 1 ? 1 : x[i];
  return x;
}

/** Translate by (dx, dy) pixels, replicating the border. */
export function shift(x: Float32Array, size: number, dx: number, dy: number): Float32Array {
  const out = new Float32Array(x.length);
  for (let y = 0; y < size; y++) {
    const sy = Math.min(size - 1, Math.max(0, y - dy));
    for (let xx = 0; xx < size; xx++) {
      const sx = Math.min(size - 1, Math.max(0, xx - dx));
      const o = (y * size + xx) * 3;
      const s = (sy * size + sx) * 3;
      out[o] = x[s];
      out[o + 1] = x[s + 1];
      out[o + 2] = x[s + 2];
    }
  }
  return out;
}

/** 2x2 box downscale followed by bilinear (half-pixel) upscale back to `size`. */
export function soften(x: Float32Array, size: number): Float32Array {
  const h = size >> 1;
  const small = new Float32Array(h * h * 3);
  for (let y = 0; y < h; y++) {
    for (let xx = 0; xx < h; xx++) {
      for (let c = 0; c < 3; c++) {
        const a = ((2 * y) * size + 2 * xx) * 3 + c;
        const b = ((2 * y + 1) * size + 2 * xx) * 3 + c;
        small[(y * h + xx) * 3 + c] = 0.25 * (x[a] + x[a + 3] + x[b] + x[b + 3]);
      }
    }
  }
  const out = new Float32Array(x.length);
  const coord = (i: number): [number, number, number] => {
    const f = Math.min(h - 1, Math.max(0, (i + 0.5) / 2 - 0.5));
    const i0 = Math.floor(f);
    return [i0, Math.min(h - 1, i0 + 1), f - i0];
  };
  for (let y = 0; y < size; y++) {
    const [y0, y1, fy] = coord(y);
    for (let xx = 0; xx < size; xx++) {
      const [x0, x1, fx] = coord(xx);
      for (let c = 0; c < 3; c++) {
        const top = small[(y0 * h + x0) * 3 + c] * (1 - fx) + small[(y0 * h + x1) * 3 + c] * fx;
        const bot = small[(y1 * h + x0) * 3 + c] * (1 - fx) + small[(y1 * h + x1) * 3 + c] * fx;
        out[(y * size + xx) * 3 + c] = top * (1 - fy) + bot * fy;
      }
    }
  }
  return out;
}

/** Separable Gaussian blur with edge replication. */
export function gaussianBlur(x: Float32Array, size: number, sigma: number): Float32Array {
  const r = Math.max(1, Math.ceil(2 * sigma));
  const k: number[] = [];
  let sum = 0;
  for (let i = -r; i <= r; i++) {
    const v = Math.exp(-(i * i) / (2 * sigma * sigma));
    k.push(v);
    sum += v;
  }
  for (let i = 0; i < k.length; i++) k[i] /= sum;
  const pass = (src: Float32Array, horizontal: boolean): Float32Array => {
    const out = new Float32Array(src.length);
    for (let y = 0; y < size; y++) {
      for (let xx = 0; xx < size; xx++) {
        let a = 0;
        let b = 0;
        let c = 0;
        for (let t = -r; t <= r; t++) {
          const sx = horizontal ? Math.min(size - 1, Math.max(0, xx + t)) : xx;
          const sy = horizontal ? y : Math.min(size - 1, Math.max(0, y + t));
          const s = (sy * size + sx) * 3;
          const w = k[t + r];
          a += w * src[s];
          b += w * src[s + 1];
          c += w * src[s + 2];
        }
        const o = (y * size + xx) * 3;
        out[o] = a;
        out[o + 1] = b;
        out[o + 2] = c;
      }
    }
    return out;
  };
  return pass(pass(x, true), false);
}

/** In place: saturation about each pixel's grey, contrast about the image mean, then gain and offset. */
export function colourJitter(x: Float32Array, p: { brightness: number; contrast: number; saturation: number; gain: number[] }): void {
  const n = x.length / 3;
  let mean = 0;
  for (let i = 0; i < x.length; i++) mean += x[i];
  mean /= x.length;
  for (let i = 0; i < n; i++) {
    const o = i * 3;
    const grey = (x[o] + x[o + 1] + x[o + 2]) / 3;
    for (let c = 0; c < 3; c++) {
      let v = grey + (x[o + c] - grey) * p.saturation;
      v = mean + (v - mean) * p.contrast;
      // Gain scales light, i.e. the [0, 1] intensity, not the signed value.
      x[o + c] = (v + 1) * p.gain[c] - 1 + p.brightness;
    }
  }
}
