import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { initBackend, tf } from '@museum/tensor';
import {
  AbortError,
  AutoencoderKL,
  CLIPTextModel,
  DDIMScheduler,
  DenoisingUNet,
  LatentDecoder,
  PromptEncoder,
  SD_SCHEDULER_CONFIG,
  StableDiffusionPipeline,
  UNet2DConditionModel,
  WordTokenizer,
  clipTextConfigFromJson,
  createBatchGenerator,
  isAbortError,
  SAMPLING_CONFIG_NAME,
  loadPipelineFolder,
  loadSamplingConfig,
  isGuidanceInterval,
  isGuidanceRescale,
  parseSamplingConfig,
  readJsonFile,
  saveSamplingConfig,
  seedInit,
} from '../src';

const tokenizer = () => WordTokenizer.fromCorpus(['a red cat', 'a blue dog on the grass', 'ugly blurry'], { modelMaxLength: 8 });

/** A UNet stand-in whose output is a known function of its inputs, recording every call. */
class StubUNet implements DenoisingUNet {
  readonly config = { in_channels: 2, sample_size: 4 };
  calls: Array<{ batch: number; t: number; ctxMean: number[] }> = [];
  forward(sample: tf.Tensor, t: number | tf.Tensor, ctx: tf.Tensor): tf.Tensor {
    const tt = typeof t === 'number' ? t : t.dataSync()[0];
    const ctxMean = Array.from(tf.tidy(() => tf.mean(ctx, [1, 2])).dataSync());
    this.calls.push({ batch: sample.shape[0], t: tt, ctxMean });
    // ε̂ = 0.1·x + mean(context row): depends on both the sample and the conditioning
    return tf.tidy(() => tf.add(tf.mul(sample, 0.1), tf.reshape(tf.mean(ctx, [1, 2]), [-1, 1, 1, 1])));
  }
  dispose(): void {}
}

class StubText implements PromptEncoder {
  lastHiddenState(ids: tf.Tensor): tf.Tensor {
    // row r: every value = sum(ids of row r) / 100, shape [B, L, 3]
    return tf.tidy(() => tf.tile(tf.expandDims(tf.div(tf.cast(ids, 'float32'), 100), -1), [1, 1, 3]));
  }
  dispose(): void {}
}

class StubVae implements LatentDecoder {
  readonly config = { scaling_factor: 0.5, block_out_channels: [4, 4] };
  decode(z: tf.Tensor): tf.Tensor {
    return tf.tidy(() => tf.tile(tf.image.resizeNearestNeighbor(tf.slice(z, [0, 0, 0, 0], [-1, -1, -1, 1]) as tf.Tensor4D, [z.shape[1]! * 2, z.shape[2]! * 2]), [1, 1, 1, 3]));
  }
  dispose(): void {}
}

function stubPipeline(unet = new StubUNet()): StableDiffusionPipeline {
  return new StableDiffusionPipeline({ tokenizer: tokenizer(), textEncoder: new StubText(), unet, vae: new StubVae(), schedulerConfig: SD_SCHEDULER_CONFIG });
}

