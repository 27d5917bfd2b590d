/**
 * Drives a pre-training stage on `workers` threads (default: one per core) and reports progress.
 * SIGINT/stop() asks every rank to finish its step; rank 0 then checkpoints, so `museum pretrain`
 * can be interrupted and resumed at any time.
 */
import * as os from 'os';
import { Worker } from 'worker_threads';
import { initBackend } from '@museum/tensor';
import { createAllReduceShared, workerScript } from '@museum/training';
import { buildAtelierModels, trainedParameterCount, type StageName } from './stages';
import type { WorkerConfig, WorkerMessage } from './worker';

export interface StageRunOptions {
  stage: StageName;
  steps: number;
  /** Global batch (split over workers). */
  batchSize: number;
  lr: number;
  warmup?: number;
  seed?: number;
  workers?: number;
  checkpointDir: string;
  vaeCheckpointDir?: string;
  checkpointEvery?: number;
  emaDecay?: number;
  overrides?: WorkerConfig['overrides'];
  /** VAE stage: share of generic textures among the training images. */
  textureShare?: number;
  /** Diffusion stage: Min-SNR-γ loss weighting (0: plain MSE). */
  minSnrGamma?: number;
  /** Diffusion stage: content modes drawn more often than the uniform mix. */
  emphasis?: WorkerConfig['emphasis'];
  onMessage?: (m: WorkerMessage) => void;
}

export interface StageHandle {
  done: Promise<{ step: number; stopped: boolean }>;
  stop(): void;
}

export async function runStage(o: StageRunOptions): Promise<StageHandle> {
  await initBackend();
  const workers = Math.max(1, o.workers ?? os.availableParallelism?.() ?? os.cpus().length);
  if (o.batchSize % workers !== 0) throw new Error(`batch size ${o.batchSize} must divide evenly over ${workers} workers`);
  const seed = o.seed ?? 20261126;
  // Count the trained parameters once to size the shared gradient buffer.
  const probe = buildAtelierModels(seed, o.overrides);
  const trained = trainedParameterCount(probe, o.stage);
  for (const m of [probe.vae, probe.unet, probe.textEncoder]) m.dispose();
  const shared = createAllReduceShared(trained + 2, workers);
  const stop = new SharedArrayBuffer(4);
  const entry = workerScript(__filename, 'worker');
  const threads: Worker[] = [];
  const done = new Promise<{ step: number; stopped: boolean }>((resolve, reject) => {
    let finished = 0;
    let result = { step: 0, stopped: false };
    for (let rank = 0; rank < workers; rank++) {
      const cfg: WorkerConfig & { atelierPretrain: true } = {
        atelierPretrain: true,
        rank,
        worldSize: workers,
        stage: o.stage,
        steps: o.steps,
        batchPerRank: o.batchSize / workers,
        lr: o.lr,
        warmup: o.warmup ?? Math.min(200, Math.floor(o.steps / 10)),
        seed,
        checkpointDir: o.checkpointDir,
        vaeCheckpointDir: o.vaeCheckpointDir,
        checkpointEvery: o.checkpointEvery ?? 100,
        emaDecay: o.emaDecay ?? 0.999,
        shared,
        stop,
        overrides: o.overrides,
        textureShare: o.textureShare,
        minSnrGamma: o.minSnrGamma,
        emphasis: o.emphasis,
      };
      const w = new Worker(entry.file, { workerData: cfg, execArgv: entry.execArgv });
      threads.push(w);
      w.on('message', (m: WorkerMessage | { type: 'error'; message: string }) => {
        if (m.type === 'error') {
          threads.forEach((t) => void t.terminate());
          reject(new Error(`pre-training rank ${rank} failed: ${m.message}`));
          return;
        }
        if (rank === 0 || m.type === 'ready') o.onMessage?.(m);
        if (m.type === 'done') {
          if (rank === 0) result = { step: m.step, stopped: m.stopped };
          finished += 1;
          if (finished === workers) resolve(result);
        }
      });
      w.on('error', (err) => {
        threads.forEach((t) => void t.terminate());
        reject(err);
      });
    }
  });
  return {
    done,
    stop: () => Atomics.store(new Int32Array(stop), 0, 1),
  };
}
