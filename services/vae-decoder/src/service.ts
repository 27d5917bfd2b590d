/** The VAE decoder service: loads the VAE of a pipeline folder and serves museum.v1.VaeDecoderService.Decode. */
import { museum } from '@museum/proto';
import type { AutoencoderKL } from '@museum/models';
import { DEFAULT_LIMITS, ManagedService, ServiceHost, loadPipelinePart, unaryHandler, type GenerationLimits, type ServiceOptions } from '@museum/rpc';
import { decode } from './decode';

export const VAE_DECODER_SERVICE = 'museum.v1.VaeDecoderService';

export interface VaeDecoderServerOptions extends ServiceOptions {
  /** Diffusers pipeline folder (its vae/ is loaded). */
  modelDir: string;
  limits?: Partial<GenerationLimits>;
  /** Images per request (default 4). */
  maxImages?: number;
}

export class VaeDecoderServer extends ManagedService {
  private vae: AutoencoderKL | null = null;
  readonly stats = { decodeCalls: 0, images: 0 };

  constructor(readonly options: VaeDecoderServerOptions) {
    super('vae-decoder', options);
  }

  protected register(host: ServiceHost): void {
    const limits = { ...DEFAULT_LIMITS, ...this.options.limits };
    const impl: museum.v1.VaeDecoderServiceServer = {
      decode: unaryHandler(
        (req, { signal }) =>
          decode(
            req,
            {
              vae: () => {
                if (!this.vae) throw new Error('the VAE is not loaded yet');
                return this.vae;
              },
              limits,
              maxImages: this.options.maxImages ?? 4,
              stats: this.stats,
            },
            signal,
          ),
        { name: 'VaeDecoderService.Decode', log: this.log },
      ),
    };
    host.addService(VAE_DECODER_SERVICE, museum.v1.VaeDecoderServiceService, impl);
  }

  protected async load(): Promise<void> {
    this.vae = loadPipelinePart<AutoencoderKL>(this.options.modelDir, 'vae').model;
  }

  protected async unload(): Promise<void> {
    this.vae?.dispose();
    this.vae = null;
  }
}
