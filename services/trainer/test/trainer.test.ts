import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { initBackend, pngFromRgbBytes } from '@museum/tensor';
import { museum } from '@museum/proto';
import { Museum } from '@museum/museum';
import { NatsEventBus, museumSubjects, publishStyleLearned, serverStream, unary, writeTinyPipelineFolder, type MuseumSubjects } from '@museum/rpc';
import { TextEncoderServer, museumTokenSource } from '@museum/text-encoder';
import { DenoiserServer, museumLoraSource } from '@museum/denoiser';
import { VaeDecoderServer } from '@museum/vae-decoder';
import { GatewayServer } from '@museum/gateway';
import { TrainerServer } from '../src';

const NATS_URL = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
const run = `t${process.pid}x${Date.now().toString(36)}`;
const subjects: MuseumSubjects = museumSubjects(`${run}.museum`);
const STREAM = `${run.toUpperCase()}_MUSEUM`;

let tmp: string;
let bus: NatsEventBus;
let trainer: TrainerServer;
let textEncoder: TextEncoderServer;
let denoiser: DenoiserServer;
let vae: VaeDecoderServer;
let gateway: GatewayServer;
let client: museum.v1.TrainerServiceClient;
let gw: museum.v1.GatewayServiceClient;
const creds = grpc.credentials.createInsecure();

/** A 16x16 PNG with diagonal stripes of two colours. */
async function stripes(a: number[], b: number[], period = 4): Promise<Buffer> {
  const rgb = new Uint8Array(16 * 16 * 3);
  for (let y = 0; y < 16; y++) for (let x = 0; x < 16; x++) rgb.set(Math.floor((x + y) / period) % 2 ? a : b, (y * 16 + x) * 3);
  return pngFromRgbBytes(rgb, 16, 16);
}

async function waitFor(cond: () => boolean, ms = 10_000): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function watchToEnd(jobId: string): Promise<museum.v1.JobStatus[]> {
  const seen: museum.v1.JobStatus[] = [];
  for await (const m of serverStream(client.watchJob.bind(client), { jobId }, { deadline: Date.now() + 60_000 })) seen.push(m.status!);
  return seen;
}

const learnErr = (req: Partial<museum.v1.LearnStyleRequest>) =>
  unary(client.learnStyle.bind(client), museum.v1.LearnStyleRequest.fromPartial(req)).then(
    () => {
      throw new Error('expected an error');
    },
    (e: grpc.ServiceError) => e,
  );

beforeAll(async () => {
  await initBackend({ log: () => {} });
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'museum-trainer-'));
  const modelDir = path.join(tmp, 'model');
  writeTinyPipelineFolder(modelDir);
  bus = await NatsEventBus.connect({ url: NATS_URL, stream: STREAM, subjects: [subjects.all] });
  const events = { bus, subjects };
  const museumDir = path.join(tmp, 'museum');
  trainer = new TrainerServer({ modelDir, museumDir, events, maxImages: 4, learn: { batchSize: 1, featRegBatch: 1, rank: 2, alpha: 2, warmup: 0 }, drainGraceMs: 5000 });
  const tp = await trainer.start();
  await trainer.ready;
  const store = Museum.open(museumDir);
  textEncoder = new TextEncoderServer({ modelDir, versions: museumTokenSource(store), events });
  denoiser = new DenoiserServer({ modelDir, versions: museumLoraSource(store), events, batching: { maxWaitMs: 5 } });
  vae = new VaeDecoderServer({ modelDir });
  const [te, dn, vd] = await Promise.all([textEncoder.start(), denoiser.start(), vae.start()]);
  gateway = new GatewayServer({ stages: { textEncoder: `127.0.0.1:${te}`, denoiser: `127.0.0.1:${dn}`, vaeDecoder: `127.0.0.1:${vd}` } });
  const gp = await gateway.start();
  await Promise.all([textEncoder.ready, denoiser.ready, vae.ready, gateway.ready]);
  client = new museum.v1.TrainerServiceClient(`127.0.0.1:${tp}`, creds);
  gw = new museum.v1.GatewayServiceClient(`127.0.0.1:${gp}`, creds);
});

afterAll(async () => {
  client?.close();
  gw?.close();
  await gateway?.stop();
  await Promise.all([trainer?.stop(), textEncoder?.stop(), denoiser?.stop(), vae?.stop()]);
  if (bus) {
    await bus.deleteStream().catch(() => {});
    await bus.close();
  }
  fs.rmSync(tmp, { recursive: true, force: true });
});

test('LearnStyle refuses bad input with the status naming the field', async () => {
  const png = await stripes([255, 0, 0], [255, 255, 255]);
  let e = await learnErr({ name: 'Bad Name', images: [png] });
  expect([e.code, e.details]).toEqual([grpc.status.INVALID_ARGUMENT, expect.stringMatching(/^name: "Bad Name" is not a style name/)]);
  e = await learnErr({ name: 'x'.repeat(49), images: [png] });
  expect(e.details).toMatch(/^name: /);
  e = await learnErr({ name: 'ok', images: [] });
  expect([e.code, e.details]).toEqual([grpc.status.INVALID_ARGUMENT, 'images: at least one image is needed']);
  e = await learnErr({ name: 'ok', images: [png, png, png, png, png] });
  expect([e.code, e.details]).toEqual([grpc.status.INVALID_ARGUMENT, 'images: 5 images, at most 4']);
  e = await learnErr({ name: 'ok', images: [png, Buffer.from('not an image at all')] });
  expect([e.code, e.details]).toEqual([grpc.status.INVALID_ARGUMENT, expect.stringMatching(/^images\[1\]: does not decode as an image/)]);
  e = await learnErr({ name: 'ok', images: [png], options: { steps: 0, seed: 0, captions: ['a', 'b'] } });
  expect(e.details).toMatch(/^options\.captions: 2 captions for 1 images/);
  e = await learnErr({ name: 'ok', images: [png], options: { steps: 999999, seed: 0, captions: [] } });
  expect(e.details).toMatch(/^options\.steps: /);
  expect(trainer.jobs.activeStyles().size).toBe(0);
});

