import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { SingleBar, Presets } from 'cli-progress';
import { initBackend, encodePng, tf } from '@museum/tensor';
import { StableDiffusionPipeline, type SamplerName } from '@museum/models';
import { atelierDir } from '../paths';

interface GenerateOpts {
  out: string;
  seed: string;
  steps: string;
  guidance: string;
  sampler: SamplerName;
  negative?: string;
  model?: string;
}

const SAMPLERS: SamplerName[] = ['ddim', 'dpmpp-2m', 'euler-a'];

function intIn(name: string, lo: number, hi: number) {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < lo || n > hi) throw new InvalidArgumentError(`${name} must be an integer in [${lo}, ${hi}]`);
    return v;
  };
}

/** Generate one image in-process from a diffusers folder (the bundled Atelier model by default). */
export async function generateToFile(prompt: string, o: GenerateOpts, log: (s: string) => void = () => {}): Promise<string> {
  await initBackend();
  const dir = path.resolve(o.model ?? atelierDir());
  if (!fs.existsSync(path.join(dir, 'model_index.json'))) {
    throw new Error(`no model at ${dir} (model_index.json missing): run \`museum pretrain\` or pass --model DIR`);
  }
  const pipe = StableDiffusionPipeline.fromPretrained(dir);
  const steps = Number(o.steps);
  const bar = new SingleBar({ format: 'generate [{bar}] {value}/{total} steps', hideCursor: true }, Presets.shades_classic);
  bar.start(steps, 0);
  try {
    const images = await pipe.generate({
      prompt,
      negativePrompt: o.negative ?? '',
      seed: Number(o.seed),
      steps,
      guidance: Number(o.guidance),
      sampler: o.sampler,
      onStep: (step) => bar.update(step),
    });
    bar.stop();
    const png = await encodePng(images as tf.Tensor4D, { range: '0,1' });
    images.dispose();
    const out = path.resolve(o.out);
    fs.mkdirSync(path.dirname(out), { recursive: true });
    fs.writeFileSync(out, png);
    log(`wrote ${out}`);
    return out;
  } finally {
    bar.stop();
    pipe.dispose();
  }
}

export function registerGenerate(program: Command): void {
  program
    .command('generate')
    .argument('<prompt>', 'the prompt, e.g. "a red star"')
    .description('generate an image from a prompt (in-process, with the bundled Atelier model by default)')
    .option('-o, --out <file>', 'output PNG', 'out.png')
    .option('--seed <n>', 'random seed', intIn('--seed', 0, 2 ** 31 - 1), '0')
    .option('--steps <n>', 'sampler steps', intIn('--steps', 1, 200), '25')
    .option('--guidance <x>', 'classifier-free guidance scale', '5')
    .option('--sampler <name>', `one of ${SAMPLERS.join(', ')}`, 'ddim')
    .option('--negative <prompt>', 'negative prompt')
    .option('--model <dir>', 'a diffusers pipeline folder (default: the bundled Atelier model)')
    .action(async (prompt: string, o: GenerateOpts) => {
      if (!SAMPLERS.includes(o.sampler)) throw new InvalidArgumentError(`--sampler must be one of ${SAMPLERS.join(', ')}`);
      const g = Number(o.guidance);
      if (!Number.isFinite(g) || g < 0 || g > 30) throw new InvalidArgumentError('--guidance must be a number in [0, 30]');
      await generateToFile(prompt, o, (s) => process.stderr.write(s + '\n'));
    });
}
