/**
 * `npm run loadtest -- --scenario encode|generate|mixed [options]`: load over the real gRPC API.
 *
 * Without --target it starts its own stack (one `museum serve` process per service on loopback
 * ports, see stack.ts) and stops it at the end; with --target it loads an existing deployment,
 * which must be on a loopback address. Options:
 *   --model tiny|atelier-random|DIR   model of the local stack (default atelier-random)
 *   --concurrency N | --rate R        closed loop with N calls in flight, or R calls/s (open loop)
 *   --max-in-flight N                 rate mode: cap on calls in flight (default 1000)
 *   --warmup S --duration S --drain S seconds (defaults 5, 20, 30); --max-requests N (default 100000)
 *   --replicas N                      processes of the heavy stage (default 2: one per core): text
 *                                     encoders (encode), or denoisers each behind its own gateway
 *   --target ADDR[,ADDR…]             (instead of a local stack) gateways, or text encoders for encode
 *   --steps N --guidance G            generate/mixed (defaults 10, 5)
 *   --learn-steps N                   mixed: step budget of the style being learned (default 2000;
 *                                     the job is cancelled when the test ends)
 *   --trainer ADDR                    mixed against --target: the trainer
 *   --json FILE                       write the report
 *   --check errors|all                exit 1 when a call failed with anything but RESOURCE_EXHAUSTED
 *                                     (`all`: also when encode's p99 ≥ 2 × p50)
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import { parseArgs } from 'node:util';
import { initBackend } from '@museum/tensor';
import { selfCpuSeconds, stylePngs, assertLoopback, describeModelFolder, type SpawnedService } from '@museum/bench';
import { runLoad, type LoadMode, type LoadResult } from './runner';
import { SCENARIOS, startLocalStack, type LocalStack, type Scenario } from './stack';
import { encodeCall, generateCall, startLearning, type LearningJob } from './scenarios';

const log = (m: string) => process.stderr.write(`[loadtest] ${m}\n`);

function num(name: string, v: string | undefined, dflt: number, integer = false): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0 || (integer && !Number.isInteger(n))) throw new Error(`--${name} must be a non-negative ${integer ? 'integer' : 'number'}, got ${v}`);
  return n;
}

const round = (x: number, d = 3) => Number(x.toFixed(d));

export interface LoadReport {
  scenario: Scenario;
  command: string;
  date: string;
  model: { kind: string; description: string };
  target: Record<string, string | string[] | undefined>;
  settings: Record<string, unknown>;
  load: LoadResult;
  /** Cores kept busy during the measured window (CPU seconds / window seconds), per process. */
  cpu_cores_busy?: Record<string, number>;
  stream?: { progress_events: number; images: number; mean_png_bytes: number };
  learning?: Record<string, unknown>;
  machine: Record<string, unknown>;
  checks: Record<string, boolean | string>;
}

