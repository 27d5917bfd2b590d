/**
 * One generation through the three stages: Encode (prompt and negative prompt in one call) ->
 * Denoise (progress streamed through) -> Decode. The call's deadline and cancellation reach every
 * stage: the gateway passes its deadline on and cancels the stage call when its own call ends.
 */
import type * as grpc from '@grpc/grpc-js';
import { museum } from '@museum/proto';
import {
  checkGuidance,
  checkGuidanceInterval,
  checkGuidanceRescale,
  checkPrompt,
  checkSeed,
  checkSteps,
  checkVersion,
  invalidArgument,
  samplerName,
  serverStream,
  setSpanAttributes,
  throwIfAborted,
  unary,
  type GenerationLimits,
} from '@museum/rpc';
import { stageError, type StageClients } from './stages';

export type GenerateEvent = { $case: 'progress'; value: museum.v1.GenerateProgress } | { $case: 'image'; value: museum.v1.GeneratedImage };

export interface GenerateContext {
  stages: StageClients;
  limits: GenerationLimits;
  signal: AbortSignal;
  deadline?: grpc.Deadline;
  /** Field prefix for messages, e.g. "items[2]." in a batch. */
  field?: string;
}

/** A checked request with defaults filled in. */
export interface GenerationPlan {
  prompt: string;
  negativePrompt: string;
  seed: number;
  steps: number;
  guidance: number;
  /** Undefined: the denoiser's model default. */
  guidanceRescale?: number;
  /** Undefined: the denoiser's model default. */
  guidanceInterval?: [number, number];
  sampler: museum.v1.Sampler;
  width: number;
  height: number;
  museumVersion?: number;
}

function checkSize(v: number, field: string, limits: GenerationLimits): number {
  if (v === 0) return 0;
  if (!Number.isInteger(v) || v < limits.minSide || v > limits.maxSide) throw invalidArgument(field, `must be in [${limits.minSide}, ${limits.maxSide}] pixels (0 = the model's default), got ${v}`);
  return v;
}

/** Validate a GenerateRequest (every failure an INVALID_ARGUMENT naming the field). */
export function planGeneration(req: museum.v1.GenerateRequest, limits: GenerationLimits, field = ''): GenerationPlan {
  const prompt = checkPrompt(req.prompt ?? '', `${field}prompt`, limits);
  const negativePrompt = checkPrompt(req.negativePrompt ?? '', `${field}negative_prompt`, limits, true);
  samplerName(req.sampler, `${field}sampler`, limits);
  return {
    prompt,
    negativePrompt,
    seed: checkSeed(req.seed ?? 0, 1, `${field}seed`),
    steps: checkSteps(req.steps ?? 0, `${field}steps`, limits),
    guidance: checkGuidance(req.guidance, `${field}guidance`, limits),
    guidanceRescale: checkGuidanceRescale(req.guidanceRescale, `${field}guidance_rescale`),
    guidanceInterval: checkGuidanceInterval(req.guidanceInterval, `${field}guidance_interval`),
    sampler: req.sampler ?? museum.v1.Sampler.SAMPLER_UNSPECIFIED,
    width: checkSize(req.width ?? 0, `${field}width`, limits),
    height: checkSize(req.height ?? 0, `${field}height`, limits),
    museumVersion: checkVersion(req.museumVersion, `${field}museum_version`),
  };
}

/** Split a [2, L, D] float tensor message into its two rows without touching TF.js. */
function splitRows(t: museum.v1.Tensor): [museum.v1.Tensor, museum.v1.Tensor] {
  const [b, ...rest] = t.shape;
  if (b !== 2) throw new Error(`the text encoder returned ${b} rows for 2 prompts`);
  const half = t.data.length / 2;
  return [
    { dtype: t.dtype, shape: [1, ...rest], data: t.data.subarray(0, half) },
    { dtype: t.dtype, shape: [1, ...rest], data: t.data.subarray(half) },
  ];
}

