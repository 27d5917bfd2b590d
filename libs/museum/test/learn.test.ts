import * as crypto from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { encodePng, initBackend, tf } from '@museum/tensor';
import { fewShotSet } from '@museum/world';
import { loraFromStateDict } from '@museum/models';
import { LearnProgress, Museum, MuseumError, StyleModels, VERSIONS_DIR, baseRefFromModules, ensureTokens, learnStyle, prepareImages } from '../src';
import { QUICK, randomImages, tinyModels, tmpDir } from './tiny';

let root: string;
let models: StyleModels;

function baseParams(m: StyleModels): Array<[string, Float32Array]> {
  const out: Array<[string, Float32Array]> = [];
  for (const [key, mod] of [
    ['unet', m.unet],
    ['vae', m.vae],
    ['text_encoder', m.textEncoder],
  ] as const) {
    for (const [name, p] of mod.namedParameters(`${key}.`)) out.push([name, Float32Array.from(p.variable.dataSync() as Float32Array)]);
  }
  return out;
}

function newMuseum(name: string): Museum {
  return Museum.create(path.join(root, name), { base: baseRefFromModules({ unet: models.unet, vae: models.vae, text_encoder: models.textEncoder }) });
}

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
  } catch (err) {
    if (err instanceof MuseumError) return err.code;
    throw err;
  }
  return undefined;
}

beforeAll(async () => {
  await initBackend({ log: () => {} });
  root = tmpDir('museum-learn-');
  models = tinyModels();
});
afterAll(() => {
  models.unet.dispose();
  models.vae.dispose();
  models.textEncoder.dispose();
  fs.rmSync(root, { recursive: true, force: true });
});

