/**
 * The command line as a client of running services (`museum start`, or a deployment): generate
 * through the gateway (progress streamed to a bar, the PNG written), learn a style by uploading a
 * folder to the trainer and watching the job, list the styles, and draw a gallery with one tile per
 * learned style. The functions here are what the `--address` modes of `museum generate | learn |
 * styles` and `museum gallery` run; they take callbacks instead of drawing, so tests drive them.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { InvalidArgumentError } from 'commander';
import { Presets, SingleBar } from 'cli-progress';
import { decodeImage, encodePng, imageGrid, initBackend, tf } from '@museum/tensor';
import { museum } from '@museum/proto';
import { DEFAULT_MAX_MESSAGE_BYTES, clientOptions, isServiceError, serverStream, unary } from '@museum/rpc';
import { COLOURS, SHAPES, contentPrompt } from '@museum/world';
import { readImageFolder } from './learn';

/** Where `museum start` puts the gateway (its --port-base) and the trainer (gateway port + 4). */
export const DEFAULT_GATEWAY_ADDRESS = '127.0.0.1:50051';
export const DEFAULT_TRAINER_ADDRESS = '127.0.0.1:50055';

/** The gateway to use: the flag's value, else $MUSEUM_GATEWAY_ADDR, else the local `museum start`. */
export function gatewayAddress(flag: string | boolean | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return checkAddress(typeof flag === 'string' ? flag : env.MUSEUM_GATEWAY_ADDR || DEFAULT_GATEWAY_ADDRESS);
}

/** The trainer to use: the flag's value, else $MUSEUM_TRAINER_ADDR, else the local `museum start`. */
export function trainerAddress(flag: string | boolean | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return checkAddress(typeof flag === 'string' ? flag : env.MUSEUM_TRAINER_ADDR || DEFAULT_TRAINER_ADDRESS);
}

/** HOST:PORT or [IPv6]:PORT. */
export function checkAddress(a: string): string {
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(a.trim());
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) throw new InvalidArgumentError(`the address must be HOST:PORT, got ${JSON.stringify(a)}`);
  return a.trim();
}

export interface CallOptions {
  signal?: AbortSignal;
  /** Whole-call deadline in ms (default: none for generation and training, 30 s for listings). */
  timeoutMs?: number;
}

const deadline = (ms: number | undefined) => (ms === undefined ? undefined : Date.now() + ms);

/** A client error a person can act on: unreachable services and wrong addresses are named. */
export function explainError(err: unknown, service: 'gateway' | 'trainer', address: string): Error {
  if (!isServiceError(err)) return err instanceof Error ? err : new Error(String(err));
  const hint = service === 'gateway' ? `--address (default ${DEFAULT_GATEWAY_ADDRESS}, $MUSEUM_GATEWAY_ADDR)` : `--address (default ${DEFAULT_TRAINER_ADDRESS}, $MUSEUM_TRAINER_ADDR)`;
  let msg: string;
  switch (err.code) {
    case grpc.status.UNAVAILABLE:
      msg = `no ${service} answers at ${address} (${err.details}): start the services with \`museum start\`, or point ${hint} at one`;
      break;
    case grpc.status.UNIMPLEMENTED:
      msg = `${address} is not a ${service} (${err.details}); \`museum start\` prints the address of each service`;
      break;
    default:
      msg = `${grpc.status[err.code]}: ${err.details}`;
  }
  const out = new Error(msg) as Error & { code?: number };
  out.code = err.code;
  return out;
}

function gatewayClient(address: string): museum.v1.GatewayServiceClient {
  return new museum.v1.GatewayServiceClient(address, grpc.credentials.createInsecure(), clientOptions());
}

function trainerClient(address: string): museum.v1.TrainerServiceClient {
  return new museum.v1.TrainerServiceClient(address, grpc.credentials.createInsecure(), clientOptions());
}

