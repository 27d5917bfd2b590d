/**
 * The model benchmark (`npm run bench:models -- [--json FILE] [--profile] [--skip-sd15]`).
 *
 * Measures the backend's float32 matmul GFLOP/s, then the UNet forward's achieved GFLOP/s (analytic
 * FLOPs of `countUNetFlops` / median wall time) for a tiny (Atelier-sized) UNet and for one Stable
 * Diffusion 1.5 step (random weights, batch 2 as classifier-free guidance runs it, 64×64×4 latents,
 * 77×768 text context), the ratio of each to the matmul figure, seconds per SD 1.5 step and the
 * process's peak RSS. Prints the JSON on stdout (progress goes to stderr) and writes it with --json.
 *
 * Options: --json FILE; --profile (per-block and per-kernel timing of one extra forward of each
 * model, added to the JSON under `profile`); --skip-sd15; --sd15-latent N (a smaller latent, for
 * quick profiling: the figures are then not the SD 1.5 step's); --sd15-runs N (timed runs, default 2);
 * --tiny-runs N (default 5).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { backendInfo, initBackend, measureMatmulGflops, setWasmConvWeightCache, setWasmMatMulWeightCache, tf } from '@museum/tensor';
import { seedInit } from '../nn/module';
import { SD15_UNET_CONFIG, UNet2DConditionConfig } from '../unet/config';
import { UNet2DConditionModel } from '../unet/unet_2d_condition';
import { FlopCount, countUNetFlops } from './flops';
import { cpuClockMs, profileKernels, timeModules } from './profile';

/** The Atelier model's UNet (libs/atelier's ATELIER_UNET_CONFIG; repeated here as models must not depend on atelier). */
export const TINY_UNET_CONFIG: UNet2DConditionConfig = {
  sample_size: 16,
  in_channels: 4,
  out_channels: 4,
  down_block_types: ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'],
  up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'],
  block_out_channels: [64, 128, 128],
  layers_per_block: 1,
  attention_head_dim: 4,
  cross_attention_dim: 128,
  norm_num_groups: 32,
  act_fn: 'silu',
};

interface Args {
  json: string | null;
  profile: boolean;
  skipSd15: boolean;
  sd15Latent: number;
  sd15Runs: number;
  tinyRuns: number;
}

