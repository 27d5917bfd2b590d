/**
 * A learned style reaches every replica through the real NATS: two denoiser replicas (each behind a
 * gateway of its own) and the text encoder, each with its own view of the museum store, load the new
 * version within seconds of the trainer's `museum.styles.learned` event, so `<name>` works on every
 * replica; a generation that was running across the swap finishes on the version it started with.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { decodeImage, initBackend, pngFromRgbBytes, tf } from '@museum/tensor';
import { museum } from '@museum/proto';
import { Museum } from '@museum/museum';
import {
  NatsEventBus,
  museumSubjects,
  serverStream,
  unary,
  writeTinyPipelineFolder,
  type BusHandler,
  type BusPublishOptions,
  type BusSubscription,
  type EventBus,
  type PublishResult,
} from '@museum/rpc';
import { TextEncoderServer, museumTokenSource } from '@museum/text-encoder';
import { DenoiserServer, museumLoraSource } from '@museum/denoiser';
import { VaeDecoderServer } from '@museum/vae-decoder';
import { GatewayServer } from '@museum/gateway';
import { TrainerServer } from '../src';

const NATS_URL = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
const run = `r${process.pid}x${Date.now().toString(36)}`;
const subjects = museumSubjects(`${run}.museum`);
const creds = grpc.credentials.createInsecure();
/** The generation that runs across the swap. */
const SLOW = { prompt: 'a blue circle', seed: 9, steps: 120, guidance: 4, sampler: museum.v1.Sampler.SAMPLER_DDIM };

/** The trainer's bus, holding its publishes until `open()`: the test decides when the event goes out. */
class GatedBus implements EventBus {
  readonly kind = 'nats' as const;
  readonly description = 'gated';
  private release!: () => void;
  private readonly gate = new Promise<void>((r) => (this.release = r));
  constructor(private readonly inner: EventBus) {}
  open(): void {
    this.release();
  }
  async publish(subject: string, data: Uint8Array | string, options?: BusPublishOptions): Promise<PublishResult> {
    await this.gate;
    return this.inner.publish(subject, data, options);
  }
  subscribe(subject: string, handler: BusHandler): Promise<BusSubscription> {
    return this.inner.subscribe(subject, handler);
  }
  async close(): Promise<void> {}
}

let tmp: string;
let bus: NatsEventBus;
let gated: GatedBus;
let trainer: TrainerServer;
let textEncoder: TextEncoderServer;
let replicas: DenoiserServer[];
let vae: VaeDecoderServer;
let gateways: GatewayServer[];
let gw: museum.v1.GatewayServiceClient[];
let trainerClient: museum.v1.TrainerServiceClient;

beforeAll(async () => {
  await initBackend({ log: () => {} });
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'museum-replicas-'));
  const modelDir = path.join(tmp, 'model');
  writeTinyPipelineFolder(modelDir);
  bus = await NatsEventBus.connect({ url: NATS_URL, stream: `${run.toUpperCase()}_MUSEUM`, subjects: [subjects.all] });
  gated = new GatedBus(bus);
  const museumDir = path.join(tmp, 'museum');
  trainer = new TrainerServer({ modelDir, museumDir, events: { bus: gated, subjects }, learn: { batchSize: 1, featRegBatch: 1, rank: 2, alpha: 2, warmup: 0 }, drainGraceMs: 5000 });
  const tp = await trainer.start();
  await trainer.ready;
  const events = { bus, subjects };
  // each replica opens the store itself, as a replica in another process would
  textEncoder = new TextEncoderServer({ modelDir, versions: museumTokenSource(Museum.open(museumDir)), events, drainGraceMs: 5000 });
  replicas = [0, 1].map(() => new DenoiserServer({ modelDir, versions: museumLoraSource(Museum.open(museumDir)), events, batching: { maxWaitMs: 5 }, drainGraceMs: 5000 }));
  vae = new VaeDecoderServer({ modelDir, drainGraceMs: 5000 });
  const [te, d0, d1, vd] = await Promise.all([textEncoder.start(), replicas[0].start(), replicas[1].start(), vae.start()]);
  gateways = [d0, d1].map((d) => new GatewayServer({ stages: { textEncoder: `127.0.0.1:${te}`, denoiser: `127.0.0.1:${d}`, vaeDecoder: `127.0.0.1:${vd}` }, drainGraceMs: 5000 }));
  const gp = await Promise.all(gateways.map((g) => g.start()));
  await Promise.all([textEncoder.ready, ...replicas.map((r) => r.ready), vae.ready, ...gateways.map((g) => g.ready)]);
  gw = gp.map((p) => new museum.v1.GatewayServiceClient(`127.0.0.1:${p}`, creds));
  trainerClient = new museum.v1.TrainerServiceClient(`127.0.0.1:${tp}`, creds);
});