const SAMPLERS: Record<string, museum.v1.Sampler> = {
  ddim: museum.v1.Sampler.SAMPLER_DDIM,
  'dpmpp-2m': museum.v1.Sampler.SAMPLER_DPMPP_2M,
  'euler-a': museum.v1.Sampler.SAMPLER_EULER_A,
};

// ---------------------------------------------------------------- generate

export interface RemoteGenerateOptions {
  prompt: string;
  negative?: string;
  seed?: number;
  /** 0/undefined = the service's default. */
  steps?: number;
  guidance?: number;
  /** diffusers' guidance_rescale φ (undefined: the model's default). */
  guidanceRescale?: number;
  /** Guide only at timesteps [from, to] (undefined: the model's default; null: every step). */
  guidanceInterval?: readonly [number, number] | null;
  sampler?: string;
  width?: number;
  height?: number;
  /** Undefined = the latest. */
  museumVersion?: number;
}

/** GenerateRequest of the options (names checked here; values by the gateway). */
export function generateRequest(o: RemoteGenerateOptions): museum.v1.GenerateRequest {
  if (o.sampler !== undefined && !(o.sampler in SAMPLERS)) throw new InvalidArgumentError(`--sampler must be one of ${Object.keys(SAMPLERS).join(', ')}`);
  return museum.v1.GenerateRequest.fromPartial({
    prompt: o.prompt,
    negativePrompt: o.negative ?? '',
    seed: o.seed ?? 0,
    steps: o.steps ?? 0,
    guidance: o.guidance,
    guidanceRescale: o.guidanceRescale,
    // null: every step, whatever the model recommends
    guidanceInterval: o.guidanceInterval === undefined ? undefined : o.guidanceInterval === null ? { fromTimestep: 0, toTimestep: Infinity } : { fromTimestep: o.guidanceInterval[0], toTimestep: o.guidanceInterval[1] },
    sampler: o.sampler === undefined ? museum.v1.Sampler.SAMPLER_UNSPECIFIED : SAMPLERS[o.sampler],
    width: o.width ?? 0,
    height: o.height ?? 0,
    museumVersion: o.museumVersion,
  });
}

/** One image through the gateway; `onProgress` sees every event (encoding, each denoising step, decoding). */
export async function remoteGenerate(
  address: string,
  o: RemoteGenerateOptions,
  hooks: CallOptions & { onProgress?: (p: museum.v1.GenerateProgress) => void } = {},
): Promise<museum.v1.GeneratedImage> {
  const req = generateRequest(o);
  const client = gatewayClient(address);
  try {
    let image: museum.v1.GeneratedImage | undefined;
    for await (const m of serverStream(client.generate.bind(client), req, { signal: hooks.signal, deadline: deadline(hooks.timeoutMs) })) {
      if (m.event?.$case === 'progress') hooks.onProgress?.(m.event.value);
      else if (m.event?.$case === 'image') image = m.event.value;
    }
    if (!image) throw new Error(`the gateway at ${address} ended Generate without an image`);
    return image;
  } catch (err) {
    throw explainError(err, 'gateway', address);
  } finally {
    client.close();
  }
}

function writeFile(out: string, bytes: Uint8Array): string {
  const file = path.resolve(out);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, bytes);
  return file;
}

const STAGE_NAMES: Record<number, string> = {
  [museum.v1.Stage.STAGE_ENCODING]: 'encoding',
  [museum.v1.Stage.STAGE_DENOISING]: 'denoising',
  [museum.v1.Stage.STAGE_DECODING]: 'decoding',
};