describe('learnStyle (tiny models)', () => {
  it('takes image files of any size, raw RGB pixels and tensors, centre-cropped to the model resolution', async () => {
    // a 12×20 image: left and right quarters black, the centre 12×12 square white
    const wide = tf.tidy(() => tf.concat([tf.zeros([12, 4, 3]), tf.ones([12, 12, 3]), tf.zeros([12, 4, 3])], 1)) as tf.Tensor3D;
    const png = await encodePng(wide);
    const sample = fewShotSet('stripes')[0];
    const prepared = await prepareImages([png, sample, wide], 8);
    expect(prepared.pixels.shape).toEqual([3, 8, 8, 3]);
    const px = prepared.pixels.dataSync();
    for (let i = 0; i < 8 * 8 * 3; i++) expect(px[i]).toBeCloseTo(1, 5); // only the white centre survives the crop
    expect(prepared.sizes).toEqual([
      { width: 20, height: 12 },
      { width: 64, height: 64 },
      { width: 20, height: 12 },
    ]);
    expect(prepared.hashes[0]).toBe(crypto.createHash('sha256').update(png).digest('hex'));
    expect(new Set(prepared.hashes).size).toBe(3);
    await expect(prepareImages([Buffer.from('not an image')], 8)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    const flat = tf.zeros([4, 4]);
    await expect(prepareImages([flat], 8)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    tf.dispose([wide, flat, prepared.pixels]);
  });

  it("a new token's gradient reaches only its own embedding row", () => {
    const ids = ensureTokens(models, ['<grad-old>', '<grad-new>']);
    const extra = models.textEncoder.extraTokenRows!;
    const base = models.textEncoder.embeddings.baseTokens;
    const enc = models.tokenizer.encodeBatch(['a red star in <grad-new>', 'a blue ring in <grad-new>'], { maxLength: 12 });
    const { grads, value } = tf.variableGrads(() => {
      const h = models.textEncoder.lastHiddenState(tf.tensor2d(enc.flat, [2, enc.length], 'int32'));
      return tf.sum(tf.square(h)) as tf.Scalar;
    }, [extra]);
    const g = grads[extra.name];
    const rowNorm = (id: number) => {
      const n = tf.tidy(() => tf.sum(tf.abs(tf.slice(g, [id - base, 0], [1, -1]))));
      const v = n.dataSync()[0];
      n.dispose();
      return v;
    };
    expect(rowNorm(ids.get('<grad-new>')!)).toBeGreaterThan(0);
    for (let r = 0; r < extra.shape[0]; r++) if (r + base !== ids.get('<grad-new>')) expect(rowNorm(r + base)).toBe(0);
    tf.dispose([value, g]);
  });

  it('trains only the LoRA and the new row: base weights and earlier rows stay bit-identical', async () => {
    const museum = newMuseum('frozen');
    const before = baseParams(models);
    const images = randomImages(4, 1);
    const first: LearnProgress[] = [];
    await learnStyle(museum, 'alpha', images, { ...QUICK, models, onProgress: (p) => p.phase === 'train' && first.push(p) });
    const oldRow = Float32Array.from(models.textEncoder.getTokenEmbedding(models.tokenizer.tokenId('<alpha>')!).dataSync());
    const v1 = museum.loadVersion(1);
    expect(Array.from(v1.tokens.get('<alpha>')!.dataSync())).toEqual(Array.from(oldRow));

    const second: LearnProgress[] = [];
    const r2 = await learnStyle(museum, 'beta', randomImages(4, 2), { ...QUICK, models, onProgress: (p) => p.phase === 'train' && second.push(p) });
    expect(r2.version).toBe(2);

    // every base parameter (UNet, VAE, text encoder with its vocabulary table) is bit-identical
    const after = baseParams(models);
    expect(after.map(([n]) => n)).toEqual(before.map(([n]) => n));
    after.forEach(([name, v], i) => {
      const same = v.length === before[i][1].length && v.every((x, k) => Object.is(x, before[i][1][k]));
      if (!same) throw new Error(`base parameter ${name} changed`);
    });
    // style 1's token row was in the feature-regularization prompts (so it had gradients) but did not move
    const v2 = museum.loadVersion(2);
    expect(Array.from(v2.tokens.get('<alpha>')!.dataSync())).toEqual(Array.from(oldRow));
    expect(Array.from(models.textEncoder.getTokenEmbedding(models.tokenizer.tokenId('<alpha>')!).dataSync())).toEqual(Array.from(oldRow));
    // while the new row and the shared LoRA did learn
    const init = models.textEncoder.getTokenEmbedding(models.tokenizer.tokenId('style')!);
    expect(Array.from(v2.tokens.get('<beta>')!.dataSync())).not.toEqual(Array.from(init.dataSync()));
    const key = [...v1.lora!.tensors.keys()].find((k) => k.endsWith('lora_B.weight'))!;
    expect(Array.from(v2.lora!.tensors.get(key)!.dataSync())).not.toEqual(Array.from(v1.lora!.tensors.get(key)!.dataSync()));

    // the model equals the previous version at the first step of a task: feature regularization is exactly 0
    expect(first[0].losses.featReg).toBe(0);
    expect(second[0].losses.featReg).toBe(0);
    expect(second[0].losses.weightReg).toBeLessThan(1e-6);
    // …and is active once the shared LoRA has moved
    expect(second[second.length - 1].losses.featReg).toBeGreaterThan(0);
    expect(second[second.length - 1].losses.weightReg).toBeGreaterThan(0);
    expect(second.map((p) => p.step)).toEqual([1, 2, 3]);
    expect(second.every((p) => p.total === 3 && Number.isFinite(p.losses.diffusion!) && Number.isFinite(p.losses.sdl!))).toBe(true);
    tf.dispose([init, ...images]);
    v1.dispose();
    v2.dispose();
  });

  it('trains with the input-subspace weight regularization (the default): finite from a zero update, active once the LoRA moves; and with the plain cosine', async () => {
    const museum = newMuseum('subspace');
    await learnStyle(museum, 'alpha', randomImages(4, 1), { ...QUICK, models });
    const second: LearnProgress[] = [];
    const r = await learnStyle(museum, 'beta', randomImages(4, 2), { ...QUICK, models, onProgress: (p) => p.phase === 'train' && second.push(p) });
    // step 1 starts at ΔW_t = 0 exactly, where a bare ‖G_t‖ = √tr(G_t²) would give 0·∞ = NaN gradients
    expect(second[0].losses.weightReg).toBeLessThan(1e-6);
    expect(second.every((p) => Number.isFinite(p.losses.total!))).toBe(true);
    expect(second[second.length - 1].losses.weightReg).toBeGreaterThan(0);
    expect(r.style.settings).toMatchObject({ weightRegForm: 'input-subspace' });
    const cosine = await learnStyle(museum, 'delta', randomImages(2, 4), { ...QUICK, models, weightRegForm: 'cosine' });
    expect(cosine.style.settings).toMatchObject({ weightRegForm: 'cosine' });
    const v2 = museum.loadVersion(2);
    for (const t of v2.lora!.tensors.values()) expect(Array.from(t.dataSync()).every(Number.isFinite)).toBe(true);
    v2.dispose();
    await expect(learnStyle(museum, 'gamma', randomImages(2, 3), { ...QUICK, models, weightRegForm: 'nope' as never })).rejects.toThrow(/weightRegForm/);
  });

  it('keeps a new task token orthogonal to every earlier one (tokenOrthogonal), and only when asked', async () => {
    const museum = newMuseum('orthogonal');
    for (const [i, name] of ['alpha', 'beta', 'gamma'].entries()) await learnStyle(museum, name, randomImages(3, 30 + i), { ...QUICK, models, components: { tokenOrthogonal: true } });
    // the default leaves tokens free
    const free = newMuseum('unconstrained-token');
    for (const [i, name] of ['alpha', 'beta'].entries()) await learnStyle(free, name, randomImages(3, 30 + i), { ...QUICK, models });
    expect(free.listStyles()[1].settings).toMatchObject({ components: { tokenOrthogonal: false } });
    const cos = (m: Museum, a: string, b: string) => {
      const v = m.loadVersion();
      const [x, y] = [a, b].map((t) => v.tokens.get(`<${t}>`)!.dataSync());
      v.dispose();
      const dot = (p: ArrayLike<number>, q: ArrayLike<number>) => Array.from(p).reduce((acc, e, i) => acc + e * q[i], 0);
      return dot(x, y) / Math.sqrt(dot(x, x) * dot(y, y));
    };
    // both started from the word `style`: free, the second token stays close to the first
    expect(cos(free, 'alpha', 'beta')).toBeGreaterThan(0.5);
    for (const [a, b] of [['alpha', 'beta'], ['alpha', 'gamma'], ['beta', 'gamma']]) expect(Math.abs(cos(museum, a, b))).toBeLessThan(1e-4);
    expect(museum.listStyles()[2].settings).toMatchObject({ components: { tokenOrthogonal: true } });
    // methods without a new token to keep apart refuse it
    await expect(learnStyle(newMuseum('word'), 'delta', randomImages(2, 5), { ...QUICK, models, method: 'museummaker-token', components: { tokenOrthogonal: true } })).rejects.toThrow(/tokenOrthogonal/);
  });

  it('feature regularization on replayed latents: exactly 0 at step 1, active later, not the noise inputs, leak-free', async () => {
    const run = async (name: string, featRegInputs: 'noise' | 'replay') => {
      const museum = newMuseum(name);
      await learnStyle(museum, 'alpha', randomImages(4, 1), { ...QUICK, models, featRegInputs, featRegReplay: 3, featRegReplaySteps: 2 });
      const images = randomImages(4, 2);
      const tensors = tf.memory().numTensors;
      const second: LearnProgress[] = [];
      const r = await learnStyle(museum, 'beta', images, { ...QUICK, models, featRegInputs, featRegReplay: 3, featRegReplaySteps: 2, onProgress: (p) => p.phase === 'train' && second.push(p) });
      expect(tf.memory().numTensors).toBe(tensors); // the replay set is freed with the run
      tf.dispose(images);
      return { second, r };
    };
    const replay = await run('replay', 'replay');
    const noise = await run('replay-noise', 'noise');
    // step 1: the model equals the previous version on the replayed latents too
    expect(replay.second[0].losses.featReg).toBe(0);
    const last = (x: typeof replay) => x.second[x.second.length - 1].losses.featReg!;
    expect(last(replay)).toBeGreaterThan(0);
    expect(Number.isFinite(last(replay))).toBe(true);
    // same seeds, same LoRA path up to the inputs: the replayed latents are not the N(0, I) ones
    expect(last(replay)).not.toBe(last(noise));
    expect(replay.r.style.settings).toMatchObject({ featRegInputs: 'replay', featRegReplay: 3, featRegReplaySteps: 2 });
    const bad = newMuseum('replay-bad');
    await expect(learnStyle(bad, 'gamma', randomImages(2, 3), { ...QUICK, models, featRegInputs: 'stored' as never })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(learnStyle(bad, 'gamma', randomImages(2, 3), { ...QUICK, models, featRegReplay: 0 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(learnStyle(bad, 'gamma', randomImages(2, 3), { ...QUICK, models, noiseOffset: -0.1 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/noiseOffset/) });
    expect(bad.latestVersion()).toBe(0);
  });

  it('featRegEmptyShare sets the share of feature-regularization prompts that are the empty prompt', async () => {
    const museum = newMuseum('empty-share');
    await learnStyle(museum, 'alpha', randomImages(2, 1), { ...QUICK, models });
    // the prompts the feature regularization encodes, seen at the tokenizer (captions are encoded once, before them)
    const featPrompts = async (name: string, featRegEmptyShare: number | 'uniform', steps = 24) => {
      const seen: string[][] = [];
      const tokenizer = models.tokenizer;
      const encodeBatch = tokenizer.encodeBatch;
      tokenizer.encodeBatch = (texts, o) => (seen.push(texts), encodeBatch.call(tokenizer, texts, o));
      try {
        const r = await learnStyle(museum, name, randomImages(2, 2), { ...QUICK, models, steps, featRegEmptyShare });
        expect(r.style.settings).toMatchObject({ featRegEmptyShare });
      } finally {
        tokenizer.encodeBatch = encodeBatch;
      }
      return seen.slice(1).flat();
    };
    const all = await featPrompts('beta', 1);
    expect(all).toHaveLength(24);
    expect(all.every((t) => t === '')).toBe(true);
    const none = await featPrompts('gamma', 0);
    expect(none.some((t) => t === '')).toBe(false);
    expect(none.some((t) => t.includes('<alpha>'))).toBe(true);
    // uniform over the base model and three earlier styles, the base half of the time empty: 1/8 of the prompts
    const uniform = await featPrompts('delta', 'uniform', 48);
    expect(uniform).toHaveLength(48);
    expect(uniform.filter((t) => t === '').length).toBeGreaterThan(0);
    expect(uniform.filter((t) => t === '').length).toBeLessThan(16);
    await expect(learnStyle(museum, 'epsilon', randomImages(2, 3), { ...QUICK, models, featRegEmptyShare: 1.5 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/featRegEmptyShare/) });
    await expect(learnStyle(museum, 'epsilon', randomImages(2, 3), { ...QUICK, models, featRegEmptyShare: 'often' as never })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    expect(museum.latestVersion()).toBe(4);
  });

  it("keeps a learned token row within the vocabulary's largest norm (tokenNormCap), and only with the cap", async () => {
    const largest = tf.tidy(() => tf.max(tf.norm(models.textEncoder.embeddings.token_embedding.weight.value, 'euclidean', 1)).dataSync()[0]);
    const rowNorm = (museum: ReturnType<typeof newMuseum>, token: string) => {
      const v = museum.loadVersion(1);
      const n = tf.tidy(() => tf.norm(v.tokens.get(token)!).dataSync()[0]);
      v.dispose();
      return n;
    };
    // a token learning rate far too high for the embedding's scale: a free row leaves the vocabulary's range
    const fast = { ...QUICK, steps: 6, tokenLr: 1, models, method: 'textual-inversion' as const };
    const free = newMuseum('free-token');
    await learnStyle(free, 'wild', randomImages(2, 3), { ...fast, tokenNormCap: 0 });
    expect(rowNorm(free, '<wild>')).toBeGreaterThan(2 * largest);
    const capped = newMuseum('capped-token');
    await learnStyle(capped, 'tame', randomImages(2, 3), { ...fast, tokenNormCap: 1 });
    const n = rowNorm(capped, '<tame>');
    expect(n).toBeLessThanOrEqual(largest * (1 + 1e-5));
    expect(n).toBeGreaterThan(0.5 * largest);
    await expect(learnStyle(capped, 'bad', randomImages(2, 3), { ...fast, tokenNormCap: -1 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });

  it('commits one version per style with its images, captions, settings and metrics', async () => {
    const museum = newMuseum('records');
    const images = randomImages(3, 3);
    const r = await learnStyle(museum, 'gamma', images, { ...QUICK, models, captions: ['a red star', 'a blue ring in <gamma>', 'a green cross'] });
    expect(r.version).toBe(1);
    expect(museum.latestVersion()).toBe(1);
    const s = museum.getStyle('gamma');
    expect(s.token).toBe('<gamma>');
    expect(s.method).toBe('museummaker');
    expect(s.embedding).toEqual({ kind: 'token', initWord: 'style' });
    expect(s.images.map((i) => i.caption)).toEqual(['a red star in <gamma>', 'a blue ring in <gamma>', 'a green cross in <gamma>']);
    const expectedHash = crypto
      .createHash('sha256')
      .update('tensor:float32:[8,8,3]')
      .update(Buffer.from((images[0].dataSync() as Float32Array).buffer))
      .digest('hex');
    expect(s.images[0].sha256).toBe(expectedHash);
    expect(s.settings).toMatchObject({ steps: 3, rank: 2, alpha: 2, components: { sdl: true, weightReg: true, featReg: true } });
    expect(s.metrics.steps).toBe(3);
    expect(s.metrics.loss_diffusion).toBeGreaterThan(0);
    expect(s.trainSeconds).toBeGreaterThan(0);
    const m = museum.manifest();
    expect(m.lora).toMatchObject({ rank: 2, alpha: 2, targets: 'all-attention' });
    expect(m.bytes).toBeGreaterThan(0);
    // default captions; a second style is version 2; the museum's LoRA shape cannot change
    const r2 = await learnStyle(museum, 'delta', randomImages(2, 4), { ...QUICK, models });
    expect(r2.version).toBe(2);
    expect(museum.getStyle('delta').images.map((i) => i.caption)).toEqual(['a picture in <delta>', 'a picture in <delta>']);
    expect(await codeOf(learnStyle(museum, 'eps', randomImages(2, 5), { ...QUICK, rank: 4, models }))).toBe('FAILED_PRECONDITION');
    expect(await codeOf(learnStyle(museum, 'eps', randomImages(2, 5), { ...QUICK, models, method: 'ewc' }))).toBe('FAILED_PRECONDITION');
    tf.dispose(images);
  });

  it('rejects invalid or taken names before doing anything, and a cancelled run commits nothing', async () => {
    const museum = newMuseum('cancel');
    await learnStyle(museum, 'first', randomImages(2, 6), { ...QUICK, models });
    const dir = path.join(root, 'cancel', VERSIONS_DIR);
    const listing = fs.readdirSync(dir).sort();
    const tensors = tf.memory().numTensors;
    const imgs = randomImages(2, 7);
    expect(await codeOf(learnStyle(museum, 'First', imgs, { ...QUICK, models }))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(learnStyle(museum, 'a/b', imgs, { ...QUICK, models }))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(learnStyle(museum, 'first', imgs, { ...QUICK, models }))).toBe('ALREADY_EXISTS');
    expect(await codeOf(learnStyle(museum, 'second', [], { ...QUICK, models }))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(learnStyle(museum, 'second', imgs, { ...QUICK, models, captions: ['only one'] }))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(learnStyle(museum, 'second', imgs, { ...QUICK, models, method: 'nope' as never }))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(learnStyle(museum, 'second', imgs, { ...QUICK, models, steps: 0 }))).toBe('INVALID_ARGUMENT');

    const controller = new AbortController();
    const seen: number[] = [];
    const err = await learnStyle(museum, 'second', imgs, {
      ...QUICK,
      steps: 5,
      models,
      signal: controller.signal,
      onProgress: (p) => {
        if (p.phase !== 'train') return;
        seen.push(p.step);
        if (p.step === 2) controller.abort();
      },
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MuseumError);
    expect((err as MuseumError).code).toBe('CANCELLED');
    expect((err as Error).name).toBe('AbortError');
    expect(seen).toEqual([1, 2]);
    // a failure inside the commit (after training) commits nothing either
    expect(
      await learnStyle(museum, 'third', imgs, {
        ...QUICK,
        models,
        commitHooks: {
          onStage: (s) => {
            if (s === 'manifest-written') throw new Error('disk full');
          },
        },
      }).catch((e: Error) => e.message),
    ).toBe('disk full');
    expect(museum.latestVersion()).toBe(1);
    expect(museum.listStyles().map((s) => s.name)).toEqual(['first']);
    expect(fs.readdirSync(dir).sort()).toEqual(listing);
    tf.dispose(imgs);
    // the cancelled styles' tokens only grew the existing token-row variable: no tensor is left behind
    expect(tf.memory().numTensors).toBe(tensors);
  });

  it('loraStyleBlock: each style trains only its own block of ranks, earlier blocks stay bit-identical, a full LoRA refuses a new style', async () => {
    const museum = newMuseum('blocks');
    const opts = { ...QUICK, rank: 4, alpha: 4, loraStyleBlock: 2, models };
    const imgs = randomImages(2, 11);
    await learnStyle(museum, 'alpha', imgs, opts);
    await learnStyle(museum, 'beta', randomImages(2, 12), opts);
    const [v1, v2] = [museum.loadVersion(1), museum.loadVersion(2)];
    // stored as peft does: lora_A [r, in] (a row per rank), lora_B [out, r] (a column per rank)
    const rows = (t: tf.Tensor, lo: number, hi: number) => Array.from(tf.tidy(() => tf.slice(t, [lo, 0], [hi - lo, t.shape[1]!])).dataSync());
    const cols = (t: tf.Tensor, lo: number, hi: number) => Array.from(tf.tidy(() => tf.slice(t, [0, lo], [t.shape[0]!, hi - lo])).dataSync());
    const keysB = [...v1.lora!.tensors.keys()].filter((k) => k.endsWith('lora_B.weight'));
    expect(keysB.length).toBeGreaterThan(0);
    let moved = 0;
    for (const kB of keysB) {
      const kA = kB.replace('lora_B', 'lora_A');
      const [a1, b1, a2, b2] = [v1.lora!.tensors.get(kA)!, v1.lora!.tensors.get(kB)!, v2.lora!.tensors.get(kA)!, v2.lora!.tensors.get(kB)!];
      // after style 1: block 1 (ranks 2–3) unused, a zero update
      expect(cols(b1, 2, 4).every((x) => x === 0)).toBe(true);
      // after style 2: block 0 exactly as style 1 left it
      expect(rows(a2, 0, 2)).toEqual(rows(a1, 0, 2));
      expect(cols(b2, 0, 2)).toEqual(cols(b1, 0, 2));
      if (cols(b2, 2, 4).some((x) => x !== 0)) moved++;
    }
    expect(moved).toBeGreaterThan(0); // and style 2 did learn in its block
    v1.dispose();
    v2.dispose();
    // rank 4 holds two styles of 2
    expect(await codeOf(learnStyle(museum, 'gamma', imgs, opts))).toBe('FAILED_PRECONDITION');
    expect(museum.latestVersion()).toBe(2);
    // a museum whose first style trained the whole rank has no free block for a second one
    const whole = newMuseum('blocks-whole');
    await learnStyle(whole, 'alpha', imgs, { ...opts, loraStyleBlock: 0 });
    const tensors = tf.memory().numTensors;
    expect(await codeOf(learnStyle(whole, 'beta', imgs, opts))).toBe('FAILED_PRECONDITION');
    expect(await codeOf(learnStyle(whole, 'beta', imgs, { ...opts, loraStyleBlock: 1.5 }))).toBe('INVALID_ARGUMENT');
    expect(await codeOf(learnStyle(newMuseum('blocks-decay'), 'alpha', imgs, { ...opts, weightDecay: 0.1 }))).toBe('INVALID_ARGUMENT');
    expect(whole.latestVersion()).toBe(1);
    expect(tf.memory().numTensors).toBe(tensors);
    tf.dispose(imgs);
  });

  it('keeps the tensor count flat across learnStyle calls', async () => {
    const museum = newMuseum('flat');
    const counts: number[] = [];
    for (const [i, name] of ['s1', 's2', 's3'].entries()) {
      const imgs = randomImages(3, 10 + i);
      await learnStyle(museum, name, imgs, { ...QUICK, models });
      tf.dispose(imgs);
      counts.push(tf.memory().numTensors);
    }
    expect(counts[1]).toBe(counts[0]);
    expect(counts[2]).toBe(counts[0]);
    // the committed LoRA loads back as an adapter set of the right shape
    const v = museum.loadVersion();
    const set = loraFromStateDict(v.lora!.tensors, { prefix: 'unet', metadata: v.lora!.metadata });
    expect(set.rank).toBe(2);
    expect(set.size).toBeGreaterThan(0);
    set.dispose();
    v.dispose();
  });
});
