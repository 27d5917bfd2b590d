/**
 * The trainer service: owns the museum store, runs style-learning jobs (MuseumMaker, libs/museum)
 * one at a time over the base model, and after each committed version publishes
 * `museum.styles.learned` so the text encoders and denoisers hot-load it.
 */
import { museum as pb } from '@museum/proto';
import { Museum } from '@museum/museum';
import {
  DEFAULT_LIMITS,
  ManagedService,
  ServiceHost,
  museumSubjects,
  publishStyleLearned,
  readModelIndex,
  streamHandler,
  unaryHandler,
  type EventBus,
  type GenerationLimits,
  type MuseumSubjects,
  type ServiceOptions,
} from '@museum/rpc';
import { JobQueue, type Job } from './jobs';
import { JobJournal, jobJournalDir } from './journal';
import { InProcessLearner, WorkerLearner, type LearnSettingsData, type LearnerMode, type StyleLearner } from './learner';
import { learnStyle } from './learn_style';
import { watchJob } from './watch_job';
import { cancelJob } from './cancel_job';
import { listStyles } from './list_styles';

export const TRAINER_SERVICE = 'museum.v1.TrainerService';

export interface TrainerServerOptions extends ServiceOptions {
  /** The base model (a diffusers pipeline folder). */
  modelDir: string;
  /** The museum store folder (created on first start, with version 0 = the base model). */
  museumDir: string;
  /** An already opened store of `museumDir` (saves hashing the base model twice in one process). */
  museum?: Museum;
  events?: { bus: EventBus; subjects?: MuseumSubjects };
  /** Training settings applied to every job (e.g. method, batchSize, rank); request options win for steps/seed/captions. */
  learn?: LearnSettingsData;
  /** Where training runs (default `worker`: a thread of its own, so RPCs of this process never wait for it). */
  learner?: LearnerMode;
  /** Where job records survive restarts (default `<museumDir>/records/jobs`; null: in memory only). */
  jobsDir?: string | null;
  /** Images per style (default 32). */
  maxImages?: number;
  /** Largest `options.steps` accepted (default 5000). */
  maxSteps?: number;
  limits?: Partial<GenerationLimits>;
}

export class TrainerServer extends ManagedService {
  private store: Museum | null = null;
  private learner: StyleLearner | null = null;
  private jobsInstance: JobQueue | null = null;
  private readonly closing = new AbortController();
  readonly stats = { published: 0, publishFailures: 0 };

  constructor(readonly options: TrainerServerOptions) {
    super('trainer', options);
  }

  get museum(): Museum {
    if (!this.store) throw new Error('the trainer is not loaded yet');
    return this.store;
  }

  get jobs(): JobQueue {
    if (!this.jobsInstance) throw new Error('the trainer is not loaded yet');
    return this.jobsInstance;
  }

  protected register(host: ServiceHost): void {
    const limits = { ...DEFAULT_LIMITS, ...this.options.limits };
    const hooks = (name: string) => ({ name: `TrainerService.${name}`, log: this.log });
    const impl: pb.v1.TrainerServiceServer = {
      learnStyle: unaryHandler(
        (req) => learnStyle(req, { museum: () => this.museum, jobs: () => this.jobs, limits, maxImages: this.options.maxImages ?? 32, maxSteps: this.options.maxSteps ?? 5000 }),
        hooks('LearnStyle'),
      ),
      watchJob: streamHandler((req, { signal, write }) => watchJob(req, this.jobs, signal, write, this.closing.signal), hooks('WatchJob')),
      cancelJob: unaryHandler((req) => cancelJob(req, this.jobs), hooks('CancelJob')),
      listStyles: unaryHandler((req) => listStyles(req, this.museum), hooks('ListStyles')),
    };
    host.addService(TRAINER_SERVICE, pb.v1.TrainerServiceService, impl);
  }

  private async run(job: Job, update: (patch: Partial<pb.v1.JobStatus>) => void): Promise<number> {
    const { spec } = job;
    const result = await this.learner!.learn(spec, job.abort.signal, (p) => {
      if (p.phase === 'train') update({ step: p.step, totalSteps: p.total, loss: p.losses.total ?? 0 });
    });
    // the version is committed whatever happens to the announcement: a failed publish is logged, and
    // consumers still find the version (on demand, by polling, or when the next start re-announces it)
    const style = result.style;
    await this.announce({ museumVersion: result.version, style: style.name, token: style.token, committedAtMs: Date.parse(style.createdAt) || Date.now() });
    this.log(`trainer: learned ${result.style.token} in ${result.trainSeconds.toFixed(1)} s: museum version ${result.version}`);
    return result.version;
  }

  /** Publish `museum.styles.learned` (a no-op without events; failures are logged, not thrown). */
  private async announce(event: pb.v1.StyleLearnedEvent): Promise<void> {
    const ev = this.options.events;
    if (!ev) return;
    try {
      await publishStyleLearned(ev.bus, event, ev.subjects ?? museumSubjects());
      this.stats.published++;
    } catch (err) {
      this.stats.publishFailures++;
      this.log(`trainer: could not announce museum version ${event.museumVersion}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  protected async load(): Promise<void> {
    readModelIndex(this.options.modelDir);
    this.store = this.options.museum ?? Museum.openOrCreate(this.options.museumDir, { baseModelDir: this.options.modelDir });
    const learnerConfig = { modelDir: this.options.modelDir, museumDir: this.store.dir, settings: this.options.learn };
    if ((this.options.learner ?? 'worker') === 'worker') {
      const worker = new WorkerLearner(learnerConfig);
      this.learner = worker;
      await worker.ready; // NOT_SERVING until the learner thread has its model
    } else this.learner = new InProcessLearner(learnerConfig, this.store);
    const store = this.store;
    const jobsDir = this.options.jobsDir === undefined ? jobJournalDir(store.dir) : this.options.jobsDir;
    this.jobsInstance = new JobQueue((job, update) => this.run(job, update), {
      log: this.log,
      journal: jobsDir ? new JobJournal(jobsDir) : undefined,
      // the version is the truth: a job whose style is in the museum did commit before the stop
      settleInterrupted: (status) => {
        const learned = store.listStyles().find((s) => s.name === status.style);
        return learned
          ? { state: pb.v1.JobState.JOB_STATE_SUCCEEDED, museumVersion: learned.version, error: '' }
          : { state: pb.v1.JobState.JOB_STATE_FAILED, error: 'interrupted: the trainer stopped before the job committed a version; submit it again' };
      },
    });
    // re-announce the latest version, in case the trainer stopped between its commit and its
    // announcement (the message id makes this a no-op when the stream already has it)
    const latest = this.store.latestVersion();
    if (latest > 0) {
      const s = this.store.listStyles(latest).find((x) => x.version === latest);
      if (s) await this.announce({ museumVersion: latest, style: s.name, token: s.token, committedAtMs: Date.parse(s.createdAt) || 0 });
    }
  }

  protected override onDrain(): void {
    // WatchJob streams would hold the drain until their jobs end
    this.closing.abort();
  }

  protected async unload(): Promise<void> {
    this.jobsInstance?.cancelAll();
    await this.jobsInstance?.idle();
    await this.learner?.close();
    this.learner = null;
  }
}
