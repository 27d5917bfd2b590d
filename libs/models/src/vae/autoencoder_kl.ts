import { tf } from '@museum/tensor';
import { Module } from '../nn/module';
import { Conv2d } from '../nn/layers';
import { conv1x1 } from '../blocks/common';
import { AutoencoderKLConfig, ResolvedVaeConfig, resolveVaeConfig } from './config';
import { Decoder, Encoder } from './vae';

/**
 * The VAE posterior N(mean, exp(logvar)) per latent element, NHWC; logvar is clamped to [-30, 20] as upstream.
 * Owns its tensors: call `dispose()`.
 */
export class DiagonalGaussianDistribution {
  readonly mean: tf.Tensor;
  readonly logvar: tf.Tensor;
  constructor(moments: tf.Tensor) {
    const c = moments.shape[moments.rank - 1];
    [this.mean, this.logvar] = tf.tidy(() => {
      const [mean, logvar] = tf.split(moments, [c / 2, c / 2], -1);
      return [mean, tf.clipByValue(logvar, -30, 20)];
    });
  }
  get std(): tf.Tensor {
    return tf.tidy(() => tf.exp(tf.mul(this.logvar, 0.5)));
  }
  /** mean + std · noise, with `noise` ~ N(0, 1) of the latent shape (drawn from `seed` when not given). */
  sample(noise?: tf.Tensor, seed?: number): tf.Tensor {
    return tf.tidy(() => {
      const eps = noise ?? tf.randomNormal(this.mean.shape, 0, 1, 'float32', seed);
      return tf.add(this.mean, tf.mul(tf.exp(tf.mul(this.logvar, 0.5)), eps));
    });
  }
  mode(): tf.Tensor {
    return tf.clone(this.mean);
  }
  /** KL(q ‖ N(0, I)) per sample, summed over H, W, C. */
  kl(): tf.Tensor {
    return tf.tidy(() => tf.mul(tf.sum(tf.sub(tf.sub(tf.add(tf.square(this.mean), tf.exp(this.logvar)), 1), this.logvar), [1, 2, 3]), 0.5));
  }
  dispose(): void {
    this.mean.dispose();
    this.logvar.dispose();
  }
}

/**
 * Stable Diffusion's KL autoencoder (diffusers' AutoencoderKL) on NHWC tensors. `encode` maps images in
 * [-1, 1] to the posterior over latents (after `quant_conv`); `decode` maps latents back (through
 * `post_quant_conv`). The scaling factor is not applied here: see `encodeLatents` / `decodeLatents`.
 */
export class AutoencoderKL extends Module {
  readonly config: ResolvedVaeConfig;
  readonly encoder: Encoder;
  readonly decoder: Decoder;
  readonly quant_conv: Conv2d;
  readonly post_quant_conv: Conv2d;

  constructor(config: AutoencoderKLConfig = {}) {
    super();
    const c = resolveVaeConfig(config);
    this.config = c;
    this.encoder = this.addModule('encoder', new Encoder(c));
    this.decoder = this.addModule('decoder', new Decoder(c));
    this.quant_conv = this.addModule('quant_conv', new Conv2d(2 * c.latent_channels, 2 * c.latent_channels, 1));
    this.post_quant_conv = this.addModule('post_quant_conv', new Conv2d(c.latent_channels, c.latent_channels, 1));
  }

  /** images NHWC [B, H, W, in] in [-1, 1] → posterior over [B, H/f, W/f, latent]. */
  encode(images: tf.Tensor): DiagonalGaussianDistribution {
    const moments = tf.tidy(() => conv1x1(this.quant_conv, this.encoder.forward(images)));
    const dist = new DiagonalGaussianDistribution(moments);
    moments.dispose();
    return dist;
  }

  /** latents NHWC [B, h, w, latent] (unscaled) → images NHWC [B, H, W, out], nominally in [-1, 1]. */
  decode(latents: tf.Tensor): tf.Tensor {
    return tf.tidy(() => this.decoder.forward(conv1x1(this.post_quant_conv, latents)));
  }
}

/**
 * Images in [-1, 1] → diffusion latents: the posterior mean (or a sample with `noise`) times `scaling_factor`.
 */
export function encodeLatents(vae: AutoencoderKL, images: tf.Tensor, noise?: tf.Tensor): tf.Tensor {
  const dist = vae.encode(images);
  try {
    return tf.tidy(() => tf.mul(noise ? dist.sample(noise) : dist.mean, vae.config.scaling_factor));
  } finally {
    dist.dispose();
  }
}

/** Diffusion latents → images in [-1, 1]: divide by `scaling_factor`, decode. */
export function decodeLatents(vae: AutoencoderKL, latents: tf.Tensor): tf.Tensor {
  return tf.tidy(() => vae.decode(tf.div(latents, vae.config.scaling_factor)));
}
