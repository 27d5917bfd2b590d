import * as fs from 'fs';
import * as path from 'path';
import { initBackend, tf } from '@museum/tensor';
import {
  DEFAULT_LEARN_SETTINGS,
  DEFAULT_LOSS_WEIGHTS,
  LearnProgress,
  LearnSettings,
  LossWeights,
  METHOD_NAMES,
  METHODS,
  MethodName,
  Museum,
  MuseumError,
  StyleModels,
  baseRefFromModules,
  learnStyle,
  resolveComponents,
  settingsUsedBy,
} from '../src';
import { QUICK, randomImages, tinyModels, tmpDir } from './tiny';

let root: string;
let models: StyleModels;

beforeAll(async () => {
  await initBackend({ log: () => {} });
  root = tmpDir('museum-methods-');
  models = tinyModels(11);
});
afterAll(() => {
  models.unet.dispose();
  models.vae.dispose();
  models.textEncoder.dispose();
  fs.rmSync(root, { recursive: true, force: true });
});

/** Learn two styles with `method`; returns the museum and the loss names reported at the last step of each. */
async function twoStyles(method: MethodName): Promise<{ museum: Museum; terms: string[][]; last: LearnProgress[] }> {
  const museum = Museum.create(path.join(root, method), { base: baseRefFromModules({ unet: models.unet, vae: models.vae, text_encoder: models.textEncoder }) });
  const terms: string[][] = [];
  const last: LearnProgress[] = [];
  for (const [i, name] of ['one', 'two'].entries()) {
    const imgs = randomImages(2, 40 + i);
    let final: LearnProgress | null = null;
    await learnStyle(museum, name, imgs, { ...QUICK, steps: 2, models, method, onProgress: (p) => p.phase === 'train' && (final = p) });
    tf.dispose(imgs);
    terms.push(Object.keys(final!.losses).sort());
    last.push(final!);
  }
  return { museum, terms, last };
}