afterAll(async () => {
  gated?.open();
  gw?.forEach((c) => c.close());
  trainerClient?.close();
  await Promise.all((gateways ?? []).map((g) => g.stop()));
  await Promise.all([trainer?.stop(), textEncoder?.stop(), ...(replicas ?? []).map((r) => r.stop()), vae?.stop()]);
  if (bus) {
    await bus.deleteStream().catch(() => {});
    await bus.close();
  }
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

/** Generate; `progress.step` follows the denoising steps while it runs. */
function generate(client: museum.v1.GatewayServiceClient, req: Partial<museum.v1.GenerateRequest>, onStep?: (step: number) => void): { progress: { step: number }; done: Promise<museum.v1.GeneratedImage> } {
  const progress = { step: 0 };
  const done = (async () => {
    let image: museum.v1.GeneratedImage | undefined;
    for await (const m of serverStream(client.generate.bind(client), museum.v1.GenerateRequest.fromPartial(req), { deadline: Date.now() + 120_000 })) {
      if (m.event?.$case === 'progress' && m.event.value.stage === museum.v1.Stage.STAGE_DENOISING) {
        progress.step = m.event.value.step;
        onStep?.(m.event.value.step);
      } else if (m.event?.$case === 'image') image = m.event.value;
    }
    if (!image) throw new Error('Generate ended without an image');
    return image;
  })();
  return { progress, done };
}

async function pixelDiff(a: Uint8Array, b: Uint8Array): Promise<number> {
  const [x, y] = await Promise.all([decodeImage(a), decodeImage(b)]);
  try {
    expect(x.shape).toEqual(y.shape);
    return tf.tidy(() => tf.max(tf.abs(tf.sub(tf.cast(x, 'float32'), tf.cast(y, 'float32')))).dataSync()[0]);
  } finally {
    tf.dispose([x, y]);
  }
}

async function waitFor(cond: () => boolean, ms: number, what: string): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function stripes(a: number[], b: number[]): Promise<Buffer> {
  const rgb = new Uint8Array(16 * 16 * 3);
  for (let y = 0; y < 16; y++) for (let x = 0; x < 16; x++) rgb.set(Math.floor((x + y) / 4) % 2 ? a : b, (y * 16 + x) * 3);
  return pngFromRgbBytes(rgb, 16, 16);
}

test('a learned style is usable on every replica within seconds of the event; a generation across the swap keeps its version', async () => {
  // the trainer learns a style and commits version 1; its event is held back for now
  const images = [await stripes([255, 0, 0], [255, 255, 255]), await stripes([0, 0, 255], [255, 255, 0])];
  const { jobId } = await unary(
    trainerClient.learnStyle.bind(trainerClient),
    museum.v1.LearnStyleRequest.fromPartial({ name: 'swap', images, options: { steps: 3, seed: 1, captions: ['a red star', 'a blue circle'] } }),
  );
  // meanwhile: the old version's image, made alone
  const solo = await generate(gw[0], SLOW).done;
  expect(solo.museumVersion).toBe(0);
  await waitFor(() => trainer.museum.latestVersion() === 1, 60_000, 'the commit of version 1');
  // nothing told the stages yet: they still serve version 0
  expect([textEncoder.versions.latest, ...replicas.map((r) => r.versions.latest)]).toEqual([0, 0, 0]);

  // a long generation on replica 0 starts on version 0 ...
  const slow = generate(gw[0], SLOW);
  await waitFor(() => slow.progress.step >= 2, 30_000, 'the slow generation to start');

  // ... and the event goes out: every replica and the text encoder load version 1 on their own
  const published = Date.now();
  gated.open();
  await waitFor(
    () => textEncoder.versions.latest === 1 && replicas.every((r) => r.events.versionsAnnounced >= 1 && r.versions.loaded.includes(1)),
    10_000,
    'version 1 on every replica',
  );
  const loadedAfterMs = Date.now() - published;
  const stepsWhenLoaded = slow.progress.step;
  expect(loadedAfterMs).toBeLessThan(5000);
  // the swap happened while the slow generation was running
  expect(stepsWhenLoaded).toBeLessThan(SLOW.steps);

  // `<swap>` now works through either replica, with the same shared LoRA on both
  const styled = await Promise.all(gw.map((c) => generate(c, { prompt: 'a red star in <swap>', seed: 3, steps: 3, guidance: 4 }).done));
  expect(styled.map((i) => i.museumVersion)).toEqual([1, 1]);
  expect(await pixelDiff(styled[0].png, styled[1].png)).toBe(0);
  expect(Date.now() - published).toBeLessThan(10_000);

  // the generation that spanned the swap finished on version 0, as it would have alone
  const old = await slow.done;
  expect(old.museumVersion).toBe(0);
  expect(await pixelDiff(old.png, solo.png)).toBeLessThanOrEqual(1);

  const status = await unary(trainerClient.cancelJob.bind(trainerClient), { jobId });
  expect(status.status).toMatchObject({ state: museum.v1.JobState.JOB_STATE_SUCCEEDED, museumVersion: 1 });
});
