/**
 * A local Museum deployment for a load test: each service its own `museum serve` process on a
 * loopback port chosen by the OS (as in deploy/compose.yaml, minus NATS: the services poll the
 * museum store), over a model folder made for the run. Everything is stopped by `stop()`.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Museum } from '@museum/museum';
import { describeModelFolder, spawnService, writePerfModelFolder, PERF_MODEL_KINDS, type PerfModel, type PerfModelKind, type SpawnedService } from '@museum/bench';

export type Scenario = 'encode' | 'generate' | 'mixed';
export const SCENARIOS: readonly Scenario[] = ['encode', 'generate', 'mixed'];

export interface LocalStack {
  model: PerfModel;
  services: SpawnedService[];
  textEncoders: string[];
  /** One gateway per denoiser (generate, mixed). */
  gateways: string[];
  trainer?: string;
  stop(): Promise<void>;
}

export interface LocalStackOptions {
  scenario: Scenario;
  /** `tiny`, `atelier-random` or a pipeline folder. */
  model: string;
  /**
   * encode: text-encoder processes; generate/mixed: denoiser processes, each behind its own gateway
   * (grpc-js channels pick one backend per connection, so a gateway drives one denoiser; the load
   * generator spreads its workers over the gateways, as a load balancer in front of them would).
   */
  replicas?: number;
  cli?: string;
  log?: (msg: string) => void;
}

/** The `museum` launcher of this checkout (run `npm run build` first). */
export function defaultCli(): string {
  return path.resolve(__dirname, '..', '..', 'libs', 'cli', 'bin', 'museum.js');
}

export async function startLocalStack(o: LocalStackOptions): Promise<LocalStack> {
  const log = o.log ?? (() => {});
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'museum-load-'));
  const model = (PERF_MODEL_KINDS as readonly string[]).includes(o.model) ? writePerfModelFolder(o.model as PerfModelKind, path.join(tmp, 'model')) : describeModelFolder(path.resolve(o.model));
  const museumDir = path.join(tmp, 'museum');
  // create the store once here: processes starting together would race to create it
  Museum.openOrCreate(museumDir, { baseModelDir: model.dir });
  const cli = o.cli ?? defaultCli();
  if (!fs.existsSync(path.join(path.dirname(cli), '..', 'dist', 'main.js'))) throw new Error('the museum CLI is not built: run `npm run build` first');
  const services: SpawnedService[] = [];
  const spawnOne = async (name: string, args: string[] = []) => {
    const s = await spawnService(name, { cli, modelDir: model.dir, museumDir, args, log });
    services.push(s);
    return s;
  };
  const stop = async () => {
    // the gateway first, so no new work reaches the stages while they drain
    const gw = services.filter((s) => s.name === 'gateway');
    await Promise.all(gw.map((s) => s.stop()));
    await Promise.all(services.filter((s) => s.name !== 'gateway').map((s) => s.stop()));
    fs.rmSync(tmp, { recursive: true, force: true });
  };
  try {
    log(`model: ${model.description}`);
    if (o.scenario === 'encode') {
      const n = o.replicas ?? 1;
      const te = await Promise.all(Array.from({ length: n }, () => spawnOne('text-encoder')));
      return { model, services, textEncoders: te.map((s) => s.address), gateways: [], stop };
    }
    const n = o.replicas ?? 1;
    const [te, vd, tr, ...dns] = await Promise.all([
      spawnOne('text-encoder'),
      spawnOne('vae-decoder'),
      o.scenario === 'mixed' ? spawnOne('trainer') : Promise.resolve(undefined),
      ...Array.from({ length: n }, () => spawnOne('denoiser')),
    ]);
    const gws = await Promise.all(dns.map((dn) => spawnOne('gateway', ['--text-encoder', te.address, '--denoiser', dn!.address, '--vae-decoder', vd.address])));
    return { model, services, textEncoders: [te.address], gateways: gws.map((g) => g.address), trainer: tr?.address, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
