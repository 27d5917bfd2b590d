/**
 * `museum doctor`: what this machine offers Museum — tensor backend and its speed, NATS and
 * JetStream, and which parts of the Atelier model are on disk. Always exits 0: it reports
 * problems, it does not fail on them.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Command } from 'commander';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { initBackend, measureMatmulGflops } from '@museum/tensor';
import { measureRenderRate } from '@museum/world';
import { atelierDir, museumVersion } from '../paths';

export const DEFAULT_NATS_URL = 'nats://127.0.0.1:4222';

export interface NatsReport {
  url: string;
  reachable: boolean;
  server_version?: string;
  rtt_ms?: number;
  jetstream: boolean;
  jetstream_streams?: number;
  /** Why the server, or JetStream on it, is not usable. */
  error?: string;
}

export type ComponentStatus = 'present' | 'incomplete' | 'missing';

export interface ComponentReport {
  name: string;
  /** Class named in model_index.json, e.g. "UNet2DConditionModel". */
  class?: string;
  status: ComponentStatus;
  files: string[];
}

export interface ModelReport {
  dir: string;
  model_index: boolean;
  components: ComponentReport[];
  error?: string;
}

export interface DoctorReport {
  museum_version: string;
  backend: string;
  backend_package: string;
  simd: boolean;
  threads: boolean;
  /** Median GFLOP/s of a 1024x1024 float32 matMul. */
  matmul_gflops: number;
  /** Procedural-world rendering speed (images per CPU second, all styles mixed). */
  world_render_per_cpu_s: number;
  node_version: string;
  platform: string;
  cpus: number;
  nats: NatsReport;
  models: ModelReport;
}

