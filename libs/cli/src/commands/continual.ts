/**
 * `museum bench continual`: the continual style benchmark of BENCHMARK.md (see @museum/bench's continual.ts).
 * Prints the table, writes the JSON and the gallery; resumable from its work folder.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { MultiBar, Presets, type SingleBar } from 'cli-progress';
import { METHOD_NAMES, isMethodName, type MethodName } from '@museum/museum';
import { BENCHMARK_STYLES, isBenchmarkStyle, type BenchmarkStyle } from '@museum/world';
import type { SamplerName } from '@museum/models';
import {
  continualGalleryPng,
  formatContinualTable,
  galleryLegend,
  continualMatrixPng,
  runContinualBench,
  type ContinualBenchOptions,
  type ContinualEvent,
} from '@museum/bench';
import { atelierDir, findRepoRoot } from '../paths';
import { collect, intFlag, learnOverrides } from '../flags';

interface ContinualOpts {
  model?: string;
  instruments?: string;
  methods?: string;
  styles?: string;
  steps?: string;
  samplerSteps?: string;
  sampler?: string;
  guidance?: string;
  seeds?: string;
  batch?: string;
  quick?: boolean;
  workers: string;
  workDir?: string;
  fresh?: boolean;
  redo?: string;
  json?: string;
  gallery?: string;
  galleryMethods?: string;
  matrix?: string;
  set?: string[];
}

const SAMPLERS = ['ddim', 'dpmpp-2m', 'euler-a'];

function list(v: string | undefined): string[] | undefined {
  return v === undefined ? undefined : v.split(',').map((s) => s.trim()).filter(Boolean);
}

const int = intFlag;

/** Command-line options → benchmark options (validated). */
export function continualOptions(o: ContinualOpts, env: NodeJS.ProcessEnv = process.env): ContinualBenchOptions {
  const methods = list(o.methods);
  for (const m of methods ?? []) if (!isMethodName(m)) throw new InvalidArgumentError(`unknown method '${m}'; --methods takes a comma-separated list of ${METHOD_NAMES.join(', ')}`);
  const redo = list(o.redo);
  for (const m of redo ?? []) if (!isMethodName(m)) throw new InvalidArgumentError(`unknown method '${m}'; --redo takes a comma-separated list of ${METHOD_NAMES.join(', ')}`);
  const styles = list(o.styles);
  for (const s of styles ?? []) if (!isBenchmarkStyle(s)) throw new InvalidArgumentError(`unknown style '${s}'; --styles takes a comma-separated list of ${BENCHMARK_STYLES.join(', ')}`);
  if (o.sampler !== undefined && !SAMPLERS.includes(o.sampler)) throw new InvalidArgumentError(`--sampler must be one of ${SAMPLERS.join(', ')}`);
  const guidance = o.guidance === undefined ? undefined : Number(o.guidance);
  if (guidance !== undefined && (!Number.isFinite(guidance) || guidance < 0)) throw new InvalidArgumentError('--guidance must be a number ≥ 0');
  const seeds = list(o.seeds)?.map((s) => int('--seeds', s, 0)!);
  const overrides = learnOverrides(o.set);
  return {
    modelDir: path.resolve(o.model ?? atelierDir(env)),
    instrumentsDir: o.instruments,
    workDir: path.resolve(o.workDir ?? path.join(findRepoRoot(), '.cache', 'continual', o.quick ? 'quick' : 'full')),
    quick: o.quick ?? false,
    methods: methods as MethodName[] | undefined,
    styles: styles as BenchmarkStyle[] | undefined,
    steps: int('--steps', o.steps),
    learn: overrides.learn,
    weights: overrides.weights,
    samplerSteps: int('--sampler-steps', o.samplerSteps),
    sampler: o.sampler as SamplerName | undefined,
    guidance,
    seeds,
    batch: int('--batch', o.batch),
    workers: int('--workers', o.workers),
    fresh: o.fresh,
    redo: redo as MethodName[] | undefined,
  };
}

