/**
 * The shipped instruments (models/instruments): present, loadable, accurate on fresh held-out
 * world images, leak-free, and identical after a save → load round trip.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { initBackend, tf } from '@museum/tensor';
import { ALL_STYLES, COLOURS, deriveSeed, imagesToTensor, renderSample, Rng, SHAPES, type Sample } from '@museum/world';
import {
  classifyAll,
  DEFAULT_INSTRUMENTS_DIR,
  disposeInstruments,
  INSTRUMENT_KINDS,
  labelOf,
  loadInstrument,
  loadInstruments,
  saveInstrument,
  splitSeed,
  type InstrumentKind,
  type Instruments,
} from '@museum/instruments';

const TARGET: Record<InstrumentKind, number> = { style: 0.97, shape: 0.95, colour: 0.95 };

let inst: Instruments;
let tmp: string;

/** 72 held-out images (seeds ≥ 2^31): every style 8 times, shapes and colours cycling. */
function heldOutBatch(seed: number): Sample[] {
  const rng = new Rng(deriveSeed('instruments-test', seed));
  const out: Sample[] = [];
  for (let i = 0; i < 72; i++) {
    out.push(renderSample({ style: ALL_STYLES[i % 9], shape: SHAPES[(i + Math.floor(i / 9)) % 8], colour: COLOURS[(i * 3 + 1) % 8], seed: splitSeed(rng, 'heldout') }));
  }
  return out;
}

beforeAll(async () => {
  await initBackend({ log: () => {} });
  for (const kind of INSTRUMENT_KINDS) {
    for (const f of ['config.json', 'model.safetensors']) {
      const file = path.join(DEFAULT_INSTRUMENTS_DIR, kind, f);
      if (!fs.existsSync(file)) throw new Error(`shipped instrument missing: ${file} — the instruments must be trained and committed (see libs/instruments/src/train-instruments.ts)`);
    }
  }
  inst = loadInstruments();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'instruments-'));
});

afterAll(() => {
  if (inst) disposeInstruments(inst);
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

test('default directory is <repo>/models/instruments', () => {
  expect(DEFAULT_INSTRUMENTS_DIR).toBe(path.resolve(__dirname, '../../../models/instruments'));
});

test('shipped files are small and their records meet the targets', () => {
  for (const kind of INSTRUMENT_KINDS) {
    const size = fs.statSync(path.join(DEFAULT_INSTRUMENTS_DIR, kind, 'model.safetensors')).size;
    expect(size).toBeLessThan(2 * 1024 * 1024);
    const rec = inst[kind].record!;
    expect(rec).not.toBeNull();
    expect(rec.heldout.count).toBeGreaterThanOrEqual(2000);
    expect(rec.heldout.accuracy).toBeGreaterThanOrEqual(TARGET[kind]);
    const k = inst[kind].classes.length;
    expect(rec.heldout.confusion).toHaveLength(k);
    expect(rec.heldout.confusion.flat().reduce((a, b) => a + b, 0)).toBe(rec.heldout.count);
  }
});

test.each(INSTRUMENT_KINDS.map((k) => [k]))('%s instrument classifies fresh held-out world images', (kind) => {
  const samples = heldOutBatch(INSTRUMENT_KINDS.indexOf(kind));
  const x = imagesToTensor(samples);
  const before = tf.memory().numTensors;
  const out = inst[kind].classify(x, 32);
  expect(tf.memory().numTensors).toBe(before);
  x.dispose();
  const truth = samples.map((s) => labelOf(kind, s));
  const acc = truth.filter((t, i) => out.labels[i] === t).length / truth.length;
  expect(acc).toBeGreaterThanOrEqual(0.9);
  // probabilities are distributions and the label is their argmax
  out.probs.forEach((p, i) => {
    expect(p.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 4);
    expect(p[out.indices[i]]).toBe(Math.max(...p));
    expect(inst[kind].classes[out.indices[i]]).toBe(out.labels[i]);
  });
});

test('classify matches forward, handles other image sizes and leaks nothing', () => {
  const samples = heldOutBatch(7).slice(0, 10);
  const x = imagesToTensor(samples);
  const clf = inst.style;
  const ref = tf.tidy(() => tf.softmax(clf.forward(x)));
  const refData = ref.dataSync();
  const before = tf.memory().numTensors;
  const out = clf.classify(x, 4); // uneven batches: 4 + 4 + 2
  expect(tf.memory().numTensors).toBe(before);
  out.probs.forEach((p, i) => p.forEach((v, j) => expect(v).toBeCloseTo(refData[i * 9 + j], 5)));
  // 128x128 upscaled copies are resized back and keep their labels
  const big = tf.image.resizeNearestNeighbor(x, [128, 128]);
  const before2 = tf.memory().numTensors;
  const outBig = clf.classify(big as tf.Tensor4D);
  expect(tf.memory().numTensors).toBe(before2);
  expect(outBig.labels.filter((l, i) => l === out.labels[i]).length).toBeGreaterThanOrEqual(9);
  tf.dispose([x, ref, big]);
  expect(() => clf.classify(tf.zeros([1, 64, 64, 1]) as tf.Tensor4D)).toThrow(/expected images/);
});

test('classifyAll asks every instrument about the same images', () => {
  const samples = heldOutBatch(13).slice(0, 9);
  const x = imagesToTensor(samples);
  const out = classifyAll(inst, x);
  x.dispose();
  for (const kind of INSTRUMENT_KINDS) expect(out[kind].labels).toHaveLength(9);
  expect(out.style.labels.filter((l, i) => l === samples[i].style).length).toBeGreaterThanOrEqual(8);
});

test('save -> load round trip of a shipped instrument gives identical logits', () => {
  const x = imagesToTensor(heldOutBatch(11).slice(0, 12));
  for (const kind of INSTRUMENT_KINDS) {
    saveInstrument(tmp, inst[kind]);
    const again = loadInstrument(tmp, kind);
    const a = tf.tidy(() => inst[kind].forward(x));
    const b = tf.tidy(() => again.forward(x));
    expect(Array.from(b.dataSync())).toEqual(Array.from(a.dataSync()));
    expect(again.record).toEqual(inst[kind].record);
    expect(again.config).toEqual(inst[kind].config);
    tf.dispose([a, b]);
    again.dispose();
  }
  x.dispose();
});

test('loading reports missing files clearly', () => {
  expect(() => loadInstruments(path.join(tmp, 'nowhere'))).toThrow(/instrument file .*config\.json is missing/);
});
