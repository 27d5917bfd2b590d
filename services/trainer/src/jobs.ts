/**
 * Style-learning jobs: a FIFO run one at a time (training takes the whole machine), each with a
 * status that watchers receive on every change. Finished jobs are kept (bounded) so that a client
 * can still watch a job that ended before it asked; with a journal they survive a restart too.
 */
import { randomUUID } from 'node:crypto';
import { museum } from '@museum/proto';
import { captureContext, inSpan, type TraceContext } from '@museum/rpc';
import type { JobJournal } from './journal';

export type JobStatus = museum.v1.JobStatus;
export const JobState = museum.v1.JobState;

export interface JobSpec {
  style: string;
  images: Buffer[];
  captions?: string[];
  steps?: number;
  seed: number;
}

export interface Job {
  readonly spec: JobSpec;
  readonly status: JobStatus;
  readonly abort: AbortController;
  /** The trace context of the LearnStyle call: the job's span is its child. */
  readonly trace: TraceContext;
}

const FINAL = new Set([JobState.JOB_STATE_SUCCEEDED, JobState.JOB_STATE_FAILED, JobState.JOB_STATE_CANCELLED]);

export function isFinal(s: JobStatus): boolean {
  return FINAL.has(s.state);
}

/** What running a job does; reports progress through `update`, resolves to the committed version. */
export type JobRunner = (job: Job, update: (patch: Partial<JobStatus>) => void) => Promise<number>;

export interface JobQueueOptions {
  /** Finished jobs kept (default 100). */
  history?: number;
  log?: (msg: string) => void;
  /** Where job states are kept across restarts (none: in memory only). */
  journal?: JobJournal;
  /** What became of a job the journal shows unfinished (called once per such job at construction). */
  settleInterrupted?: (status: JobStatus) => Partial<JobStatus>;
}

export class JobQueue {
  private readonly jobs = new Map<string, Job>();
  private readonly queue: Job[] = [];
  private running: Job | null = null;
  private readonly watchers = new Map<string, Set<(s: JobStatus) => void>>();
  private idleWaiters: Array<() => void> = [];

  private readonly history: number;
  private readonly log: (msg: string) => void;
  private readonly journal: JobJournal | undefined;

  constructor(
    private readonly runner: JobRunner,
    options: JobQueueOptions = {},
  ) {
    this.history = options.history ?? 100;
    this.log = options.log ?? (() => {});
    this.journal = options.journal;
    if (this.journal) {
      const settle = options.settleInterrupted ?? (() => ({ state: JobState.JOB_STATE_FAILED, error: 'interrupted: the trainer stopped before the job finished; submit it again' }));
      for (const rec of this.journal.recover(settle, (file, why) => this.log(`trainer: skipped job record ${file}: ${why}`))) {
        // a past job: watchable and listed, never run again (its images were not kept)
        this.jobs.set(rec.status.jobId, { spec: { style: rec.status.style, images: [], seed: 0 }, status: rec.status, abort: new AbortController(), trace: captureContext() });
      }
      this.trim();
    }
  }

  /** Styles queued or being learned (a second job may not take the same name). */
  activeStyles(): Set<string> {
    const out = new Set<string>();
    for (const j of this.jobs.values()) if (!isFinal(j.status)) out.add(j.spec.style);
    return out;
  }

  submit(spec: JobSpec): Job {
    const id = `job-${randomUUID()}`;
    const job: Job = {
      spec,
      abort: new AbortController(),
      trace: captureContext(),
      status: { jobId: id, style: spec.style, state: JobState.JOB_STATE_QUEUED, step: 0, totalSteps: spec.steps ?? 0, loss: 0, museumVersion: 0, error: '' },
    };
    this.jobs.set(id, job);
    this.persist(job);
    this.queue.push(job);
    this.trim();
    void this.pump();
    return job;
  }

  get(id: string): Job | undefined {
    return this.jobs.get(id);
  }

  /** Call `fn` with the current status now and on every change; returns the unsubscribe function. */
  watch(id: string, fn: (s: JobStatus) => void): () => void {
    const job = this.jobs.get(id);
    if (!job) throw new Error(`no job ${id}`);
    let set = this.watchers.get(id);
    if (!set) this.watchers.set(id, (set = new Set()));
    set.add(fn);
    fn({ ...job.status });
    return () => set!.delete(fn);
  }

  /** Cancel a queued (at once) or running (between two steps) job; resolves to its status once it settled or after `waitMs`. */
  async cancel(id: string, waitMs = 10_000): Promise<JobStatus> {
    const job = this.jobs.get(id);
    if (!job) throw new Error(`no job ${id}`);
    if (isFinal(job.status)) return { ...job.status };
    const qi = this.queue.indexOf(job);
    if (qi >= 0) {
      this.queue.splice(qi, 1);
      this.update(job, { state: JobState.JOB_STATE_CANCELLED });
      return { ...job.status };
    }
    job.abort.abort();
    const until = Date.now() + waitMs;
    while (!isFinal(job.status) && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
    return { ...job.status };
  }

  /** Cancel everything queued and running (used by stop). */
  cancelAll(): void {
    for (const j of [...this.queue]) void this.cancel(j.status.jobId, 0);
    this.running?.abort.abort();
  }

  idle(): Promise<void> {
    if (!this.running && this.queue.length === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  private update(job: Job, patch: Partial<JobStatus>): void {
    const stateChanged = patch.state !== undefined && patch.state !== job.status.state;
    Object.assign(job.status, patch);
    if (stateChanged) this.persist(job);
    const snapshot = { ...job.status };
    for (const fn of this.watchers.get(job.status.jobId) ?? []) fn(snapshot);
    if (isFinal(job.status)) this.watchers.delete(job.status.jobId);
  }

  private async pump(): Promise<void> {
    if (this.running) return;
    for (let job = this.queue.shift(); job; job = this.queue.shift()) {
      this.running = job;
      this.update(job, { state: JobState.JOB_STATE_RUNNING });
      try {
        const j = job;
        const version = await inSpan('trainer.job', { parent: j.trace, attributes: { 'museum.job_id': j.status.jobId, 'museum.style': j.spec.style } }, async (span) => {
          const v = await this.runner(j, (patch) => this.update(j, patch));
          span.setAttributes({ 'museum.version': v, 'museum.steps': j.status.step });
          return v;
        });
        this.update(job, { state: JobState.JOB_STATE_SUCCEEDED, museumVersion: version });
      } catch (err) {
        const cancelled = job.abort.signal.aborted || (err instanceof Error && err.name === 'AbortError');
        const message = err instanceof Error ? err.message : String(err);
        if (!cancelled) this.log(`trainer: job ${job.status.jobId} (${job.spec.style}) failed: ${message}`);
        this.update(job, cancelled ? { state: JobState.JOB_STATE_CANCELLED } : { state: JobState.JOB_STATE_FAILED, error: message });
      } finally {
        // the images are not needed any more
        job.spec.images.length = 0;
        this.running = null;
      }
    }
    const w = this.idleWaiters;
    this.idleWaiters = [];
    w.forEach((f) => f());
  }

  /** Journal the job's state; a journal that cannot be written is logged, never fails the job. */
  private persist(job: Job): void {
    if (!this.journal) return;
    try {
      this.journal.record(job.status);
    } catch (err) {
      this.log(`trainer: could not journal job ${job.status.jobId}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  private trim(): void {
    const done = [...this.jobs.values()].filter((j) => isFinal(j.status));
    for (const j of done.slice(0, Math.max(0, done.length - this.history))) {
      this.jobs.delete(j.status.jobId);
      this.journal?.forget(j.status.jobId);
    }
  }
}
