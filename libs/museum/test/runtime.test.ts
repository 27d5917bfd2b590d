import * as fs from 'fs';
import * as path from 'path';
import { initBackend, tf } from '@museum/tensor';
import { GenerateOptions, applyLora, loraFromStateDict } from '@museum/models';
import { Museum, MuseumError, MuseumRuntime, StyleModels, baseRefFromModules, learnStyle, pipelineFromModels, setTokenRows, type MethodName } from '../src';
import { QUICK, randomImages, tinyModels, tmpDir } from './tiny';

let root: string;
let models: StyleModels;
let runtime: MuseumRuntime;
const museums: Partial<Record<MethodName, Museum>> = {};

const GEN: Omit<GenerateOptions, 'prompt'> = { seed: 3, steps: 2, guidance: 2, sampler: 'ddim' };

function values(t: tf.Tensor): number[] {
  const v = Array.from(t.dataSync());
  t.dispose();
  return v;
}

async function build(method: MethodName, names: string[]): Promise<Museum> {
  const museum = Museum.create(path.join(root, method), { base: baseRefFromModules({ unet: models.unet, vae: models.vae, text_encoder: models.textEncoder }) });
  for (const [i, name] of names.entries()) {
    const imgs = randomImages(2, 60 + i);
    await learnStyle(museum, name, imgs, { ...QUICK, steps: 2, lr: 2e-2, tokenLr: 5e-2, models, method });
    tf.dispose(imgs);
  }
  return museum;
}

/** What a served version must compute: the version's LoRA attached by hand, its rows written by hand. */
async function manual(museum: Museum, version: number, prompt: string, adapterOf?: string): Promise<number[]> {
  const v = museum.loadVersion(version);
  const src = adapterOf ? v.adapters.get(adapterOf)! : v.lora;
  const set = src ? loraFromStateDict(src.tensors, { prefix: 'unet', metadata: src.metadata }) : null;
  applyLora(models.unet, set);
  setTokenRows(models, v.tokens);
  const out = await pipelineFromModels(models).generate({ ...GEN, prompt });
  applyLora(models.unet, null);
  set?.dispose();
  v.dispose();
  return values(out);
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
  root = tmpDir('museum-runtime-');
  models = tinyModels(21);
  museums.museummaker = await build('museummaker', ['one', 'two']);
  museums['textual-inversion'] = await build('textual-inversion', ['one']);
  museums.separate = await build('separate', ['one', 'two']);
  museums['museummaker-token'] = await build('museummaker-token', ['one']);
  runtime = new MuseumRuntime(models, { baseHash: museums.museummaker.base.hash });
});
afterAll(() => {
  runtime.dispose();
  models.unet.dispose();
  models.vae.dispose();
  models.textEncoder.dispose();
  fs.rmSync(root, { recursive: true, force: true });
});

