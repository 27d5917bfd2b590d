/**
 * `museum bench perf`: what splitting the model into gRPC services costs and what it buys, each
 * figure a ratio measured in one run on one machine.
 *
 *   split_vs_inprocess       end-to-end Generate latency through the gateway and the three stage
 *                            services over loopback gRPC (all in this process, as `museum start`
 *                            runs them) ÷ the same pipeline called in one process (prompt → PNG).
 *                            Runs alternate A/B so drifting machine load hits both. Target ≤ 1.05.
 *   batching_speedup         Denoise throughput at concurrency 8 with the step-level batcher ÷ the
 *                            same server with batching off (one request per UNet call). Target ≥ 1.5.
 *   replica_scaling          Denoise throughput of two denoiser replicas (two `museum serve`
 *                            processes, 8 calls in flight each) ÷ one replica (8 in flight).
 *                            Target ≥ 1.7 (two cores).
 *   unet_matmul_share        the UNet forward's achieved GFLOP/s (analytic FLOPs of the model
 *                            benchmark's countUNetFlops ÷ median time) ÷ the backend's 1024³ matMul
 *                            GFLOP/s: how much of the machine's matmul speed the model reaches.
 *   learn_seconds_by_images  learnStyle (short step budget) with 1, 4, 8, 16 images: seconds,
 *                            seconds per step, and how the time grows with the image count.
 *
 * Every timing is also given in process CPU seconds where that is meaningful (the split/in-process
 * and batching figures run in this one process), since the machine may be shared with other jobs:
 * wall-time ratios then move, CPU-time ratios much less. `machine.loadavg_*` says how busy it was.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { encodePng, measureMatmulGflops, tf } from '@museum/tensor';
import * as models from '@museum/models';
import { StableDiffusionPipeline, type UNet2DConditionModel } from '@museum/models';
import { museum, tensorToProto } from '@museum/proto';
import { serverStream } from '@museum/rpc';
import { TextEncoderServer } from '@museum/text-encoder';
import { DenoiserServer, type BatcherOptions } from '@museum/denoiser';
import { VaeDecoderServer } from '@museum/vae-decoder';
import { GatewayServer } from '@museum/gateway';
import { Museum, learnStyle } from '@museum/museum';
import { stylePngs, type PerfModel } from './perf_models';
import { selfCpuSeconds, spawnService, type SpawnedService } from './perf_spawn';

export const PERF_SECTIONS = ['split', 'batching', 'replicas', 'unet', 'learn'] as const;
export type PerfSection = (typeof PERF_SECTIONS)[number];

export interface PerfBenchOptions {
  /** Model of the generation figures. */
  model: PerfModel;
  /** Model learnStyle trains on (default: `model`). */
  learnModel?: PerfModel;
  quick?: boolean;
  sections?: readonly PerfSection[];
  /** Sampler steps of a generation / Denoise call (default 4 quick, 10 full). */
  steps?: number;
  guidance?: number;
  /** Timed generations per side of split_vs_inprocess (default 3 quick, 8 full). */
  runs?: number;
  /** Calls in flight of the throughput figures (default 8). */
  concurrency?: number;
  /** Denoise calls per throughput measurement (default 2 × concurrency quick, 4 × full). */
  requests?: number;
  /** The batcher with batching on (default: a batch holds every request in flight, 2 rows each). */
  batching?: Omit<BatcherOptions, 'schedulerConfig'>;
  /** The `museum` launcher (libs/cli/bin/museum.js) for the replica processes; without it replica_scaling is skipped. */
  cli?: string;
  learnImageCounts?: number[];
  /** Optimiser steps of each learnStyle run (default 2 quick, 4 full). */
  learnSteps?: number;
  log?: (msg: string) => void;
}

const round = (x: number, d = 3) => (Number.isFinite(x) ? Number(x.toFixed(d)) : x);

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const n = s.length;
  return n === 0 ? NaN : n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

interface Timed {
  wall: number;
  cpu: number;
}

async function timed(fn: () => Promise<unknown>): Promise<Timed> {
  const c0 = selfCpuSeconds();
  const t0 = performance.now();
  await fn();
  return { wall: (performance.now() - t0) / 1000, cpu: selfCpuSeconds() - c0 };
}

