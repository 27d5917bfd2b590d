/** VaeDecoderService.Decode: latents [B, h, w, C] -> one PNG per image (and the images as a tensor on request). */
import { tf, encodePng } from '@museum/tensor';
import { museum, tensorFromProto, tensorToProto } from '@museum/proto';
import type { AutoencoderKL } from '@museum/models';
import { invalidArgument, throwIfAborted, type GenerationLimits } from '@museum/rpc';

export interface DecodeDeps {
  vae: () => AutoencoderKL;
  limits: GenerationLimits;
  maxImages: number;
  stats: { decodeCalls: number; images: number };
}

function decodeLatents(t: museum.v1.Tensor | undefined, vae: AutoencoderKL, limits: GenerationLimits, maxImages: number): tf.Tensor4D {
  if (!t) throw invalidArgument('latents', 'is required');
  let x: tf.Tensor;
  try {
    x = tensorFromProto(t);
  } catch (err) {
    throw invalidArgument('latents', err instanceof Error ? err.message : String(err));
  }
  const fail = (msg: string) => {
    x.dispose();
    return invalidArgument('latents', msg);
  };
  if (x.dtype !== 'float32') throw fail(`must be a float tensor, got ${x.dtype}`);
  if (x.rank !== 4) throw fail(`must be [B, h, w, C] (NHWC), got [${x.shape.join(', ')}]`);
  const [b, h, w, c] = x.shape;
  const f = 2 ** (vae.config.block_out_channels.length - 1);
  if (c !== vae.config.latent_channels) throw fail(`has ${c} channels, the VAE takes ${vae.config.latent_channels}`);
  if (b < 1 || b > maxImages) throw fail(`batch of ${b}, must be 1..${maxImages}`);
  if (h < 1 || w < 1 || h * f > limits.maxSide || w * f > limits.maxSide) throw fail(`${h}x${w} latents make ${h * f}x${w * f} images, the limit is ${limits.maxSide} pixels a side`);
  return x as tf.Tensor4D;
}

export async function decode(req: museum.v1.DecodeRequest, deps: DecodeDeps, signal: AbortSignal): Promise<museum.v1.DecodeResponse> {
  const vae = deps.vae();
  const latents = decodeLatents(req.latents, vae, deps.limits, deps.maxImages);
  const sf = vae.config.scaling_factor;
  const parts: tf.Tensor4D[] = [];
  try {
    // one image at a time bounds activation memory
    for (let i = 0; i < latents.shape[0]; i++) {
      throwIfAborted(signal);
      parts.push(tf.tidy(() => tf.clipByValue(tf.add(tf.mul(vae.decode(tf.div(tf.slice(latents, [i], [1]), sf)), 0.5), 0.5), 0, 1)) as tf.Tensor4D);
      await new Promise<void>((r) => setImmediate(r));
    }
    const png: Buffer[] = [];
    for (const p of parts) png.push(await encodePng(p, { range: '0,1' }));
    let images: museum.v1.Tensor | undefined;
    if (req.returnTensor) {
      const all = tf.concat(parts, 0);
      images = tensorToProto(all);
      all.dispose();
    }
    deps.stats.decodeCalls++;
    deps.stats.images += parts.length;
    return { png, images, height: parts[0].shape[1], width: parts[0].shape[2] };
  } finally {
    latents.dispose();
    tf.dispose(parts);
  }
}
