/**
 * DenoiserService.Denoise: check the request, pin its museum version, hand the run to the batcher
 * and stream a progress event per step (a float16 preview of the latents every `preview_every`
 * steps), then the final latents. A cancelled or expired call leaves the batcher between two steps.
 */
import { tf } from '@museum/tensor';
import { DType, museum, tensorFromProto, tensorToProto } from '@museum/proto';
import { resolveGuidanceShaping, type LoraAdapterSet, type SamplingDefaults } from '@museum/models';
import {
  checkGuidance,
  checkGuidanceInterval,
  checkGuidanceRescale,
  checkSeed,
  checkSide,
  checkSteps,
  checkVersion,
  invalidArgument,
  samplerName,
  setSpanAttributes,
  type GenerationLimits,
  type VersionCache,
} from '@museum/rpc';
import type { DenoiseBatcher } from './batcher';

export interface DenoiseModelInfo {
  /** Latent channels. */
  inChannels: number;
  /** Context width the UNet's cross-attention takes. */
  crossAttentionDim: number;
  /** Pixels per latent cell. */
  vaeScaleFactor: number;
  /** Default image side in pixels. */
  defaultSize: number;
  /** Guidance shaping for requests that leave it unset (the folder's sampling_config.json). */
  samplingDefaults: SamplingDefaults;
}

export interface DenoiseDeps {
  batcher: () => DenoiseBatcher;
  info: () => DenoiseModelInfo;
  versions: VersionCache<LoraAdapterSet | null>;
  limits: GenerationLimits;
  /** Images per request. */
  maxImages: number;
}

function decodeContext(t: museum.v1.Tensor | undefined, field: string, info: DenoiseModelInfo, maxImages: number): tf.Tensor3D {
  if (!t) throw invalidArgument(field, 'is required');
  let x: tf.Tensor;
  try {
    x = tensorFromProto(t);
  } catch (err) {
    throw invalidArgument(field, err instanceof Error ? err.message : String(err));
  }
  const fail = (msg: string) => {
    x.dispose();
    return invalidArgument(field, msg);
  };
  if (x.dtype !== 'float32') throw fail(`must be a float tensor, got ${x.dtype}`);
  if (x.rank !== 3) throw fail(`must be [B, L, D], got [${x.shape.join(', ')}]`);
  const [b, l, d] = x.shape;
  if (b < 1 || b > maxImages) throw fail(`batch of ${b}, must be 1..${maxImages}`);
  if (l < 1) throw fail('has no tokens');
  if (d !== info.crossAttentionDim) throw fail(`has width ${d}, the UNet's cross-attention takes ${info.crossAttentionDim}`);
  return x as tf.Tensor3D;
}

export async function denoise(
  req: museum.v1.DenoiseRequest,
  deps: DenoiseDeps,
  signal: AbortSignal,
  write: (msg: museum.v1.DenoiseResponse) => void,
): Promise<void> {
  const { limits } = deps;
  const info = deps.info();
  const steps = checkSteps(req.steps ?? 0, 'steps', limits);
  const guidance = checkGuidance(req.guidance, 'guidance', limits);
  // Unset shaping takes the model folder's sampling_config.json (none: plain guidance at every step).
  const { guidanceRescale, guidanceInterval } = resolveGuidanceShaping(info.samplingDefaults, {
    guidanceRescale: checkGuidanceRescale(req.guidanceRescale),
    guidanceInterval: checkGuidanceInterval(req.guidanceInterval),
  });
  const sampler = samplerName(req.sampler, 'sampler', limits);
  const f = info.vaeScaleFactor;
  const height = checkSide(req.height ?? 0, 'height', info.defaultSize, f, limits);
  const width = checkSide(req.width ?? 0, 'width', info.defaultSize, f, limits);
  const previewEvery = req.previewEvery ?? 0;
  const version = checkVersion(req.museumVersion);

  const embeddings = decodeContext(req.embeddings, 'embeddings', info, deps.maxImages);
  let negative: tf.Tensor3D | null = null;
  try {
    checkSeed(req.seed ?? 0, embeddings.shape[0]);
    if (guidance > 1) {
      negative = decodeContext(req.negativeEmbeddings, 'negative_embeddings', info, deps.maxImages);
      if (negative.shape.join(',') !== embeddings.shape.join(',')) {
        throw invalidArgument('negative_embeddings', `shape [${negative.shape.join(', ')}] differs from embeddings [${embeddings.shape.join(', ')}]`);
      }
    }
  } catch (err) {
    embeddings.dispose();
    negative?.dispose();
    throw err;
  }

  let pinned;
  try {
    pinned = await deps.versions.acquire(version);
  } catch (err) {
    embeddings.dispose();
    negative?.dispose();
    throw err;
  }
  setSpanAttributes({ 'museum.version': pinned.version, 'museum.steps': steps, 'museum.sampler': sampler, 'museum.images': embeddings.shape[0] });
  try {
    const b = embeddings.shape[0];
    const { latents, sharedSteps } = await deps.batcher().submit({
      embeddings,
      negativeEmbeddings: negative,
      seed: req.seed ?? 0,
      steps,
      guidance,
      guidanceRescale,
      guidanceInterval,
      sampler,
      latentShape: [b, height / f, width / f, info.inChannels],
      version: pinned.version,
      adapters: pinned.value,
      signal,
      onStep: (step, total, timestep, x) => {
        const preview = previewEvery > 0 && (step % previewEvery === 0 || step === total) ? tensorToProto(x, { dtype: DType.DTYPE_FLOAT16 }) : undefined;
        write({ event: { $case: 'progress', value: { step, total, timestep, preview } } });
      },
    });
    setSpanAttributes({ 'museum.shared_steps': sharedSteps });
    try {
      write({ event: { $case: 'result', value: { latents: tensorToProto(latents), museumVersion: pinned.version, sharedSteps } } });
    } finally {
      latents.dispose();
    }
  } finally {
    pinned.release();
  }
}
