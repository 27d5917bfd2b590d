/**
 * `museum bench vae`: how much of every rendering survives the autoencoder. Fresh renders of each
 * style (base, pre-training and benchmark styles) are encoded to latents and decoded again, and the
 * shipped instruments judge originals and reconstructions alike.
 *
 * Why it matters: every image the UNet makes passes through this decoder, so the style accuracy of
 * reconstructions is a ceiling on what any style learner can reach for that style.
 */
import { tf, imageGrid, encodePng } from '@museum/tensor';
import type { AutoencoderKL } from '@museum/models';
import { ALL_STYLES, deriveSeed, imagesToTensor, renderSample, type Sample, type Style } from '@museum/world';
import { classifyAll, type Instruments } from '@museum/instruments';
import { accuracy } from './base';

export interface CodecBenchOptions {
  /** Renders per style. */
  perStyle?: number;
  seed?: number;
  styles?: readonly Style[];
  /** Images per encode/decode call. */
  batch?: number;
}

export interface CodecStyleResult {
  /** Style accuracy of the instruments on the originals and on the reconstructions. */
  style_acc_original: number;
  style_acc: number;
  shape_acc: number;
  colour_acc: number;
  /** Mean squared error of the reconstruction, images in [0, 1]. */
  mse: number;
}

export interface CodecBenchResult {
  styles: Record<string, CodecStyleResult>;
  images: number;
  seconds: number;
  config: { perStyle: number; seed: number };
  /** Rows of originals over their reconstructions, one pair of rows per style (8 columns). */
  sheetPng?: Buffer;
}

/** Encode (posterior mean) and decode, in [-1, 1]. */
export function vaeRoundTrip(vae: AutoencoderKL, x: tf.Tensor4D, batch: number): tf.Tensor4D {
  const parts: tf.Tensor4D[] = [];
  for (let i = 0; i < x.shape[0]; i += batch) {
    parts.push(tf.tidy(() => {
      const chunk = tf.slice(x, i, Math.min(batch, x.shape[0] - i));
      const post = vae.encode(chunk);
      const rec = vae.decode(post.mean);
      post.dispose();
      return tf.clipByValue(rec, -1, 1) as tf.Tensor4D;
    }));
  }
  const out = tf.concat(parts) as tf.Tensor4D;
  parts.forEach((p) => p.dispose());
  return out;
}

export async function runCodecBench(vae: AutoencoderKL, inst: Instruments, options: CodecBenchOptions = {}): Promise<CodecBenchResult> {
  const perStyle = options.perStyle ?? 32;
  const seed = options.seed ?? 4242;
  const styles = options.styles ?? ALL_STYLES;
  const batch = options.batch ?? 16;
  const t0 = Date.now();
  const result: Record<string, CodecStyleResult> = {};
  const sheetRows: tf.Tensor3D[] = [];
  const columns = Math.min(8, perStyle);
  for (const style of styles) {
    const samples: Sample[] = Array.from({ length: perStyle }, (_, k) => renderSample({ style, seed: deriveSeed('codec-bench', seed, style, k) }));
    const x = imagesToTensor(samples);
    const rec = vaeRoundTrip(vae, x, batch);
    const judged = classifyAll(inst, rec);
    const original = classifyAll(inst, x);
    const mse = tf.tidy(() => tf.mean(tf.square(tf.mul(tf.sub(rec, x), 0.5))).dataSync()[0]);
    result[style] = {
      style_acc_original: accuracy(original.style.labels, samples.map(() => style)),
      style_acc: accuracy(judged.style.labels, samples.map(() => style)),
      shape_acc: accuracy(judged.shape.labels, samples.map((s) => s.shape)),
      colour_acc: accuracy(judged.colour.labels, samples.map((s) => s.colour)),
      mse,
    };
    for (const t of [x, rec]) {
      const row = tf.tidy(() => tf.div(tf.add(tf.slice(t, 0, columns), 1), 2));
      sheetRows.push(...(tf.unstack(row) as tf.Tensor3D[]));
      row.dispose();
    }
    x.dispose();
    rec.dispose();
  }
  const sheet = imageGrid(sheetRows, columns, { pad: 2, background: 1 });
  const sheetPng = await encodePng(sheet, { range: '0,1' });
  sheet.dispose();
  sheetRows.forEach((t) => t.dispose());
  return {
    styles: result,
    images: perStyle * styles.length,
    seconds: (Date.now() - t0) / 1000,
    config: { perStyle, seed },
    sheetPng,
  };
}