/** `total` calls with `concurrency` in flight (closed loop); wall seconds from the first start to the last end. */
export async function closedLoop(concurrency: number, total: number, call: (i: number, worker: number) => Promise<void>): Promise<number> {
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: Math.min(concurrency, total) }, async (_, w) => {
      while (next < total) await call(next++, w);
    }),
  );
  return (performance.now() - t0) / 1000;
}

function machine(): Record<string, unknown> {
  return { cores: os.cpus().length, cpu_model: os.cpus()[0]?.model ?? 'unknown', loadavg: os.loadavg().map((x) => round(x, 2)), node: process.version };
}

const creds = () => grpc.credentials.createInsecure();

/** A Denoise call over gRPC that waits for the final latents. */
function denoiseCall(client: museum.v1.DenoiserServiceClient, req: museum.v1.DenoiseRequest): Promise<void> {
  return (async () => {
    let done = false;
    for await (const m of serverStream(client.denoise.bind(client), req, { deadline: Date.now() + 600_000 })) if (m.event?.$case === 'result') done = true;
    if (!done) throw new Error('Denoise ended without a result');
  })();
}

interface Settings {
  steps: number;
  guidance: number;
  runs: number;
  concurrency: number;
  requests: number;
  prompt: string;
}

// ---------------------------------------------------------------------------------------------
// split vs in-process

async function splitVsInprocess(model: PerfModel, s: Settings, log: (m: string) => void): Promise<Record<string, unknown>> {
  const pipe = StableDiffusionPipeline.fromPretrained(model.dir);
  const te = new TextEncoderServer({ modelDir: model.dir });
  const dn = new DenoiserServer({ modelDir: model.dir });
  const vd = new VaeDecoderServer({ modelDir: model.dir });
  let gw: GatewayServer | null = null;
  let client: museum.v1.GatewayServiceClient | null = null;
  try {
    const [tp, dp, vp] = await Promise.all([te.start(), dn.start(), vd.start()]);
    gw = new GatewayServer({ stages: { textEncoder: `127.0.0.1:${tp}`, denoiser: `127.0.0.1:${dp}`, vaeDecoder: `127.0.0.1:${vp}` } });
    const gp = await gw.start();
    await Promise.all([te.ready, dn.ready, vd.ready, gw.ready]);
    client = new museum.v1.GatewayServiceClient(`127.0.0.1:${gp}`, creds(), { 'grpc.max_receive_message_length': 64 * 1024 * 1024 });
    const c = client;
    const inprocess = async (seed: number): Promise<Buffer> => {
      const img = await pipe.generate({ prompt: s.prompt, seed, steps: s.steps, guidance: s.guidance, sampler: 'ddim' });
      try {
        return await encodePng(img, { range: '0,1' });
      } finally {
        img.dispose();
      }
    };
    const split = async (seed: number): Promise<Buffer> => {
      const req = museum.v1.GenerateRequest.fromPartial({ prompt: s.prompt, seed, steps: s.steps, guidance: s.guidance, sampler: museum.v1.Sampler.SAMPLER_DDIM });
      let png: Buffer | null = null;
      for await (const m of serverStream(c.generate.bind(c), req, { deadline: Date.now() + 600_000 })) if (m.event?.$case === 'image') png = Buffer.from(m.event.value.png);
      if (!png) throw new Error('Generate ended without an image');
      return png;
    };
    // warm-up (first calls compile kernels and grow the heap), and the same-image check
    const a = await inprocess(1);
    const b = await split(1);
    const samePng = a.equals(b);
    const tin: Timed[] = [];
    const tsp: Timed[] = [];
    for (let r = 0; r < s.runs; r++) {
      // alternate which goes first, so a trend in machine load hits both sides alike
      if (r % 2 === 0) {
        tin.push(await timed(() => inprocess(100 + r)));
        tsp.push(await timed(() => split(100 + r)));
      } else {
        tsp.push(await timed(() => split(100 + r)));
        tin.push(await timed(() => inprocess(100 + r)));
      }
      log(`split_vs_inprocess run ${r + 1}/${s.runs}: in-process ${tin[r].wall.toFixed(3)} s, split ${tsp[r].wall.toFixed(3)} s`);
    }
    const wIn = median(tin.map((x) => x.wall));
    const wSp = median(tsp.map((x) => x.wall));
    const cIn = median(tin.map((x) => x.cpu));
    const cSp = median(tsp.map((x) => x.cpu));
    return {
      value: round(wSp / wIn),
      target: '<= 1.05',
      meets_target: wSp / wIn <= 1.05,
      split_median_s: round(wSp),
      inprocess_median_s: round(wIn),
      split_s: tsp.map((x) => round(x.wall)),
      inprocess_s: tin.map((x) => round(x.wall)),
      cpu_ratio: round(cSp / cIn),
      split_cpu_median_s: round(cSp),
      inprocess_cpu_median_s: round(cIn),
      same_png: samePng,
      runs: s.runs,
      how: 'one Generate at a time (prompt to PNG, DDIM, CFG): gateway + text-encoder + denoiser (default batcher, 10 ms idle wait) + vae-decoder in this process over loopback gRPC (the `museum start` layout), vs StableDiffusionPipeline.generate + PNG encoding; medians of alternating runs after one warm-up each',
    };
  } finally {
    client?.close();
    await gw?.stop(1000);
    await Promise.all([te.stop(1000), dn.stop(1000), vd.stop(1000)]);
    pipe.dispose();
  }
}

