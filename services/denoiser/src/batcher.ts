/**
 * Dynamic batching of denoising runs at the granularity of one sampler step (iteration-level
 * scheduling, as LLM servers batch decoding steps): every admitted request keeps its own scheduler,
 * noise generator, latents and step counter, and at each turn the batcher picks the requests that
 * can share a UNet call and steps them together. Requests may be at different steps and use
 * different samplers, step counts and guidance: the UNet takes one timestep per row, and guidance
 * and the scheduler step are applied per request afterwards. What must match is what the UNet call
 * itself shares: latent size, context shape and the museum version (its shared LoRA).
 *
 * A request arriving while the batcher is idle waits up to `maxWaitMs` for companions; one arriving
 * while it runs joins at the next turn. Admission is bounded (`maxJobs`): a full batcher answers
 * RESOURCE_EXHAUSTED rather than queueing without limit. A cancelled request (AbortSignal) leaves
 * between two turns and its tensors are freed at once.
 */
import { tf } from '@museum/tensor';
import { applyLora, checkGuidanceShaping, combineGuidance, createBatchGenerator, createScheduler, guidesAt, type DenoisingUNet, type Generator, type LoraAdapterSet, type Module, type NoiseScheduler, type SamplerName } from '@museum/models';
import { abortError, resourceExhausted } from '@museum/rpc';

export interface DenoiseJobInput {
  /** [B, L, D]; the batcher takes ownership. */
  embeddings: tf.Tensor3D;
  /** [B, L, D] when guidance > 1; the batcher takes ownership. */
  negativeEmbeddings: tf.Tensor3D | null;
  /** Image i uses seed + i (as the pipeline: a batched image equals the same seed alone). */
  seed: number;
  steps: number;
  guidance: number;
  /** diffusers' guidance_rescale φ in [0, 1] (0: off). */
  guidanceRescale?: number;
  /** Guide only at timesteps in [from, to]; elsewhere the conditional prediction alone (null: every step). */
  guidanceInterval?: readonly [number, number] | null;
  sampler: SamplerName;
  /** [B, h, w, C] */
  latentShape: [number, number, number, number];
  version: number;
  adapters: LoraAdapterSet | null;
  signal?: AbortSignal;
  /** After each step; `latents` is borrowed (valid during the call only). */
  onStep?: (step: number, total: number, timestep: number, latents: tf.Tensor4D) => void;
}

export interface DenoiseJobResult {
  /** Final latents [B, h, w, C]; the caller owns them. */
  latents: tf.Tensor4D;
  /** Steps this request shared a UNet call with another request. */
  sharedSteps: number;
}

export interface BatcherOptions {
  /** UNet rows per call (a guided image takes two rows); default 8. */
  maxBatchRows?: number;
  /** How long a request arriving at an idle batcher waits for companions; default 10 ms. */
  maxWaitMs?: number;
  /** Requests admitted at once (running or waiting); default 32. */
  maxJobs?: number;
  /** The training noise schedule (scheduler_config.json). */
  schedulerConfig?: Record<string, unknown>;
}

export interface BatcherStats {
  unetCalls: number;
  /** Rows over all UNet calls. */
  unetRows: number;
  /** UNet calls that served more than one request. */
  sharedCalls: number;
  /** Most requests served by one UNet call. */
  maxJobsPerCall: number;
  /** Sampler steps done, summed over requests. */
  steps: number;
  completed: number;
  cancelled: number;
  failed: number;
}

class Job {
  readonly scheduler: NoiseScheduler;
  readonly generator: Generator;
  readonly cfg: boolean;
  readonly images: number;
  readonly key: string;
  latents: tf.Tensor | null;
  /** [uncond; cond] rows when guided, else cond. */
  context: tf.Tensor | null;
  /** The conditional rows alone, for the steps outside the guidance interval. */
  condContext: tf.Tensor | null;
  next = 0;
  sharedSteps = 0;
  done = false;

