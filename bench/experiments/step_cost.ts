/**
 * Where a learning step's time goes (development tool, not part of the product):
 *
 *   node -r ./scripts/ts-register.js bench/experiments/step_cost.ts MUSEUM VERSION STYLE STEPS OUT.json VARIANT...
 *
 * Continues MUSEUM at VERSION (copied to a temp folder; the original is not touched) and learns STYLE for STEPS
 * optimiser steps once per VARIANT, never committing (the run is cancelled after its last step), and reports the
 * median seconds per step after the first 3 (warm-up). A VARIANT is `name` or `name:JSON` where JSON is a
 * LearnStyleOptions fragment, e.g. `nofeat:{"components":{"featReg":false}}` or `fb1:{"featRegBatch":1}`.
 * Variants run interleaved round-robin (one step block each, RUNS times) so that load on the other core
 * affects them alike. With PROFILE=1 every wasm kernel is wrapped with a timer and the JSON also gets each
 * variant's milliseconds per step by kernel (the top 25).
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { initBackend, tf } from '@museum/tensor';
import { StableDiffusionPipeline } from '@museum/models';
import { Museum, learnStyle, modelsFromPipeline, type LearnStyleOptions } from '@museum/museum';
import { copyMuseumAt } from './museum_copy';
import { fewShotSet, type BenchmarkStyle } from '@museum/world';

const RUNS = Number(process.env.RUNS ?? 2);

/** Kernel name → [calls, ms] since the last reset (wasm kernels are synchronous, so wall time is their cost). */
const kernelTime = new Map<string, [number, number]>();
let profiling = false;

function wrapKernels(): void {
  for (const k of tf.getKernelsForBackend('wasm')) {
    const inner = k.kernelFunc;
    tf.unregisterKernel(k.kernelName, 'wasm');
    tf.registerKernel({
      ...k,
      kernelFunc: (args) => {
        if (!profiling) return inner(args);
        const t0 = performance.now();
        const out = inner(args);
        const e = kernelTime.get(k.kernelName) ?? [0, 0];
        e[0]++;
        e[1] += performance.now() - t0;
        kernelTime.set(k.kernelName, e);
        return out;
      },
    });
  }
}

async function main(): Promise<void> {
  const [museumDir, version, style, stepsArg, outFile, ...variantArgs] = process.argv.slice(2);
  const steps = Number(stepsArg);
  await initBackend();
  if (process.env.PROFILE === '1') wrapKernels();
  const root = path.resolve(__dirname, '..', '..');
  const modelDir = path.join(root, 'models', 'atelier');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stepcost-'));
  const museum = Museum.open(copyMuseumAt(museumDir, Number(version), dir), { baseModelDir: modelDir });
  const pipe = StableDiffusionPipeline.fromPretrained(modelDir);
  const models = modelsFromPipeline(pipe);
  const set = fewShotSet(style as BenchmarkStyle);
  const variants = variantArgs.map((a) => {
    const i = a.indexOf(':');
    return i < 0 ? { name: a, options: {} as Partial<LearnStyleOptions> } : { name: a.slice(0, i), options: JSON.parse(a.slice(i + 1)) as Partial<LearnStyleOptions> };
  });
  const perStep = new Map<string, number[]>(variants.map((v) => [v.name, []]));
  const kernels = new Map<string, Record<string, { calls_per_step: number; ms_per_step: number }>>();
  const tensorsBefore = tf.memory().numTensors;
  for (let run = 0; run < RUNS; run++) {
    for (const v of variants) {
      const ac = new AbortController();
      let last = 0;
      const times: number[] = [];
      kernelTime.clear();
      profiling = false;
      await learnStyle(museum, style, set, {
        ...v.options,
        steps: 400, // the schedule of a real run; cancelled after `steps`
        models,
        captions: set.map((s) => s.caption),
        signal: ac.signal,
        onProgress: (p) => {
          if (p.phase !== 'train') return;
          if (p.step === 3) (profiling = true), kernelTime.clear();
          if (p.step === 1) last = Date.now();
          else times.push((Date.now() - last) / 1000), (last = Date.now());
          if (p.step >= steps) ac.abort();
        },
      }).catch((e: Error) => {
        if (e.name !== 'AbortError') throw e;
      });
      profiling = false;
      perStep.get(v.name)!.push(...times.slice(2));
      if (process.env.PROFILE === '1') {
        const n = steps - 3;
        const top = [...kernelTime.entries()].sort((a, b) => b[1][1] - a[1][1]).slice(0, 25);
        kernels.set(v.name, Object.fromEntries(top.map(([k, [c, ms]]) => [k, { calls_per_step: Math.round(c / n), ms_per_step: Math.round(ms / n) }])));
      }
      process.stderr.write(`${v.name} run ${run + 1}: median ${median(times.slice(2)).toFixed(3)} s/step\n`);
    }
  }
  const out = {
    museum: museumDir,
    version: Number(version),
    style,
    steps,
    runs: RUNS,
    leaked_tensors: tf.memory().numTensors - tensorsBefore,
    variants: variants.map((v) => ({ name: v.name, options: v.options, median_s_per_step: median(perStep.get(v.name)!), samples: perStep.get(v.name)!.length, kernels: kernels.get(v.name) })),
  };
  fs.writeFileSync(outFile, JSON.stringify(out, null, 2) + '\n');
  process.stdout.write(JSON.stringify(out, null, 2) + '\n');
  pipe.dispose();
  fs.rmSync(dir, { recursive: true, force: true });
}

function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