/** `museum generate --address`: generate through the gateway with a progress bar, write the PNG. */
export async function remoteGenerateCommand(address: string, o: RemoteGenerateOptions & { out: string }, log: (s: string) => void = () => {}): Promise<string> {
  const bar = new SingleBar({ format: 'generate [{bar}] {value}/{total} steps | {stage}', hideCursor: true, stream: process.stderr, noTTYOutput: true, notTTYSchedule: 10000 }, Presets.shades_classic);
  let started = false;
  const ac = new AbortController();
  const onSigint = () => ac.abort();
  process.once('SIGINT', onSigint);
  try {
    const image = await remoteGenerate(address, o, {
      signal: ac.signal,
      onProgress: (p) => {
        const stage = STAGE_NAMES[p.stage] ?? '';
        if (p.stage === museum.v1.Stage.STAGE_DENOISING && p.total > 0) {
          if (!started) bar.start(p.total, 0, { stage });
          started = true;
          bar.update(p.step, { stage });
        } else if (started) bar.update({ stage });
      },
    });
    bar.stop();
    const file = writeFile(o.out, image.png);
    log(`wrote ${file} (${image.width}x${image.height}, seed ${image.seed}, museum version ${image.museumVersion}, via ${address})`);
    return file;
  } finally {
    bar.stop();
    process.off('SIGINT', onSigint);
  }
}

// ---------------------------------------------------------------- styles

export async function remoteListStyles(address: string, museumVersion?: number, hooks: CallOptions = {}): Promise<museum.v1.ListStylesResponse> {
  const client = trainerClient(address);
  try {
    return await unary(client.listStyles.bind(client), { museumVersion }, { signal: hooks.signal, deadline: deadline(hooks.timeoutMs ?? 30_000) });
  } catch (err) {
    throw explainError(err, 'trainer', address);
  } finally {
    client.close();
  }
}