let tmp: string;
beforeAll(async () => {
  await initBackend({ log: () => {} });
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'museum-pipeline-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/**
 * The stub UNet's 4-step DDIM loop written out by hand (seed 5, context means 0.3 and -0.1 for cond and
 * uncond, guidance 3 at the timesteps `guided` accepts, the conditional prediction elsewhere).
 */
function manualStubDdim(guided: (t: number) => boolean): tf.Tensor {
  const s = new DDIMScheduler(SD_SCHEDULER_CONFIG);
  s.setTimesteps(4);
  let x = createBatchGenerator([5]).normal([1, 4, 4, 2]);
  for (const t of s.timesteps) {
    const eps = tf.tidy(() => {
      const u = tf.add(tf.mul(x, 0.1), -0.1);
      const c = tf.add(tf.mul(x, 0.1), 0.3);
      return guided(t) ? tf.add(u, tf.mul(tf.sub(c, u), 3)) : c;
    });
    const next = s.step(eps, t, x);
    tf.dispose([eps, x]);
    x = next;
  }
  return x;
}

describe('denoising loop (stub UNet)', () => {
  it('batches uncond + cond in one UNet call and applies guidance as a manual DDIM loop does', async () => {
    const unet = new StubUNet();
    const pipe = stubPipeline(unet);
    const embeddings = tf.fill([1, 4, 3], 0.3) as tf.Tensor3D;
    const negativeEmbeddings = tf.fill([1, 4, 3], -0.1) as tf.Tensor3D;
    const steps: number[] = [];
    const before = tf.memory().numTensors;
    const latents = await pipe.denoise({ embeddings, negativeEmbeddings, seed: 5, steps: 4, guidance: 3, sampler: 'ddim', height: 8, width: 8, onStep: (s, total, l) => steps.push(s * 100 + total + (l ? 1000 : 0)) });
    expect(tf.memory().numTensors).toBe(before + 1);
    expect(latents.shape).toEqual([1, 4, 4, 2]);
    expect(steps).toEqual([1104, 1204, 1304, 1404]);
    expect(unet.calls.map((c) => c.batch)).toEqual([2, 2, 2, 2]);
    // uncond first, then cond, as upstream
    expect(unet.calls[0].ctxMean[0]).toBeCloseTo(-0.1, 6);
    expect(unet.calls[0].ctxMean[1]).toBeCloseTo(0.3, 6);
    expect(unet.calls.map((c) => c.t)).toEqual([751, 501, 251, 1]);

    // the same loop by hand
    const x = manualStubDdim(() => true);
    const a = latents.dataSync();
    const b = x.dataSync();
    for (let i = 0; i < a.length; i++) expect(a[i]).toBeCloseTo(b[i], 5);
    tf.dispose([latents, x, embeddings, negativeEmbeddings]);
  });

  it('guides only inside guidanceInterval: outside it the step takes the conditional prediction alone', async () => {
    const unet = new StubUNet();
    const pipe = stubPipeline(unet);
    const embeddings = tf.fill([1, 4, 3], 0.3) as tf.Tensor3D;
    const negativeEmbeddings = tf.fill([1, 4, 3], -0.1) as tf.Tensor3D;
    const before = tf.memory().numTensors;
    // timesteps 751, 501, 251, 1: guided at 751 and 501 only
    const latents = await pipe.denoise({ embeddings, negativeEmbeddings, seed: 5, steps: 4, guidance: 3, guidanceInterval: [300, 800], sampler: 'ddim', height: 8, width: 8 });
    expect(tf.memory().numTensors).toBe(before + 1);
    // unguided steps run the UNet on the conditional half only
    expect(unet.calls.map((c) => c.batch)).toEqual([2, 2, 1, 1]);
    expect(unet.calls[2].ctxMean[0]).toBeCloseTo(0.3, 6);
    const x = manualStubDdim((t) => t >= 300 && t <= 800);
    const a = latents.dataSync();
    const b = x.dataSync();
    for (let i = 0; i < a.length; i++) expect(a[i]).toBeCloseTo(b[i], 5);
    await expect(pipe.denoise({ embeddings, negativeEmbeddings, seed: 5, steps: 2, guidance: 3, guidanceInterval: [800, 300], height: 8, width: 8 })).rejects.toThrow(/guidanceInterval must satisfy 0 <= from <= to timesteps, got \[800, 300\]/);
    await expect(pipe.denoise({ embeddings, negativeEmbeddings, seed: 5, steps: 2, guidance: 3, guidanceInterval: [-1, 300], height: 8, width: 8 })).rejects.toThrow(/guidanceInterval must satisfy 0 <= from <= to timesteps, got \[-1, 300\]/);
    await expect(pipe.denoise({ embeddings, negativeEmbeddings, seed: 5, steps: 2, guidance: 3, guidanceRescale: 1.5, height: 8, width: 8 })).rejects.toThrow(/guidanceRescale must be in \[0, 1\]/);
    tf.dispose([latents, x, embeddings, negativeEmbeddings]);
  });

  it('takes the guidance interval of its sampling defaults when a call leaves it unset; null guides every step', async () => {
    const unet = new StubUNet();
    const pipe = new StableDiffusionPipeline({ tokenizer: tokenizer(), textEncoder: new StubText(), unet, vae: new StubVae(), schedulerConfig: SD_SCHEDULER_CONFIG, samplingDefaults: { guidanceInterval: [300, 800], guidanceRescale: 0 } });
    const embeddings = tf.fill([1, 4, 3], 0.3) as tf.Tensor3D;
    const negativeEmbeddings = tf.fill([1, 4, 3], -0.1) as tf.Tensor3D;
    const byDefault = await pipe.denoise({ embeddings, negativeEmbeddings, seed: 5, steps: 4, guidance: 3, sampler: 'ddim', height: 8, width: 8 });
    expect(unet.calls.map((c) => c.batch)).toEqual([2, 2, 1, 1]);
    unet.calls = [];
    const everyStep = await pipe.denoise({ embeddings, negativeEmbeddings, seed: 5, steps: 4, guidance: 3, guidanceInterval: null, sampler: 'ddim', height: 8, width: 8 });
    expect(unet.calls.map((c) => c.batch)).toEqual([2, 2, 2, 2]);
    const [want, wantEvery] = [manualStubDdim((t) => t >= 300 && t <= 800), manualStubDdim(() => true)];
    const close = (a: tf.Tensor, b: tf.Tensor) => Array.from(a.dataSync()).forEach((v, i) => expect(v).toBeCloseTo(b.dataSync()[i], 5));
    close(byDefault, want);
    close(everyStep, wantEvery);
    tf.dispose([byDefault, everyStep, want, wantEvery, embeddings, negativeEmbeddings]);
  });

  it('every sampler is reproducible from the seed, seed-dependent and leak-free; batched seeds equal single runs', async () => {
    const pipe = stubPipeline();
    const { embeddings, negativeEmbeddings } = pipe.encodePrompt(['a red cat', 'a blue dog'], 'ugly');
    const one = pipe.encodePrompt('a blue dog', 'ugly');
    for (const sampler of ['ddim', 'dpmpp-2m', 'euler-a'] as const) {
      const before = tf.memory().numTensors;
      const run = async (seed: number | number[], e = embeddings, n = negativeEmbeddings) => {
        const l = await pipe.denoise({ embeddings: e, negativeEmbeddings: n, seed, steps: 5, guidance: 5, sampler, height: 8, width: 8 });
        const v = Array.from(l.dataSync());
        l.dispose();
        return v;
      };
      const a = await run([7, 8]);
      expect(await run([7, 8])).toEqual(a);
      expect(await run([9, 8])).not.toEqual(a);
      expect(await run(7)).toEqual(a); // seed s → s, s+1
      const single = await run([8], one.embeddings, one.negativeEmbeddings);
      const row1 = a.slice(a.length / 2);
      single.forEach((v, i) => expect(v).toBeCloseTo(row1[i], 5));
      expect(a.every(Number.isFinite)).toBe(true);
      expect(tf.memory().numTensors).toBe(before);
    }
    tf.dispose([embeddings, negativeEmbeddings, one.embeddings, one.negativeEmbeddings]);
  });

  it('concurrent generations on one pipeline do not share sampler state; explicit start latents', async () => {
    const pipe = stubPipeline();
    const { embeddings, negativeEmbeddings } = pipe.encodePrompt('a red cat');
    const run = async (seed: number, latents?: tf.Tensor) => {
      const l = await pipe.denoise({ embeddings, negativeEmbeddings, seed, latents, steps: 6, sampler: 'dpmpp-2m', height: 8, width: 8 });
      const v = Array.from(l.dataSync());
      l.dispose();
      return v;
    };
    const a = await run(1);
    const b = await run(2);
    const [a2, b2] = await Promise.all([run(1), run(2)]);
    expect(a2).toEqual(a);
    expect(b2).toEqual(b);
    // the seeded start is N(0, 1) · init_noise_sigma from the seed's generator
    const start = createBatchGenerator([1]).normal([1, 4, 4, 2]);
    expect(await run(12345, start)).toEqual(a);
    start.dispose();
    tf.dispose([embeddings, negativeEmbeddings]);
  });

  it('cancels between steps with an AbortError and frees every tensor', async () => {
    const unet = new StubUNet();
    const pipe = stubPipeline(unet);
    const { embeddings, negativeEmbeddings } = pipe.encodePrompt('a red cat');
    const before = tf.memory().numTensors;
    const ac = new AbortController();
    const p = pipe.denoise({ embeddings, negativeEmbeddings, seed: 1, steps: 10, sampler: 'dpmpp-2m', height: 8, width: 8, signal: ac.signal, onStep: (s) => s === 3 && ac.abort() });
    await expect(p).rejects.toBeInstanceOf(AbortError);
    await p.catch((e) => expect(isAbortError(e)).toBe(true));
    expect(unet.calls).toHaveLength(3);
    expect(tf.memory().numTensors).toBe(before);
    // an already-aborted signal stops before any UNet call
    await expect(pipe.generate({ prompt: 'a cat', seed: 1, steps: 3, height: 8, width: 8, signal: AbortSignal.abort() })).rejects.toThrow(AbortError);
    expect(unet.calls).toHaveLength(3);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([embeddings, negativeEmbeddings]);
  });

  it('streams steps through denoiseSteps; stopping early frees the run', async () => {
    const pipe = stubPipeline();
    const { embeddings, negativeEmbeddings } = pipe.encodePrompt('a red cat');
    const before = tf.memory().numTensors;
    const it = pipe.denoiseSteps({ embeddings, negativeEmbeddings, seed: 2, steps: 6, sampler: 'euler-a', height: 8, width: 8 });
    const seen: number[] = [];
    for await (const p of it) {
      seen.push(p.step);
      expect(p.latents.isDisposed).toBe(false);
      expect(p.total).toBe(6);
      if (p.step === 2) break;
    }
    expect(seen).toEqual([1, 2]);
    expect(tf.memory().numTensors).toBe(before);
    // run to the end by hand: the return value is the final latents
    const it2 = pipe.denoiseSteps({ embeddings, negativeEmbeddings, seed: 2, steps: 3, sampler: 'ddim', height: 8, width: 8 });
    let r = await it2.next();
    while (!r.done) r = await it2.next();
    expect(r.value.shape).toEqual([1, 4, 4, 2]);
    r.value.dispose();
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([embeddings, negativeEmbeddings]);
  });

  it('rejects bad arguments', async () => {
    const pipe = stubPipeline();
    const e = tf.zeros([1, 4, 3]);
    await expect(pipe.denoise({ embeddings: e, seed: 1, steps: 2, guidance: 7 })).rejects.toThrow(/negativeEmbeddings/);
    await expect(pipe.denoise({ embeddings: e, seed: 1, steps: 2, guidance: 1, height: 9, width: 8 })).rejects.toThrow(/multiples of 2/);
    await expect(pipe.denoise({ embeddings: e, seed: [1, 2], steps: 2, guidance: 1, height: 8, width: 8 })).rejects.toThrow(/2 seeds for 1 images/);
    // guidance ≤ 1: one unconditional-free branch
    const l = await pipe.denoise({ embeddings: e, seed: 1, steps: 2, guidance: 1, height: 8, width: 8 });
    expect(l.shape).toEqual([1, 4, 4, 2]);
    tf.dispose([e, l]);
  });

  it('decode applies 1/scaling_factor and maps [-1, 1] to [0, 1]', () => {
    const pipe = stubPipeline();
    const z = tf.tensor4d([0.25, 0, -1, 0.5, 0, 0, 0, 0], [2, 1, 2, 2]);
    const img = pipe.decode(z);
    expect(img.shape).toEqual([2, 2, 4, 3]);
    const v = img.dataSync();
    // z/0.5 = 0.5 → 0.75; -1/0.5 = -2 → −0.5, clipped to 0 (pixel 2 is a copy of latent column 1)
    expect(v[0]).toBeCloseTo(0.75, 6);
    expect(v[3 * 2]).toBe(0);
    expect(v[3 * 8]).toBeCloseTo(0.5, 6);
    tf.dispose([z, img]);
  });
});

describe('tiny real models', () => {
  function tinyPipeline(): StableDiffusionPipeline {
    seedInit(99);
    const tok = tokenizer();
    const textEncoder = new CLIPTextModel(
      clipTextConfigFromJson({ vocab_size: tok.vocabSize, hidden_size: 16, intermediate_size: 32, num_hidden_layers: 1, num_attention_heads: 2, max_position_embeddings: 8, eos_token_id: tok.eosId, bos_token_id: tok.bosId, pad_token_id: tok.padId }),
    );
    const unet = new UNet2DConditionModel({ block_out_channels: [8, 16], down_block_types: ['CrossAttnDownBlock2D', 'DownBlock2D'], up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D'], norm_num_groups: 4, cross_attention_dim: 16, attention_head_dim: 2, layers_per_block: 1, sample_size: 8 });
    const vae = new AutoencoderKL({ block_out_channels: [8, 8], down_block_types: ['DownEncoderBlock2D', 'DownEncoderBlock2D'], up_block_types: ['UpDecoderBlock2D', 'UpDecoderBlock2D'], norm_num_groups: 4, layers_per_block: 1, latent_channels: 4 });
    return new StableDiffusionPipeline({ tokenizer: tok, textEncoder, unet, vae, schedulerConfig: SD_SCHEDULER_CONFIG });
  }

  it('generate is deterministic, in [0, 1] and leak-free for every sampler; save → load gives the same images', async () => {
    const pipe = tinyPipeline();
    expect(pipe.vaeScaleFactor).toBe(2);
    expect(pipe.defaultSize).toBe(16);
    const before = tf.memory().numTensors;
    const results: Record<string, number[]> = {};
    for (const sampler of ['ddim', 'dpmpp-2m', 'euler-a'] as const) {
      const img = await pipe.generate({ prompt: 'a red cat', negativePrompt: 'blurry', seed: 3, steps: 3, guidance: 7.5, sampler });
      expect(img.shape).toEqual([1, 16, 16, 3]);
      const v = Array.from(img.dataSync());
      img.dispose();
      expect(v.every((x) => x >= 0 && x <= 1)).toBe(true);
      const again = await pipe.generate({ prompt: 'a red cat', negativePrompt: 'blurry', seed: 3, steps: 3, guidance: 7.5, sampler });
      expect(Array.from(again.dataSync())).toEqual(v);
      again.dispose();
      results[sampler] = v;
    }
    expect(tf.memory().numTensors).toBe(before);
    const other = await pipe.generate({ prompt: 'a blue dog', seed: 3, steps: 3, sampler: 'ddim' });
    expect(Array.from(other.dataSync())).not.toEqual(results.ddim);
    other.dispose();

    const dir = path.join(tmp, 'sd-tiny');
    pipe.save(dir);
    const index = readJsonFile(path.join(dir, 'model_index.json'));
    expect(index).toMatchObject({
      _class_name: 'StableDiffusionPipeline',
      unet: ['diffusers', 'UNet2DConditionModel'],
      vae: ['diffusers', 'AutoencoderKL'],
      text_encoder: ['transformers', 'CLIPTextModel'],
      scheduler: ['diffusers', 'PNDMScheduler'],
    });
    for (const f of ['unet/diffusion_pytorch_model.safetensors', 'vae/diffusion_pytorch_model.safetensors', 'text_encoder/model.safetensors', 'scheduler/scheduler_config.json', 'tokenizer/vocab.json']) {
      expect(fs.existsSync(path.join(dir, f))).toBe(true);
    }
    const folder = loadPipelineFolder(dir);
    expect(folder.skipped).toEqual([]);
    expect(folder.schedulerConfig._class_name).toBe('PNDMScheduler');
    // no recommendation of its own: plain guidance, and no sampling_config.json written
    expect(folder.samplingDefaults).toEqual({ guidanceInterval: null, guidanceRescale: 0 });
    expect(fs.existsSync(path.join(dir, SAMPLING_CONFIG_NAME))).toBe(false);
    expect(folder.unet).toBeInstanceOf(UNet2DConditionModel);
    folder.unet.dispose();
    folder.vae.dispose();
    folder.textEncoder.dispose();
    const loaded = StableDiffusionPipeline.fromPretrained(dir);
    const img = await loaded.generate({ prompt: 'a red cat', negativePrompt: 'blurry', seed: 3, steps: 3, guidance: 7.5, sampler: 'dpmpp-2m' });
    expect(Array.from(img.dataSync())).toEqual(results['dpmpp-2m']);
    img.dispose();
    loaded.dispose();
    // a folder that recommends guidance shaping: loaded as the defaults, and written back by save()
    saveSamplingConfig(dir, { guidanceInterval: [0, 880], guidanceRescale: 0.25 }, 'test');
    const shaped = StableDiffusionPipeline.fromPretrained(dir);
    expect(shaped.samplingDefaults).toEqual({ guidanceInterval: [0, 880], guidanceRescale: 0.25 });
    const resaved = path.join(tmp, 'sd-tiny-resaved');
    shaped.save(resaved);
    expect(loadSamplingConfig(resaved)).toEqual({ guidanceInterval: [0, 880], guidanceRescale: 0.25 });
    shaped.dispose();
    pipe.dispose();
  });

  it('loads an upstream-layout pipeline folder (upstream weights, PNDM config, safety checker entries) and generates', async () => {
    const fix = path.join(__dirname, 'fixtures');
    const dir = path.join(tmp, 'sd-upstream');
    for (const part of ['unet', 'vae']) {
      fs.mkdirSync(path.join(dir, part), { recursive: true });
      for (const f of ['config.json', 'diffusion_pytorch_model.safetensors']) fs.copyFileSync(path.join(fix, part, f), path.join(dir, part, f));
    }
    fs.mkdirSync(path.join(dir, 'text_encoder'), { recursive: true });
    for (const f of ['config.json', 'model.safetensors']) fs.copyFileSync(path.join(fix, 'text_encoder', f), path.join(dir, 'text_encoder', f));
    // the fixture text encoder has 100 token rows: a word tokenizer fits it
    tokenizer().save(path.join(dir, 'tokenizer'));
    fs.mkdirSync(path.join(dir, 'scheduler'), { recursive: true });
    fs.writeFileSync(
      path.join(dir, 'scheduler', 'scheduler_config.json'),
      '{"_class_name": "PNDMScheduler", "_diffusers_version": "0.6.0", "beta_end": 0.012, "beta_schedule": "scaled_linear", "beta_start": 0.00085, "num_train_timesteps": 1000, "set_alpha_to_one": false, "skip_prk_steps": true, "steps_offset": 1, "trained_betas": null, "clip_sample": false}',
    );
    fs.writeFileSync(
      path.join(dir, 'model_index.json'),
      JSON.stringify({
        _class_name: 'StableDiffusionPipeline',
        _diffusers_version: '0.6.0',
        feature_extractor: ['transformers', 'CLIPImageProcessor'],
        safety_checker: ['stable_diffusion', 'StableDiffusionSafetyChecker'],
        scheduler: ['diffusers', 'PNDMScheduler'],
        text_encoder: ['transformers', 'CLIPTextModel'],
        tokenizer: ['transformers', 'CLIPTokenizer'],
        unet: ['diffusers', 'UNet2DConditionModel'],
        vae: ['diffusers', 'AutoencoderKL'],
      }),
    );
    const folder = loadPipelineFolder(dir);
    expect(folder.skipped.sort()).toEqual(['feature_extractor', 'safety_checker']);
    expect(folder.unet).toBeInstanceOf(UNet2DConditionModel);
    expect(folder.vae).toBeInstanceOf(AutoencoderKL);
    expect(folder.textEncoder).toBeInstanceOf(CLIPTextModel);
    folder.unet.dispose();
    folder.vae.dispose();
    folder.textEncoder.dispose();

    const pipe = StableDiffusionPipeline.fromPretrained(dir);
    expect(pipe.defaultSize).toBe(32);
    const before = tf.memory().numTensors;
    const steps: number[] = [];
    const img = await pipe.generate({ prompt: 'a red cat', seed: 0, steps: 2, sampler: 'ddim', onStep: (s) => steps.push(s) });
    expect(img.shape).toEqual([1, 32, 32, 3]);
    expect(steps).toEqual([1, 2]);
    const v = img.dataSync();
    expect(v.every((x) => x >= 0 && x <= 1)).toBe(true);
    img.dispose();
    expect(tf.memory().numTensors).toBe(before);
    pipe.dispose();
  });
});

test('sampling_config.json is read strictly: an interval [from, to] with 0 <= from <= to or null, a rescale in [0, 1]', () => {
  expect(parseSamplingConfig({})).toEqual({ guidanceInterval: null, guidanceRescale: 0 });
  expect(parseSamplingConfig({ _comment: 'why', guidance_interval: [0, 880], guidance_rescale: 0.7 })).toEqual({ guidanceInterval: [0, 880], guidanceRescale: 0.7 });
  expect(parseSamplingConfig({ guidance_interval: null })).toEqual({ guidanceInterval: null, guidanceRescale: 0 });
  for (const bad of [[880, 0], [-1, 5], [0], [0, 'x'], 'all', [0, 1, 2]]) {
    expect(() => parseSamplingConfig({ guidance_interval: bad }, 'f.json')).toThrow(/^f\.json: guidance_interval must/);
  }
  for (const bad of [1.5, -0.1, '0.5']) expect(() => parseSamplingConfig({ guidance_rescale: bad }, 'f.json')).toThrow(/^f\.json: guidance_rescale must be a number in \[0, 1\]/);
});

test('one range rule for guidance intervals and rescale, shared by the pipeline, the config file, the CLI and gRPC', () => {
  for (const [from, to] of [[0, 880], [0, 0], [300, Infinity], [0, 999]]) expect([from, to, isGuidanceInterval(from, to)]).toEqual([from, to, true]);
  for (const [from, to] of [[880, 0], [-1, 5], [NaN, 5], [0, NaN], [Infinity, Infinity], [-Infinity, 0]]) expect([from, to, isGuidanceInterval(from, to)]).toEqual([from, to, false]);
  for (const phi of [0, 0.7, 1]) expect(isGuidanceRescale(phi)).toBe(true);
  for (const phi of [-0.1, 1.5, NaN, Infinity]) expect(isGuidanceRescale(phi)).toBe(false);
});