// ---------------------------------------------------------------------------------------------
// denoise throughput (batching and replicas)

interface DenoiseWorkload {
  requests: (seed: number) => museum.v1.DenoiseRequest;
  dispose(): void;
}

/** Denoise requests with real prompt embeddings of the model (computed once, in process). */
function denoiseWorkload(model: PerfModel, s: Settings): DenoiseWorkload {
  const pipe = StableDiffusionPipeline.fromPretrained(model.dir);
  try {
    const { embeddings, negativeEmbeddings } = pipe.encodePrompt(s.prompt, '');
    const emb = tensorToProto(embeddings);
    const neg = tensorToProto(negativeEmbeddings);
    embeddings.dispose();
    negativeEmbeddings.dispose();
    return {
      requests: (seed) => museum.v1.DenoiseRequest.fromPartial({ embeddings: emb, negativeEmbeddings: neg, seed, steps: s.steps, guidance: s.guidance, sampler: museum.v1.Sampler.SAMPLER_DDIM }),
      dispose: () => {},
    };
  } finally {
    pipe.dispose();
  }
}

async function throughput(clients: museum.v1.DenoiserServiceClient[], w: DenoiseWorkload, concurrencyPerClient: number, total: number, seed0: number): Promise<Timed & { rps: number }> {
  let wall = 0;
  const c0 = selfCpuSeconds();
  wall = await closedLoop(concurrencyPerClient * clients.length, total, (i, worker) => denoiseCall(clients[worker % clients.length], w.requests(seed0 + i)));
  return { wall, cpu: selfCpuSeconds() - c0, rps: total / wall };
}

async function batchingSpeedup(model: PerfModel, s: Settings, batching: Omit<BatcherOptions, 'schedulerConfig'>, quick: boolean, log: (m: string) => void): Promise<Record<string, unknown>> {
  const w = denoiseWorkload(model, s);
  const on = new DenoiserServer({ modelDir: model.dir, batching });
  const off = new DenoiserServer({ modelDir: model.dir, batching: { maxBatchRows: 1, maxWaitMs: 0 } });
  const clients: museum.v1.DenoiserServiceClient[] = [];
  try {
    const [pOn, pOff] = await Promise.all([on.start(), off.start()]);
    await Promise.all([on.ready, off.ready]);
    const cOn = new museum.v1.DenoiserServiceClient(`127.0.0.1:${pOn}`, creds());
    const cOff = new museum.v1.DenoiserServiceClient(`127.0.0.1:${pOff}`, creds());
    clients.push(cOn, cOff);
    // warm-up both at the batch sizes they will see
    await throughput([cOn], w, s.concurrency, s.concurrency, 1);
    await throughput([cOff], w, s.concurrency, s.concurrency, 1);
    const rounds = quick ? 1 : 2;
    const withB: Array<Timed & { rps: number }> = [];
    const without: Array<Timed & { rps: number }> = [];
    for (let r = 0; r < rounds; r++) {
      const first = r % 2 === 0;
      if (first) withB.push(await throughput([cOn], w, s.concurrency, s.requests, 1000));
      without.push(await throughput([cOff], w, s.concurrency, s.requests, 1000));
      if (!first) withB.push(await throughput([cOn], w, s.concurrency, s.requests, 1000));
      log(`batching round ${r + 1}/${rounds}: with ${withB[r].rps.toFixed(2)} calls/s, without ${without[r].rps.toFixed(2)} calls/s`);
    }
    const sum = (xs: Array<Timed & { rps: number }>) => ({ wall: xs.reduce((a, x) => a + x.wall, 0), cpu: xs.reduce((a, x) => a + x.cpu, 0) });
    const a = sum(withB);
    const b = sum(without);
    const n = s.requests * rounds;
    const stats = on.batcher.stats;
    const ratio = n / a.wall / (n / b.wall);
    return {
      value: round(ratio),
      target: '>= 1.5',
      meets_target: ratio >= 1.5,
      with_batching_rps: round(n / a.wall),
      without_batching_rps: round(n / b.wall),
      cpu_ratio: round(b.cpu / a.cpu),
      concurrency: s.concurrency,
      requests_per_side: n,
      batcher: { ...batching, mean_rows_per_unet_call: round(stats.unetRows / Math.max(1, stats.unetCalls), 2), max_requests_per_call: stats.maxJobsPerCall },
      how: `Denoise calls (${s.steps} DDIM steps, guidance ${s.guidance}: 2 UNet rows per call) with ${s.concurrency} in flight against one in-process DenoiserServer with the batcher as given vs one with maxBatchRows 1 (each UNet call serves one request); the client runs in the same process`,
    };
  } finally {
    clients.forEach((c) => c.close());
    await Promise.all([on.stop(1000), off.stop(1000)]);
    w.dispose();
  }
}

