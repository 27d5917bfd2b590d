/**
 * `museum learn --name NAME --images DIR`: learn a style from a folder of images (in-process) and commit it as
 * the museum's next version. Images of any size (PNG, JPEG, WebP) are centre-cropped and resized by the
 * learner; `<image>.txt` next to an image is its caption (`a red star` → trained as `a red star in <NAME>`).
 * Nothing is written to the museum unless the folder holds at least one usable image and the name is free.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { Presets, SingleBar } from 'cli-progress';
import { decodeImage, initBackend } from '@museum/tensor';
import { StableDiffusionPipeline } from '@museum/models';
import {
  METHOD_NAMES,
  Museum,
  disposeModels,
  isMethodName,
  learnStyle,
  modelsFromPipeline,
  styleTokenOf,
  validateStyleName,
  type LearnProgress,
  type LearnStyleResult,
  type MethodName,
} from '@museum/museum';
import { atelierDir } from '../paths';
import { collect, intFlag, learnOverrides } from '../flags';
import { museumDataDir, requireModelFolder } from './start';
import { remoteLearnCommand, trainerAddress } from './client';

export const IMAGE_EXTENSIONS = ['.png', '.jpg', '.jpeg', '.webp'];

export interface ImageFolder {
  /** Usable images in name order. */
  files: string[];
  bytes: Buffer[];
  /** One caption per image (`<stem>.txt`), or undefined for images without one. */
  captions: Array<string | undefined>;
  /** Files that are not usable images, with why. */
  skipped: Array<{ file: string; reason: string }>;
}

/** Read every usable image of `dir` (decoding each once to be sure); captions from `<stem>.txt`. */
export async function readImageFolder(dir: string): Promise<ImageFolder> {
  const abs = path.resolve(dir);
  if (!fs.existsSync(abs) || !fs.statSync(abs).isDirectory()) throw new Error(`--images ${abs} is not a folder`);
  const out: ImageFolder = { files: [], bytes: [], captions: [], skipped: [] };
  const names = fs.readdirSync(abs).sort();
  const stems = new Set(names.filter((n) => IMAGE_EXTENSIONS.includes(path.extname(n).toLowerCase())).map((n) => path.parse(n).name));
  for (const name of names) {
    const file = path.join(abs, name);
    const ext = path.extname(name).toLowerCase();
    if (fs.statSync(file).isDirectory()) {
      out.skipped.push({ file: name, reason: 'a folder' });
      continue;
    }
    if (ext === '.txt' && stems.has(path.parse(name).name)) continue; // a caption
    if (!IMAGE_EXTENSIONS.includes(ext)) {
      out.skipped.push({ file: name, reason: `not ${IMAGE_EXTENSIONS.join('/')}` });
      continue;
    }
    const bytes = fs.readFileSync(file);
    try {
      (await decodeImage(bytes)).dispose();
    } catch (err) {
      out.skipped.push({ file: name, reason: `cannot be decoded (${(err as Error).message.split('\n')[0]})` });
      continue;
    }
    const captionFile = path.join(abs, `${path.parse(name).name}.txt`);
    out.files.push(name);
    out.bytes.push(bytes);
    out.captions.push(fs.existsSync(captionFile) ? fs.readFileSync(captionFile, 'utf8').trim() || undefined : undefined);
  }
  return out;
}

export interface LearnOpts {
  name: string;
  images: string;
  museum?: string;
  method?: string;
  steps?: string;
  model?: string;
  /** `key=value` overrides of the learning settings and loss weights (`--set`). */
  set?: string[];
}

export interface LearnHooks {
  log?: (s: string) => void;
  onProgress?: (p: LearnProgress) => void;
  /** Cancels between steps; nothing is committed. */
  signal?: AbortSignal;
  env?: NodeJS.ProcessEnv;
}

/**
 * Check everything that can be checked before touching the museum (name, method, images, model), then learn
 * and commit. Returns the committed version.
 */
