/**
 * The two pre-training stages of the Atelier model, each a loss over one data-parallel shard:
 * - `vae`: the autoencoder alone (L1 + L2 reconstruction, a small KL toward N(0, I));
 * - `decoder` (optional, after `vae`): the decoder alone on a frozen encoder (Stable Diffusion's ft-MSE
 *   recipe), so the UNet's latent space stays put while reconstructions get sharper;
 * - `diffusion`: text encoder and UNet together, from scratch, with the frozen VAE's latents and the
 *   epsilon-prediction objective of Stable Diffusion (captions dropped 10% of the time for CFG).
 */
import { tf } from '@museum/tensor';
import { AutoencoderKL, CLIPTextModel, DDPMScheduler, Module, UNet2DConditionModel, WordTokenizer, seedInit } from '@museum/models';
import { ATELIER_IMAGE_SIZE, ATELIER_SCHEDULER_CONFIG, ATELIER_TEXT_ENCODER_CONFIG, ATELIER_UNET_CONFIG, ATELIER_VAE_CONFIG } from '../configs';
import { atelierTokenizer, pretrainBatch, type Batch } from '../data';
import { Rng, deriveSeed } from '@museum/world';

export type StageName = 'vae' | 'decoder' | 'diffusion';

export interface AtelierModels {
  tokenizer: WordTokenizer;
  vae: AutoencoderKL;
  textEncoder: CLIPTextModel;
  unet: UNet2DConditionModel;
}

/** Build the three models with deterministic initial weights (every rank builds the same ones). */
export function buildAtelierModels(seed: number, overrides: { unet?: object; vae?: object; text?: object } = {}): AtelierModels {
  const tokenizer = atelierTokenizer();
  seedInit(seed);
  const vae = new AutoencoderKL({ ...ATELIER_VAE_CONFIG, ...overrides.vae });
  const tok = tokenizer;
  const textEncoder = new CLIPTextModel({
    vocab_size: tok.vocabSize,
    bos_token_id: tok.bosId,
    eos_token_id: tok.eosId,
    pad_token_id: tok.padId,
    projection_dim: 128,
    ...(ATELIER_TEXT_ENCODER_CONFIG as object),
    ...overrides.text,
  } as never);
  const unet = new UNet2DConditionModel({ ...ATELIER_UNET_CONFIG, ...overrides.unet });
  return { tokenizer, vae, textEncoder, unet };
}

/** What a stage trains: the modules whose weights it updates, and a loss over one batch. */
export interface Stage {
  name: StageName;
  modules: Record<string, Module>;
  loss(batch: Batch, stepSeed: number): tf.Scalar;
}

function imagesTensor(batch: Batch): tf.Tensor4D {
  return tf.tensor4d(batch.images, [batch.count, ATELIER_IMAGE_SIZE, ATELIER_IMAGE_SIZE, 3]);
}

/**
 * Encode a batch, decode a posterior sample: the images, the reconstruction, its L1 + L2 loss and the KL
 * toward N(0, I) (per latent element). Call inside a tidy.
 */
function reconstruct(vae: AutoencoderKL, batch: Batch, stepSeed: number): { x: tf.Tensor4D; rec: tf.Tensor4D; recLoss: tf.Scalar; kl: tf.Scalar } {
  const x = imagesTensor(batch);
  const post = vae.encode(x);
  const rec = vae.decode(post.sample(undefined, stepSeed)) as tf.Tensor4D;
  const diff = tf.sub(rec, x);
  const recLoss = tf.add(tf.mean(tf.abs(diff)), tf.mean(tf.square(diff))) as tf.Scalar;
  const kl = tf.mul(0.5, tf.mean(tf.sub(tf.add(tf.square(post.mean), tf.exp(post.logvar)), tf.add(1, post.logvar)))) as tf.Scalar;
  post.dispose();
  return { x, rec, recLoss, kl };
}

// KL weight per latent element relative to the per-pixel reconstruction: Stable Diffusion's 1e-6 on sums is
// ~1e-7 here; 1e-6 keeps latents near unit scale without the blur a strong KL causes (2e-4 did).
export function vaeStage(models: AtelierModels, klWeight = 1e-6): Stage {
  return {
    name: 'vae',
    modules: { vae: models.vae },
    loss(batch, stepSeed) {
      return tf.tidy(() => {
        const { recLoss, kl } = reconstruct(models.vae, batch, stepSeed);
        return tf.add(recLoss, tf.mul(kl, klWeight)) as tf.Scalar;
      });
    },
  };
}

/** Mean absolute difference of horizontal and vertical neighbours' differences: edges, lines and grout. */
function gradientL1(a: tf.Tensor4D, b: tf.Tensor4D): tf.Scalar {
  const [n, h, w, c] = a.shape;
  const dx = (t: tf.Tensor4D) => tf.sub(tf.slice(t, [0, 0, 1, 0], [n, h, w - 1, c]), tf.slice(t, [0, 0, 0, 0], [n, h, w - 1, c]));
  const dy = (t: tf.Tensor4D) => tf.sub(tf.slice(t, [0, 1, 0, 0], [n, h - 1, w, c]), tf.slice(t, [0, 0, 0, 0], [n, h - 1, w, c]));
  return tf.add(tf.mean(tf.abs(tf.sub(dx(a), dx(b)))), tf.mean(tf.abs(tf.sub(dy(a), dy(b))))) as tf.Scalar;
}