async function replicaScaling(model: PerfModel, s: Settings, cli: string, log: (m: string) => void): Promise<Record<string, unknown>> {
  const w = denoiseWorkload(model, s);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'museum-perf-replicas-'));
  const replicas: SpawnedService[] = [];
  const clients: museum.v1.DenoiserServiceClient[] = [];
  try {
    for (let i = 0; i < 2; i++) replicas.push(await spawnService('denoiser', { cli, modelDir: model.dir, museumDir: path.join(tmp, 'museum'), log }));
    for (const r of replicas) clients.push(new museum.v1.DenoiserServiceClient(r.address, creds()));
    const busy = async (fn: () => Promise<Timed & { rps: number }>) => {
      const c0 = replicas.map((r) => r.cpuSeconds());
      const res = await fn();
      const cores = replicas.map((r, i) => round((r.cpuSeconds() - c0[i]) / res.wall, 2));
      return { ...res, cores };
    };
    // warm-up each replica
    await throughput([clients[0]], w, s.concurrency, s.concurrency, 1);
    await throughput([clients[1]], w, s.concurrency, s.concurrency, 1);
    const one = await busy(() => throughput([clients[0]], w, s.concurrency, s.requests, 1000));
    log(`replicas: one ${one.rps.toFixed(2)} calls/s (cores busy ${one.cores.join(', ')})`);
    const two = await busy(() => throughput(clients, w, s.concurrency, 2 * s.requests, 1000));
    log(`replicas: two ${two.rps.toFixed(2)} calls/s (cores busy ${two.cores.join(', ')})`);
    const ratio = two.rps / one.rps;
    // throughput per core the replicas actually got: separates "the replicas interfere" from "the machine was busy"
    const cores1 = one.cores.reduce((a, b) => a + b, 0);
    const cores2 = two.cores.reduce((a, b) => a + b, 0);
    const perCore = two.rps / cores2 / (one.rps / cores1);
    return {
      value: round(ratio),
      target: '>= 1.7',
      meets_target: ratio >= 1.7,
      one_replica_rps: round(one.rps),
      two_replicas_rps: round(two.rps),
      replica_cores_busy: { one: one.cores, two: two.cores },
      per_core_efficiency: round(perCore),
      projected_ratio_with_two_free_cores: round(Math.min(2, 2 * perCore)),
      note: 'value is wall-time throughput; when the machine is shared the replicas get less than a core each (replica_cores_busy) and value measures the machine, not the service. per_core_efficiency = (calls per replica-CPU-second with two) ÷ (with one); the projection assumes each replica gets a whole core',
      concurrency_per_replica: s.concurrency,
      requests: { one: s.requests, two: 2 * s.requests },
      how: 'two `museum serve --service denoiser` processes (default batcher) on loopback; the client (this process) keeps the same number of Denoise calls in flight on each replica it loads',
    };
  } finally {
    clients.forEach((c) => c.close());
    await Promise.all(replicas.map((r) => r.stop()));
    fs.rmSync(tmp, { recursive: true, force: true });
    w.dispose();
  }
}

