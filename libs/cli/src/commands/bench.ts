import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command } from 'commander';
import { SingleBar, Presets } from 'cli-progress';
import { initBackend } from '@museum/tensor';
import { StableDiffusionPipeline, type SamplerName } from '@museum/models';
import { loadInstruments, disposeInstruments } from '@museum/instruments';
import { runBaseBench } from '@museum/bench';
import { atelierDir } from '../paths';

interface BaseOpts {
  json?: string;
  sheet?: string;
  model?: string;
  steps: string;
  guidance: string;
  sampler: SamplerName;
  quick?: boolean;
}

export function registerBench(program: Command): void {
  const bench = program.command('bench').description('benchmarks that print JSON (see bench/results/ for committed runs)');
  bench
    .command('base')
    .description('shape/colour/style accuracy of the base model on every `a {colour} {shape}` prompt, judged by the instruments')
    .option('--json <file>', 'also write the JSON here')
    .option('--sheet <file>', 'write the contact sheet PNG (rows: shapes, columns: colours)')
    .option('--model <dir>', 'diffusers folder (default: the bundled Atelier model)')
    .option('--steps <n>', 'sampler steps', '25')
    .option('--guidance <x>', 'guidance scale', '5')
    .option('--sampler <name>', 'ddim, dpmpp-2m or euler-a', 'ddim')
    .option('--quick', 'one seed, fewer style samples (for CI)')
    .action(async (o: BaseOpts) => {
      await initBackend();
      const pipe = StableDiffusionPipeline.fromPretrained(path.resolve(o.model ?? atelierDir()));
      const inst = loadInstruments();
      const bar = new SingleBar({ format: 'bench base [{bar}] {value}/{total} images | ETA {eta_formatted}', noTTYOutput: true, notTTYSchedule: 30000 }, Presets.shades_classic);
      let started = false;
      try {
        const r = await runBaseBench(pipe, inst, {
          steps: Number(o.steps),
          guidance: Number(o.guidance),
          sampler: o.sampler,
          seeds: o.quick ? [1] : [1, 2],
          styleSamples: o.quick ? 8 : 32,
          onProgress: (done, total) => {
            if (!started) {
              bar.start(total, 0);
              started = true;
            }
            bar.update(done);
          },
        });
        bar.stop();
        const { contactSheetPng, ...json } = r;
        const text = JSON.stringify({ ...json, command: `museum bench base${o.quick ? ' --quick' : ''}`, date: new Date().toISOString() }, null, 2);
        process.stdout.write(text + '\n');
        if (o.json) fs.writeFileSync(o.json, text + '\n');
        if (o.sheet && contactSheetPng) fs.writeFileSync(o.sheet, contactSheetPng);
      } finally {
        bar.stop();
        pipe.dispose();
        disposeInstruments(inst);
      }
    });
}
