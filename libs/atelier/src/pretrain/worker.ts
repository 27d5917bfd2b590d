/**
 * One data-parallel pre-training rank (a worker thread on its own core with its own wasm backend).
 * Every rank builds identical models, computes gradients on its shard, and all ranks apply the same
 * averaged gradients, so replicas stay identical without ever sending weights.
 */
import { parentPort, workerData } from 'worker_threads';
import { initBackend, tf } from '@museum/tensor';
import { AllReducer, FlatAdamW, FlatEma, clipScale, flatNorm, flattenTensors, warmupCosineLr, type AllReduceShared } from '@museum/training';
import { buildAtelierModels, makeStage, measureScalingFactor, stageVariables, type StageName } from './stages';
import { autoencoderBatch, extendStreamRecord, pretrainBatch, resumedEmphasis, type RenderingEmphasis, type StreamSegment } from '../data';
import { loadCheckpointWeights, loadPrefixed, prefixedStateDict, readCheckpointState, readCheckpointTensors, writeCheckpoint, type CheckpointState } from './checkpoint';

export interface WorkerConfig {
  rank: number;
  worldSize: number;
  stage: StageName;
  steps: number;
  batchPerRank: number;
  lr: number;
  warmup: number;
  seed: number;
  checkpointDir: string;
  /** The finished VAE checkpoint (diffusion stage only). */
  vaeCheckpointDir?: string;
  checkpointEvery: number;
  emaDecay: number;
  shared: AllReduceShared;
  stop: SharedArrayBuffer;
  overrides?: { unet?: object; vae?: object; text?: object };
  /** VAE stage: share of generic textures among the training images (0 = base renderings only). */
  textureShare?: number;
  /** Diffusion stage: Min-SNR-γ loss weighting (0: plain MSE). */
  minSnrGamma?: number;
  /** Diffusion stage: content modes drawn more often (recorded in the checkpoint from the step it starts). */
  emphasis?: RenderingEmphasis[];
}

export type WorkerMessage =
  | { type: 'ready'; rank: number; step: number; params: number }
  | { type: 'step'; step: number; loss: number; lr: number; gradNorm: number; seconds: number }
  | { type: 'checkpoint'; step: number }
  | { type: 'done'; step: number; stopped: boolean };

