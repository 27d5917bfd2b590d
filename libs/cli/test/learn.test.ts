/** `museum learn`, `museum styles` and `museum generate --museum` on a tiny pipeline folder. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { encodePng, initBackend, tf } from '@museum/tensor';
import { writeTinyPipelineFolder } from '@museum/rpc';
import { Museum } from '@museum/museum';
import { learnFromFolder, readImageFolder } from '../src/commands/learn';
import { formatStyles, listStyles } from '../src/commands/styles';
import { generateToFile } from '../src/commands/generate';

let tmp: string;
let modelDir: string;

/** Every file under `dir` with its size and mtime: "nothing changed" means this is equal. */
function snapshot(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(`${path.relative(dir, p)} ${fs.statSync(p).size} ${fs.statSync(p).mtimeMs}`);
    }
  };
  walk(dir);
  return out.sort();
}

async function png(h: number, w: number, value: number): Promise<Buffer> {
  const t = tf.fill([h, w, 3], value) as tf.Tensor3D;
  const b = await encodePng(t, { range: '0,1' });
  t.dispose();
  return b;
}

beforeAll(async () => {
  await initBackend({ log: () => {} });
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'museum-learn-cli-'));
  modelDir = path.join(tmp, 'model');
  writeTinyPipelineFolder(modelDir);
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

test('refuses an empty folder and a folder of unusable files, naming them, without creating or changing the museum', async () => {
  const museumDir = path.join(tmp, 'museum-refuse');
  const empty = path.join(tmp, 'empty');
  fs.mkdirSync(empty);
  await expect(learnFromFolder({ name: 'mine', images: empty, museum: museumDir, model: modelDir })).rejects.toThrow(/no usable image in .*empty.*the museum was not changed \(the folder is empty\)/);
  expect(fs.existsSync(museumDir)).toBe(false);

  const junk = path.join(tmp, 'junk');
  fs.mkdirSync(path.join(junk, 'sub'), { recursive: true });
  fs.writeFileSync(path.join(junk, 'broken.png'), 'not a png at all');
  fs.writeFileSync(path.join(junk, 'notes.md'), '# hi');
  Museum.create(museumDir, { baseModelDir: modelDir });
  const before = snapshot(museumDir);
  const err = await learnFromFolder({ name: 'mine', images: junk, museum: museumDir, model: modelDir }).catch((e: Error) => e);
  expect(err).toBeInstanceOf(Error);
  expect((err as Error).message).toMatch(/no usable image/);
  expect((err as Error).message).toMatch(/broken\.png \(cannot be decoded/);
  expect((err as Error).message).toMatch(/notes\.md \(not \.png\/\.jpg\/\.jpeg\/\.webp\)/);
  expect((err as Error).message).toMatch(/sub \(a folder\)/);
  expect(snapshot(museumDir)).toEqual(before);
  expect(Museum.open(museumDir).latestVersion()).toBe(0);

  // a bad name is refused before the images are even read
  await expect(learnFromFolder({ name: 'Bad Name', images: junk, museum: museumDir, model: modelDir })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
});

test('learns from images of any size with their captions, commits a version, lists it and generates with it', async () => {
  const dir = path.join(tmp, 'images');
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'a.png'), await png(20, 12, 0.2));
  fs.writeFileSync(path.join(dir, 'a.txt'), 'a red star\n');
  fs.writeFileSync(path.join(dir, 'b.png'), await png(9, 30, 0.8));
  fs.writeFileSync(path.join(dir, 'readme.txt'), 'not a caption of any image');
  const scan = await readImageFolder(dir);
  expect(scan.files).toEqual(['a.png', 'b.png']);
  expect(scan.captions).toEqual(['a red star', undefined]);
  expect(scan.skipped.map((s) => s.file)).toEqual(['readme.txt']);

  const museumDir = path.join(tmp, 'museum-ok');
  const logs: string[] = [];
  const steps: number[] = [];
  const r = await learnFromFolder(
    { name: 'mine', images: dir, museum: museumDir, model: modelDir, steps: '2', method: 'textual-inversion' },
    { log: (s) => logs.push(s), onProgress: (p) => p.phase === 'train' && steps.push(p.step) },
  );
  expect(r.version).toBe(1);
  expect(steps).toEqual([1, 2]);
  expect(logs.some((l) => /skipping 1 file\(s\): readme\.txt/.test(l))).toBe(true);
  expect(r.style.images.map((i) => [i.caption, i.width, i.height])).toEqual([
    ['a red star in <mine>', 12, 20],
    ['a picture in <mine>', 30, 9],
  ]);
  // a taken name is refused before training, the museum keeps its version
  await expect(learnFromFolder({ name: 'mine', images: dir, museum: museumDir, model: modelDir, steps: '1' })).rejects.toMatchObject({ code: 'ALREADY_EXISTS' });

  const l = listStyles({ museum: museumDir });
  expect(l).toMatchObject({ version: 1, latest: 1, method: 'textual-inversion' });
  expect(l.styles.map((s) => s.name)).toEqual(['mine']);
  expect(formatStyles(l)).toMatch(/<mine>\s+token\s+2\s+2/);
  expect(listStyles({ museum: museumDir, version: '0' }).styles).toEqual([]);
  expect(() => listStyles({ museum: museumDir, version: '2' })).toThrow(/no version 2/);
  expect(() => listStyles({ museum: path.join(tmp, 'nothing') })).toThrow(/no museum at .*museum learn/);

  const out = path.join(tmp, 'out.png');
  const gen = { out, seed: '1', steps: '2', guidance: '2', sampler: 'ddim' as const, model: modelDir, museum: museumDir };
  await generateToFile('a red star in <mine>', { ...gen, version: '1' });
  const v1 = fs.readFileSync(out);
  // without --museum (and no default museum) the plain pipeline draws: `<mine>` is an unknown word to it
  const saved = process.env.MUSEUM_DIR;
  process.env.MUSEUM_DIR = path.join(tmp, 'no-default-museum');
  try {
    await generateToFile('a red star in <mine>', { ...gen, out: path.join(tmp, 'plain.png'), museum: undefined });
  } finally {
    if (saved === undefined) delete process.env.MUSEUM_DIR;
    else process.env.MUSEUM_DIR = saved;
  }
  // the learned token row changes the image: version 1 is really applied
  expect(v1.equals(fs.readFileSync(path.join(tmp, 'plain.png')))).toBe(false);
  // a prompt naming a <style> uses the default museum ($MUSEUM_DIR) when there is one
  process.env.MUSEUM_DIR = museumDir;
  try {
    await generateToFile('a red star in <mine>', { ...gen, out: path.join(tmp, 'default.png'), museum: undefined });
  } finally {
    if (saved === undefined) delete process.env.MUSEUM_DIR;
    else process.env.MUSEUM_DIR = saved;
  }
  expect(fs.readFileSync(path.join(tmp, 'default.png')).equals(v1)).toBe(true);
});