describe('MuseumRuntime', () => {
  it('draws `in <style>` prompts with the version’s shared LoRA and token, swappable per call', async () => {
    const museum = museums.museummaker!;
    const v1 = runtime.load(museum, 1);
    const v2 = runtime.load(museum, 2);
    const v0 = runtime.load(museum, 0);
    expect(runtime.load(museum, 1)).toBe(v1);
    const prompt = 'a red star in <one>';
    const a1 = values(await runtime.generate(v1, { ...GEN, prompt }));
    const a2 = values(await runtime.generate(v2, { ...GEN, prompt }));
    expect(a1).toEqual(await manual(museum, 1, prompt));
    expect(a2).toEqual(await manual(museum, 2, prompt));
    expect(a2).not.toEqual(a1); // version 2 moved the shared LoRA
    // back to version 1: the same image again, also when generations of both versions interleave
    expect(values(await runtime.generate(v1, { ...GEN, prompt }))).toEqual(a1);
    const [b1, b2] = await Promise.all([runtime.generate(v1, { ...GEN, prompt }), runtime.generate(v2, { ...GEN, prompt })]);
    expect(values(b1)).toEqual(a1);
    expect(values(b2)).toEqual(a2);
    // version 0 is the base model; it does not know the style
    const base = values(await runtime.generate(v0, { ...GEN, prompt: 'a red star' }));
    expect(base).toEqual(await manual(museum, 0, 'a red star'));
    expect(await codeOf(runtime.generate(v0, { ...GEN, prompt }))).toBe('NOT_FOUND');
    expect(await codeOf(runtime.generate(v1, { ...GEN, prompt: 'a red star in <two>' }))).toBe('NOT_FOUND');
  });

  it('serves a shared LoRA that also adapts the feed-forward layers (attention-ff)', async () => {
    const museum = Museum.create(path.join(root, 'attention-ff'), { base: baseRefFromModules({ unet: models.unet, vae: models.vae, text_encoder: models.textEncoder }) });
    const imgs = randomImages(2, 70);
    await learnStyle(museum, 'one', imgs, { ...QUICK, steps: 2, lr: 2e-2, tokenLr: 5e-2, models, loraTargets: 'attention-ff' });
    tf.dispose(imgs);
    const lora = museum.manifest(1).lora!;
    expect(lora.targets).toBe('attention-ff');
    expect(lora.projections).toEqual(['to_q', 'to_k', 'to_v', 'to_out.0', 'ff.net.0.proj', 'ff.net.2']);
    const stored = museum.loadVersion(1);
    const keys = [...stored.lora!.tensors.keys()];
    stored.dispose();
    expect(keys.filter((k) => /\.ff\.net\.(0\.proj|2)\.lora_[AB]\.weight$/.test(k))).toHaveLength(4 * 2 * 2); // 4 blocks × 2 layers × A, B
    const v = runtime.load(museum, 1);
    const prompt = 'a red star in <one>';
    expect(values(await runtime.generate(v, { ...GEN, prompt }))).toEqual(await manual(museum, 1, prompt));
    runtime.unload(v);
  });

  it('serves museums of different methods over one base, each with its own rows for the same token', async () => {
    const mm = runtime.load(museums.museummaker!, 1);
    const ti = runtime.load(museums['textual-inversion']!);
    expect(mm.tokenRows.get('<one>')).not.toEqual(ti.tokenRows.get('<one>'));
    const prompt = 'a blue ring in <one>';
    const [x, y] = await Promise.all([runtime.generate(ti, { ...GEN, prompt }), runtime.generate(mm, { ...GEN, prompt })]);
    expect(values(x)).toEqual(await manual(museums['textual-inversion']!, 1, prompt));
    expect(values(y)).toEqual(await manual(museums.museummaker!, 1, prompt));
    // the text-encoder stage alone (split pipelines): the same conditioning the generation used
    const e1 = runtime.encodePrompt(ti, prompt);
    const e2 = runtime.encodePrompt(mm, prompt);
    expect(values(e1.embeddings)).not.toEqual(values(e2.embeddings));
    tf.dispose([e1.negativeEmbeddings, e2.negativeEmbeddings]);
  });

  it('reads `<style>` as the shared word in a museummaker-token museum', async () => {
    const museum = museums['museummaker-token']!;
    const v = runtime.load(museum);
    expect(runtime.resolvePrompt(v, 'a red star in <one>').text).toBe('a red star in style');
    expect(values(await runtime.generate(v, { ...GEN, prompt: 'a red star in <one>' }))).toEqual(await manual(museum, 1, 'a red star in style'));
  });

  it('chooses the style’s own adapter in a separate museum, per prompt of a batch', async () => {
    const museum = museums.separate!;
    const v = runtime.load(museum);
    expect(v.shared).toBeNull();
    expect([...v.adapters.keys()]).toEqual(['one', 'two']);
    const p1 = 'a red star in <one>';
    const p2 = 'a green heart in <two>';
    const batch = await runtime.generate(v, { ...GEN, prompt: [p2, p1, 'a red star'], seed: [3, 3, 3] });
    const [g2, g1, g0] = tf.split(batch, 3, 0);
    batch.dispose();
    expect(values(g1)).toEqual(await manual(museum, 2, p1, 'one'));
    expect(values(g2)).toEqual(await manual(museum, 2, p2, 'two'));
    expect(values(g0)).toEqual(await manual(museum, 2, 'a red star')); // no style named: the base model
    expect(await codeOf(runtime.generate(v, { ...GEN, prompt: 'a star in <one> and <two>' }))).toBe('INVALID_ARGUMENT');
  });

  it('unloads versions and refuses museums of another base', async () => {
    const museum = museums.museummaker!;
    const v = runtime.load(museum, 2);
    runtime.unload(v);
    expect(runtime.servedVersions.includes(v)).toBe(false);
    expect(await codeOf(runtime.generate(v, { ...GEN, prompt: 'a red star' }))).toBe('FAILED_PRECONDITION');
    const other = new MuseumRuntime(models, { baseHash: `sha256:${'0'.repeat(64)}` });
    expect(() => other.load(museum)).toThrow(MuseumError);
  });
});