export function formatRemoteStyles(res: museum.v1.ListStylesResponse, address: string): string {
  const head = `trainer ${address}: museum version ${res.museumVersion}`;
  if (res.styles.length === 0) return `${head}\nno styles yet (learn one with \`museum learn --address --name NAME --images DIR\`)`;
  const rows = res.styles.map((s, i) => [String(i), s.token, s.name, String(s.addedInVersion)]);
  const cols = ['#', 'style', 'name', 'added in'];
  const w = cols.map((c, i) => Math.max(c.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((c, i) => c.padEnd(w[i])).join('  ').trimEnd();
  return [head, '', line(cols), ...rows.map(line)].join('\n');
}

// ---------------------------------------------------------------- learn

export interface RemoteLearnOptions {
  name: string;
  /** Folder of images (`<image>.txt`: its caption). */
  images: string;
  /** 0/undefined = the trainer's default. */
  steps?: number;
  seed?: number;
}

export interface RemoteLearnResult {
  jobId: string;
  status: museum.v1.JobStatus;
  /** Image files uploaded, and those skipped (with why). */
  files: string[];
  skipped: Array<{ file: string; reason: string }>;
}

/**
 * Upload the folder with Trainer.LearnStyle, then follow the job with WatchJob until it ends.
 * Aborting `signal` cancels the job on the trainer (nothing is committed). Rejects when the job
 * fails or is cancelled.
 */
export async function remoteLearn(
  address: string,
  o: RemoteLearnOptions,
  hooks: CallOptions & { onStatus?: (s: museum.v1.JobStatus) => void; onSubmitted?: (jobId: string, files: string[]) => void } = {},
): Promise<RemoteLearnResult> {
  await initBackend({ log: () => {} });
  const folder = await readImageFolder(o.images);
  if (folder.files.length === 0) {
    const why = folder.skipped.length ? `; skipped: ${folder.skipped.map((s) => `${s.file} (${s.reason})`).join(', ')}` : ' (the folder is empty)';
    throw new Error(`no usable image in ${path.resolve(o.images)} (PNG, JPEG or WebP)${why}`);
  }
  const bytes = folder.bytes.reduce((n, b) => n + b.length, 0);
  if (bytes > DEFAULT_MAX_MESSAGE_BYTES - 1024 * 1024) {
    throw new Error(`the images of ${path.resolve(o.images)} are ${(bytes / 2 ** 20).toFixed(1)} MiB together, more than one request carries (${DEFAULT_MAX_MESSAGE_BYTES / 2 ** 20} MiB): use fewer or smaller images`);
  }
  // captions go all or none: images without a `.txt` get the generic one
  const captions = folder.captions.some((c) => c !== undefined) ? folder.captions.map((c) => c ?? 'a picture') : [];
  const client = trainerClient(address);
  let jobId: string | undefined;
  let cancelling: Promise<unknown> | null = null;
  const cancel = () => {
    if (jobId) cancelling = unary(client.cancelJob.bind(client), { jobId }, { deadline: Date.now() + 10_000 }).catch(() => {});
  };
  try {
    ({ jobId } = await unary(
      client.learnStyle.bind(client),
      museum.v1.LearnStyleRequest.fromPartial({ name: o.name, images: folder.bytes, options: { steps: o.steps ?? 0, seed: o.seed ?? 0, captions } }),
      { signal: hooks.signal, deadline: deadline(hooks.timeoutMs ?? 120_000) },
    ));
    hooks.onSubmitted?.(jobId, folder.files);
    hooks.signal?.addEventListener('abort', cancel, { once: true });
    let last: museum.v1.JobStatus | undefined;
    for await (const m of serverStream(client.watchJob.bind(client), { jobId }, { signal: hooks.signal })) {
      if (!m.status) continue;
      last = m.status;
      hooks.onStatus?.(m.status);
    }
    if (!last) throw new Error(`the trainer at ${address} sent no status for job ${jobId}`);
    if (last.state === museum.v1.JobState.JOB_STATE_FAILED) throw new Error(`learning <${o.name}> failed on the trainer: ${last.error}`);
    if (last.state === museum.v1.JobState.JOB_STATE_CANCELLED) throw new Error(`learning <${o.name}> was cancelled (nothing was committed)`);
    if (last.state !== museum.v1.JobState.JOB_STATE_SUCCEEDED) throw new Error(`the trainer at ${address} stopped reporting job ${jobId} while it was ${museum.v1.jobStateToJSON(last.state)} (is it shutting down?)`);
    return { jobId, status: last, files: folder.files, skipped: folder.skipped };
  } catch (err) {
    throw explainError(err, 'trainer', address);
  } finally {
    hooks.signal?.removeEventListener('abort', cancel);
    // the cancellation must reach the trainer before the channel closes
    if (cancelling) await cancelling;
    client.close();
  }
}

/** `museum learn --address`: upload, then a progress bar while the trainer learns. */
export async function remoteLearnCommand(address: string, o: RemoteLearnOptions, log: (s: string) => void = () => {}): Promise<RemoteLearnResult> {
  const bar = new SingleBar({ format: 'learn <{name}> [{bar}] {value}/{total} steps | loss {loss} | {state}', hideCursor: true, stream: process.stderr, noTTYOutput: true, notTTYSchedule: 10000 }, Presets.shades_classic);
  let started = false;
  const ac = new AbortController();
  // Ctrl-C cancels the job on the trainer
  const onSigint = () => ac.abort();
  process.once('SIGINT', onSigint);
  try {
    const r = await remoteLearn(address, o, {
      signal: ac.signal,
      onSubmitted: (jobId, files) => log(`uploaded ${files.length} image(s) to the trainer at ${address}: job ${jobId}`),
      onStatus: (s) => {
        const payload = { name: o.name, loss: s.loss ? s.loss.toFixed(4) : '-', state: museum.v1.jobStateToJSON(s.state).replace('JOB_STATE_', '').toLowerCase() };
        if (s.totalSteps > 0) {
          if (!started) bar.start(s.totalSteps, 0, payload);
          started = true;
          bar.update(s.step, payload);
        }
      },
    });
    bar.stop();
    if (r.skipped.length) log(`skipped ${r.skipped.map((s) => `${s.file} (${s.reason})`).join(', ')}`);
    return r;
  } finally {
    bar.stop();
    process.off('SIGINT', onSigint);
  }
}

// ---------------------------------------------------------------- gallery

export interface GalleryOptions {
  /** Gateway and trainer addresses. */
  gateway: string;
  trainer: string;
  out: string;
  /** Content of every tile (default: a different `a {colour} {shape}` per style). */
  subject?: string;
  seed?: number;
  steps?: number;
  guidance?: number;
  sampler?: string;
  /** Tiles per row (default: a square-ish grid). */
  columns?: number;
  /** The museum version (default: the latest). */
  museumVersion?: number;
}

export interface GalleryResult {
  file: string;
  museumVersion: number;
  /** One per tile, in order. */
  prompts: string[];
  width: number;
  height: number;
}

/** The content of tile `i` when no subject is given: a colour and shape of the procedural world, no pair twice in 64 tiles. */
export function gallerySubject(i: number): string {
  return contentPrompt(COLOURS[i % COLOURS.length], SHAPES[(i + Math.floor(i / COLOURS.length)) % SHAPES.length]);
}

/**
 * One tile per learned style of a museum version: `a {colour} {shape} in <style>` through the gateway
 * (GenerateBatch, so the denoiser batches the tiles), laid out in a grid and written as one PNG.
 */
export async function remoteGallery(o: GalleryOptions, hooks: CallOptions & { onTile?: (done: number, total: number) => void } = {}): Promise<GalleryResult> {
  const listing = await remoteListStyles(o.trainer, o.museumVersion, hooks);
  if (listing.styles.length === 0) throw new Error(`museum version ${listing.museumVersion} has no learned styles yet: learn one with \`museum learn --address --name NAME --images DIR\``);
  const prompts = listing.styles.map((s, i) => `${o.subject ?? gallerySubject(i)} in ${s.token}`);
  const pngs: Uint8Array[] = new Array(prompts.length);
  const client = gatewayClient(o.gateway);
  let done = 0;
  try {
    // every tile from the listed version, whatever is learned meanwhile
    for (let from = 0; from < prompts.length; from += 16) {
      const items = prompts.slice(from, from + 16).map((prompt, j) =>
        generateRequest({ prompt, seed: (o.seed ?? 0) + from + j, steps: o.steps, guidance: o.guidance, sampler: o.sampler, museumVersion: listing.museumVersion }),
      );
      for await (const m of serverStream(client.generateBatch.bind(client), museum.v1.GenerateBatchRequest.fromPartial({ items }), { signal: hooks.signal, deadline: deadline(hooks.timeoutMs) })) {
        if (m.event?.$case === 'image') {
          pngs[from + m.index] = m.event.value.png;
          hooks.onTile?.(++done, prompts.length);
        }
      }
    }
  } catch (err) {
    throw explainError(err, 'gateway', o.gateway);
  } finally {
    client.close();
  }
  const missing = pngs.findIndex((p) => p === undefined);
  if (missing >= 0 || pngs.length !== prompts.length) throw new Error(`the gateway sent no image for "${prompts[Math.max(missing, 0)]}"`);

  await initBackend({ log: () => {} });
  const tiles = await Promise.all(pngs.map((p) => decodeImage(p)));
  let grid: tf.Tensor3D | null = null;
  try {
    const columns = o.columns ?? Math.ceil(Math.sqrt(tiles.length));
    if (!Number.isInteger(columns) || columns < 1) throw new InvalidArgumentError('--columns must be a positive integer');
    grid = imageGrid(tiles, columns, { pad: 2, background: 1 });
    const png = await encodePng(grid, { range: '0,1' });
    const file = writeFile(o.out, png);
    return { file, museumVersion: listing.museumVersion, prompts, width: grid.shape[1], height: grid.shape[0] };
  } finally {
    tf.dispose(tiles);
    grid?.dispose();
  }
}