describe('continual methods through one training loop', () => {
  it('names every method the benchmark compares', () => {
    expect([...METHOD_NAMES].sort()).toEqual(
      ['clora', 'ewc', 'finetune', 'joint', 'museummaker', 'museummaker-distill', 'museummaker-featreg', 'museummaker-token', 'museummaker-weightreg', 'separate', 'textual-inversion'].sort(),
    );
    expect(() => resolveComponents(METHODS['textual-inversion'], { featReg: true })).toThrow(MuseumError);
  });

  it.each([
    ['museummaker', ['diffusion', 'featReg', 'sdl', 'total', 'weightReg']],
    ['museummaker-distill', ['diffusion', 'featReg', 'total', 'weightReg']],
    ['museummaker-weightreg', ['diffusion', 'featReg', 'sdl', 'total']],
    ['museummaker-featreg', ['diffusion', 'sdl', 'total', 'weightReg']],
    ['finetune', ['diffusion', 'total']],
    ['clora', ['clora', 'diffusion', 'total']],
  ] as Array<[MethodName, string[]]>)('%s trains a token and the shared LoRA with its loss terms', async (method, expected) => {
    const { museum, terms, last } = await twoStyles(method);
    expect(terms[1]).toEqual(expected);
    const m = museum.manifest(2);
    expect(m.method).toBe(method);
    expect(m.lora).not.toBeNull();
    const v = museum.loadVersion(2);
    expect([...v.tokens.keys()].sort()).toEqual(['<one>', '<two>']);
    v.dispose();
    if (method === 'clora') {
      expect(last[0].losses.clora).toBe(0); // no earlier update to protect at the first style
      expect(last[1].losses.clora).toBeGreaterThan(0);
    }
  });

  it('museummaker-token learns no token: every style reads as the word "style"', async () => {
    const { museum, terms } = await twoStyles('museummaker-token');
    expect(terms[1]).toEqual(['diffusion', 'featReg', 'sdl', 'total', 'weightReg']);
    const m = museum.manifest(2);
    expect(m.tokens).toBeNull();
    expect(m.styles.map((s) => s.embedding)).toEqual([
      { kind: 'word', word: 'style' },
      { kind: 'word', word: 'style' },
    ]);
    expect(m.lora).not.toBeNull();
  });

  it('textual-inversion learns only tokens', async () => {
    const { museum, terms } = await twoStyles('textual-inversion');
    expect(terms[1]).toEqual(['diffusion', 'total']);
    const m = museum.manifest(2);
    expect(m.lora).toBeNull();
    expect(m.tokens).not.toBeNull();
    expect(museum.getStyle('one', 2).metrics.trainedParameters).toBe(models.textEncoder.config.hidden_size);
  });

  it('ewc stores an accumulated, normalised Fisher with every version', async () => {
    const { museum, terms, last } = await twoStyles('ewc');
    expect(terms).toEqual([
      ['diffusion', 'total'],
      ['diffusion', 'ewc', 'total'],
    ]);
    expect(last[1].losses.ewc).toBeGreaterThan(0);
    const meanOf = (n: number) => {
      const { tensors } = museum.loadState(n, 'ewc_fisher');
      const lora = museum.loadVersion(n);
      expect([...tensors.keys()].sort()).toEqual([...lora.lora!.tensors.keys()].sort());
      const sum = [...tensors.values()].reduce((s, t) => s + tf.sum(t).dataSync()[0], 0);
      const size = [...tensors.values()].reduce((s, t) => s + t.size, 0);
      tf.dispose([...tensors.values()]);
      lora.dispose();
      return sum / size;
    };
    expect(meanOf(1)).toBeCloseTo(1, 3);
    expect(meanOf(2)).toBeCloseTo(2, 3);
  });

  it('separate keeps one adapter per style and no shared LoRA', async () => {
    const { museum } = await twoStyles('separate');
    const m = museum.manifest(2);
    expect(m.lora).toBeNull();
    expect(m.styles.map((s) => s.adapter?.file)).toEqual(['adapters/one.safetensors', 'adapters/two.safetensors']);
    expect(m.bytes).toBeGreaterThan(museum.manifest(1).bytes); // memory grows with every style
    const v1 = museum.loadVersion(1);
    const v2 = museum.loadVersion(2);
    const a = v1.adapters.get('one')!;
    const b = v2.adapters.get('one')!;
    for (const [k, t] of a.tensors) expect(Array.from(b.tensors.get(k)!.dataSync())).toEqual(Array.from(t.dataSync()));
    v1.dispose();
    v2.dispose();
  });

  it('joint keeps every style’s images and retrains everything from the base', async () => {
    const { museum } = await twoStyles('joint');
    const { tensors } = museum.loadState(2, 'joint_images');
    expect([...tensors.keys()].sort()).toEqual(['one', 'two']);
    expect(tensors.get('one')!.shape).toEqual([2, 8, 8, 3]);
    tf.dispose([...tensors.values()]);
    expect(museum.getStyle('two', 2).metrics.steps).toBe(4); // two styles: twice the steps
    const v1 = museum.loadVersion(1);
    const v2 = museum.loadVersion(2);
    expect(Array.from(v2.tokens.get('<one>')!.dataSync())).not.toEqual(Array.from(v1.tokens.get('<one>')!.dataSync()));
    v1.dispose();
    v2.dispose();
  });
});

