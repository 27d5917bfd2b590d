/**
 * Shipped instruments on disk: `<dir>/<kind>/config.json` (architecture, classes, how it was
 * trained, held-out accuracy and confusion matrix) and `<dir>/<kind>/model.safetensors`
 * (weights under their module names, PyTorch layouts, float16).
 */
import * as fs from 'fs';
import * as path from 'path';
import { float16ToFloat32, float32ToFloat16, loadSafetensors, saveSafetensors, tf } from '@museum/tensor';
import { classesOf, INSTRUMENT_KINDS, WorldClassifier, type Classification, type InstrumentKind, type WorldClassifierConfig } from './classifier';
import type { InstrumentRecord } from './train';

/** `<repo>/models/instruments`, the same from src/ and dist/ (both sit two levels below the lib). */
export const DEFAULT_INSTRUMENTS_DIR = path.resolve(__dirname, '../../../models/instruments');

/** MUSEUM_INSTRUMENTS_DIR overrides the default directory. */
export function instrumentsDir(dir?: string): string {
  return dir ?? process.env.MUSEUM_INSTRUMENTS_DIR ?? DEFAULT_INSTRUMENTS_DIR;
}

/** config.json of an instrument: the architecture plus the training record. */
export interface InstrumentConfigFile extends WorldClassifierConfig {
  _class_name: 'WorldClassifier';
  record: InstrumentRecord | null;
}

/** Rounds every weight to the nearest float16 in place: the model then is exactly what an F16 file holds. */
export function roundToFloat16(clf: WorldClassifier): void {
  for (const p of clf.parameters()) {
    const v = p.variable.dataSync() as Float32Array;
    const r = tf.tensor(float16ToFloat32(float32ToFloat16(v)), p.variable.shape);
    p.variable.assign(r);
    r.dispose();
  }
}

export function saveInstrument(dir: string, clf: WorldClassifier, options: { dtype?: 'F32' | 'F16' } = {}): string {
  const out = path.join(dir, clf.kind);
  fs.mkdirSync(out, { recursive: true });
  const tensors = new Map<string, tf.Tensor>();
  for (const [name, p] of clf.namedParameters()) tensors.set(name, p.toTorch());
  try {
    saveSafetensors(path.join(out, 'model.safetensors'), tensors, {
      dtype: options.dtype ?? 'F16',
      metadata: { format: 'pt', kind: clf.kind, classes: clf.classes.join(',') },
    });
  } finally {
    tf.dispose([...tensors.values()]);
  }
  const config: InstrumentConfigFile = { _class_name: 'WorldClassifier', ...clf.config, record: clf.record };
  const tmp = path.join(out, `.config.json.${process.pid}.tmp`);
  fs.writeFileSync(tmp, JSON.stringify(config, null, 2) + '\n');
  fs.renameSync(tmp, path.join(out, 'config.json'));
  return out;
}

export class MissingInstrumentError extends Error {
  constructor(readonly file: string) {
    super(
      `instrument file ${file} is missing: the instruments are shipped in models/instruments ` +
        '(train them with `node -r ./scripts/ts-register.js libs/instruments/src/train-instruments.ts`)',
    );
    this.name = 'MissingInstrumentError';
  }
}

export function loadInstrument(dir: string, kind: InstrumentKind): WorldClassifier {
  const base = path.join(dir, kind);
  const configFile = path.join(base, 'config.json');
  const weightsFile = path.join(base, 'model.safetensors');
  for (const f of [configFile, weightsFile]) if (!fs.existsSync(f)) throw new MissingInstrumentError(f);
  const file = JSON.parse(fs.readFileSync(configFile, 'utf8')) as InstrumentConfigFile;
  if (file.kind !== kind) throw new Error(`${configFile}: holds a '${file.kind}' instrument, expected '${kind}'`);
  const expected = classesOf(kind);
  if (file.classes.join(',') !== expected.join(',')) {
    throw new Error(`${configFile}: classes [${file.classes}] differ from the world's [${expected}]`);
  }
  const { _class_name: _cls, record, ...config } = file;
  const clf = new WorldClassifier(config);
  const { tensors } = loadSafetensors(weightsFile);
  try {
    const params = clf.namedParameters();
    const missing = params.filter(([n]) => !tensors.has(n)).map(([n]) => n);
    const unexpected = [...tensors.keys()].filter((k) => !params.some(([n]) => n === k));
    if (missing.length || unexpected.length) {
      clf.dispose();
      throw new Error(`${weightsFile}: missing [${missing.join(', ')}], unexpected [${unexpected.join(', ')}]`);
    }
    for (const [name, p] of params) p.assignFromTorch(tensors.get(name)!);
  } finally {
    tf.dispose([...tensors.values()]);
  }
  clf.record = record ?? null;
  return clf;
}

export interface Instruments {
  style: WorldClassifier;
  shape: WorldClassifier;
  colour: WorldClassifier;
}

/** The three shipped instruments from `dir` (default: models/instruments, or MUSEUM_INSTRUMENTS_DIR). */
export function loadInstruments(dir?: string): Instruments {
  const d = instrumentsDir(dir);
  const loaded: Partial<Instruments> = {};
  try {
    for (const kind of INSTRUMENT_KINDS) loaded[kind] = loadInstrument(d, kind);
  } catch (err) {
    for (const c of Object.values(loaded)) c.dispose();
    throw err;
  }
  return loaded as Instruments;
}

/** What all three instruments say about the same images. */
export function classifyAll(inst: Instruments, images: tf.Tensor4D, batchSize = 64): Record<InstrumentKind, Classification> {
  return { style: inst.style.classify(images, batchSize), shape: inst.shape.classify(images, batchSize), colour: inst.colour.classify(images, batchSize) };
}

export function disposeInstruments(inst: Instruments): void {
  for (const kind of INSTRUMENT_KINDS) inst[kind].dispose();
}