// ---------------------------------------------------------------------------------------------
// UNet GFLOP/s vs matmul GFLOP/s

type FlopCounter = (unet: UNet2DConditionModel, input: { batch: number; height: number; width: number; textLength: number }) => { total: number };

/** Median GFLOP/s of a 1024³ float32 matMul in process CPU time (robust to other jobs on the machine). */
function matmulGflopsCpu(runs: number, size = 1024): number {
  const a = tf.randomUniform([size, size], -1, 1, 'float32', 3);
  const b = tf.randomUniform([size, size], -1, 1, 'float32', 4);
  const times: number[] = [];
  try {
    for (let i = 0; i <= runs; i++) {
      const c0 = selfCpuSeconds();
      const c = tf.matMul(a, b);
      const one = tf.slice(c, [0, 0], [1, 1]);
      one.dataSync();
      if (i > 0) times.push(selfCpuSeconds() - c0);
      tf.dispose([c, one]);
    }
  } finally {
    tf.dispose([a, b]);
  }
  return (2 * size ** 3) / median(times) / 1e9;
}

/**
 * The model benchmark's analytic FLOP counter: from @museum/models when it exports it, else from its
 * built module (libs/models/dist/bench/flops.js, present after `npm run build`); undefined otherwise.
 */
function flopCounter(): FlopCounter | undefined {
  const exported = (models as unknown as { countUNetFlops?: FlopCounter }).countUNetFlops;
  if (exported) return exported;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return (require('@museum/models/dist/bench/flops') as { countUNetFlops?: FlopCounter }).countUNetFlops;
  } catch {
    return undefined;
  }
}

async function unetMatmulShare(model: PerfModel, s: Settings, quick: boolean, log: (m: string) => void): Promise<Record<string, unknown>> {
  const count = flopCounter();
  const pipe = StableDiffusionPipeline.fromPretrained(model.dir);
  try {
    const unet = pipe.unet as unknown as UNet2DConditionModel;
    const { embeddings, negativeEmbeddings } = pipe.encodePrompt(s.prompt, '');
    const ctx = tf.concat([negativeEmbeddings, embeddings], 0);
    embeddings.dispose();
    negativeEmbeddings.dispose();
    const latent = unet.config.sample_size ?? 64;
    const sample = tf.randomNormal([2, latent, latent, unet.config.in_channels], 0, 1, 'float32', 1);
    const t = tf.tensor1d([500, 500], 'int32');
    const forward = (): Timed => {
      const c0 = selfCpuSeconds();
      const t0 = performance.now();
      const out = unet.forward(sample, t, ctx);
      out.dataSync();
      const r = { wall: (performance.now() - t0) / 1000, cpu: selfCpuSeconds() - c0 };
      out.dispose();
      return r;
    };
    try {
      forward();
      const runs = quick ? 3 : 7;
      const times = Array.from({ length: runs }, forward);
      const wall = median(times.map((x) => x.wall));
      const cpu = median(times.map((x) => x.cpu));
      // the same forward at the batch the batcher builds at concurrency 8 (8 guided requests = 16 rows):
      // the most dynamic batching can gain is this per-row speed-up
      const rows = 2 * s.concurrency;
      const sampleB = tf.tile(sample, [s.concurrency, 1, 1, 1]);
      const ctxB = tf.tile(ctx, [s.concurrency, 1, 1]);
      const tB = tf.fill([rows], 500, 'int32');
      const forwardB = (): Timed => {
        const c0 = selfCpuSeconds();
        const out = unet.forward(sampleB, tB, ctxB);
        out.dataSync();
        const r = { wall: 0, cpu: selfCpuSeconds() - c0 };
        out.dispose();
        return r;
      };
      let cpuBatched: number;
      try {
        forwardB();
        cpuBatched = median(Array.from({ length: quick ? 2 : 3 }, forwardB).map((x) => x.cpu));
      } finally {
        tf.dispose([sampleB, ctxB, tB]);
      }
      const matmul = measureMatmulGflops({ size: 1024, runs: quick ? 3 : 7 });
      const matmulCpu = matmulGflopsCpu(quick ? 3 : 7);
      const flops = count ? count(unet, { batch: 2, height: latent, width: latent, textLength: ctx.shape[1] }).total : null;
      log(`unet: forward ${wall.toFixed(3)} s (cpu ${cpu.toFixed(3)} s), matmul ${matmul.toFixed(1)} GFLOP/s${flops ? `, ${(flops / 1e9).toFixed(3)} GFLOP per forward` : ', no FLOP counter'}`);
      if (flops === null) {
        return { value: null, note: 'the model benchmark\'s countUNetFlops is not available (neither exported by @museum/models nor built): share not computed', forward_median_s: round(wall), matmul_gflops: round(matmul, 2) };
      }
      const gflops = flops / wall / 1e9;
      return {
        value: round(gflops / matmul),
        unet_gflops: round(gflops, 2),
        matmul_gflops: round(matmul, 2),
        value_cpu: round(flops / cpu / 1e9 / matmulCpu),
        unet_gflops_cpu: round(flops / cpu / 1e9, 2),
        matmul_gflops_cpu: round(matmulCpu, 2),
        gflop_per_forward: round(flops / 1e9, 4),
        batched_forward: {
          rows,
          cpu_seconds: round(cpuBatched, 4),
          gflops_cpu: round((flops * s.concurrency) / cpuBatched / 1e9, 2),
          per_row_speedup_over_batch_2: round(cpu / 2 / (cpuBatched / rows)),
        },
        forward_median_s: round(wall, 4),
        input: { batch: 2, latent: [latent, latent, unet.config.in_channels], context: ctx.shape.slice(1) },
        how: 'analytic FLOPs (countUNetFlops of the model benchmark: convs, linears and the attention products) of one CFG-batched UNet forward ÷ its median wall time, ÷ the median GFLOP/s of a 1024³ float32 matMul (measureMatmulGflops) on the same backend; value_cpu: the same in process CPU time (what the figure would be on an otherwise idle core)',
      };
    } finally {
      tf.dispose([sample, t, ctx]);
    }
  } finally {
    pipe.dispose();
  }
}

