/** `runBaseBench` on a tiny random pipeline and tiny random instruments: what it generates, counts and leaks. */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { initBackend, tf } from '@museum/tensor';
import { StableDiffusionPipeline } from '@museum/models';
import { loadInstruments, disposeInstruments, type Instruments } from '@museum/instruments';
import { COLOURS, PRETRAIN_STYLES, SHAPES, decodePng } from '@museum/world';
import { runBaseBench } from '../src/base';
import { drawGallery } from '../src/gallery';
import { writeTinyInstruments, writeTinyPipeline } from './continual_tiny';

let tmp: string;
let pipe: StableDiffusionPipeline;
let inst: Instruments;

beforeAll(async () => {
  await initBackend({ log: () => {} });
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-base-'));
  writeTinyPipeline(path.join(tmp, 'model'));
  pipe = StableDiffusionPipeline.fromPretrained(path.join(tmp, 'model'));
  inst = loadInstruments(writeTinyInstruments(path.join(tmp, 'instruments')));
});

afterAll(() => {
  pipe.dispose();
  disposeInstruments(inst);
  fs.rmSync(tmp, { recursive: true, force: true });
});

const contents = SHAPES.length * COLOURS.length;
const sum = (r: Record<string, number>) => Object.values(r).reduce((a, b) => a + b, 0);

test('every pre-training style is judged on as many images as the unstyled prompts by default, leak-free', async () => {
  const before = tf.memory().numTensors;
  const progress: number[] = [];
  const r = await runBaseBench(pipe, inst, { seeds: [1], steps: 2, batch: 32, onProgress: (done, total) => progress.push(done / total) });
  expect(tf.memory().numTensors).toBe(before);

  expect(r.config.style_samples).toBe(contents);
  expect(r.images).toBe(contents * (1 + PRETRAIN_STYLES.length));
  expect(Object.keys(r.style_acc)).toEqual(['plain', ...PRETRAIN_STYLES]);
  // Each confusion row counts exactly the images of its rendering, and accuracy is its diagonal share.
  for (const style of ['plain', ...PRETRAIN_STYLES]) {
    expect(sum(r.style_confusion[style])).toBe(contents);
    expect(r.style_acc[style]).toBeCloseTo((r.style_confusion[style][style] ?? 0) / contents, 10);
  }
  expect(Object.keys(r.shape_acc_by_shape)).toEqual([...SHAPES]);
  expect(progress[progress.length - 1]).toBe(1);
  // Contact sheet: one row per shape, one column per colour, tiles of the pipeline's 8 px with 2 px gaps.
  const png = decodePng(r.contactSheetPng!);
  expect(png.width).toBe(COLOURS.length * 8 + (COLOURS.length + 1) * 2);
  expect(png.height).toBe(SHAPES.length * 8 + (SHAPES.length + 1) * 2);
  // Misses sheet: per rendering a row judged right and one per wrong label of its confusion row, so its layout
  // is that of a gallery with those rows (two blocks to a row).
  const misses = decodePng(r.styleMissesPng!);
  const rows = ['plain', ...PRETRAIN_STYLES].map((style) => {
    const n = r.style_confusion[style];
    const wrong = Object.keys(n).filter((l) => l !== style);
    const labels = [`${style} (${n[style] ?? 0})`, ...wrong.map((l) => `as ${l} (${n[l]})`)];
    return { title: `${style}: ${n[style] ?? 0}/${contents} judged ${style}`, rowLabels: labels, columnLabels: new Array<string>(12).fill(''), cells: labels.map(() => new Array(12).fill(null)) };
  });
  const expected = drawGallery(rows, { tile: 64, columns: 2 });
  expect([misses.width, misses.height]).toEqual([expected.width, expected.height]);
}, 120_000);

test('a chosen style sample size is counted exactly, and batching changes no judgement (seeds are per image)', async () => {
  const small = await runBaseBench(pipe, inst, { seeds: [1], steps: 2, batch: 3, styleSamples: 4 });
  const large = await runBaseBench(pipe, inst, { seeds: [1], steps: 2, batch: 32, styleSamples: 4 });
  expect(small.config.style_samples).toBe(4);
  expect(small.config.style_seed_start).toBe(1000);
  expect(small.images).toBe(contents + 4 * PRETRAIN_STYLES.length);
  for (const style of PRETRAIN_STYLES) expect(sum(small.style_confusion[style])).toBe(4);
  // Batching must not change any judgement.
  expect(small.style_confusion).toEqual(large.style_confusion);
  expect(small.shape_acc).toBe(large.shape_acc);
}, 120_000);
