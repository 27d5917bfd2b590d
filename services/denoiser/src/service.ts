/**
 * The denoiser service: loads the UNet (and the noise schedule) of a pipeline folder, keeps the
 * shared LoRA of the museum versions in use (hot-loaded on `museum.styles.learned`), and serves
 * museum.v1.DenoiserService.Denoise through a step-level dynamic batcher.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { museum } from '@museum/proto';
import { loadSamplingConfig, readJsonFile, type DenoisingUNet, type LoraAdapterSet, type Module, type UNet2DConditionModel } from '@museum/models';
import {
  DEFAULT_LIMITS,
  ManagedService,
  ServiceHost,
  VersionCache,
  loadPipelinePart,
  loadSchedulerConfig,
  museumSubjects,
  streamHandler,
  subscribeStyleLearned,
  type BusSubscription,
  type EventBus,
  type GenerationLimits,
  type MuseumSubjects,
  type ServiceOptions,
} from '@museum/rpc';
import { DenoiseBatcher, type BatcherOptions } from './batcher';
import { denoise, type DenoiseModelInfo } from './denoise';
import { BASE_ONLY_LORA, type LoraVersionSource } from './versions';

export const DENOISER_SERVICE = 'museum.v1.DenoiserService';

export interface DenoiserServerOptions extends ServiceOptions {
  /** Diffusers pipeline folder (its unet/, scheduler/ and the VAE's config are read). */
  modelDir: string;
  versions?: LoraVersionSource;
  events?: { bus: EventBus; subjects?: MuseumSubjects };
  /** Also ask the museum for its latest version this often (ms); for deployments without NATS. */
  versionPollMs?: number;
  batching?: Omit<BatcherOptions, 'schedulerConfig'>;
  limits?: Partial<GenerationLimits>;
  /** Images per request (default 4). */
  maxImages?: number;
}

export class DenoiserServer extends ManagedService {
  private unet: (UNet2DConditionModel & DenoisingUNet) | null = null;
  private batcherInstance: DenoiseBatcher | null = null;
  private modelInfo: DenoiseModelInfo | null = null;
  readonly versions: VersionCache<LoraAdapterSet | null>;
  readonly events = { versionsAnnounced: 0 };
  private subscription: BusSubscription | null = null;
  private poll: NodeJS.Timeout | null = null;

  constructor(readonly options: DenoiserServerOptions) {
    super('denoiser', options);
    const source = options.versions ?? BASE_ONLY_LORA;
    this.versions = new VersionCache({
      latest: () => source.latest(),
      load: (v) => source.lora(v, this.requireUnet() as unknown as Module),
      dispose: (set) => set?.dispose(),
    });
  }

  /** The batcher (its `stats` count UNet calls and steps). */
  get batcher(): DenoiseBatcher {
    if (!this.batcherInstance) throw new Error('the denoiser is not loaded yet');
    return this.batcherInstance;
  }

  private requireUnet(): UNet2DConditionModel & DenoisingUNet {
    if (!this.unet) throw new Error('the denoiser is not loaded yet');
    return this.unet;
  }

  protected register(host: ServiceHost): void {
    const limits = { ...DEFAULT_LIMITS, ...this.options.limits };
    const impl: museum.v1.DenoiserServiceServer = {
      denoise: streamHandler(
        (req, { signal, write }) =>
          denoise(req, { batcher: () => this.batcher, info: () => this.info(), versions: this.versions, limits, maxImages: this.options.maxImages ?? 4 }, signal, write),
        { name: 'DenoiserService.Denoise', log: this.log },
      ),
    };
    host.addService(DENOISER_SERVICE, museum.v1.DenoiserServiceService, impl);
  }

  private info(): DenoiseModelInfo {
    if (!this.modelInfo) throw new Error('the denoiser is not loaded yet');
    return this.modelInfo;
  }

  protected async load(): Promise<void> {
    const dir = this.options.modelDir;
    const { model } = loadPipelinePart<UNet2DConditionModel & DenoisingUNet>(dir, 'unet');
    this.unet = model;
    // the VAE factor comes from the VAE's config alone (its weights live in the decoder service)
    const vaeConfig = readVaeConfig(dir);
    const factor = 2 ** ((vaeConfig.block_out_channels?.length ?? 4) - 1);
    const c = model.config as unknown as { in_channels: number; cross_attention_dim: number | number[]; sample_size?: number | null };
    this.modelInfo = {
      inChannels: c.in_channels,
      crossAttentionDim: Array.isArray(c.cross_attention_dim) ? c.cross_attention_dim[0] : c.cross_attention_dim,
      vaeScaleFactor: factor,
      defaultSize: (c.sample_size ?? 64) * factor,
      samplingDefaults: loadSamplingConfig(dir),
    };
    this.batcherInstance = new DenoiseBatcher(model, { ...this.options.batching, schedulerConfig: loadSchedulerConfig(dir) });
    await this.versions.refresh();
    const ev = this.options.events;
    if (ev) {
      this.subscription = await subscribeStyleLearned(
        ev.bus,
        async (e) => {
          await this.versions.announce(e.museumVersion);
          this.events.versionsAnnounced++;
          this.log(`denoiser: museum version ${e.museumVersion} (${e.token}) loaded`);
        },
        ev.subjects ?? museumSubjects(),
        (err) => this.log(`denoiser: bad event: ${String(err)}`),
        { consumer: 'denoiser' },
      );
    }
    const every = this.options.versionPollMs;
    if (every && every > 0) {
      this.poll = setInterval(() => {
        this.versions.refresh().catch((err: unknown) => this.log(`denoiser: version poll failed: ${err instanceof Error ? err.message : String(err)}`));
      }, every);
      this.poll.unref();
    }
  }

  protected async unload(): Promise<void> {
    if (this.poll) clearInterval(this.poll);
    await this.subscription?.unsubscribe();
    await this.batcherInstance?.idle();
    await this.versions.close();
    this.unet?.dispose();
    this.unet = null;
  }
}

function readVaeConfig(dir: string): { block_out_channels?: number[] } {
  const file = path.join(dir, 'vae', 'config.json');
  return fs.existsSync(file) ? (readJsonFile(file) as { block_out_channels?: number[] }) : {};
}