// ---------------------------------------------------------------------------------------------
// learnStyle time by image count

async function learnByImages(model: PerfModel, counts: number[], steps: number, log: (m: string) => void): Promise<Record<string, unknown>> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'museum-perf-learn-'));
  type Row = { seconds: number; cpu_seconds: number; prepare_seconds: number; train_loop_seconds: number; commit_seconds: number; seconds_per_step: number };
  const rows: Record<string, Row> = {};
  try {
    const all = await stylePngs(Math.max(...counts), model.imageSize);
    // warm-up: the first run of a process pays for kernel set-up, which is no image's cost
    await learnStyle(Museum.openOrCreate(path.join(tmp, 'museum-warmup'), { baseModelDir: model.dir }), 'perf-warmup', all.slice(0, 1), { steps: 1, seed: 1, warmup: 0 });
    for (const n of counts) {
      const store = Museum.openOrCreate(path.join(tmp, `museum-${n}`), { baseModelDir: model.dir });
      let tCommit = NaN;
      const c0 = selfCpuSeconds();
      const t0 = performance.now();
      const r = await learnStyle(store, `perf-${n}`, all.slice(0, n), {
        steps,
        seed: 1,
        warmup: 0,
        onProgress: (p) => {
          if (p.phase === 'commit' && Number.isNaN(tCommit)) tCommit = performance.now();
        },
      });
      const t1 = performance.now();
      const loop = r.secondsPerStep * steps;
      rows[String(n)] = {
        seconds: round((t1 - t0) / 1000),
        cpu_seconds: round(selfCpuSeconds() - c0),
        // loading the models, encoding the images with the VAE, the new token, the regularizers' constants
        prepare_seconds: round((tCommit - t0) / 1000 - loop),
        train_loop_seconds: round(loop),
        commit_seconds: round((t1 - tCommit) / 1000),
        seconds_per_step: round(r.secondsPerStep),
      };
      log(`learn: ${n} images, ${steps} steps: ${((t1 - t0) / 1000).toFixed(2)} s (prepare ${rows[String(n)].prepare_seconds} s, ${r.secondsPerStep.toFixed(3)} s/step)`);
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  /** Least-squares slope of a row field over the image count. */
  const slope = (field: keyof Row) => {
    const ys = counts.map((n) => rows[String(n)][field]);
    const mx = counts.reduce((a, b) => a + b, 0) / counts.length;
    const my = ys.reduce((a, b) => a + b, 0) / ys.length;
    return counts.reduce((a, x, i) => a + (x - mx) * (ys[i] - my), 0) / Math.max(1e-12, counts.reduce((a, x) => a + (x - mx) ** 2, 0));
  };
  const first = rows[String(counts[0])];
  const last = rows[String(counts[counts.length - 1])];
  return {
    by_images: rows,
    steps,
    seconds_per_step: round(median(counts.map((n) => rows[String(n)].seconds_per_step))),
    growth_last_over_first: round(last.seconds / first.seconds),
    growth_last_over_first_cpu: round(last.cpu_seconds / first.cpu_seconds),
    prepare_seconds_per_extra_image: round(slope('prepare_seconds'), 4),
    seconds_per_step_per_extra_image: round(slope('seconds_per_step'), 4),
    how: 'learnStyle on a fresh museum per image count (the first style: MuseumMaker defaults, batch 4, no warm-up) with a short step budget, after one untimed warm-up run. The per-image work is the preparation (VAE-encoding the images, style statistics); a step draws a batch of 4 whatever the count. A full run costs prepare + steps × seconds_per_step + commit',
  };
}

// ---------------------------------------------------------------------------------------------

export interface PerfReport {
  split_vs_inprocess: Record<string, unknown> | null;
  batching_speedup: Record<string, unknown> | null;
  replica_scaling: Record<string, unknown> | null;
  unet_matmul_share: Record<string, unknown> | null;
  learn_seconds_by_images: Record<string, unknown> | null;
  model: { kind: string; description: string; learn_model: string };
  settings: Record<string, unknown>;
  machine: { before: Record<string, unknown>; after: Record<string, unknown>; per_section_loadavg: Record<string, number[]> };
  seconds: number;
}

export async function runPerfBench(o: PerfBenchOptions): Promise<PerfReport> {
  const log = o.log ?? (() => {});
  const quick = o.quick ?? false;
  const concurrency = o.concurrency ?? 8;
  const s: Settings = {
    steps: o.steps ?? (quick ? 4 : 10),
    guidance: o.guidance ?? 5,
    runs: o.runs ?? (quick ? 3 : 8),
    concurrency,
    requests: o.requests ?? (quick ? 2 : 4) * concurrency,
    prompt: o.model.prompts[0],
  };
  const sections = new Set<PerfSection>(o.sections ?? PERF_SECTIONS);
  const batching = o.batching ?? { maxBatchRows: 2 * concurrency, maxWaitMs: 10 };
  const learnModel = o.learnModel ?? o.model;
  const t0 = performance.now();
  const before = machine();
  const loads: Record<string, number[]> = {};
  const section = async <T>(name: PerfSection, fn: () => Promise<T>): Promise<T | null> => {
    if (!sections.has(name)) return null;
    log(`== ${name}`);
    const r = await fn();
    loads[name] = os.loadavg().map((x) => round(x, 2));
    return r;
  };
  const report: PerfReport = {
    split_vs_inprocess: await section('split', () => splitVsInprocess(o.model, s, log)),
    batching_speedup: await section('batching', () => batchingSpeedup(o.model, s, batching, quick, log)),
    replica_scaling: o.cli ? await section('replicas', () => replicaScaling(o.model, s, o.cli!, log)) : null,
    unet_matmul_share: await section('unet', () => unetMatmulShare(o.model, s, quick, log)),
    learn_seconds_by_images: await section('learn', () => learnByImages(learnModel, o.learnImageCounts ?? [1, 4, 8, 16], o.learnSteps ?? (quick ? 2 : 4), log)),
    model: { kind: o.model.kind, description: o.model.description, learn_model: learnModel.kind },
    settings: { quick, steps: s.steps, guidance: s.guidance, sampler: 'ddim', runs: s.runs, concurrency, requests: s.requests, batching },
    machine: { before, after: machine(), per_section_loadavg: loads },
    seconds: 0,
  };
  if (!o.cli && sections.has('replicas')) report.replica_scaling = { value: null, note: 'skipped: no museum launcher given to spawn replica processes' };
  report.seconds = round((performance.now() - t0) / 1000, 1);
  return report;
}