export async function generateOne(plan: GenerationPlan, ctx: GenerateContext, emit: (ev: GenerateEvent) => void): Promise<void> {
  const { stages, signal, deadline } = ctx;
  const f = ctx.field ?? '';
  const progress = (stage: museum.v1.Stage, step = 0, total = 0) => emit({ $case: 'progress', value: { stage, step, total } });
  const guided = plan.guidance > 1;

  // 1. text embeddings (negative first, in the same call, so both use one museum version)
  progress(museum.v1.Stage.STAGE_ENCODING);
  const prompts = guided ? [plan.negativePrompt, plan.prompt] : [plan.prompt];
  const renameEncoder = (d: string) => d.replace(/^prompts\[(\d+)\]/, (_m, i: string) => (guided && i === '0' ? `${f}negative_prompt` : `${f}prompt`)).replace(/^museum_version/, `${f}museum_version`);
  let enc: museum.v1.EncodeResponse;
  try {
    enc = await unary(stages.textEncoder.encode.bind(stages.textEncoder), { prompts, museumVersion: plan.museumVersion }, { deadline, signal });
  } catch (err) {
    throw stageError('text encoder', stages.addresses.textEncoder, err, renameEncoder);
  }
  if (!enc.embeddings) throw new Error('the text encoder returned no embeddings');
  const [negative, embeddings] = guided ? splitRows(enc.embeddings) : [undefined, enc.embeddings];
  throwIfAborted(signal);

  // 2. denoising, progress passed through
  progress(museum.v1.Stage.STAGE_DENOISING, 0, plan.steps);
  const renameDenoiser = (d: string) => (/^(steps|guidance|guidance_rescale|guidance_interval|sampler|height|width|seed|museum_version)\b/.test(d) ? `${f}${d}` : d);
  let latents: museum.v1.Tensor | undefined;
  let version = enc.museumVersion;
  try {
    const stream = serverStream(
      stages.denoiser.denoise.bind(stages.denoiser),
      {
        embeddings,
        negativeEmbeddings: negative,
        seed: plan.seed,
        steps: plan.steps,
        guidance: plan.guidance,
        guidanceRescale: plan.guidanceRescale,
        guidanceInterval: plan.guidanceInterval ? { fromTimestep: plan.guidanceInterval[0], toTimestep: plan.guidanceInterval[1] } : undefined,
        sampler: plan.sampler,
        height: plan.height,
        width: plan.width,
        // the version the text encoder resolved, so that tokens and LoRA belong together
        museumVersion: enc.museumVersion,
        previewEvery: 0,
      },
      { deadline, signal },
    );
    for await (const msg of stream) {
      const ev = msg.event;
      if (ev?.$case === 'progress') progress(museum.v1.Stage.STAGE_DENOISING, ev.value.step, ev.value.total);
      else if (ev?.$case === 'result') {
        latents = ev.value.latents;
        version = ev.value.museumVersion;
      }
    }
  } catch (err) {
    throw stageError('denoiser', stages.addresses.denoiser, err, renameDenoiser);
  }
  if (!latents) throw new Error('the denoiser ended without latents');
  throwIfAborted(signal);

  // 3. pixels
  progress(museum.v1.Stage.STAGE_DECODING);
  let dec: museum.v1.DecodeResponse;
  try {
    dec = await unary(stages.vaeDecoder.decode.bind(stages.vaeDecoder), { latents, returnTensor: false }, { deadline, signal });
  } catch (err) {
    throw stageError('VAE decoder', stages.addresses.vaeDecoder, err);
  }
  if (dec.png.length !== 1) throw new Error(`the VAE decoder returned ${dec.png.length} images for 1`);
  setSpanAttributes({ 'museum.version': version, 'museum.steps': plan.steps });
  emit({ $case: 'image', value: { png: dec.png[0], width: dec.width, height: dec.height, seed: plan.seed, museumVersion: version } });
}