export async function learnFromFolder(o: LearnOpts, hooks: LearnHooks = {}): Promise<LearnStyleResult & { museumDir: string; images: ImageFolder }> {
  const log = hooks.log ?? (() => {});
  const name = validateStyleName(o.name);
  if (o.method !== undefined && !isMethodName(o.method)) throw new InvalidArgumentError(`--method must be one of ${METHOD_NAMES.join(', ')}`);
  const steps = intFlag('--steps', o.steps);
  const overrides = learnOverrides(o.set);
  await initBackend({ log: () => {} });
  const images = await readImageFolder(o.images);
  const skipped = images.skipped.map((s) => `${s.file} (${s.reason})`);
  if (images.files.length === 0) {
    throw new Error(`no usable image in ${path.resolve(o.images)} (PNG, JPEG or WebP); the museum was not changed` + (skipped.length ? `\n  skipped: ${skipped.join(', ')}` : ' (the folder is empty)'));
  }
  if (skipped.length) log(`skipping ${skipped.length} file(s): ${skipped.join(', ')}`);
  const modelDir = path.resolve(o.model ?? atelierDir(hooks.env));
  requireModelFolder(modelDir);
  const museumDir = path.resolve(o.museum ?? museumDataDir(hooks.env));
  const exists = fs.existsSync(path.join(museumDir, 'HEAD'));
  // an existing museum must be on this base and must not hold the name yet: both checked before any write
  const museum = exists ? Museum.open(museumDir, { baseModelDir: modelDir }) : null;
  museum?.checkNewStyleName(name);
  const target = museum ?? Museum.create(museumDir, { baseModelDir: modelDir });
  log(`learning ${styleTokenOf(name)} from ${images.files.length} image(s) into ${museumDir} (base ${modelDir})`);
  const models = modelsFromPipeline(StableDiffusionPipeline.fromPretrained(modelDir));
  try {
    const r = await learnStyle(target, name, images.bytes, {
      ...overrides.learn,
      weights: overrides.weights,
      method: o.method as MethodName | undefined,
      steps: steps ?? overrides.learn.steps,
      models,
      captions: images.captions.map((c) => c ?? 'a picture'),
      onProgress: hooks.onProgress,
      signal: hooks.signal,
    });
    return { ...r, museumDir, images };
  } finally {
    disposeModels(models);
  }
}

function formatLosses(l: LearnProgress['losses']): string {
  return Object.entries(l)
    .filter(([k]) => k !== 'total')
    .map(([k, v]) => `${k} ${(v as number).toPrecision(3)}`)
    .join(' ');
}

export function registerLearn(program: Command): void {
  program
    .command('learn')
    .description('learn a style from a folder of images and commit it as the next museum version (in-process)')
    .requiredOption('--name <name>', 'the style name: [a-z0-9-], prompted as `in <name>`')
    .requiredOption('--images <dir>', 'folder of PNG/JPEG/WebP images of any size (`<image>.txt`: its caption)')
    .option('--museum <dir>', 'museum store folder (default: $MUSEUM_DIR or <repo>/museum-data)')
    .option('--method <name>', `continual-learning method (default: the museum's, or museummaker); one of ${METHOD_NAMES.join(', ')}`)
    .option('--steps <n>', 'optimiser steps (default 400)')
    .option('--model <dir>', 'the base model folder (default: the bundled Atelier model)')
    .option('--set <key=value>', 'override a learning setting (lr=3e-3, loraTargets=all-attention) or a loss weight (weights.sdl=1); repeatable', collect)
    .option('--address [host:port]', 'upload to a running trainer instead (default 127.0.0.1:50055, as `museum start` prints, or $MUSEUM_TRAINER_ADDR)')
    .action(async (o: LearnOpts & { address?: string | true }) => {
      const err = (s: string) => process.stderr.write(s + '\n');
      if (o.address !== undefined) {
        if (o.model !== undefined || o.museum !== undefined || o.method !== undefined || o.set !== undefined) throw new InvalidArgumentError('--model, --museum, --method and --set are for in-process learning: the trainer has its own');
        const steps = intFlag('--steps', o.steps);
        const address = trainerAddress(o.address);
        const r = await remoteLearnCommand(address, { name: o.name, images: o.images, steps }, err);
        process.stdout.write(`committed version ${r.status.museumVersion} on the trainer at ${address}: <${r.status.style}> (${r.files.length} images, ${r.status.step} steps)\n`);
        return;
      }
      const bar = new SingleBar(
        { format: 'learn <{name}> [{bar}] {value}/{total} steps | loss {loss} | {terms} | ETA {eta_formatted}', hideCursor: true, noTTYOutput: true, notTTYSchedule: 10000, etaBuffer: 20 },
        Presets.shades_classic,
      );
      let started = false;
      // Ctrl-C stops between steps and commits nothing
      const ac = new AbortController();
      const onSigint = () => ac.abort();
      process.once('SIGINT', onSigint);
      try {
        const r = await learnFromFolder(o, {
          log: err,
          signal: ac.signal,
          onProgress: (p) => {
            if (p.phase === 'train') {
              const payload = { name: o.name, loss: p.losses.total?.toFixed(4) ?? '-', terms: formatLosses(p.losses) };
              if (!started) {
                bar.start(p.total, 0, payload);
                started = true;
              }
              bar.update(p.step, payload);
            } else if (p.phase === 'fisher' && p.step === 1) {
              bar.stop();
              err('estimating the EWC Fisher…');
            } else if (p.phase === 'commit') {
              bar.stop();
            }
          },
        });
        bar.stop();
        process.stdout.write(
          `committed version ${r.version} of ${r.museumDir}: ${r.style.token} (${r.style.method}, ${r.images.files.length} images, ${r.style.metrics.steps} steps, ${r.trainSeconds.toFixed(1)} s)\n`,
        );
      } finally {
        bar.stop();
        process.off('SIGINT', onSigint);
      }
    });
}
