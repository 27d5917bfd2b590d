/**
 * Where the trainer's style learning runs. Training is synchronous tensor work for minutes at a
 * time: run on the service's own thread it would stall every RPC of the process (health checks,
 * WatchJob, and in `museum start` the whole generation pipeline). So by default it runs in a
 * worker thread with its own tensor backend and its own copy of the base model, and the service
 * thread only relays progress, cancellation and the outcome. `in-process` keeps the old way (one
 * copy of the model, for memory-tight single-purpose trainers).
 */
import { Worker } from 'node:worker_threads';
import { workerScript } from '@museum/training';
import { StableDiffusionPipeline } from '@museum/models';
import { Museum, MuseumError, disposeModels, learnStyle, modelsFromPipeline, type LearnProgress, type LearnStyleOptions, type MuseumErrorCode, type StyleModels } from '@museum/museum';

export type LearnerMode = 'worker' | 'in-process';

/** Plain-data settings of every job (request options win for steps/seed/captions). */
export type LearnSettingsData = Omit<LearnStyleOptions, 'models' | 'onProgress' | 'signal' | 'captions' | 'seed' | 'commitHooks'>;

export interface LearnRequest {
  style: string;
  images: Buffer[];
  captions?: string[];
  steps?: number;
  seed: number;
}

export interface LearnOutcome {
  version: number;
  style: { name: string; token: string; createdAt: string };
  trainSeconds: number;
}

export interface StyleLearner {
  learn(req: LearnRequest, signal: AbortSignal, onProgress: (p: LearnProgress) => void): Promise<LearnOutcome>;
  close(): Promise<void>;
}

export interface LearnerConfig {
  modelDir: string;
  museumDir: string;
  settings?: LearnSettingsData;
}

function options(cfg: LearnerConfig, req: LearnRequest): LearnStyleOptions {
  return { ...cfg.settings, ...(req.steps ? { steps: req.steps } : {}), seed: req.seed, captions: req.captions };
}

/** The part of a learnStyle result the service needs (plain data: it crosses the thread boundary). */
export function toLearnOutcome(r: Awaited<ReturnType<typeof learnStyle>>): LearnOutcome {
  return { version: r.version, style: { name: r.style.name, token: r.style.token, createdAt: r.style.createdAt }, trainSeconds: r.trainSeconds };
}

/** Learns on the caller's thread, over one copy of the base model loaded at construction. */
export class InProcessLearner implements StyleLearner {
  private models: StyleModels | null;

  constructor(
    private readonly cfg: LearnerConfig,
    private readonly museum: Museum,
  ) {
    this.models = modelsFromPipeline(StableDiffusionPipeline.fromPretrained(cfg.modelDir));
  }

  async learn(req: LearnRequest, signal: AbortSignal, onProgress: (p: LearnProgress) => void): Promise<LearnOutcome> {
    if (!this.models) throw new Error('the learner is closed');
    return toLearnOutcome(await learnStyle(this.museum, req.style, req.images, { ...options(this.cfg, req), models: this.models, signal, onProgress }));
  }

  async close(): Promise<void> {
    if (this.models) disposeModels(this.models);
    this.models = null;
  }
}

// ------------------------------------------------------------------------------------------------ worker protocol

export type ToWorker = { type: 'learn'; id: number; req: LearnRequest; options: LearnStyleOptions } | { type: 'cancel'; id: number };
export type FromWorker =
  | { type: 'ready' }
  | { type: 'progress'; id: number; progress: LearnProgress }
  | { type: 'done'; id: number; outcome: LearnOutcome }
  | { type: 'error'; id: number; error: SerializedError }
  | { type: 'fatal'; error: SerializedError };

export interface SerializedError {
  name: string;
  message: string;
  code?: MuseumErrorCode;
}

export function serializeError(err: unknown): SerializedError {
  if (err instanceof MuseumError) return { name: err.name, message: err.message, code: err.code };
  if (err instanceof Error) return { name: err.name, message: err.message };
  return { name: 'Error', message: String(err) };
}

/** The error as the service thread sees it: museum errors keep their code, cancellations stay AbortErrors. */
export function deserializeError(e: SerializedError): Error {
  if (e.code) return new MuseumError(e.code, e.message);
  const err = new Error(e.message);
  err.name = e.name;
  return err;
}

export interface LearnerWorkerData {
  museumLearner: true;
  modelDir: string;
  museumDir: string;
}

interface Pending {
  resolve: (o: LearnOutcome) => void;
  reject: (e: Error) => void;
  onProgress: (p: LearnProgress) => void;
}

/** Learns in a worker thread that keeps the base model loaded between jobs. */
export class WorkerLearner implements StyleLearner {
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private failure: Error | null = null;
  private closed = false;
  /** Resolves once the worker has its backend and model (rejects if it cannot load them). */
  readonly ready: Promise<void>;

  constructor(private readonly cfg: LearnerConfig) {
    const entry = workerScript(__filename, 'learner_worker');
    const data: LearnerWorkerData = { museumLearner: true, modelDir: cfg.modelDir, museumDir: cfg.museumDir };
    this.worker = new Worker(entry.file, { workerData: data, execArgv: entry.execArgv });
    this.ready = new Promise<void>((resolve, reject) => {
      this.worker.on('message', (m: FromWorker) => {
        if (m.type === 'ready') return resolve();
        if (m.type === 'fatal') {
          this.fail(deserializeError(m.error));
          return reject(this.failure);
        }
        const p = this.pending.get(m.id);
        if (!p) return;
        if (m.type === 'progress') p.onProgress(m.progress);
        else {
          this.pending.delete(m.id);
          if (m.type === 'done') p.resolve(m.outcome);
          else p.reject(deserializeError(m.error));
        }
      });
      this.worker.on('error', (err) => {
        this.fail(err);
        reject(err);
      });
      this.worker.on('exit', (code) => {
        if (!this.closed) this.fail(new Error(`the learner thread exited (code ${code})`));
        reject(this.failure ?? new Error('the learner thread exited'));
      });
    });
    // a failed load is reported by `ready` and by every later learn(), never as an unhandled rejection
    this.ready.catch(() => undefined);
  }

  private fail(err: Error): void {
    this.failure ??= err;
    for (const p of this.pending.values()) p.reject(this.failure);
    this.pending.clear();
  }

  async learn(req: LearnRequest, signal: AbortSignal, onProgress: (p: LearnProgress) => void): Promise<LearnOutcome> {
    await this.ready;
    if (this.failure) throw this.failure;
    if (this.closed) throw new Error('the learner is closed');
    const id = this.nextId++;
    return new Promise<LearnOutcome>((resolve, reject) => {
      const onAbort = () => this.worker.postMessage({ type: 'cancel', id } satisfies ToWorker);
      const settle = <T>(f: (v: T) => void) => (v: T) => {
        signal.removeEventListener('abort', onAbort);
        f(v);
      };
      this.pending.set(id, { resolve: settle(resolve), reject: settle(reject), onProgress });
      // the images are copied into the worker; the job drops its own copy when it ends
      this.worker.postMessage({ type: 'learn', id, req, options: options(this.cfg, req) } satisfies ToWorker);
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.fail(new Error('the learner is closed'));
    await this.worker.terminate();
  }
}
