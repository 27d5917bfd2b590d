/** Test helper: the four serving services on loopback ports (OS-assigned) over a tiny pipeline folder, plus clients. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { grpc as g, museum } from '@museum/proto';
import { serverStream, writeTinyPipelineFolder, type EventBus, type MuseumSubjects } from '@museum/rpc';
import { TextEncoderServer, type TokenVersionSource } from '@museum/text-encoder';
import { DenoiserServer, type BatcherOptions, type LoraVersionSource } from '@museum/denoiser';
import { VaeDecoderServer } from '@museum/vae-decoder';
import { GatewayServer } from '../src';

export interface StackOptions {
  loadGate?: Promise<unknown>;
  batching?: Omit<BatcherOptions, 'schedulerConfig'>;
  tokens?: TokenVersionSource;
  lora?: LoraVersionSource;
  events?: { bus: EventBus; subjects?: MuseumSubjects };
  maxReceiveMessageLength?: number;
}

export interface Stack {
  dir: string;
  textEncoder: TextEncoderServer;
  denoiser: DenoiserServer;
  vae: VaeDecoderServer;
  gateway: GatewayServer;
  addr: { textEncoder: string; denoiser: string; vaeDecoder: string; gateway: string };
  gatewayClient: museum.v1.GatewayServiceClient;
  health(addr: string): g.health.v1.HealthClient;
  stop(): Promise<void>;
}

let tinyDir: string | null = null;

/** One tiny pipeline folder per test file (written once). */
export function tinyModelDir(): string {
  if (!tinyDir) {
    tinyDir = fs.mkdtempSync(path.join(os.tmpdir(), 'museum-services-'));
    writeTinyPipelineFolder(path.join(tinyDir, 'model'));
  }
  return path.join(tinyDir, 'model');
}

export function removeTinyModelDir(): void {
  if (tinyDir) fs.rmSync(tinyDir, { recursive: true, force: true });
  tinyDir = null;
}

export async function startStack(o: StackOptions = {}): Promise<Stack> {
  const dir = tinyModelDir();
  const common = { loadGate: o.loadGate, maxReceiveMessageLength: o.maxReceiveMessageLength, drainGraceMs: 5000 };
  const textEncoder = new TextEncoderServer({ ...common, modelDir: dir, versions: o.tokens, events: o.events });
  const denoiser = new DenoiserServer({ ...common, modelDir: dir, versions: o.lora, events: o.events, batching: o.batching ?? { maxWaitMs: 15 } });
  const vae = new VaeDecoderServer({ ...common, modelDir: dir });
  const [tp, dp, vp] = await Promise.all([textEncoder.start(), denoiser.start(), vae.start()]);
  const addr = { textEncoder: `127.0.0.1:${tp}`, denoiser: `127.0.0.1:${dp}`, vaeDecoder: `127.0.0.1:${vp}`, gateway: '' };
  const gateway = new GatewayServer({ drainGraceMs: 5000, stages: { textEncoder: addr.textEncoder, denoiser: addr.denoiser, vaeDecoder: addr.vaeDecoder }, stagesTimeoutMs: 60_000 });
  addr.gateway = `127.0.0.1:${await gateway.start()}`;
  const gatewayClient = new museum.v1.GatewayServiceClient(addr.gateway, grpc.credentials.createInsecure());
  const healthClients: g.health.v1.HealthClient[] = [];
  return {
    dir,
    textEncoder,
    denoiser,
    vae,
    gateway,
    addr,
    gatewayClient,
    health(a: string) {
      const c = new g.health.v1.HealthClient(a, grpc.credentials.createInsecure());
      healthClients.push(c);
      return c;
    },
    async stop() {
      gatewayClient.close();
      healthClients.forEach((c) => c.close());
      await gateway.stop();
      await Promise.all([textEncoder.stop(), denoiser.stop(), vae.stop()]);
    },
  };
}

export interface Collected {
  progress: museum.v1.GenerateProgress[];
  images: museum.v1.GeneratedImage[];
}

/** Run Generate to the end, collecting its events. */
export async function collectGenerate(client: museum.v1.GatewayServiceClient, req: Partial<museum.v1.GenerateRequest>, deadlineMs = 30_000): Promise<Collected> {
  const out: Collected = { progress: [], images: [] };
  const full = museum.v1.GenerateRequest.fromPartial(req);
  for await (const msg of serverStream(client.generate.bind(client), full, { deadline: Date.now() + deadlineMs })) {
    if (msg.event?.$case === 'progress') out.progress.push(msg.event.value);
    else if (msg.event?.$case === 'image') out.images.push(msg.event.value);
  }
  return out;
}

/** The status a failing Generate ends with. */
export async function generateError(client: museum.v1.GatewayServiceClient, req: Partial<museum.v1.GenerateRequest>): Promise<grpc.ServiceError> {
  try {
    await collectGenerate(client, req);
  } catch (err) {
    return err as grpc.ServiceError;
  }
  throw new Error(`expected Generate(${JSON.stringify(req)}) to fail`);
}
