import { initBackend, tf } from '@museum/tensor';
import { DDPMScheduler } from '@museum/models';
import { ATELIER_SCHEDULER_CONFIG, autoencoderBatch, buildAtelierModels, decoderStage, diffusionStage, minSnrWeights, pretrainBatch, trainedParameterCount } from '@museum/atelier';

beforeAll(async () => {
  await initBackend({ log: () => {} });
});

describe('diffusion stage loss', () => {
  const ac = new DDPMScheduler(ATELIER_SCHEDULER_CONFIG).alphasCumprod;

  test('Min-SNR weights are 1 at high noise and min(SNR, γ)/SNR at low noise', () => {
    const ts = [0, 10, 100, 400, 999];
    const w = minSnrWeights(ac, ts, 5);
    ts.forEach((t, i) => {
      const snr = ac[t] / (1 - ac[t]);
      expect(w[i]).toBeCloseTo(snr <= 5 ? 1 : 5 / snr, 6);
    });
    expect(w[0]).toBeLessThan(0.01);
    expect(w[4]).toBe(1);
    for (let i = 1; i < ts.length; i++) expect(w[i]).toBeGreaterThanOrEqual(w[i - 1]);
  });

  test('a γ above every SNR gives the plain MSE; a small γ a smaller loss', () => {
    const models = buildAtelierModels(5, { unet: { block_out_channels: [32, 32, 32], norm_num_groups: 8, cross_attention_dim: 32 }, text: { hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1 } });
    const batch = pretrainBatch({ seed: 2, index: 0, rank: 0, size: 4 });
    const value = (gamma?: number) => {
      const loss = diffusionStage(models, 0.36, { minSnrGamma: gamma }).loss(batch, 77);
      const v = loss.dataSync()[0];
      loss.dispose();
      return v;
    };
    const before = tf.memory().numTensors;
    const plain = value();
    const maxSnr = ac[0] / (1 - ac[0]);
    expect(value(maxSnr * 2)).toBeCloseTo(plain, 5);
    expect(value(0.5)).toBeLessThan(plain);
    expect(tf.memory().numTensors).toBe(before);
    for (const m of [models.vae, models.unet, models.textEncoder]) m.dispose();
  });
});

describe('decoder stage', () => {
  test('trains only the decoder: the encoder, hence every latent, stays bit-identical', () => {
    const models = buildAtelierModels(6, { vae: { block_out_channels: [8, 8, 8], norm_num_groups: 4 } });
    const stage = decoderStage(models);
    const vars = stage.modules.vae.trainableVariables();
    const decoderCount = models.vae.decoder.parameterCount() + models.vae.post_quant_conv.parameterCount();
    expect(vars.reduce((s, v) => s + v.size, 0)).toBe(decoderCount);
    expect(trainedParameterCount(models, 'decoder')).toBe(decoderCount);
    const batch = autoencoderBatch({ seed: 1, index: 0, rank: 0, size: 2, textureShare: 0.5 });
    const x = tf.tensor4d(batch.images, [2, 64, 64, 3]);
    const latentsBefore = tf.tidy(() => models.vae.encode(x).mean.dataSync().slice());
    const { value, grads } = tf.variableGrads(() => stage.loss(batch, 3), vars);
    expect(Number.isFinite(value.dataSync()[0])).toBe(true);
    const norms = Object.values(grads).map((g) => tf.tidy(() => tf.sum(tf.abs(g)).dataSync()[0]));
    expect(Math.max(...norms)).toBeGreaterThan(0);
    // One plain SGD step on everything that got a gradient.
    for (const v of vars) v.assign(tf.tidy(() => tf.sub(v, tf.mul(grads[v.name], 0.1))));
    const latentsAfter = tf.tidy(() => models.vae.encode(x).mean.dataSync().slice());
    expect(Buffer.from(latentsAfter.buffer).equals(Buffer.from(latentsBefore.buffer))).toBe(true);
    tf.dispose([value, x, ...Object.values(grads)]);
    for (const m of [models.vae, models.unet, models.textEncoder]) m.dispose();
  });
});
