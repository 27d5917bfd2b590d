/**
 * Run one Museum service in a child process with `museum serve` (the way a deployment runs it),
 * on a loopback port chosen by the OS, and wait until its health says SERVING. Used by the
 * performance benchmark (denoiser replicas) and the load tests (the whole stack).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as readline from 'node:readline';
import * as grpc from '@grpc/grpc-js';
import { grpc as g } from '@museum/proto';

export interface SpawnedService {
  name: string;
  address: string;
  pid: number;
  child: ChildProcess;
  /** CPU seconds (user + system) the process has used so far (Linux /proc; NaN elsewhere). */
  cpuSeconds(): number;
  /** SIGTERM (drain), then SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

export interface SpawnServiceOptions {
  /** The `museum` launcher (libs/cli/bin/museum.js). */
  cli: string;
  modelDir: string;
  museumDir: string;
  /** Extra `museum serve` arguments (e.g. the gateway's stage addresses). */
  args?: string[];
  env?: NodeJS.ProcessEnv;
  readyTimeoutMs?: number;
  log?: (msg: string) => void;
}

/** Loopback addresses only: this machine's tests and benchmarks never send traffic elsewhere. */
export function isLoopbackAddress(address: string): boolean {
  let host = address.replace(/^(dns|ipv4|ipv6):(\/\/\/)?/, '');
  if (host.startsWith('[')) host = host.slice(1, host.indexOf(']'));
  else if ((host.match(/:/g) ?? []).length === 1) host = host.slice(0, host.indexOf(':'));
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

export function assertLoopback(address: string): void {
  if (!isLoopbackAddress(address)) throw new Error(`${address} is not a loopback address: load is only ever sent to 127.0.0.0/8, localhost or [::1]`);
}

function procCpuSeconds(pid: number): number {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[11], [12] are utime and stime (fields 14 and 15 of proc(5)), in clock ticks (100 Hz on Linux)
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return NaN;
  }
}

/** CPU seconds of this process (user + system). */
export function selfCpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/** Poll grpc.health.v1 ("" = the whole server) until SERVING. */
export async function waitServing(address: string, timeoutMs: number, isAlive: () => boolean = () => true): Promise<void> {
  const client = new g.health.v1.HealthClient(address, grpc.credentials.createInsecure());
  const until = Date.now() + timeoutMs;
  try {
    for (;;) {
      const st = await new Promise<number | null>((resolve) => client.check({ service: '' }, new grpc.Metadata(), { deadline: Date.now() + 2000 }, (err, res) => resolve(err ? null : res.status)));
      if (st === g.health.v1.HealthCheckResponse_ServingStatus.SERVING) return;
      if (!isAlive()) throw new Error(`the service at ${address} exited before it was SERVING`);
      if (Date.now() > until) throw new Error(`the service at ${address} was not SERVING within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    client.close();
  }
}

/** `museum serve --service NAME --port 0 ...` in a child process; resolves once it is SERVING. */
export async function spawnService(name: string, o: SpawnServiceOptions): Promise<SpawnedService> {
  const env = { ...process.env, ...o.env };
  // self-contained: no NATS (the services poll the museum store instead), no inherited model paths
  delete env.NATS_URL;
  const args = [o.cli, 'serve', '--service', name, '--port', '0', '--host', '127.0.0.1', '--model', o.modelDir, '--museum-dir', o.museumDir, ...(o.args ?? [])];
  const child = spawn(process.execPath, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let exited = false;
  let stderrTail = '';
  child.on('exit', () => (exited = true));
  child.stderr!.on('data', (d: Buffer) => {
    stderrTail = (stderrTail + d.toString()).slice(-4000);
  });
  const address = await new Promise<string>((resolve, reject) => {
    const rl = readline.createInterface({ input: child.stdout! });
    const timer = setTimeout(() => reject(new Error(`${name}: no address printed within 60 s\n${stderrTail}`)), 60_000);
    rl.on('line', (line) => {
      const m = new RegExp(`^\\s*${name}\\s+(\\S+)\\s*$`).exec(line);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited with ${code} before binding\n${stderrTail}`));
    });
  });
  assertLoopback(address);
  const stop = (graceMs = 10_000) =>
    new Promise<void>((resolve) => {
      if (exited) return resolve();
      const kill = setTimeout(() => child.kill('SIGKILL'), graceMs);
      child.once('exit', () => {
        clearTimeout(kill);
        resolve();
      });
      child.kill('SIGTERM');
    });
  try {
    await waitServing(address, o.readyTimeoutMs ?? 180_000, () => !exited);
  } catch (err) {
    await stop(1000);
    throw new Error(`${(err as Error).message}\n${stderrTail}`);
  }
  o.log?.(`${name} (pid ${child.pid}) SERVING at ${address}`);
  return { name, address, pid: child.pid!, child, cpuSeconds: () => procCpuSeconds(child.pid!), stop };
}