/** One progress bar per running job on a terminal; a line per phase change otherwise (CI logs). */
function progressReporter(): { onEvent: (e: ContinualEvent) => void; stop: () => void } {
  const log = (s: string) => process.stderr.write(`[bench continual] ${s}\n`);
  if (!process.stderr.isTTY) {
    const last = new Map<string, string>();
    return {
      onEvent: (e) => {
        const key = `${e.phase} ${e.task ?? ''}`;
        if (last.get(e.job) === key && e.phase !== 'done') return;
        last.set(e.job, key);
        log(`${e.job}: ${e.phase}${e.task ? ` task ${e.task}` : ''}${e.style ? ` (${e.style})` : ''}`);
      },
      stop: () => {},
    };
  }
  const multi = new MultiBar({ format: '{job} {phase} [{bar}] {value}/{total} {info} | ETA {eta_formatted}', hideCursor: true, clearOnComplete: false, etaBuffer: 20 }, Presets.shades_classic);
  const bars = new Map<string, { bar: SingleBar; key: string }>();
  return {
    onEvent: (e) => {
      const key = `${e.phase} ${e.task ?? ''} ${e.total}`;
      const info =
        e.phase === 'learn'
          ? `task ${e.task} ${e.style} loss ${e.losses?.total?.toFixed(4) ?? '-'}`
          : e.phase === 'eval'
            ? `after task ${e.task}: ${e.style}`
            : e.phase === 'base'
              ? 'base prompts'
              : '';
      const payload = { job: e.job.padEnd(22), phase: e.phase.padEnd(5), info };
      let b = bars.get(e.job);
      if (e.phase === 'done' || e.phase === 'cached') {
        if (b) multi.remove(b.bar);
        bars.delete(e.job);
        multi.log(`${e.job}: ${e.phase === 'cached' ? 'already measured (work folder)' : 'done'}\n`);
        return;
      }
      if (!b || b.key !== key) {
        if (b) multi.remove(b.bar);
        b = { bar: multi.create(e.total, e.step, payload), key };
        bars.set(e.job, b);
      }
      b.bar.update(e.step, payload);
    },
    stop: () => multi.stop(),
  };
}

export function registerContinual(bench: Command): void {
  bench
    .command('continual')
    .description('the continual style benchmark (BENCHMARK.md): every method learns the 5 styles in order; A, F, P, held-out content, base retention')
    .option('--model <dir>', 'the base model folder (default: the bundled Atelier model)')
    .option('--instruments <dir>', 'instruments folder (default: models/instruments or $MUSEUM_INSTRUMENTS_DIR)')
    .option('--methods <list>', `comma-separated methods (default: all: ${METHOD_NAMES.join(',')}; --quick: museummaker,finetune)`)
    .option('--styles <list>', `comma-separated benchmark styles in learning order (default: ${BENCHMARK_STYLES.join(',')})`)
    .option('--steps <n>', 'optimiser steps per style, the same for every method (default 400; --quick 8)')
    .option('--set <key=value>', 'override a learning setting (lr=3e-3) or a loss weight (weights.sdl=1) for every method; repeatable', collect)
    .option('--sampler-steps <n>', 'sampler steps of every judged image (default 25; --quick 8)')
    .option('--sampler <name>', `one of ${SAMPLERS.join(', ')} (default ddim)`)
    .option('--guidance <x>', 'classifier-free guidance (default 7.5)')
    .option('--seeds <list>', 'seeds of the held-out prompts (default 1,2; --quick 1)')
    .option('--batch <n>', 'images per pipeline call (default 16)')
    .option('--quick', 'CI mode: 2 methods, 8 steps per style, 8 images per cell, 8 sampler steps')
    .option('--workers <n>', 'jobs in parallel, each in its own process (one core each)', '1')
    .option('--work-dir <dir>', 'checkpoints; a rerun resumes from them (default: <repo>/.cache/continual/<quick|full>)')
    .option('--fresh', 'discard the work folder’s earlier results')
    .option('--redo <list>', 'discard these methods’ earlier results (e.g. after changing settings they read); the others resume')
    .option('--json <file>', 'write the JSON report here')
    .option('--gallery <file>', 'write the gallery PNG: per method, one row per style, one column per task')
    .option('--gallery-methods <list>', 'methods drawn in the gallery (default: all measured)')
    .option('--matrix <file>', 'write the accuracy matrices PNG: per method, S[t][s] in % from red (0) to green (100)')
    .action(async (o: ContinualOpts) => {
      const options = continualOptions(o);
      const galleryMethods = list(o.galleryMethods);
      const progress = progressReporter();
      let r;
      try {
        r = await runContinualBench({ ...options, onEvent: progress.onEvent });
      } finally {
        progress.stop();
      }
      const out: Record<string, unknown> = { ...r, config: { ...r.config } };
      if (o.gallery) {
        const methods = galleryMethods ?? Object.keys(r.methods);
        fs.mkdirSync(path.dirname(path.resolve(o.gallery)), { recursive: true });
        fs.writeFileSync(o.gallery, continualGalleryPng(r.config.work_dir, r, methods));
        (out.config as Record<string, unknown>).gallery = { file: path.resolve(o.gallery), ...galleryLegend(r, methods) };
      }
      if (o.matrix) {
        const methods = galleryMethods ?? Object.keys(r.methods);
        fs.mkdirSync(path.dirname(path.resolve(o.matrix)), { recursive: true });
        fs.writeFileSync(o.matrix, continualMatrixPng(r, methods));
        // laid out as the gallery, with accuracies in the cells
        (out.config as Record<string, unknown>).matrix = { file: path.resolve(o.matrix), ...galleryLegend(r, methods), cell: 'S[t][s] in %' };
      }
      process.stdout.write(formatContinualTable(r) + '\n');
      if (o.json) {
        fs.mkdirSync(path.dirname(path.resolve(o.json)), { recursive: true });
        fs.writeFileSync(o.json, JSON.stringify(out, null, 2) + '\n');
        process.stderr.write(`wrote ${path.resolve(o.json)}\n`);
      }
    });
}
