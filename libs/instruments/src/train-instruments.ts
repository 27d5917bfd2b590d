/**
 * Trains the shipped instruments and records their held-out accuracy.
 *
 *   node -r ./scripts/ts-register.js libs/instruments/src/train-instruments.ts \
 *     [--kinds style,shape,colour] [--steps N] [--batch B] [--seed S] [--heldout N] \
 *     [--out models/instruments] [--results bench/results/instruments.json]
 *
 * (or `node libs/instruments/dist/train-instruments.js …` after a build).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { initBackend, tf } from '@museum/tensor';
import { INSTRUMENT_KINDS, type InstrumentKind } from './classifier';
import { instrumentsDir, saveInstrument } from './io';
import { trainInstrument, type InstrumentRecord } from './train';

export interface TrainAllOptions {
  kinds?: readonly InstrumentKind[];
  steps?: number;
  batchSize?: number;
  seed?: number;
  heldOut?: number;
  outDir?: string;
  log?: (msg: string) => void;
}

export interface InstrumentSummary {
  kind: InstrumentKind;
  classes: string[];
  parameters: number;
  file_bytes: number;
  record: InstrumentRecord;
}

/** Trains and saves each instrument in turn; returns what each scored. */
export function trainAndSaveInstruments(opts: TrainAllOptions = {}): InstrumentSummary[] {
  const log = opts.log ?? ((m: string) => process.stderr.write(m + '\n'));
  const outDir = instrumentsDir(opts.outDir);
  const out: InstrumentSummary[] = [];
  for (const kind of opts.kinds ?? INSTRUMENT_KINDS) {
    log(`[instruments] training ${kind} (${opts.steps ?? 'default'} steps)`);
    const clf = trainInstrument(kind, {
      steps: opts.steps,
      batchSize: opts.batchSize,
      seed: opts.seed,
      heldOut: opts.heldOut,
      progressEvery: 50,
      onProgress: (p) =>
        log(
          `[${kind}] step ${p.step}/${p.steps} loss ${p.loss.toFixed(4)} acc ${p.accuracy.toFixed(3)} lr ${p.lr.toExponential(2)} ` +
            `${p.seconds.toFixed(0)}s tensors ${p.numTensors}`,
        ),
    });
    const dir = saveInstrument(outDir, clf);
    const r = clf.record!;
    log(
      `[${kind}] held-out ${(100 * r.heldout.accuracy).toFixed(2)}% of ${r.heldout.count}` +
        (r.heldout_degraded ? `, degraded ${(100 * r.heldout_degraded.accuracy).toFixed(2)}%` : '') +
        ` in ${r.train_seconds}s -> ${dir}`,
    );
    out.push({ kind, classes: clf.classes, parameters: clf.parameterCount(), file_bytes: fs.statSync(path.join(dir, 'model.safetensors')).size, record: r });
    clf.dispose();
  }
  return out;
}

function parseArgs(argv: string[]): Record<string, string> {
  const args: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    const [k, v] = a.includes('=') ? a.slice(2).split('=', 2) : [a.slice(2), argv[++i]];
    if (v === undefined) throw new Error(`--${k} needs a value`);
    args[k] = v;
  }
  return args;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const num = (k: string): number | undefined => (args[k] === undefined ? undefined : Number(args[k]));
  const kinds = (args.kinds ?? INSTRUMENT_KINDS.join(',')).split(',') as InstrumentKind[];
  for (const k of kinds) if (!INSTRUMENT_KINDS.includes(k)) throw new Error(`unknown instrument kind '${k}'`);
  const backend = await initBackend();
  const started = new Date().toISOString();
  const summaries = trainAndSaveInstruments({ kinds, steps: num('steps'), batchSize: num('batch'), seed: num('seed'), heldOut: num('heldout'), outDir: args.out });
  if (args.results) {
    const file = path.resolve(args.results);
    // Merge with earlier runs of other kinds so the file always describes every shipped instrument.
    let previous: { instruments?: Record<string, unknown> } = {};
    if (fs.existsSync(file)) previous = JSON.parse(fs.readFileSync(file, 'utf8'));
    const instruments: Record<string, unknown> = { ...(previous.instruments ?? {}) };
    for (const s of summaries) {
      instruments[s.kind] = {
        heldout_accuracy: s.record.heldout.accuracy,
        heldout_count: s.record.heldout.count,
        heldout_degraded_accuracy: s.record.heldout_degraded?.accuracy ?? null,
        heldout_weights: s.record.weights,
        per_class_accuracy: s.record.heldout.per_class_accuracy,
        per_style_accuracy: s.record.heldout.per_style_accuracy,
        confusion: s.record.heldout.confusion,
        classes: s.classes,
        parameters: s.parameters,
        file_bytes: s.file_bytes,
        steps: s.record.steps,
        batch_size: s.record.batch_size,
        seed: s.record.seed,
        train_seconds: s.record.train_seconds,
        train_cpu_seconds: s.record.train_cpu_seconds,
        command: `node -r ./scripts/ts-register.js libs/instruments/src/train-instruments.ts ${process.argv.slice(2).join(' ')}`,
        backend: `${backend.name}${backend.simd ? '+simd' : ''}`,
        cpu: os.cpus()[0]?.model ?? 'unknown',
        trained_at: started,
      };
    }
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const style = instruments.style as { heldout_accuracy?: number } | undefined;
    const shape = instruments.shape as { heldout_accuracy?: number } | undefined;
    const colour = instruments.colour as { heldout_accuracy?: number } | undefined;
    const doc = {
      style_acc: style?.heldout_accuracy ?? null,
      shape_acc: shape?.heldout_accuracy ?? null,
      colour_acc: colour?.heldout_accuracy ?? null,
      instruments,
    };
    fs.writeFileSync(file, JSON.stringify(doc, null, 2) + '\n');
    process.stderr.write(`[instruments] results -> ${file}\n`);
  }
  process.stderr.write(`[instruments] done, ${tf.memory().numTensors} tensors alive\n`);
}

if (require.main === module) {
  main().catch((err) => {
    process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  });
}