  constructor(
    readonly input: DenoiseJobInput,
    schedulerConfig: Record<string, unknown>,
    public turn: number,
    readonly resolve: (r: DenoiseJobResult) => void,
    readonly reject: (err: unknown) => void,
  ) {
    const { embeddings, negativeEmbeddings, latentShape } = input;
    checkGuidanceShaping(input.guidanceRescale ?? 0, input.guidanceInterval);
    this.cfg = input.guidance > 1;
    const b = latentShape[0];
    this.images = b;
    this.key = `v${input.version}|${latentShape.slice(1).join('x')}|${embeddings.shape.slice(1).join('x')}`;
    this.scheduler = createScheduler(input.sampler, schedulerConfig);
    this.scheduler.setTimesteps(input.steps);
    this.generator = createBatchGenerator(Array.from({ length: b }, (_, i) => input.seed + i));
    // unconditional rows first, as upstream
    this.context = this.cfg ? tf.concat([negativeEmbeddings!, embeddings], 0) : tf.clone(embeddings);
    this.condContext = this.cfg && input.guidanceInterval ? tf.clone(embeddings) : null;
    const sigma = this.scheduler.initNoiseSigma;
    this.latents = tf.tidy(() => tf.mul(this.generator.normal(latentShape), sigma));
    embeddings.dispose();
    negativeEmbeddings?.dispose();
  }

  get total(): number {
    return this.scheduler.timesteps.length;
  }

  get timestep(): number {
    return this.scheduler.timesteps[this.next];
  }

  /** Whether this step is guided (two UNet rows per image) or outside the guidance interval (one). */
  get guidedNow(): boolean {
    return this.cfg && guidesAt(this.timestep, this.input.guidanceInterval);
  }

  /** UNet rows of this step. */
  get rows(): number {
    return this.guidedNow ? 2 * this.images : this.images;
  }

  /** Free everything the run holds (the latents too, unless they were handed over). */
  free(): void {
    this.latents?.dispose();
    this.context?.dispose();
    this.condContext?.dispose();
    this.latents = null;
    this.context = null;
    this.condContext = null;
    this.scheduler.dispose();
  }
}