async function main(argv: string[]): Promise<number> {
  const { values: a } = parseArgs({
    args: argv,
    options: {
      scenario: { type: 'string' },
      model: { type: 'string', default: 'atelier-random' },
      concurrency: { type: 'string' },
      rate: { type: 'string' },
      'max-in-flight': { type: 'string' },
      warmup: { type: 'string' },
      duration: { type: 'string' },
      drain: { type: 'string' },
      'max-requests': { type: 'string' },
      replicas: { type: 'string' },
      steps: { type: 'string' },
      guidance: { type: 'string' },
      'learn-steps': { type: 'string' },
      target: { type: 'string' },
      trainer: { type: 'string' },
      json: { type: 'string' },
      check: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (a.help) {
    process.stdout.write(fs.readFileSync(__filename, 'utf8').split('*/')[0] + '*/\n');
    return 0;
  }
  const scenario = a.scenario as Scenario;
  if (!SCENARIOS.includes(scenario)) throw new Error(`--scenario must be one of ${SCENARIOS.join(', ')}`);
  if (a.concurrency && a.rate) throw new Error('give --concurrency or --rate, not both');
  if (a.check && !['errors', 'all'].includes(a.check)) throw new Error('--check must be errors or all');
  const mode: LoadMode = a.rate
    ? { kind: 'rate', rps: num('rate', a.rate, 1), maxInFlight: a['max-in-flight'] ? num('max-in-flight', a['max-in-flight'], 1000, true) : undefined }
    : { kind: 'concurrency', concurrency: num('concurrency', a.concurrency, scenario === 'encode' ? 32 : 8, true) };
  const warmupS = num('warmup', a.warmup, 5);
  const durationS = num('duration', a.duration, 20);
  const drainS = num('drain', a.drain, 30);
  const steps = num('steps', a.steps, 10, true);
  const guidance = num('guidance', a.guidance, 5);
  const learnSteps = num('learn-steps', a['learn-steps'], 2000, true);
  const replicas = num('replicas', a.replicas, 2, true);

  await initBackend({ log: () => {} });
  let stack: LocalStack | null = null;
  let targets: { textEncoders: string[]; gateways: string[]; trainer?: string };
  let modelInfo: { kind: string; description: string; prompts: string[]; imageSize: number };
  if (a.target) {
    if (a.trainer) assertLoopback(a.trainer);
    if (scenario === 'mixed' && !a.trainer) throw new Error('mixed against --target needs --trainer ADDR too');
    const list = a.target.split(',');
    list.forEach(assertLoopback);
    targets = scenario === 'encode' ? { textEncoders: list, gateways: [] } : { textEncoders: [], gateways: list, trainer: a.trainer };
    const m = a.model && fs.existsSync(a.model) ? describeModelFolder(a.model) : null;
    modelInfo = m ?? { kind: 'external', description: `the deployment at ${a.target}`, prompts: ['a red star', 'a blue circle', 'a green square'], imageSize: 64 };
  } else {
    log(`starting a local ${scenario} stack (${a.model})`);
    stack = await startLocalStack({ scenario, model: a.model!, replicas, log });
    targets = { textEncoders: stack.textEncoders, gateways: stack.gateways, trainer: stack.trainer };
    modelInfo = stack.model;
  }
  const stopAll = async () => {
    if (stack) await stack.stop();
  };
  process.once('SIGINT', () => void stopAll().then(() => process.exit(130)));

  try {
    const loadavgBefore = os.loadavg();
    let job: LearningJob | null = null;
    let jobStartedAt = 0;
    let built: ReturnType<typeof encodeCall> | ReturnType<typeof generateCall>;
    if (scenario === 'encode') built = encodeCall(targets.textEncoders, modelInfo.prompts);
    else {
      built = generateCall(targets.gateways, { steps, guidance, prompts: modelInfo.prompts });
      if (scenario === 'mixed') {
        const images = await stylePngs(4, modelInfo.imageSize);
        job = await startLearning(targets.trainer!, `load-style-${Date.now().toString(36)}`, images, learnSteps);
        jobStartedAt = Date.now();
        log(`learning job ${job.jobId} queued (${learnSteps} steps)`);
      }
    }
    const procs: Array<{ name: string; cpu: () => number }> = [{ name: 'loadgen', cpu: selfCpuSeconds }];
    const count: Record<string, number> = {};
    for (const s of stack?.services ?? ([] as SpawnedService[])) {
      count[s.name] = (count[s.name] ?? 0) + 1;
      const label = stack!.services.filter((x) => x.name === s.name).length > 1 ? `${s.name}#${count[s.name]}` : s.name;
      procs.push({ name: label, cpu: () => s.cpuSeconds() });
    }
    const cpuAt: Record<'start' | 'end', { t: number; cpu: number[] }> = { start: { t: 0, cpu: [] }, end: { t: 0, cpu: [] } };
    let jobAtWindow: Record<'start' | 'end', { step: number; state: number } | undefined> = { start: undefined, end: undefined };
    log(`${scenario}: ${mode.kind === 'rate' ? `${mode.rps} calls/s` : `concurrency ${mode.concurrency}`}, warm-up ${warmupS} s, ${durationS} s measured`);
    const load = await runLoad(built.call, {
      mode,
      warmupS,
      durationS,
      drainS,
      maxRequests: a['max-requests'] ? num('max-requests', a['max-requests'], 100_000, true) : undefined,
      onWindow: (edge) => {
        cpuAt[edge] = { t: performance.now(), cpu: procs.map((p) => p.cpu()) };
        const st = job?.last();
        jobAtWindow = { ...jobAtWindow, [edge]: st ? { step: st.step, state: st.state } : undefined };
      },
    });
    built.clients.close();
    const windowS = (cpuAt.end.t - cpuAt.start.t) / 1000;
    const cpuBusy: Record<string, number> = {};
    procs.forEach((p, i) => {
      const d = cpuAt.end.cpu[i] - cpuAt.start.cpu[i];
      if (Number.isFinite(d) && windowS > 0) cpuBusy[p.name] = round(d / windowS, 2);
    });
    const total = Object.values(cpuBusy).reduce((s, x) => s + x, 0);
    cpuBusy.total = round(total, 2);

    const report: LoadReport = {
      scenario,
      command: `npm run loadtest -- ${argv.join(' ')}`.trim(),
      date: new Date().toISOString(),
      model: { kind: modelInfo.kind, description: modelInfo.description },
      target: { ...targets, stack: stack ? 'local: one `museum serve` process per service, loopback, no NATS (store polling)' : 'external' },
      settings: { mode, warmup_s: warmupS, duration_s: durationS, drain_s: drainS, ...(scenario !== 'encode' ? { steps, guidance, sampler: 'ddim', denoiser_replicas: targets.gateways.length } : { text_encoder_replicas: targets.textEncoders.length }) },
      load,
      cpu_cores_busy: stack ? cpuBusy : undefined,
      machine: {
        cores: os.cpus().length,
        cpu_model: os.cpus()[0]?.model,
        loadavg_before: loadavgBefore.map((x) => round(x, 2)),
        loadavg_after: os.loadavg().map((x) => round(x, 2)),
        node: process.version,
        note: 'loadavg counts every process on the machine (other jobs included): figures above 2 mean the services shared the 2 cores with other work',
      },
      checks: {},
    };
    if ('counters' in built) {
      const c = built.counters;
      report.stream = { progress_events: c.progressEvents, images: c.images, mean_png_bytes: c.images ? Math.round(c.pngBytes / c.images) : 0 };
    }
    if (job) {
      const final = await job.stop();
      const stateName = (s?: number) => (s === undefined ? 'unknown' : (Object.entries({ QUEUED: 1, RUNNING: 2, SUCCEEDED: 3, FAILED: 4, CANCELLED: 5 }).find(([, v]) => v === s)?.[0] ?? String(s)));
      const s0 = jobAtWindow.start;
      const s1 = jobAtWindow.end;
      report.learning = {
        job_id: job.jobId,
        step_budget: learnSteps,
        state_at_window_start: s0 ? stateName(s0.state) : 'queued (no status reported yet)',
        state_at_window_end: stateName(s1?.state),
        steps_during_window: s1 ? s1.step - (s0?.step ?? 0) : null,
        steps_per_second_during_window: s1 && windowS > 0 ? round((s1.step - (s0?.step ?? 0)) / windowS, 4) : null,
        final_state: stateName(final?.state),
        final_step: final?.step ?? null,
        seconds_since_queued: round((Date.now() - jobStartedAt) / 1000, 1),
        // queued before the window and still running at its end (the trainer may report its first
        // status late: a training step holds its event loop)
        learned_throughout_window: (s0 === undefined || s0.state <= 2) && s1?.state === 2,
      };
    }
    const badErrors = Object.keys(load.errors).filter((k) => k !== 'RESOURCE_EXHAUSTED');
    report.checks.only_admission_errors = badErrors.length === 0;
    if (badErrors.length) report.checks.unexpected_errors = badErrors.join(', ');
    report.checks.p99_over_p50 = String(round(load.latency_ms.p99 / load.latency_ms.p50, 3));
    if (scenario === 'encode') report.checks.p99_under_2x_p50 = load.latency_ms.p99 < 2 * load.latency_ms.p50;
    if (report.cpu_cores_busy) report.checks.saturates_two_cores = total >= 1.8;
    if (report.learning) report.checks.generated_while_learning = report.learning.learned_throughout_window === true && load.ok > 0;

    const text = JSON.stringify(report, null, 2);
    process.stdout.write(text + '\n');
    if (a.json) fs.writeFileSync(a.json, text + '\n');
    log(`${load.ok} ok, errors ${JSON.stringify(load.errors)}, ${load.throughput_rps} calls/s, p50 ${load.latency_ms.p50} ms, p99 ${load.latency_ms.p99} ms; cores busy ${JSON.stringify(report.cpu_cores_busy ?? {})}`);
    let failed = false;
    if (a.check && badErrors.length) {
      log(`CHECK FAILED: errors other than RESOURCE_EXHAUSTED: ${JSON.stringify(load.errors)}`);
      failed = true;
    }
    if (a.check && load.ok === 0) {
      log('CHECK FAILED: no call succeeded');
      failed = true;
    }
    if (a.check === 'all' && scenario === 'encode' && !report.checks.p99_under_2x_p50) {
      log(`CHECK FAILED: encode p99 ${load.latency_ms.p99} ms ≥ 2 × p50 ${load.latency_ms.p50} ms`);
      failed = true;
    }
    return failed ? 1 : 0;
  } finally {
    await stopAll();
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    log(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(1);
  },
);
