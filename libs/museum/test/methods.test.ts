import * as fs from 'fs';
import * as path from 'path';
import { initBackend, tf } from '@museum/tensor';
import { LearnProgress, METHOD_NAMES, METHODS, MethodName, Museum, MuseumError, StyleModels, baseRefFromModules, learnStyle, resolveComponents } from '../src';
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
