/**
 * `museum start`: the all-in-one default. Every service (gateway, text encoder, denoiser, VAE
 * decoder, trainer) in this one process, each on its own loopback port, talking to each other over
 * gRPC exactly as they do when deployed apart; the bundled Atelier model; the filesystem museum
 * store; NATS JetStream for events when NATS_URL is set, else an in-process bus.
 *
 * The wiring here (config from flags and environment, building one service) is shared with
 * `museum serve`, which runs a single service.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { Museum } from '@museum/museum';
import { DEFAULT_MAX_MESSAGE_BYTES, eventBusFromEnv, initTracingFromEnv, museumSubjects, type EventBus, type ManagedService } from '@museum/rpc';
import { TextEncoderServer, museumTokenSource } from '@museum/text-encoder';
import { DenoiserServer, museumLoraSource } from '@museum/denoiser';
import { VaeDecoderServer } from '@museum/vae-decoder';
import { TrainerServer } from '@museum/trainer';
import { GatewayServer } from '@museum/gateway';
import { atelierDir, findRepoRoot } from '../paths';

export const SERVICE_NAMES = ['gateway', 'text-encoder', 'denoiser', 'vae-decoder', 'trainer'] as const;
export type ServiceName = (typeof SERVICE_NAMES)[number];

/** Default ports of `museum start` (the gateway on gRPC's customary 50051, the stages after it). */
export const DEFAULT_PORT_BASE = 50051;
const PORT_OFFSET: Record<ServiceName, number> = { gateway: 0, 'text-encoder': 1, denoiser: 2, 'vae-decoder': 3, trainer: 4 };

/** The museum store folder: $MUSEUM_DIR, else `<repo>/museum-data`. */
export function museumDataDir(env: NodeJS.ProcessEnv = process.env, root: string = findRepoRoot()): string {
  return path.resolve(env.MUSEUM_DIR || path.join(root, 'museum-data'));
}

/** Throws, saying how to get one, when `dir` holds no pipeline folder. */
export function requireModelFolder(dir: string): void {
  if (fs.existsSync(path.join(dir, 'model_index.json'))) return;
  throw new Error(
    `no model at ${dir} (model_index.json missing).\n` +
      '  Make the bundled Atelier model with `npx museum pretrain` (it trains on the procedural world and writes models/atelier),\n' +
      '  or pass --model DIR (or set MUSEUM_MODEL_DIR) to a diffusers Stable Diffusion 1.x folder.',
  );
}

export interface ServiceWiring {
  modelDir: string;
  museumDir: string;
  host: string;
  /** Message-size limit of every server and client, bytes. */
  maxMessageBytes: number;
  log: (msg: string) => void;
  bus: EventBus;
  /** The opened museum store (one per process). */
  museum: Museum;
  /** Ask the museum for new versions this often when events cannot reach the service (ms; 0 = never). */
  versionPollMs: number;
}

/** Build (not start) one service. */
export function buildService(name: ServiceName, port: number, w: ServiceWiring, stages?: { textEncoder: string; denoiser: string; vaeDecoder: string }): ManagedService {
  const common = { host: w.host, port, log: w.log, maxReceiveMessageLength: w.maxMessageBytes, maxSendMessageLength: w.maxMessageBytes };
  const events = { bus: w.bus, subjects: museumSubjects() };
  switch (name) {
    case 'text-encoder':
      return new TextEncoderServer({ ...common, modelDir: w.modelDir, versions: museumTokenSource(w.museum), events, versionPollMs: w.versionPollMs });
    case 'denoiser':
      return new DenoiserServer({ ...common, modelDir: w.modelDir, versions: museumLoraSource(w.museum), events, versionPollMs: w.versionPollMs });
    case 'vae-decoder':
      return new VaeDecoderServer({ ...common, modelDir: w.modelDir });
    case 'trainer':
      return new TrainerServer({ ...common, modelDir: w.modelDir, museumDir: w.museumDir, museum: w.museum, events });
    case 'gateway':
      if (!stages) throw new Error('the gateway needs the addresses of the text encoder, denoiser and VAE decoder');
      return new GatewayServer({ ...common, stages, channel: { maxReceiveMessageLength: w.maxMessageBytes, maxSendMessageLength: w.maxMessageBytes } });
  }
}

export interface CommonOpts {
  model?: string;
  museumDir?: string;
  host: string;
  maxMessageMb: string;
}

/** Model, museum, events: what every service of this process shares. */
export async function openWiring(o: CommonOpts, log: (msg: string) => void, env: NodeJS.ProcessEnv = process.env, needsModel = true): Promise<ServiceWiring> {
  const modelDir = path.resolve(o.model ?? atelierDir(env));
  if (needsModel) requireModelFolder(modelDir);
  const museumDir = path.resolve(o.museumDir ?? museumDataDir(env));
  const mb = Number(o.maxMessageMb);
  if (!Number.isFinite(mb) || mb <= 0) throw new InvalidArgumentError('--max-message-mb must be a positive number');
  const museum = Museum.openOrCreate(museumDir, { baseModelDir: modelDir });
  log(`model ${modelDir}`);
  log(`museum ${museumDir} (latest version ${museum.latestVersion()})`);
  const bus = await eventBusFromEnv({ env, log });
  return { modelDir, museumDir, host: o.host, maxMessageBytes: Math.round(mb * 1024 * 1024), log, bus, museum, versionPollMs: bus.kind === 'nats' ? 0 : 5000 };
}

