/**
 * The gateway service: no model of its own; orchestrates the text-encoder, denoiser and VAE-decoder
 * services over gRPC (addresses configurable) and streams progress. It reports SERVING once every
 * stage does, so a load balancer never routes to a gateway whose stages are still loading.
 */
import * as grpc from '@grpc/grpc-js';
import { grpc as g, museum } from '@museum/proto';
import { DEFAULT_LIMITS, ManagedService, ServiceHost, clientOptions, msUntilDeadline, streamHandler, type ChannelOptions, type GenerationLimits, type ServiceOptions } from '@museum/rpc';
import { StageClients, type StageAddresses } from './stages';
import { generate } from './generate';
import { generateBatch } from './generate_batch';

export const GATEWAY_SERVICE = 'museum.v1.GatewayService';

export interface GatewayServerOptions extends ServiceOptions {
  stages: StageAddresses;
  limits?: Partial<GenerationLimits>;
  /** Items of a GenerateBatch run at once (default 4). */
  batchConcurrency?: number;
  /** How long loading waits for the stages to be SERVING (default 10 minutes: a real model loads slowly). */
  stagesTimeoutMs?: number;
  channel?: ChannelOptions;
}

export class GatewayServer extends ManagedService {
  private stages: StageClients | null = null;
  private readonly limits: GenerationLimits;

  constructor(readonly options: GatewayServerOptions) {
    super('gateway', options);
    this.limits = { ...DEFAULT_LIMITS, ...options.limits };
  }

  private ctx(signal: AbortSignal, call: { getDeadline(): grpc.Deadline }) {
    if (!this.stages) throw new Error('the gateway is not started');
    const ms = msUntilDeadline(call);
    return { stages: this.stages, limits: this.limits, signal, deadline: Number.isFinite(ms) ? Date.now() + ms : undefined };
  }

  protected register(host: ServiceHost): void {
    const impl: museum.v1.GatewayServiceServer = {
      generate: streamHandler((req, { signal, call, write }) => generate(req, this.ctx(signal, call), write), { name: 'GatewayService.Generate', log: this.log }),
      generateBatch: streamHandler((req, { signal, call, write }) => generateBatch(req, this.ctx(signal, call), write, this.options.batchConcurrency ?? 4), {
        name: 'GatewayService.GenerateBatch',
        log: this.log,
      }),
    };
    host.addService(GATEWAY_SERVICE, museum.v1.GatewayServiceService, impl);
  }

  protected async load(): Promise<void> {
    this.stages = new StageClients(this.options.stages, this.options.channel);
    await waitForStages(this.options.stages, this.options.stagesTimeoutMs ?? 600_000);
  }

  protected async unload(): Promise<void> {
    this.stages?.close();
    this.stages = null;
  }
}

/** Poll each stage's health ("" = the whole server) until SERVING. */
async function waitForStages(addresses: StageAddresses, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  await Promise.all(
    Object.entries(addresses).map(async ([stage, address]) => {
      const client = new g.health.v1.HealthClient(address, grpc.credentials.createInsecure(), clientOptions());
      try {
        for (;;) {
          const status = await new Promise<number | null>((resolve) =>
            client.check({ service: '' }, new grpc.Metadata(), { deadline: Date.now() + 2000 }, (err, res) => resolve(err ? null : res.status)),
          );
          if (status === g.health.v1.HealthCheckResponse_ServingStatus.SERVING) return;
          if (Date.now() > until) throw new Error(`the ${stage} at ${address} was not SERVING within ${timeoutMs} ms`);
          await new Promise((r) => setTimeout(r, 200));
        }
      } finally {
        client.close();
      }
    }),
  );
}