export interface DoctorOptions {
  natsUrl?: string;
  /** Connect and JetStream timeout (ms). */
  natsTimeoutMs?: number;
  modelDir?: string;
  matmulSize?: number;
  matmulRuns?: number;
  /** Images rendered to measure the world's rendering speed. */
  renderCount?: number;
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Is a NATS server answering at `url`, and does it have JetStream? Never throws. */
export async function checkNats(url: string, timeoutMs = 2000): Promise<NatsReport> {
  let nc: Awaited<ReturnType<typeof connect>>;
  let reachable: NatsReport;
  try {
    nc = await connect({ servers: url, timeout: timeoutMs, reconnect: false, maxReconnectAttempts: 0, name: 'museum-doctor' });
    reachable = { url, reachable: true, server_version: nc.info?.version, rtt_ms: Math.round((await nc.rtt()) * 100) / 100, jetstream: false };
  } catch (err) {
    return { url, reachable: false, jetstream: false, error: message(err) };
  }
  try {
    const jsm = await jetstreamManager(nc, { timeout: timeoutMs });
    const account = await jsm.getAccountInfo();
    return { ...reachable, jetstream: true, jetstream_streams: account.streams };
  } catch (err) {
    return { ...reachable, error: `JetStream unavailable: ${message(err)}` };
  } finally {
    await nc.close().catch(() => undefined);
  }
}

/** Files directly in a folder (names only), or null when it does not exist. */
function listFiles(dir: string): string[] | null {
  try {
    return fs
      .readdirSync(dir, { withFileTypes: true })
      .filter((e) => e.isFile() && !e.name.startsWith('.'))
      .map((e) => e.name)
      .sort();
  } catch {
    return null;
  }
}

/**
 * Per component listed in model_index.json (diffusers layout: `"unet": ["museum", "UNet2DConditionModel"]`),
 * `present` when its folder has files, `incomplete` when it has a config.json but no weights, `missing`
 * when the folder is absent or empty.
 */
export function checkModels(dir: string): ModelReport {
  const report: ModelReport = { dir, model_index: false, components: [] };
  const indexPath = path.join(dir, 'model_index.json');
  if (!fs.existsSync(indexPath)) return report;
  report.model_index = true;
  let index: Record<string, unknown>;
  try {
    index = JSON.parse(fs.readFileSync(indexPath, 'utf8'));
  } catch (err) {
    report.error = `model_index.json is not valid JSON: ${message(err)}`;
    return report;
  }
  for (const [name, value] of Object.entries(index)) {
    if (name.startsWith('_') || !Array.isArray(value)) continue;
    const cls = typeof value[1] === 'string' ? value[1] : undefined;
    const files = listFiles(path.join(dir, name)) ?? [];
    let status: ComponentStatus = files.length > 0 ? 'present' : 'missing';
    const hasWeights = files.some((f) => f.endsWith('.safetensors') || f.endsWith('.bin'));
    if (status === 'present' && files.includes('config.json') && !hasWeights) status = 'incomplete';
    report.components.push({ name, ...(cls ? { class: cls } : {}), status, files });
  }
  return report;
}

/** Gather the whole report (initialises the tensor backend). */
export async function runDoctor(options: DoctorOptions = {}): Promise<DoctorReport> {
  const natsUrl = options.natsUrl ?? process.env.NATS_URL ?? DEFAULT_NATS_URL;
  const backend = await initBackend({ log: () => {} });
  // Synchronous and CPU-bound: run it before the NATS probe so it cannot eat the probe's timeout.
  const gflops = measureMatmulGflops({ size: options.matmulSize ?? 1024, runs: options.matmulRuns ?? 5 });
  const renderRate = measureRenderRate({ count: options.renderCount ?? 2000 });
  const nats = await checkNats(natsUrl, options.natsTimeoutMs ?? 2000);
  return {
    museum_version: museumVersion(),
    backend: backend.name,
    backend_package: backend.package,
    simd: backend.simd,
    threads: backend.threads,
    matmul_gflops: Math.round(gflops * 100) / 100,
    world_render_per_cpu_s: Math.round(renderRate),
    node_version: process.version,
    platform: `${process.platform}-${process.arch}`,
    cpus: os.availableParallelism?.() ?? os.cpus().length,
    nats,
    models: checkModels(options.modelDir ?? atelierDir()),
  };
}

const yesNo = (b: boolean): string => (b ? 'yes' : 'no');

/** The report for people. */
export function formatDoctor(r: DoctorReport): string {
  const lines = [`museum ${r.museum_version} doctor`];
  const row = (label: string, text: string) => lines.push(`  ${label.padEnd(9)} ${text}`);
  row('node', `${r.node_version} (${r.platform}), ${r.cpus} cpu${r.cpus === 1 ? '' : 's'}`);
  row('backend', `${r.backend} (${r.backend_package}), simd ${yesNo(r.simd)}, threads ${yesNo(r.threads)}`);
  row('matmul', `${r.matmul_gflops.toFixed(1)} GFLOP/s (1024x1024 float32, median)`);
  row('world', `${r.world_render_per_cpu_s} images per CPU second (procedural renderer, all styles)`);
  const n = r.nats;
  if (!n.reachable) row('nats', `UNREACHABLE at ${n.url}: ${n.error ?? 'no answer'}`);
  else {
    row('nats', `ok at ${n.url} (server ${n.server_version ?? '?'}, rtt ${n.rtt_ms ?? '?'} ms)`);
    row('jetstream', n.jetstream ? `ok (${n.jetstream_streams ?? 0} streams)` : `UNAVAILABLE: ${n.error ?? ''}`);
  }
  const m = r.models;
  if (!m.model_index) row('models', `no model at ${m.dir} (model_index.json missing)`);
  else if (m.error) row('models', `${m.dir}: ${m.error}`);
  else {
    row('models', `${m.dir}`);
    for (const c of m.components) lines.push(`    ${c.name.padEnd(14)} ${c.status}${c.class ? ` (${c.class})` : ''}`);
  }
  return lines.join('\n');
}

export function registerDoctor(program: Command): void {
  program
    .command('doctor')
    .description('check the tensor backend, NATS/JetStream and the model files on this machine')
    .option('--json', 'print the report as JSON')
    .option('--nats <url>', 'NATS server to probe (default: $NATS_URL or nats://127.0.0.1:4222)')
    .action(async (opts: { json?: boolean; nats?: string }) => {
      const report = await runDoctor({ natsUrl: opts.nats });
      process.stdout.write((opts.json ? JSON.stringify(report, null, 2) : formatDoctor(report)) + '\n');
    });
}