async function run(cfg: WorkerConfig): Promise<void> {
  await initBackend({ log: () => {} });
  const post = (m: WorkerMessage) => parentPort?.postMessage(m);
  const models = buildAtelierModels(cfg.seed, cfg.overrides);
  let scalingFactor: number | undefined;
  if (cfg.stage !== 'vae') {
    // Both later stages start from the finished VAE (its encoder defines the latents).
    if (!cfg.vaeCheckpointDir) throw new Error(`${cfg.stage} stage needs the VAE checkpoint`);
    const vaeState = readCheckpointState(cfg.vaeCheckpointDir);
    if (!vaeState) throw new Error(`no VAE checkpoint in ${cfg.vaeCheckpointDir}`);
    loadCheckpointWeights(cfg.vaeCheckpointDir, { vae: models.vae });
    scalingFactor = (vaeState.scalingFactor as number | undefined) ?? measureScalingFactor(models.vae, cfg.seed);
  }
  const stage = makeStage(models, cfg.stage, { scalingFactor, minSnrGamma: cfg.minSnrGamma });
  const variables = stageVariables(stage);
  const shapes = variables.map((v) => v.shape);
  const isLead = cfg.rank === 0;

  let state: CheckpointState = {
    stage: cfg.stage, step: 0, totalSteps: cfg.steps, seed: cfg.seed, scalingFactor,
    lossHistory: [], imagesSeen: 0, trainSeconds: 0,
  };
  const saved = readCheckpointState(cfg.checkpointDir);
  if (saved) {
    const w = readCheckpointTensors(cfg.checkpointDir, 'weights');
    if (w) {
      loadPrefixed(stage.modules, w);
      for (const t of w.values()) t.dispose();
    }
  }
  // The fused optimizer and EMA mirror the (possibly just loaded) live weights in flat buffers.
  const opt = new FlatAdamW(variables, { lr: cfg.lr, weightDecay: 0.01 });
  const ema = isLead ? new FlatEma(variables, cfg.emaDecay) : null;
  if (saved) {
    const o = readCheckpointTensors(cfg.checkpointDir, 'optimizer');
    if (o) {
      opt.loadState(o, saved.step);
      for (const t of o.values()) t.dispose();
    }
    if (ema) {
      const e = readCheckpointTensors(cfg.checkpointDir, 'ema');
      if (e) {
        // The EMA copy is saved under the modules' names: load it through them, take it, restore the live weights.
        loadPrefixed(stage.modules, e);
        ema.setFromVariables();
        opt.writeToVariables();
        for (const t of e.values()) t.dispose();
      }
    }
    state = { ...saved, totalSteps: cfg.steps };
  }
  // The checkpoint says which stream each stretch of steps saw, so an export can say what the model was trained on.
  const recorded = (state.streamSegments as StreamSegment[] | undefined) ?? [];
  const emphasis = cfg.stage === 'diffusion' ? resumedEmphasis(recorded, cfg.emphasis) : [];
  const segments = extendStreamRecord(recorded, state.step, emphasis);
  if (segments.length > 0 && state.step < cfg.steps) state.streamSegments = segments;
  const reducer = new AllReducer(cfg.shared, cfg.rank);
  const stopFlag = new Int32Array(cfg.stop);
  post({ type: 'ready', rank: cfg.rank, step: state.step, params: opt.size });

  const save = () => {
    if (!isLead || !ema) return;
    const weights = prefixedStateDict(stage.modules);
    // The EMA weights are written under the same names: swap them in, read them out, swap back.
    ema.copyToVariables();
    const emaWeights = prefixedStateDict(stage.modules);
    opt.writeToVariables();
    const optimizer = opt.stateTensors();
    writeCheckpoint(cfg.checkpointDir, { weights, ema: emaWeights, optimizer, state });
    for (const m of [weights, emaWeights, optimizer]) for (const t of m.values()) t.dispose();
    post({ type: 'checkpoint', step: state.step });
  };

  let stopped = false;
  while (state.step < cfg.steps) {
    const t0 = Date.now();
    const stepSeed = (cfg.seed * 100003 + state.step * 31 + cfg.rank) >>> 0;
    const batch = cfg.stage !== 'diffusion'
      ? autoencoderBatch({ seed: cfg.seed, index: state.step, rank: cfg.rank, size: cfg.batchPerRank, textureShare: cfg.textureShare ?? 0 })
      : pretrainBatch({ seed: cfg.seed, index: state.step, rank: cfg.rank, size: cfg.batchPerRank, dropCaption: 0.1, emphasis });
    const { value, grads } = tf.variableGrads(() => stage.loss(batch, stepSeed), variables);
    const gradList = variables.map((v) => grads[v.name] ?? null);
    const flat = flattenTensors(gradList, shapes, [value.dataSync()[0], Atomics.load(stopFlag, 0)]);
    value.dispose();
    for (const g of Object.values(grads)) g.dispose();
    // Averaged gradients, then the trailing extras: [mean loss, stop requested by any rank].
    const mean = reducer.mean(flat);
    const norm = flatNorm(mean, opt.size);
    const lr = warmupCosineLr(state.step, { peak: cfg.lr, warmup: cfg.warmup, total: cfg.steps });
    opt.apply(mean, lr, clipScale(norm, 1.0));
    ema?.update(state.step, opt.params);
    state.step += 1;
    state.imagesSeen += cfg.batchPerRank * cfg.worldSize;
    state.trainSeconds += (Date.now() - t0) / 1000;
    const loss = mean[opt.size];
    if (state.step % 10 === 0) state.lossHistory.push([state.step, loss]);
    post({ type: 'step', step: state.step, loss, lr, gradNorm: norm, seconds: (Date.now() - t0) / 1000 });
    if (mean[opt.size + 1] > 0) stopped = true;
    if (stopped || state.step % cfg.checkpointEvery === 0 || state.step === cfg.steps) save();
    if (stopped) break;
  }
  if (cfg.stage === 'vae' && isLead && state.step >= cfg.steps && ema) {
    ema.copyToVariables();
    state.scalingFactor = measureScalingFactor(models.vae, cfg.seed);
    opt.writeToVariables();
    save();
  }
  post({ type: 'done', step: state.step, stopped });
}

if (parentPort && workerData && (workerData as { atelierPretrain?: boolean }).atelierPretrain) {
  run(workerData as WorkerConfig).catch((err: unknown) => {
    parentPort?.postMessage({ type: 'error', message: err instanceof Error ? err.stack ?? err.message : String(err) });
    process.exit(1);
  });
}
