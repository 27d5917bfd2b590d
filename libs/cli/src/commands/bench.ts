import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Command } from 'commander';
import { SingleBar, Presets } from 'cli-progress';
import { initBackend } from '@museum/tensor';
import { AutoencoderKL, StableDiffusionPipeline, loadModelFolder, type SamplerName } from '@museum/models';
import { loadInstruments, disposeInstruments } from '@museum/instruments';
import { runBaseBench, runCodecBench, runPerfBench, writePerfModelFolder, describeModelFolder, PERF_MODEL_KINDS, PERF_SECTIONS, type PerfModelKind, type PerfSection } from '@museum/bench';
import { ATELIER_VAE_CONFIG, loadCheckpointWeights, readCheckpointState } from '@museum/atelier';
import { atelierDir } from '../paths';
import { guidanceIntervalFlag, guidanceRescaleFlag, intFlag, seedListFlag } from '../flags';
import { registerContinual } from './continual';

interface PerfOpts {
  json?: string;
  quick?: boolean;
  model?: string;
  learnModel?: string;
  only?: string;
  steps?: string;
  runs?: string;
}

/** `tiny` / `atelier-random` (written to a temporary folder) or a pipeline folder. */
function perfModel(spec: string, tmp: string) {
  if ((PERF_MODEL_KINDS as readonly string[]).includes(spec)) return writePerfModelFolder(spec as PerfModelKind, path.join(tmp, spec));
  return describeModelFolder(path.resolve(spec));
}

interface BaseOpts {
  json?: string;
  sheet?: string;
  misses?: string;
  model?: string;
  steps: string;
  guidance: string;
  guidanceRescale?: string;
  guidanceInterval?: string;
  sampler: SamplerName;
  styleSamples?: string;
  seeds?: string;
  styleSeedStart?: string;
  quick?: boolean;
}