const nextTick = () => new Promise<void>((resolve) => setImmediate(resolve));
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export class DenoiseBatcher {
  readonly stats: BatcherStats = { unetCalls: 0, unetRows: 0, sharedCalls: 0, maxJobsPerCall: 0, steps: 0, completed: 0, cancelled: 0, failed: 0 };
  private readonly jobs: Job[] = [];
  private pumping = false;
  private turn = 0;
  private applied: LoraAdapterSet | null | undefined = undefined;
  private readonly maxBatchRows: number;
  private readonly maxWaitMs: number;
  private readonly maxJobs: number;
  private idleWaiters: Array<() => void> = [];

  constructor(
    private readonly unet: DenoisingUNet & Module,
    private readonly o: BatcherOptions = {},
  ) {
    this.maxBatchRows = o.maxBatchRows ?? 8;
    this.maxWaitMs = o.maxWaitMs ?? 10;
    this.maxJobs = o.maxJobs ?? 32;
  }

  /** Requests admitted now (running or waiting for their first turn). */
  get size(): number {
    return this.jobs.length;
  }

  /**
   * Admit a run; resolves to its final latents. Throws RESOURCE_EXHAUSTED when full (the input
   * tensors are then disposed too, since the batcher owns them).
   */
  submit(input: DenoiseJobInput): Promise<DenoiseJobResult> {
    if (this.jobs.length >= this.maxJobs) {
      input.embeddings.dispose();
      input.negativeEmbeddings?.dispose();
      return Promise.reject(resourceExhausted(`the denoiser is full (${this.maxJobs} requests in progress): retry later`));
    }
    if (input.signal?.aborted) {
      input.embeddings.dispose();
      input.negativeEmbeddings?.dispose();
      return Promise.reject(input.signal.reason ?? abortError('aborted'));
    }
    return new Promise<DenoiseJobResult>((resolve, reject) => {
      let job: Job;
      try {
        job = new Job(input, this.o.schedulerConfig ?? {}, this.turn, resolve, reject);
      } catch (err) {
        input.embeddings.dispose();
        input.negativeEmbeddings?.dispose();
        reject(err);
        return;
      }
      this.jobs.push(job);
      void this.pump();
    });
  }

  /** Resolves when no request is left. */
  idle(): Promise<void> {
    if (this.jobs.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      // Starting from idle: give concurrent requests a moment to arrive and share the first call.
      const rows = this.jobs.reduce((s, j) => s + j.rows, 0);
      if (this.maxWaitMs > 0 && rows < this.maxBatchRows) await sleep(this.maxWaitMs);
      while (this.jobs.length > 0) {
        this.reapCancelled();
        const group = this.pickGroup();
        if (group.length > 0) this.stepGroup(group);
        // let cancellations, new requests and stream writes in between two UNet calls
        await nextTick();
      }
    } finally {
      this.pumping = false;
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      waiters.forEach((w) => w());
    }
  }

  private remove(job: Job): void {
    const i = this.jobs.indexOf(job);
    if (i >= 0) this.jobs.splice(i, 1);
  }

  private reapCancelled(): void {
    for (const job of [...this.jobs]) {
      const signal = job.input.signal;
      if (!signal?.aborted) continue;
      this.remove(job);
      job.free();
      this.stats.cancelled++;
      job.reject(signal.reason instanceof Error ? signal.reason : abortError('aborted'));
    }
  }

  /** The request that waited longest, plus those that can share its UNet call, within the row budget. */
  private pickGroup(): Job[] {
    if (this.jobs.length === 0) return [];
    const byTurn = [...this.jobs].sort((a, b) => a.turn - b.turn);
    const first = byTurn[0];
    const group = [first];
    let rows = first.rows;
    for (const j of byTurn.slice(1)) {
      if (j.key !== first.key || rows + j.rows > this.maxBatchRows) continue;
      group.push(j);
      rows += j.rows;
    }
    return group;
  }

  private stepGroup(group: Job[]): void {
    const turn = ++this.turn;
    let preds: tf.Tensor[];
    // Decided once per turn: the rows each request puts into this UNet call.
    const guided = group.map((j) => j.guidedNow);
    const rows = group.map((j) => j.rows);
    try {
      if (this.applied !== group[0].input.adapters) {
        applyLora(this.unet, group[0].input.adapters);
        this.applied = group[0].input.adapters;
      }
      preds = tf.tidy(() => {
        const inputs: tf.Tensor[] = [];
        const contexts: tf.Tensor[] = [];
        const ts: number[] = [];
        group.forEach((j, k) => {
          const x = j.latents!;
          const t = j.timestep;
          inputs.push(j.scheduler.scaleModelInput(guided[k] ? tf.concat([x, x], 0) : x, t));
          contexts.push(j.cfg && !guided[k] ? j.condContext! : j.context!);
          for (let r = 0; r < rows[k]; r++) ts.push(t);
        });
        const sample = inputs.length === 1 ? inputs[0] : tf.concat(inputs, 0);
        const context = contexts.length === 1 ? contexts[0] : tf.concat(contexts, 0);
        const same = ts.every((t) => t === ts[0]);
        const out = this.unet.forward(sample, same ? ts[0] : tf.tensor1d(ts, 'float32'), context);
        return group.length === 1 ? [out] : tf.split(out, rows, 0);
      });
    } catch (err) {
      for (const j of group) this.fail(j, err);
      return;
    }
    this.stats.unetCalls++;
    this.stats.unetRows += rows.reduce((s, r) => s + r, 0);
    this.stats.maxJobsPerCall = Math.max(this.stats.maxJobsPerCall, group.length);
    if (group.length > 1) this.stats.sharedCalls++;

    group.forEach((j, k) => {
      const pred = preds[k];
      try {
        const t = j.timestep;
        const x = j.latents!;
        const next = tf.tidy(() => {
          const eps = guided[k] ? combineGuidance(pred, j.input.guidance, j.input.guidanceRescale ?? 0) : pred;
          return j.scheduler.step(eps, t, x, { generator: j.generator, eta: 0 });
        });
        x.dispose();
        j.latents = next;
        j.next++;
        j.turn = turn;
        if (group.length > 1) j.sharedSteps++;
        this.stats.steps++;
        j.input.onStep?.(j.next, j.total, t, next as tf.Tensor4D);
        if (j.next >= j.total) this.finish(j);
      } catch (err) {
        this.fail(j, err);
      } finally {
        pred.dispose();
      }
    });
  }

  private finish(job: Job): void {
    this.remove(job);
    const latents = job.latents as tf.Tensor4D;
    job.latents = null;
    job.free();
    this.stats.completed++;
    job.resolve({ latents, sharedSteps: job.sharedSteps });
  }

  private fail(job: Job, err: unknown): void {
    if (!this.jobs.includes(job)) return;
    this.remove(job);
    job.free();
    this.stats.failed++;
    job.reject(err);
  }
}
