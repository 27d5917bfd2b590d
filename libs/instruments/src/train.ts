/**
 * Training and held-out evaluation of an instrument. The instruments learn only from fresh
 * world renders (degraded by `augment`), never from model outputs; the held-out set is drawn
 * from the other half of the seed space (see data.ts).
 */
import { tf } from '@museum/tensor';
import { AdamW, clipGradNorm, warmupCosineLr } from '@museum/training';
import { ALL_STYLES, deriveSeed, Rng } from '@museum/world';
import { DEFAULT_AUGMENT, type AugmentOptions } from './augment';
import { defaultClassifierConfig, WorldClassifier, type InstrumentKind, type WorldClassifierConfig } from './classifier';
import { drawSamples, makeBatch } from './data';
import { roundToFloat16 } from './io';

/** What training left on a classifier; written to config.json by saveInstrument. */
export interface InstrumentRecord {
  seed: number;
  steps: number;
  batch_size: number;
  peak_lr: number;
  /** Wall-clock seconds, and CPU seconds of this process (the fairer number on a shared machine). */
  train_seconds: number;
  train_cpu_seconds: number;
  final_train_loss: number;
  /** Precision of the weights the held-out numbers were measured with. */
  weights: 'float16' | 'float32';
  heldout: HeldOutEvaluation;
  /** The same held-out images, each degraded once by the training augmentations. */
  heldout_degraded?: HeldOutEvaluation;
}

export interface HeldOutEvaluation {
  count: number;
  /** Seed of the held-out stream (its render seeds are all ≥ 2^31). */
  seed: number;
  accuracy: number;
  per_class_accuracy: Record<string, number>;
  /** Accuracy within each rendering (all instruments are scored on every style). */
  per_style_accuracy: Record<string, number>;
  /** confusion[true][predicted] counts, rows and columns in `classes` order. */
  confusion: number[][];
}

export interface TrainProgress {
  step: number;
  steps: number;
  loss: number;
  /** Running training accuracy over the last few steps. */
  accuracy: number;
  lr: number;
  seconds: number;
  numTensors: number;
}

export interface TrainInstrumentOptions {
  steps?: number;
  batchSize?: number;
  seed?: number;
  peakLr?: number;
  warmup?: number;
  weightDecay?: number;
  maxGradNorm?: number;
  augment?: AugmentOptions;
  /** Held-out images to evaluate on after training (0 to skip). */
  heldOut?: number;
  heldOutSeed?: number;
  /** Also report accuracy on degraded held-out images. */
  heldOutDegraded?: boolean;
  /**
   * Round the trained weights to float16 before the held-out evaluation (default true), so the
   * recorded accuracy is that of the shipped float16 file.
   */
  float16?: boolean;
  config?: Partial<Omit<WorldClassifierConfig, 'kind' | 'classes'>>;
  onProgress?: (p: TrainProgress) => void;
  /** Report every this many steps. */
  progressEvery?: number;
}

/** Mean softmax cross-entropy of logits [B, C] against int labels [B], optionally label-smoothed. */
export function crossEntropy(logits: tf.Tensor2D, labels: tf.Tensor1D, smoothing = 0): tf.Scalar {
  return tf.tidy(() => {
    const c = logits.shape[1];
    const target = tf.add(tf.mul(tf.oneHot(labels, c), 1 - smoothing), smoothing / c);
    return tf.neg(tf.mean(tf.sum(tf.mul(target, tf.logSoftmax(logits)), 1))) as tf.Scalar;
  });
}

/**
 * Steps each instrument gets by default (batch 48): colour is learnt almost at once, shape —
 * rotated, stylised silhouettes, down to 4 px pixel-art blocks — needs the most.
 */
export const DEFAULT_TRAIN_STEPS: Record<InstrumentKind, number> = { style: 1000, shape: 1600, colour: 600 };