export function registerBench(program: Command): void {
  const bench = program.command('bench').description('benchmarks that print JSON (see bench/results/ for committed runs)');
  registerContinual(bench);
  bench
    .command('base')
    .description('shape/colour/style accuracy of the base model on every `a {colour} {shape}` prompt, judged by the instruments')
    .option('--json <file>', 'also write the JSON here')
    .option('--sheet <file>', 'write the contact sheet PNG (rows: shapes, columns: colours)')
    .option('--misses <file>', 'write the style judgements as a PNG: per prompted rendering, images judged right, then a row per wrong label')
    .option('--model <dir>', 'diffusers folder (default: the bundled Atelier model)')
    .option('--steps <n>', 'sampler steps', '25')
    .option('--guidance <x>', 'guidance scale', '7.5')
    .option('--guidance-rescale <phi>', "diffusers' guidance_rescale: pull the guided prediction's spread back to the conditional one's (0: off; 0.7 as Lin et al.; default: the model's sampling_config.json, else 0)")
    .option('--guidance-interval <from,to>', "guide only at timesteps from…to (0…999), or none: every step (default: the model's sampling_config.json, else every step)")
    .option('--sampler <name>', 'ddim, dpmpp-2m or euler-a', 'ddim')
    .option('--style-samples <n>', 'images per pre-training style (default: as many as the unstyled prompts, 64 contents × seeds)')
    .option('--seeds <list>', 'seeds of the unstyled prompts (default 1,2; --quick: 1)')
    .option('--style-seed-start <n>', 'first seed of the styled images (default 1000); with other --seeds, a validation split that is not the benchmark\'s images')
    .option('--quick', 'one seed, fewer style samples (for CI)')
    .action(async (o: BaseOpts) => {
      const styleSamples = intFlag('--style-samples', o.styleSamples) ?? (o.quick ? 8 : undefined);
      const seeds = seedListFlag(o.seeds) ?? (o.quick ? [1] : [1, 2]);
      const styleSeedStart = intFlag('--style-seed-start', o.styleSeedStart, 0);
      const guidanceInterval = guidanceIntervalFlag(o.guidanceInterval);
      const guidanceRescale = guidanceRescaleFlag(o.guidanceRescale);
      await initBackend();
      const pipe = StableDiffusionPipeline.fromPretrained(path.resolve(o.model ?? atelierDir()));
      const inst = loadInstruments();
      const bar = new SingleBar({ format: 'bench base [{bar}] {value}/{total} images | ETA {eta_formatted}', noTTYOutput: true, notTTYSchedule: 30000 }, Presets.shades_classic);
      let started = false;
      try {
        const r = await runBaseBench(pipe, inst, {
          steps: Number(o.steps),
          guidance: Number(o.guidance),
          guidanceRescale,
          guidanceInterval,
          sampler: o.sampler,
          seeds,
          styleSeedStart,
          styleSamples,
          onProgress: (done, total) => {
            if (!started) {
              bar.start(total, 0);
              started = true;
            }
            bar.update(done);
          },
        });
        bar.stop();
        const { contactSheetPng, styleMissesPng, ...json } = r;
        const text = JSON.stringify({ ...json, command: `museum ${process.argv.slice(2).join(' ')}`, date: new Date().toISOString() }, null, 2);
        process.stdout.write(text + '\n');
        if (o.json) fs.writeFileSync(o.json, text + '\n');
        if (o.sheet && contactSheetPng) fs.writeFileSync(o.sheet, contactSheetPng);
        if (o.misses && styleMissesPng) fs.writeFileSync(o.misses, styleMissesPng);
      } finally {
        bar.stop();
        pipe.dispose();
        disposeInstruments(inst);
      }
    });

  bench
    .command('vae')
    .description('how much of every rendering survives the autoencoder: instruments judge decoded(encoded(render))')
    .option('--json <file>', 'also write the JSON here')
    .option('--sheet <file>', 'write originals over reconstructions, two rows per style (PNG)')
    .option('--model <dir>', 'diffusers folder whose vae/ is measured (default: the bundled Atelier model)')
    .option('--checkpoint <dir>', 'measure a VAE pre-training checkpoint instead (e.g. models/checkpoints/atelier/vae)')
    .option('--per-style <n>', 'renders per style', '32')
    .action(async (o: { json?: string; sheet?: string; model?: string; checkpoint?: string; perStyle: string }) => {
      await initBackend();
      const perStyle = intFlag('--per-style', o.perStyle) as number;
      let vae: AutoencoderKL;
      let source: string;
      if (o.checkpoint) {
        const dir = path.resolve(o.checkpoint);
        const state = readCheckpointState(dir);
        if (!state) throw new Error(`no checkpoint in ${dir}`);
        // Only the autoencoder: every weight comes from the checkpoint (strict load), so no seed is needed.
        vae = new AutoencoderKL(ATELIER_VAE_CONFIG);
        const which = loadCheckpointWeights(dir, { vae });
        source = `checkpoint ${dir} (step ${state.step}, ${which})`;
      } else {
        const dir = path.join(path.resolve(o.model ?? atelierDir()), 'vae');
        vae = loadModelFolder<AutoencoderKL>(dir).model;
        source = dir;
      }
      const inst = loadInstruments();
      try {
        const { sheetPng, ...r } = await runCodecBench(vae, inst, { perStyle });
        const text = JSON.stringify({ ...r, vae: source, command: `museum bench vae --per-style ${perStyle}${o.checkpoint ? ` --checkpoint ${o.checkpoint}` : ''}`, date: new Date().toISOString() }, null, 2);
        process.stdout.write(text + '\n');
        if (o.json) fs.writeFileSync(o.json, text + '\n');
        if (o.sheet && sheetPng) fs.writeFileSync(o.sheet, sheetPng);
      } finally {
        vae.dispose();
        disposeInstruments(inst);
      }
    });

  bench
    .command('perf')
    .description('serving performance ratios: split vs in-process, dynamic batching, denoiser replicas, UNet vs matmul GFLOP/s, style learning time by image count')
    .option('--json <file>', 'also write the JSON here')
    .option('--quick', 'tiny model, few runs (for CI: well under two minutes)')
    .option('--model <spec>', 'tiny, atelier-random (seeded random weights) or a pipeline folder (default: atelier-random; tiny with --quick)')
    .option('--learn-model <spec>', 'model the style-learning figure trains on (default: as --model)')
    .option('--only <sections>', `comma-separated subset of ${PERF_SECTIONS.join(',')}`)
    .option('--steps <n>', 'sampler steps per generation (default 4 quick, 10 full)')
    .option('--runs <n>', 'timed generations per side of split_vs_inprocess (default 3 quick, 8 full)')
    .action(async (o: PerfOpts) => {
      const log = (m: string) => process.stderr.write(`[bench perf] ${m}\n`);
      await initBackend({ log });
      const sections = o.only ? o.only.split(',').map((x) => x.trim()) : undefined;
      for (const x of sections ?? []) if (!(PERF_SECTIONS as readonly string[]).includes(x)) throw new Error(`--only: unknown section ${x} (${PERF_SECTIONS.join(', ')})`);
      const int = (flag: string, v?: string) => intFlag(flag, v);
      const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'museum-bench-perf-'));
      try {
        const model = perfModel(o.model ?? (o.quick ? 'tiny' : 'atelier-random'), tmp);
        const learnModel = o.learnModel ? perfModel(o.learnModel, tmp) : model;
        log(`model: ${model.description}`);
        const r = await runPerfBench({
          model,
          learnModel,
          quick: o.quick,
          sections: sections as PerfSection[] | undefined,
          steps: int('--steps', o.steps),
          runs: int('--runs', o.runs),
          // replicas run as `museum serve` processes of this very CLI
          cli: path.resolve(__dirname, '..', '..', 'bin', 'museum.js'),
          log,
        });
        const text = JSON.stringify({ ...r, command: `museum bench perf${o.quick ? ' --quick' : ''}${o.model ? ` --model ${o.model}` : ''}${o.only ? ` --only ${o.only}` : ''}`, date: new Date().toISOString() }, null, 2);
        process.stdout.write(text + '\n');
        if (o.json) fs.writeFileSync(o.json, text + '\n');
      } finally {
        fs.rmSync(tmp, { recursive: true, force: true });
      }
    });
}