export interface RunningStack {
  services: Map<ServiceName, ManagedService>;
  addresses: Record<ServiceName, string>;
  ready: Promise<void>;
  stop(): Promise<void>;
}

export interface StartOpts extends CommonOpts {
  portBase: string;
}

/** Start every service in this process; resolves once they are bound (`ready` once all are SERVING). */
export async function startAll(o: StartOpts, log: (msg: string) => void, env: NodeJS.ProcessEnv = process.env): Promise<RunningStack> {
  const base = Number(o.portBase);
  if (!Number.isInteger(base) || base < 0 || base > 65535 - 4) throw new InvalidArgumentError('--port-base must be 0 (OS-assigned ports) or a port number');
  const w = await openWiring(o, log, env);
  // OTLP traces and metrics when OTEL_EXPORTER_OTLP_ENDPOINT is set (one resource for the whole process)
  const telemetry = initTracingFromEnv({ serviceName: 'museum', env });
  log(telemetry.description);
  // in one process the in-process bus reaches every service: no need to poll the museum
  w.versionPollMs = 0;
  const portOf = (n: ServiceName) => (base === 0 ? 0 : base + PORT_OFFSET[n]);
  const services = new Map<ServiceName, ManagedService>();
  const addresses = {} as Record<ServiceName, string>;
  const addr = (port: number) => (w.host.includes(':') ? `[${w.host}]:${port}` : `${w.host}:${port}`);
  try {
    for (const n of ['text-encoder', 'denoiser', 'vae-decoder', 'trainer'] as const) {
      const s = buildService(n, portOf(n), w);
      services.set(n, s);
      addresses[n] = addr(await s.start());
    }
    const gw = buildService('gateway', portOf('gateway'), w, { textEncoder: addresses['text-encoder'], denoiser: addresses.denoiser, vaeDecoder: addresses['vae-decoder'] });
    services.set('gateway', gw);
    addresses.gateway = addr(await gw.start());
  } catch (err) {
    await Promise.all([...services.values()].map((s) => s.stop(1000).catch(() => {})));
    await w.bus.close();
    await telemetry.shutdown();
    throw err;
  }
  let stopping: Promise<void> | null = null;
  return {
    services,
    addresses,
    ready: Promise.all([...services.values()].map((s) => s.ready)).then(() => {}),
    stop: () => {
      if (!stopping) {
        stopping = (async () => {
          // the gateway first, so no new work reaches the stages while they drain
          await services.get('gateway')?.stop();
          await Promise.all([...services.entries()].filter(([n]) => n !== 'gateway').map(([, s]) => s.stop()));
          await w.bus.close();
          await telemetry.shutdown();
        })();
      }
      return stopping;
    },
  };
}

/** Stop gracefully on SIGINT/SIGTERM (a second signal exits at once). */
export function stopOnSignals(stop: () => Promise<void>, log: (msg: string) => void): void {
  let signalled = false;
  const onSignal = (sig: NodeJS.Signals) => {
    if (signalled) process.exit(130);
    signalled = true;
    log(`${sig}: draining (finishing in-flight requests; ${sig} again to exit at once)`);
    stop().then(
      () => process.exit(0),
      (err: unknown) => {
        log(`shutdown failed: ${err instanceof Error ? err.message : String(err)}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}

export function addCommonOptions(cmd: Command): Command {
  return cmd
    .option('--model <dir>', 'diffusers pipeline folder (default: the bundled Atelier model, models/atelier, or $MUSEUM_MODEL_DIR)')
    .option('--museum-dir <dir>', 'museum store folder (default: $MUSEUM_DIR or <repo>/museum-data)')
    .option('--host <address>', 'address to bind', '127.0.0.1')
    .option('--max-message-mb <n>', 'largest gRPC message accepted or sent, in MiB (larger ones are refused before decoding)', String(DEFAULT_MAX_MESSAGE_BYTES / 1024 / 1024));
}

export function registerStart(program: Command): void {
  addCommonOptions(
    program
      .command('start')
      .description('run every service in one process on loopback ports (gateway, text encoder, denoiser, VAE decoder, trainer)')
      .option('--port-base <n>', `gateway port; the others follow it (0: ports chosen by the OS)`, String(DEFAULT_PORT_BASE)),
  ).action(async (o: StartOpts) => {
    const log = (m: string) => process.stderr.write(`museum: ${m}\n`);
    const t0 = Date.now();
    const stack = await startAll(o, log);
    stopOnSignals(stack.stop, log);
    const width = Math.max(...SERVICE_NAMES.map((n) => n.length));
    for (const n of SERVICE_NAMES) process.stdout.write(`  ${n.padEnd(width)}  ${stack.addresses[n]}\n`);
    log('loading weights (health answers NOT_SERVING until then)');
    try {
      await stack.ready;
    } catch (err) {
      await stack.stop().catch(() => {});
      throw err;
    }
    log(`ready in ${((Date.now() - t0) / 1000).toFixed(1)} s: generate through the gateway at ${stack.addresses.gateway} (Ctrl-C drains and stops)`);
  });
}