function parseArgs(argv: string[]): Args {
  const a: Args = { json: null, profile: false, skipSd15: false, sd15Latent: 64, sd15Runs: 2, tinyRuns: 5 };
  const int = (flag: string, v: string | undefined): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n <= 0) throw new Error(`${flag} needs a positive integer, got ${v}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const f = argv[i];
    if (f === '--json') {
      a.json = argv[++i] ?? null;
      if (!a.json) throw new Error('--json needs a file name');
    } else if (f === '--profile') a.profile = true;
    else if (f === '--skip-sd15') a.skipSd15 = true;
    else if (f === '--sd15-latent') a.sd15Latent = int(f, argv[++i]);
    else if (f === '--sd15-runs') a.sd15Runs = int(f, argv[++i]);
    else if (f === '--tiny-runs') a.tinyRuns = int(f, argv[++i]);
    else if (f === '--help' || f === '-h') {
      process.stdout.write('usage: bench:models -- [--json FILE] [--profile] [--skip-sd15] [--sd15-latent N] [--sd15-runs N] [--tiny-runs N]\n');
      process.exit(0);
    } else throw new Error(`unknown option ${f}`);
  }
  return a;
}

const log = (m: string): void => {
  process.stderr.write(`[bench:models] ${m}\n`);
};

function median(xs: number[]): number {
  const s = [...xs].sort((x, y) => x - y);
  const n = s.length;
  return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

const peakRss = (): number => process.resourceUsage().maxRSS * 1024;
const round = (x: number, digits = 3): number => Number(x.toFixed(digits));

interface Case {
  name: string;
  config: UNet2DConditionConfig;
  batch: number;
  latent: number;
  textLength: number;
  warmup: number;
  runs: number;
  /** XNNPACK keeps packed weights between calls (see setWasmMatMulWeightCache / setWasmConvWeightCache). */
  weightCache: boolean;
}

interface CaseResult {
  gflops: number;
  ratio: number;
  seconds: number;
  times_s: number[];
  /** The same in process CPU time: what the forward costs however busy the machine is. */
  cpu_seconds: number;
  gflops_cpu: number;
  ratio_cpu: number;
  weight_cache: boolean;
  flops: number;
  params: number;
  build_seconds: number;
  input: { batch: number; latent: [number, number, number]; context: [number, number] };
  profile?: unknown;
}

/** CPU seconds (user + system) this process has used: robust to other jobs sharing the cores, unlike wall time. */
function cpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

interface Timing {
  wall: number;
  cpu: number;
}

/** One forward, timed until its output is read back (the wasm and cpu backends are synchronous anyway). */
function timedForward(unet: UNet2DConditionModel, sample: tf.Tensor, t: tf.Tensor, ctx: tf.Tensor): Timing {
  const c0 = cpuSeconds();
  const t0 = performance.now();
  const out = unet.forward(sample, t, ctx);
  out.dataSync();
  const wall = (performance.now() - t0) / 1000;
  const cpu = cpuSeconds() - c0;
  out.dispose();
  return { wall, cpu };
}

/** The wasm heap's size (it only grows, so this is its peak), or null on other backends. */
function wasmHeapBytes(): number | null {
  const heap = (tf.backend() as unknown as { wasm?: { HEAPU8?: Uint8Array } }).wasm?.HEAPU8;
  return heap ? heap.length : null;
}

/** Median GFLOP/s of a size³ matMul measured in process CPU time (the companion of measureMatmulGflops' wall time). */
function matmulGflopsCpu(size = 1024, runs = 7): number {
  const a = tf.randomUniform([size, size], -1, 1, 'float32', 3);
  const b = tf.randomUniform([size, size], -1, 1, 'float32', 4);
  const times: number[] = [];
  for (let i = 0; i <= runs; i++) {
    const c0 = cpuSeconds();
    const c = tf.matMul(a, b);
    const s = tf.slice(c, [0, 0], [1, 1]);
    s.dataSync();
    if (i > 0) times.push(cpuSeconds() - c0);
    tf.dispose([c, s]);
  }
  tf.dispose([a, b]);
  return (2 * size ** 3) / median(times) / 1e9;
}

async function runCase(c: Case, matmul: { wall: number; cpu: number }, profile: boolean): Promise<CaseResult> {
  setWasmMatMulWeightCache(c.weightCache);
  setWasmConvWeightCache(c.weightCache);
  const t0 = performance.now();
  seedInit(1234);
  const unet = new UNet2DConditionModel(c.config);
  const buildSeconds = (performance.now() - t0) / 1000;
  const inC = unet.config.in_channels;
  const ctxDim = unet.config.cross_attention_dim[0];
  const sample = tf.randomNormal([c.batch, c.latent, c.latent, inC], 0, 1, 'float32', 1);
  const ctx = tf.randomNormal([c.batch, c.textLength, ctxDim], 0, 1, 'float32', 2);
  const t = tf.tensor1d(new Array<number>(c.batch).fill(500), 'int32');
  try {
    const flops: FlopCount = countUNetFlops(unet, { batch: c.batch, height: c.latent, width: c.latent, textLength: c.textLength });
    log(`${c.name}: ${(unet.parameterCount() / 1e6).toFixed(1)}M parameters built in ${buildSeconds.toFixed(1)} s; ${(flops.total / 1e9).toFixed(2)} GFLOP per forward (batch ${c.batch}, ${c.latent}×${c.latent})`);
    const show = (x: Timing) => `${x.wall.toFixed(3)} s (cpu ${x.cpu.toFixed(3)} s)`;
    for (let i = 0; i < c.warmup; i++) log(`${c.name}: warm-up ${show(timedForward(unet, sample, t, ctx))}`);
    const times: Timing[] = [];
    for (let i = 0; i < c.runs; i++) {
      times.push(timedForward(unet, sample, t, ctx));
      log(`${c.name}: run ${i + 1}/${c.runs} ${show(times[i])}`);
    }
    const seconds = median(times.map((x) => x.wall));
    const cpu = median(times.map((x) => x.cpu));
    const gflops = flops.total / seconds / 1e9;
    const gflopsCpu = flops.total / cpu / 1e9;
    const result: CaseResult = {
      gflops: round(gflops),
      ratio: round(gflops / matmul.wall),
      seconds: round(seconds),
      times_s: times.map((x) => round(x.wall)),
      cpu_seconds: round(cpu),
      gflops_cpu: round(gflopsCpu),
      ratio_cpu: round(gflopsCpu / matmul.cpu),
      weight_cache: c.weightCache,
      flops: flops.total,
      params: unet.parameterCount(),
      build_seconds: round(buildSeconds, 1),
      input: { batch: c.batch, latent: [c.latent, c.latent, inC], context: [c.textLength, ctxDim] },
    };
    if (profile) result.profile = await profileCase(c.name, unet, flops, sample, t, ctx);
    return result;
  } finally {
    tf.dispose([sample, ctx, t]);
    unet.dispose();
    setWasmMatMulWeightCache(true);
    setWasmConvWeightCache(true);
  }
}

/** One instrumented forward (per-block GFLOP/s, exclusive time per module class), then one under tf.profile. */
async function profileCase(name: string, unet: UNet2DConditionModel, flops: FlopCount, sample: tf.Tensor, t: tf.Tensor, ctx: tf.Tensor): Promise<unknown> {
  const blockNames = Object.keys(flops.blocks).filter((b) => b !== 'time_embedding' && b !== 'conv_in' && b !== 'conv_out');
  const { result: measured, timing } = timeModules(unet, blockNames, () => timedForward(unet, sample, t, ctx));
  const seconds = measured.cpu;
  const blocks: Record<string, { ms: number; gflop: number; gflops: number }> = {};
  for (const b of blockNames) {
    const ms = timing.blocks[b] ?? 0;
    blocks[b] = { ms: round(ms, 1), gflop: round(flops.blocks[b] / 1e9), gflops: round(flops.blocks[b] / 1e6 / Math.max(ms, 1e-9)) };
  }
  const selfByClass = Object.fromEntries(Object.entries(timing.selfByClass).sort((a, b) => b[1] - a[1]).map(([k, v]) => [k, round(v, 1)]));
  // Products split by role: 2-D = linear layers and 1×1 convs, 3-D = the attention products.
  const key = (kernel: string, shapes: number[][]) => (kernel === 'BatchMatMul' ? `BatchMatMul/${shapes[0].length === 2 ? 'linear' : 'attention'}` : kernel);
  const k = await profileKernels(() => unet.forward(sample, t, ctx).dispose(), 20, cpuClockMs, key);
  const kernels = k.kernels.map((s) => ({ kernel: s.kernel, ms: round(s.ms, 1), calls: s.calls, share: round(s.ms / k.totalMs) }));
  log(`${name} profile (process CPU time): forward ${seconds.toFixed(3)} s instrumented; per block:`);
  for (const [b, v] of Object.entries(blocks)) log(`  ${b.padEnd(14)} ${v.ms.toFixed(0).padStart(8)} ms ${v.gflop.toFixed(2).padStart(8)} GFLOP ${v.gflops.toFixed(1).padStart(6)} GFLOP/s`);
  log(`  self time by module class (ms): ${JSON.stringify(selfByClass)}`);
  log(`  kernels (tf.profile, ${k.totalMs.toFixed(0)} ms in kernels):`);
  for (const s of kernels.slice(0, 14)) log(`  ${s.kernel.padEnd(20)} ${s.ms.toFixed(0).padStart(8)} ms ${String(s.calls).padStart(5)} calls ${(100 * s.share).toFixed(1).padStart(5)} %`);
  log(`  slowest kernels: ${k.slowest.slice(0, 8).map((s) => `${s.kernel}${JSON.stringify(s.inputShapes)} ${s.ms.toFixed(0)} ms`).join('; ')}`);
  return {
    clock: 'process CPU time (user + system)',
    instrumented_cpu_seconds: round(seconds),
    blocks,
    self_ms_by_module_class: selfByClass,
    kernels_ms_total: round(k.totalMs, 1),
    kernels,
    slowest_kernels: k.slowest.map((s) => ({ ...s, ms: round(s.ms, 1) })),
    flops_by_kind: flops.byKind,
  };
}

function machine(): Record<string, unknown> {
  const cpus = os.cpus();
  const b = backendInfo();
  return {
    cpu_model: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    total_memory_bytes: os.totalmem(),
    load_average: os.loadavg().map((x) => round(x, 2)),
    backend: b.name,
    backend_package: b.package,
    simd: b.simd,
    threads: b.threads,
    node_version: process.version,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    date: new Date().toISOString(),
  };
}

export async function main(argv: string[]): Promise<Record<string, unknown>> {
  const args = parseArgs(argv);
  await initBackend({ log });
  const facts = machine();
  log(`machine: ${facts.cpu_model}, ${facts.cores} cores, load ${JSON.stringify(facts.load_average)}, backend ${facts.backend} (simd=${facts.simd}, threads=${facts.threads}), node ${facts.node_version}`);

  const matmul = measureMatmulGflops({ size: 1024, runs: 7 });
  const matmulCpu = matmulGflopsCpu(1024, 7);
  log(`matmul 1024×1024×1024 float32: ${matmul.toFixed(2)} GFLOP/s (${matmulCpu.toFixed(2)} per CPU second)`);
  const mm = { wall: matmul, cpu: matmulCpu };

  const tiny = await runCase(
    { name: 'tiny', config: TINY_UNET_CONFIG, batch: 2, latent: 16, textLength: 24, warmup: 2, runs: args.tinyRuns, weightCache: true },
    mm,
    args.profile,
  );
  log(`tiny: ${tiny.seconds.toFixed(3)} s per forward, ${tiny.gflops.toFixed(2)} GFLOP/s, ratio ${tiny.ratio.toFixed(3)} (per CPU second: ${tiny.gflops_cpu.toFixed(2)}, ratio ${tiny.ratio_cpu.toFixed(3)})`);

  let sd15: (CaseResult & { peak_rss_bytes: number; wasm_heap_bytes: number | null }) | null = null;
  if (!args.skipSd15) {
    const r = await runCase(
      // SD 1.5's 3.4 GB of float32 weights leave no room in the 4 GB wasm heap for XNNPACK's packed second copy
      // of every weight (2.4 GB of conv filters alone): weights are packed per call instead.
      { name: 'sd15', config: SD15_UNET_CONFIG, batch: 2, latent: args.sd15Latent, textLength: 77, warmup: 1, runs: args.sd15Runs, weightCache: false },
      mm,
      args.profile,
    );
    sd15 = { ...r, peak_rss_bytes: peakRss(), wasm_heap_bytes: wasmHeapBytes() };
    log(`sd15: ${r.seconds.toFixed(2)} s per step, ${r.gflops.toFixed(2)} GFLOP/s, ratio ${r.ratio.toFixed(3)} (per CPU second: ${r.gflops_cpu.toFixed(2)}, ratio ${r.ratio_cpu.toFixed(3)}), peak RSS ${(sd15.peak_rss_bytes / 2 ** 30).toFixed(2)} GiB`);
    if (args.sd15Latent !== 64) log(`sd15: NOTE latent ${args.sd15Latent}×${args.sd15Latent}, not the 64×64 of a real SD 1.5 step`);
  }

  const out = {
    matmul_gflops: round(matmul),
    matmul_gflops_cpu: round(matmulCpu),
    tiny,
    sd15,
    peak_rss_bytes: peakRss(),
    targets: { sd15_ratio_min: 0.5, sd15_peak_rss_max_bytes: 6 * 2 ** 30 },
    machine: facts,
    notes:
      'FLOPs are analytic (libs/models/src/bench/flops.ts): 2 per multiply-add of convs, linears and the two attention products; ' +
      'time is the median wall time of a full forward (output read back) after warm-up. peak_rss_bytes is the process maximum (getrusage).',
  };
  const text = JSON.stringify(out, null, 2);
  process.stdout.write(text + '\n');
  if (args.json) {
    fs.mkdirSync(path.dirname(path.resolve(args.json)), { recursive: true });
    fs.writeFileSync(args.json, text + '\n');
    log(`wrote ${args.json}`);
  }
  return out;
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((e: unknown) => {
    process.stderr.write(`[bench:models] failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  });
}