export function trainInstrument(kind: InstrumentKind, opts: TrainInstrumentOptions = {}): WorldClassifier {
  const steps = opts.steps ?? DEFAULT_TRAIN_STEPS[kind];
  const batchSize = opts.batchSize ?? 48;
  const seed = opts.seed ?? 0;
  const peakLr = opts.peakLr ?? 3e-3;
  const warmup = opts.warmup ?? Math.min(100, Math.floor(steps / 10));
  const every = opts.progressEvery ?? 25;
  const clf = new WorldClassifier(defaultClassifierConfig(kind, { init_seed: seed, ...opts.config }));
  const vars = clf.trainableVariables();
  const opt = new AdamW(vars, { lr: peakLr, weightDecay: opts.weightDecay ?? 0.02 });
  const dataRng = new Rng(deriveSeed('museum-instruments-train', kind, seed));
  const augRng = new Rng(deriveSeed('museum-instruments-augment', kind, seed));
  const t0 = Date.now();
  const cpu0 = process.cpuUsage();
  let lossAvg = NaN;
  let accAvg = NaN;
  try {
    for (let step = 0; step < steps; step++) {
      const lr = warmupCosineLr(step, { peak: peakLr, warmup, total: steps, minRatio: 0.02 });
      const batch = makeBatch(kind, drawSamples(dataRng, batchSize, 'train'), { rng: augRng, options: opts.augment ?? DEFAULT_AUGMENT });
      const kept: { predicted?: tf.Tensor } = {};
      const { value, grads } = tf.variableGrads(() => {
        const logits = clf.forward(batch.x);
        kept.predicted = tf.keep(tf.argMax(logits, 1));
        return crossEntropy(logits, batch.y, 0.05);
      }, vars);
      const clipped = clipGradNorm(
        vars.map((v) => grads[v.name] ?? null),
        opts.maxGradNorm ?? 2,
      );
      opt.apply(clipped.grads, lr);
      const loss = value.dataSync()[0];
      const pred = kept.predicted!.dataSync();
      let hit = 0;
      batch.labels.forEach((l, i) => (hit += pred[i] === l ? 1 : 0));
      tf.dispose([value, batch.x, batch.y, kept.predicted!, ...Object.values(grads)]);
      tf.dispose(clipped.grads.filter((g): g is tf.Tensor => g !== null));
      const acc = hit / batchSize;
      lossAvg = Number.isNaN(lossAvg) ? loss : 0.95 * lossAvg + 0.05 * loss;
      accAvg = Number.isNaN(accAvg) ? acc : 0.95 * accAvg + 0.05 * acc;
      if (!Number.isFinite(loss)) throw new Error(`trainInstrument(${kind}): loss is ${loss} at step ${step}`);
      if (opts.onProgress && ((step + 1) % every === 0 || step + 1 === steps)) {
        opts.onProgress({ step: step + 1, steps, loss: lossAvg, accuracy: accAvg, lr, seconds: (Date.now() - t0) / 1000, numTensors: tf.memory().numTensors });
      }
    }
  } finally {
    opt.dispose();
  }
  const trainSeconds = (Date.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const trainCpuSeconds = (cpu.user + cpu.system) / 1e6;
  const heldOut = opts.heldOut ?? 2000;
  const heldOutSeed = opts.heldOutSeed ?? 0;
  const record: InstrumentRecord = {
    seed,
    steps,
    batch_size: batchSize,
    peak_lr: peakLr,
    train_seconds: Math.round(trainSeconds * 10) / 10,
    train_cpu_seconds: Math.round(trainCpuSeconds * 10) / 10,
    final_train_loss: lossAvg,
    weights: opts.float16 === false ? 'float32' : 'float16',
    heldout: { count: 0, seed: heldOutSeed, accuracy: NaN, per_class_accuracy: {}, per_style_accuracy: {}, confusion: [] },
  };
  if (record.weights === 'float16') roundToFloat16(clf);
  if (heldOut > 0) {
    record.heldout = evaluateInstrument(clf, { count: heldOut, seed: heldOutSeed });
    if (opts.heldOutDegraded ?? true) record.heldout_degraded = evaluateInstrument(clf, { count: heldOut, seed: heldOutSeed, degraded: true });
  }
  clf.record = record;
  return clf;
}

/**
 * Accuracy and confusion matrix on `count` fresh held-out world images (seeds ≥ 2^31, uniform
 * over renderings, shapes and colours). `degraded` applies one training-style degradation each.
 */
export function evaluateInstrument(
  clf: WorldClassifier,
  opts: { count?: number; seed?: number; degraded?: boolean; batchSize?: number; augment?: AugmentOptions } = {},
): HeldOutEvaluation {
  const count = opts.count ?? 2000;
  const seed = opts.seed ?? 0;
  const bs = opts.batchSize ?? 100;
  const classes = clf.classes;
  const k = classes.length;
  const confusion = Array.from({ length: k }, () => new Array<number>(k).fill(0));
  const rng = new Rng(deriveSeed('museum-instruments-heldout', seed));
  const augRng = new Rng(deriveSeed('museum-instruments-heldout-degrade', seed));
  const styleHits: Record<string, [number, number]> = Object.fromEntries(ALL_STYLES.map((s) => [s, [0, 0]]));
  for (let done = 0; done < count; done += bs) {
    const n = Math.min(bs, count - done);
    const samples = drawSamples(rng, n, 'heldout');
    const batch = makeBatch(clf.kind, samples, opts.degraded ? { rng: augRng, options: opts.augment } : undefined);
    const pred = tf.tidy(() => tf.argMax(clf.forward(batch.x), 1));
    const p = pred.dataSync();
    batch.labels.forEach((l, i) => {
      confusion[l][p[i]]++;
      styleHits[samples[i].style][0] += l === p[i] ? 1 : 0;
      styleHits[samples[i].style][1]++;
    });
    tf.dispose([pred, batch.x, batch.y]);
  }
  let hits = 0;
  const perClass: Record<string, number> = {};
  classes.forEach((c, i) => {
    hits += confusion[i][i];
    const row = confusion[i].reduce((a, b) => a + b, 0);
    perClass[c] = row ? confusion[i][i] / row : NaN;
  });
  const perStyle = Object.fromEntries(Object.entries(styleHits).map(([s, [h, n]]) => [s, n ? h / n : NaN]));
  return { count, seed, accuracy: hits / count, per_class_accuracy: perClass, per_style_accuracy: perStyle, confusion };
}