/**
 * Decoder fine-tuning: the encoder (and quant_conv) frozen, so latents, their scaling factor and every
 * UNet trained on them stay valid; the decoder learns to render them back sharper. L1 + L2 as in the VAE
 * stage plus an L1 on image gradients (`edgeWeight`), which the thin lines, dots and grout of styles need
 * and which pixel losses at this size mostly average away.
 */
export function decoderStage(models: AtelierModels, edgeWeight = 1): Stage {
  models.vae.encoder.setTrainable(false);
  models.vae.quant_conv.setTrainable(false);
  return {
    name: 'decoder',
    modules: { vae: models.vae },
    loss(batch, stepSeed) {
      return tf.tidy(() => {
        // A posterior sample, as the UNet's training latents are (the frozen encoder gets no gradient).
        const { x, rec, recLoss } = reconstruct(models.vae, batch, stepSeed);
        return tf.add(recLoss, tf.mul(gradientL1(rec, x), edgeWeight)) as tf.Scalar;
      });
    },
  };
}

/** The latent scale that gives unit variance (Stable Diffusion's 0.18215 was measured the same way). */
export function measureScalingFactor(vae: AutoencoderKL, seed: number, images = 256): number {
  const batch = pretrainBatch({ seed, index: 0, rank: 999, size: images });
  const std = tf.tidy(() => {
    const post = vae.encode(imagesTensor(batch));
    const z = post.sample(undefined, seed);
    post.dispose();
    return tf.sqrt(tf.moments(z).variance);
  });
  const s = std.dataSync()[0];
  std.dispose();
  return 1 / s;
}

/**
 * Min-SNR-γ loss weights for epsilon prediction (Hang et al. 2023): min(SNR(t), γ) / SNR(t).
 * Low-noise timesteps (huge SNR, easy denoising of detail) stop dominating the gradient, so the
 * high-noise steps that decide shape and colour from the caption are learned sooner.
 */
export function minSnrWeights(alphasCumprod: Float32Array, timesteps: number[], gamma: number): number[] {
  return timesteps.map((t) => {
    const snr = alphasCumprod[t] / (1 - alphasCumprod[t]);
    return Math.min(snr, gamma) / snr;
  });
}

export interface DiffusionStageOptions {
  /** Min-SNR-γ weighting (0 or undefined: plain mean squared error). */
  minSnrGamma?: number;
}

export function diffusionStage(models: AtelierModels, scalingFactor: number, options: DiffusionStageOptions = {}): Stage {
  const scheduler = new DDPMScheduler(ATELIER_SCHEDULER_CONFIG);
  const T = ATELIER_SCHEDULER_CONFIG.num_train_timesteps;
  const gamma = options.minSnrGamma ?? 0;
  models.vae.setTrainable(false);
  return {
    name: 'diffusion',
    modules: { text_encoder: models.textEncoder, unet: models.unet },
    loss(batch, stepSeed) {
      const rng = new Rng(deriveSeed('timesteps', stepSeed));
      const ts = Array.from({ length: batch.count }, () => Math.min(T - 1, Math.floor(rng.float() * T)));
      const ids = models.tokenizer.encodeBatch(batch.captions, { maxLength: models.textEncoder.config.max_position_embeddings, padding: 'max_length' });
      return tf.tidy(() => {
        const post = models.vae.encode(imagesTensor(batch));
        const latents = tf.mul(post.sample(undefined, stepSeed), scalingFactor);
        post.dispose();
        const noise = tf.randomNormal(latents.shape, 0, 1, 'float32', stepSeed + 1);
        const t = tf.tensor1d(ts, 'int32');
        const noisy = scheduler.addNoise(latents, noise, ts);
        const idsT = tf.tensor2d(ids.flat, [batch.count, ids.length], 'int32');
        const context = models.textEncoder.forward(idsT).lastHiddenState;
        const pred = models.unet.forward(noisy, t, context);
        if (!(gamma > 0)) return tf.mean(tf.square(tf.sub(pred, noise))) as tf.Scalar;
        const perSample = tf.mean(tf.square(tf.sub(pred, noise)), [1, 2, 3]);
        const w = tf.tensor1d(minSnrWeights(scheduler.alphasCumprod, ts, gamma));
        return tf.mean(tf.mul(perSample, w)) as tf.Scalar;
      });
    },
  };
}


/** The stage called `name` on these models (the diffusion stage needs the VAE's scaling factor). */
export function makeStage(models: AtelierModels, name: StageName, o: { scalingFactor?: number } & DiffusionStageOptions = {}): Stage {
  if (name === 'vae') return vaeStage(models);
  if (name === 'decoder') return decoderStage(models);
  if (o.scalingFactor === undefined) throw new Error('the diffusion stage needs the VAE scaling factor');
  return diffusionStage(models, o.scalingFactor, o);
}

/** The trainable variables of a stage, in the order its gradients are flattened and all-reduced. */
export function stageVariables(stage: Stage): tf.Variable[] {
  return Object.values(stage.modules).flatMap((m) => m.trainableVariables());
}

/** Parameters a stage trains (sizes the data-parallel gradient buffer); freezes parts of `models` as the stage does. */
export function trainedParameterCount(models: AtelierModels, name: StageName): number {
  return stageVariables(makeStage(models, name, { scalingFactor: 1 })).reduce((n, v) => n + v.size, 0);
}
