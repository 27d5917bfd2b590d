/**
 * The text-encoder service: loads the tokenizer and CLIP text encoder of a pipeline folder, knows
 * the task tokens of every museum version (loaded on demand, hot-loaded when a
 * `museum.styles.learned` event arrives), and serves museum.v1.TextEncoderService.Encode.
 */
import { museum } from '@museum/proto';
import {
  DEFAULT_LIMITS,
  ManagedService,
  ServiceHost,
  VersionCache,
  museumSubjects,
  subscribeStyleLearned,
  unaryHandler,
  type BusSubscription,
  type EventBus,
  type GenerationLimits,
  type MuseumSubjects,
  type ServiceOptions,
} from '@museum/rpc';
import { TextEncoderModel } from './model';
import { encode } from './encode';
import { BASE_ONLY_TOKENS, type TextVersion, type TokenVersionSource } from './versions';

export const TEXT_ENCODER_SERVICE = 'museum.v1.TextEncoderService';

export interface TextEncoderServerOptions extends ServiceOptions {
  /** Diffusers pipeline folder (its tokenizer/ and text_encoder/ are loaded). */
  modelDir: string;
  /** Task tokens per museum version (default: the base model only). */
  versions?: TokenVersionSource;
  /** Hot-load versions announced on this bus. */
  events?: { bus: EventBus; subjects?: MuseumSubjects };
  /** Also ask the museum for its latest version this often (ms); for deployments without NATS. */
  versionPollMs?: number;
  limits?: Partial<GenerationLimits>;
}

export class TextEncoderServer extends ManagedService {
  private model: TextEncoderModel | null = null;
  readonly versions: VersionCache<TextVersion>;
  readonly stats = { encodeCalls: 0, prompts: 0, versionsAnnounced: 0 };
  private subscription: BusSubscription | null = null;
  private poll: NodeJS.Timeout | null = null;

  constructor(readonly options: TextEncoderServerOptions) {
    super('text-encoder', options);
    const source = options.versions ?? BASE_ONLY_TOKENS;
    this.versions = new VersionCache({
      latest: () => source.latest(),
      load: async (v) => {
        const version = await source.version(v);
        this.requireModel().install(version.tokens);
        return version;
      },
      dispose: () => {},
    });
  }

  private requireModel(): TextEncoderModel {
    if (!this.model) throw new Error('the text encoder is not loaded yet');
    return this.model;
  }

  protected register(host: ServiceHost): void {
    const limits = { ...DEFAULT_LIMITS, ...this.options.limits };
    const impl: museum.v1.TextEncoderServiceServer = {
      encode: unaryHandler((req) => encode(req, { model: () => this.requireModel(), versions: this.versions, limits, stats: this.stats }), {
        name: 'TextEncoderService.Encode',
        log: this.log,
      }),
    };
    host.addService(TEXT_ENCODER_SERVICE, museum.v1.TextEncoderServiceService, impl);
  }

  protected async load(): Promise<void> {
    this.model = TextEncoderModel.load(this.options.modelDir);
    await this.versions.refresh();
    const ev = this.options.events;
    if (ev) {
      this.subscription = await subscribeStyleLearned(
        ev.bus,
        async (e) => {
          await this.versions.announce(e.museumVersion);
          this.stats.versionsAnnounced++;
          this.log(`text-encoder: museum version ${e.museumVersion} (${e.token}) loaded`);
        },
        ev.subjects ?? museumSubjects(),
        (err) => this.log(`text-encoder: bad event: ${String(err)}`),
        { consumer: 'text-encoder' },
      );
    }
    const every = this.options.versionPollMs;
    if (every && every > 0) {
      this.poll = setInterval(() => {
        this.versions.refresh().catch((err: unknown) => this.log(`text-encoder: version poll failed: ${err instanceof Error ? err.message : String(err)}`));
      }, every);
      this.poll.unref();
    }
  }

  protected async unload(): Promise<void> {
    if (this.poll) clearInterval(this.poll);
    await this.subscription?.unsubscribe();
    await this.versions.close();
    this.model?.dispose();
    this.model = null;
  }
}