test('a learned style commits a version, is announced on NATS, and text encoders and denoisers hot-load it', async () => {
  const images = [await stripes([255, 0, 0], [255, 255, 255]), await stripes([0, 0, 255], [255, 255, 0])];
  const { jobId } = await unary(client.learnStyle.bind(client), museum.v1.LearnStyleRequest.fromPartial({ name: 'stripes', images, options: { steps: 3, seed: 1, captions: ['a red star', 'a blue circle'] } }));
  expect(jobId).toMatch(/^job-/);
  // a second job for the same name while the first runs
  const dup = await learnErr({ name: 'stripes', images });
  expect(dup.code).toBe(grpc.status.ALREADY_EXISTS);

  const seen = await watchToEnd(jobId);
  const last = seen[seen.length - 1];
  expect(last.state).toBe(museum.v1.JobState.JOB_STATE_SUCCEEDED);
  expect(last.museumVersion).toBe(1);
  // The watcher may attach after a 3-step job has finished (loaded machine): then the final status must
  // still report the steps it ran; otherwise a RUNNING status with progress must have been streamed.
  const sawProgress = seen.some((s) => s.state === museum.v1.JobState.JOB_STATE_RUNNING && s.step > 0);
  expect(sawProgress || (last.step === 3 && last.totalSteps === 3)).toBe(true);
  expect(trainer.stats.published).toBe(1);

  // both stages receive the event and load version 1 without a restart
  await waitFor(() => textEncoder.stats.versionsAnnounced >= 1 && denoiser.events.versionsAnnounced >= 1);
  expect(textEncoder.versions.latest).toBe(1);
  expect(denoiser.versions.latest).toBe(1);
  expect(denoiser.versions.loaded).toContain(1);

  const styles = await unary(client.listStyles.bind(client), {});
  expect(styles).toEqual({ museumVersion: 1, styles: [{ name: 'stripes', token: '<stripes>', addedInVersion: 1 }] });
  expect((await unary(client.listStyles.bind(client), { museumVersion: 0 })).styles).toEqual([]);
  const missing = await unary(client.listStyles.bind(client), { museumVersion: 9 }).catch((err: grpc.ServiceError) => err);
  expect((missing as grpc.ServiceError).code).toBe(grpc.status.NOT_FOUND);

  // the new token works on the latest version, and only there
  const images2: museum.v1.GeneratedImage[] = [];
  for await (const m of serverStream(gw.generate.bind(gw), museum.v1.GenerateRequest.fromPartial({ prompt: 'a red star in <stripes>', steps: 2, seed: 1 }))) {
    if (m.event?.$case === 'image') images2.push(m.event.value);
  }
  expect(images2).toHaveLength(1);
  expect(images2[0].museumVersion).toBe(1);
  const old = await (async () => {
    try {
      for await (const _ of serverStream(gw.generate.bind(gw), museum.v1.GenerateRequest.fromPartial({ prompt: 'a red star in <stripes>', steps: 2, museumVersion: 0 }))) void _;
    } catch (err) {
      return err as grpc.ServiceError;
    }
    throw new Error('expected an error');
  })();
  expect([old.code, old.details]).toEqual([grpc.status.INVALID_ARGUMENT, 'prompt: unknown style token <stripes> for museum version 0 (it has no learned styles)']);

  const taken = await learnErr({ name: 'stripes', images });
  expect([taken.code, taken.details]).toEqual([grpc.status.ALREADY_EXISTS, 'name: style "stripes" is already in the museum (version 1)']);
});

test('a replica started later catches up from the stream; a re-published version is de-duplicated', async () => {
  // its museum view says version 0 is the latest: only the replayed event can tell it about version 1
  const store = Museum.open(trainer.museum.dir);
  const source = museumTokenSource(store);
  const late = new TextEncoderServer({ modelDir: path.join(tmp, 'model'), versions: { latest: async () => 0, version: source.version }, events: { bus, subjects } });
  await late.start();
  await late.ready;
  try {
    await waitFor(() => late.stats.versionsAnnounced >= 1);
    expect(late.versions.latest).toBe(1);
    const again = await publishStyleLearned(bus, { museumVersion: 1, style: 'stripes', token: '<stripes>', committedAtMs: 0 }, subjects);
    expect(again.duplicate).toBe(true);
  } finally {
    await late.stop();
  }
});

test('CancelJob stops a running job between steps and commits nothing', async () => {
  const images = [await stripes([0, 255, 0], [0, 0, 0])];
  const { jobId } = await unary(client.learnStyle.bind(client), museum.v1.LearnStyleRequest.fromPartial({ name: 'slow', images, options: { steps: 2000, seed: 0, captions: [] } }));
  await waitFor(() => (trainer.jobs.get(jobId)?.status.step ?? 0) >= 1, 30_000);
  const res = await unary(client.cancelJob.bind(client), { jobId });
  expect(res.status?.state).toBe(museum.v1.JobState.JOB_STATE_CANCELLED);
  expect(res.status!.step).toBeLessThan(2000);
  expect(trainer.museum.latestVersion()).toBe(1);
  const unknown = await unary(client.cancelJob.bind(client), { jobId: 'job-nope' }).catch((e: grpc.ServiceError) => e);
  expect((unknown as grpc.ServiceError).code).toBe(grpc.status.NOT_FOUND);
});