describe('settingsUsedBy: the settings a method reads', () => {
  /** Another valid value of every learning setting and loss weight. */
  function otherValue(key: string, v: unknown): unknown {
    const choices: Record<string, unknown[]> = {
      weightRegForm: ['cosine', 'input-subspace'],
      featRegInputs: ['noise', 'replay'],
      featRegEmptyShare: ['uniform', 0.5],
      loraTargets: ['all-attention', 'cross-attention'],
      initWord: ['style', 'random'],
    };
    if (choices[key]) return choices[key].find((c) => c !== v);
    if (typeof v === 'boolean') return !v;
    if (typeof v === 'number') return Number.isInteger(v) ? v + 1 : v * 2 + 0.25;
    throw new Error(`no other value for ${key}`);
  }
  const baseSettings = { ...DEFAULT_LEARN_SETTINGS, ...QUICK, steps: 2 };
  /** Every setting and weight `method` does not read, changed. */
  function changeUnused(method: MethodName) {
    const used = settingsUsedBy(method, baseSettings, DEFAULT_LOSS_WEIGHTS);
    const learn = Object.fromEntries(Object.entries(baseSettings).map(([k, v]) => [k, k in used.learn ? v : otherValue(k, v)]));
    const weights = Object.fromEntries(Object.entries(DEFAULT_LOSS_WEIGHTS).map(([k, v]) => [k, k in used.weights ? v : otherValue(k, v)]));
    return { learn: learn as unknown as LearnSettings, weights: weights as unknown as LossWeights };
  }
  /** The bytes of every tensor file version 2 holds (shared LoRA, tokens, adapters, per-method state). */
  function tensorFiles(museum: Museum): Record<string, string> {
    const dir = path.join(museum.dir, 'versions');
    const out: Record<string, string> = {};
    const walk = (d: string) => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        const p = path.join(d, e.name);
        if (e.isDirectory()) walk(p);
        else if (p.endsWith('.safetensors')) out[path.relative(dir, p)] = fs.readFileSync(p).toString('base64');
      }
    };
    walk(dir);
    return out;
  }
  async function learnTwo(dir: string, method: MethodName, learn: LearnSettings, weights: LossWeights): Promise<Record<string, string>> {
    const museum = Museum.create(path.join(root, dir), { base: baseRefFromModules({ unet: models.unet, vae: models.vae, text_encoder: models.textEncoder }) });
    for (const [i, name] of ['one', 'two'].entries()) {
      const imgs = randomImages(2, 60 + i);
      await learnStyle(museum, name, imgs, { ...learn, weights, models, method });
      tf.dispose(imgs);
    }
    return tensorFiles(museum);
  }

  it('classifies every setting: each is read by some method', () => {
    const learnKeys = new Set<string>();
    const weightKeys = new Set<string>();
    for (const m of METHOD_NAMES) {
      const u = settingsUsedBy(m, baseSettings, DEFAULT_LOSS_WEIGHTS);
      Object.keys(u.learn).forEach((k) => learnKeys.add(k));
      Object.keys(u.weights).forEach((k) => weightKeys.add(k));
    }
    expect([...learnKeys].sort()).toEqual(Object.keys(DEFAULT_LEARN_SETTINGS).sort());
    expect([...weightKeys].sort()).toEqual(Object.keys(DEFAULT_LOSS_WEIGHTS).sort());
    // the baselines do not read MuseumMaker's regularization; MuseumMaker does
    expect(settingsUsedBy('finetune', baseSettings, DEFAULT_LOSS_WEIGHTS).weights).toEqual({ diffusion: 1 });
    expect(settingsUsedBy('museummaker', baseSettings, DEFAULT_LOSS_WEIGHTS).learn).toHaveProperty('weightRegForm');
    expect(settingsUsedBy('textual-inversion', baseSettings, DEFAULT_LOSS_WEIGHTS).learn).not.toHaveProperty('lr');
  });

  // changing only what a method does not read must leave what it learns bit-identical
  it.each(['finetune', 'textual-inversion', 'ewc', 'museummaker-featreg'] as MethodName[])('%s learns the same tensors whatever the settings it does not read', async (method) => {
    const a = await learnTwo(`${method}-a`, method, baseSettings, { ...DEFAULT_LOSS_WEIGHTS });
    const changed = changeUnused(method);
    const b = await learnTwo(`${method}-b`, method, changed.learn, changed.weights);
    expect(Object.keys(b).sort()).toEqual(Object.keys(a).sort());
    expect(Object.keys(a).length).toBeGreaterThan(0);
    for (const k of Object.keys(a)) expect(b[k] === a[k] ? k : `${k} differs`).toBe(k);
  });

  it('and a setting it reads does change them (the comparison can fail)', async () => {
    const a = await learnTwo('mm-a', 'museummaker', baseSettings, { ...DEFAULT_LOSS_WEIGHTS });
    const b = await learnTwo('mm-b', 'museummaker', { ...baseSettings, weightRegForm: 'cosine' }, { ...DEFAULT_LOSS_WEIGHTS, weightReg: 0.5 });
    expect(Object.keys(a).some((k) => a[k] !== b[k])).toBe(true);
  });
});
