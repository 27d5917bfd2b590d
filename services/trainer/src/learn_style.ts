/**
 * TrainerService.LearnStyle: everything is checked before the job is queued (name, name taken,
 * image count, every image decodes, captions, steps), so a queued job fails only for reasons of
 * its own; returns the job id at once.
 */
import { decodeImage } from '@museum/tensor';
import type { museum } from '@museum/proto';
import { alreadyExists, checkPrompt, checkSeed, invalidArgument, STYLE_NAME_PATTERN, type GenerationLimits } from '@museum/rpc';
import type { Museum } from '@museum/museum';
import type { JobQueue } from './jobs';

export interface LearnStyleDeps {
  museum: () => Museum;
  jobs: () => JobQueue;
  limits: GenerationLimits;
  maxImages: number;
  maxSteps: number;
}

export async function learnStyle(req: museum.v1.LearnStyleRequest, deps: LearnStyleDeps): Promise<museum.v1.LearnStyleResponse> {
  const name = req.name ?? '';
  if (!STYLE_NAME_PATTERN.test(name)) throw invalidArgument('name', `${JSON.stringify(name)} is not a style name: use 1 to 48 characters of [a-z0-9-]`);
  const m = deps.museum();
  if (m.listStyles().some((s) => s.name === name)) throw alreadyExists(`name: style "${name}" is already in the museum (version ${m.latestVersion()})`);
  if (deps.jobs().activeStyles().has(name)) throw alreadyExists(`name: style "${name}" is already being learned`);

  const images = req.images ?? [];
  if (images.length < 1) throw invalidArgument('images', 'at least one image is needed');
  if (images.length > deps.maxImages) throw invalidArgument('images', `${images.length} images, at most ${deps.maxImages}`);
  for (let i = 0; i < images.length; i++) {
    try {
      const t = await decodeImage(images[i]);
      t.dispose();
    } catch (err) {
      throw invalidArgument(`images[${i}]`, `does not decode as an image (${err instanceof Error ? err.message : String(err)})`);
    }
  }

  const o = req.options;
  const captions = o?.captions ?? [];
  if (captions.length !== 0 && captions.length !== images.length) throw invalidArgument('options.captions', `${captions.length} captions for ${images.length} images (give one per image, or none)`);
  captions.forEach((c, i) => checkPrompt(c, `options.captions[${i}]`, deps.limits));
  const steps = o?.steps ?? 0;
  if (!Number.isInteger(steps) || steps < 0 || steps > deps.maxSteps) throw invalidArgument('options.steps', `must be in [1, ${deps.maxSteps}] (0 = the default), got ${steps}`);
  const seed = checkSeed(o?.seed ?? 0, 1, 'options.seed');

  const job = deps.jobs().submit({
    style: name,
    images: images.map((b) => Buffer.from(b)),
    captions: captions.length ? captions : undefined,
    steps: steps || undefined,
    seed,
  });
  return { jobId: job.status.jobId };
}
