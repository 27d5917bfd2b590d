import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { SingleBar, Presets } from 'cli-progress';
import { initBackend, encodePng, tf } from '@museum/tensor';
import { StableDiffusionPipeline, type GenerateOptions, type SamplerName } from '@museum/models';
import { MuseumRuntime } from '@museum/museum';
import { atelierDir } from '../paths';
import { museumDataDir } from './start';
import { openExistingMuseum, parseVersion } from './styles';
import { gatewayAddress, remoteGenerateCommand } from './client';
import { guidanceIntervalFlag, guidanceRescaleFlag, intInRange } from '../flags';

interface GenerateOpts {
  out: string;
  seed: string;
  steps: string;
  guidance: string;
  guidanceRescale?: string;
  guidanceInterval?: string;
  sampler: SamplerName;
  negative?: string;
  model?: string;
  museum?: string;
  version?: string;
  /** Generate through a running gateway (true: the default address). */
  address?: string | true;
}

/**
 * What generates: the plain pipeline, or a museum version through MuseumRuntime (with --museum or --version, or
 * when the prompt names a `<style>` and the default museum exists).
 */
function openGenerator(dir: string, prompt: string, o: GenerateOpts, log: (s: string) => void): { generate(g: GenerateOptions): Promise<tf.Tensor4D>; dispose(): void } {
  const museumDir = o.museum ?? museumDataDir();
  const useMuseum = o.museum !== undefined || o.version !== undefined || (/<[a-z0-9-]+>/.test(prompt) && fs.existsSync(path.join(museumDir, 'HEAD')));
  if (!useMuseum) {
    const pipe = StableDiffusionPipeline.fromPretrained(dir);
    return { generate: (g) => pipe.generate(g), dispose: () => pipe.dispose() };
  }
  const museum = openExistingMuseum(museumDir);
  const rt = MuseumRuntime.fromPretrained(dir);
  try {
    const v = rt.load(museum, parseVersion(o.version));
    log(`museum ${museum.dir} version ${v.version} (${v.manifest.styles.map((s) => s.token).join(' ') || 'no styles'})`);
    return { generate: (g) => rt.generate(v, g), dispose: () => rt.dispose() };
  } catch (err) {
    rt.dispose();
    throw err;
  }
}

const SAMPLERS: SamplerName[] = ['ddim', 'dpmpp-2m', 'euler-a'];

const intIn = intInRange;

/** Generate one image in-process from a diffusers folder (the bundled Atelier model by default). */
export async function generateToFile(prompt: string, o: GenerateOpts, log: (s: string) => void = () => {}): Promise<string> {
  await initBackend();
  const dir = path.resolve(o.model ?? atelierDir());
  if (!fs.existsSync(path.join(dir, 'model_index.json'))) {
    throw new Error(`no model at ${dir} (model_index.json missing): run \`museum pretrain\` or pass --model DIR`);
  }
  const pipe = openGenerator(dir, prompt, o, log);
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
      guidanceRescale: guidanceRescaleFlag(o.guidanceRescale),
      guidanceInterval: guidanceIntervalFlag(o.guidanceInterval),
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
    .option('--guidance <x>', 'classifier-free guidance scale', '7.5')
    .option('--guidance-rescale <phi>', "diffusers' guidance_rescale in [0, 1]: pull the guided prediction's spread back to the conditional one's (default: the model's sampling_config.json, else 0)")
    .option('--guidance-interval <from,to>', "guide only at timesteps from…to (0…999), or none: every step (default: the model's sampling_config.json, else every step)")
    .option('--sampler <name>', `one of ${SAMPLERS.join(', ')}`, 'ddim')
    .option('--negative <prompt>', 'negative prompt')
    .option('--model <dir>', 'a diffusers pipeline folder (default: the bundled Atelier model)')
    .option('--museum <dir>', 'draw with a museum version: `in <style>` prompts (default folder: $MUSEUM_DIR or <repo>/museum-data)')
    .option('--version <n>', 'the museum version (default: the latest)')
    .option('--address [host:port]', 'generate through a running gateway instead (default 127.0.0.1:50051, as `museum start` prints, or $MUSEUM_GATEWAY_ADDR)')
    .action(async (prompt: string, o: GenerateOpts) => {
      if (!SAMPLERS.includes(o.sampler)) throw new InvalidArgumentError(`--sampler must be one of ${SAMPLERS.join(', ')}`);
      const g = Number(o.guidance);
      if (!Number.isFinite(g) || g < 0 || g > 30) throw new InvalidArgumentError('--guidance must be a number in [0, 30]');
      const phi = guidanceRescaleFlag(o.guidanceRescale);
      const guidanceInterval = guidanceIntervalFlag(o.guidanceInterval);
      if (o.address !== undefined) {
        if (o.model !== undefined || o.museum !== undefined) throw new InvalidArgumentError('--model and --museum are for in-process generation: the services have their own');
        const r = { prompt, out: o.out, negative: o.negative, seed: Number(o.seed), steps: Number(o.steps), guidance: g, guidanceRescale: phi, guidanceInterval, sampler: o.sampler, museumVersion: parseVersion(o.version) };
        await remoteGenerateCommand(gatewayAddress(o.address), r, (s) => process.stderr.write(s + '\n'));
        return;
      }
      await generateToFile(prompt, o, (s) => process.stderr.write(s + '\n'));
    });
}
