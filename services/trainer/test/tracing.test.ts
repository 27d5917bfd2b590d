/** One learned style is one trace: LearnStyle -> trainer.job -> publish (NATS headers) -> each stage's load of the version. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { SpanKind, context, trace } from '@opentelemetry/api';
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { initBackend, pngFromRgbBytes } from '@museum/tensor';
import { museum } from '@museum/proto';
import { Museum } from '@museum/museum';
import { NatsEventBus, clientOptions, initTracing, museumSubjects, museumTracer, serverStream, unary, writeTinyPipelineFolder, type Telemetry } from '@museum/rpc';
import { TextEncoderServer, museumTokenSource } from '@museum/text-encoder';
import { DenoiserServer, museumLoraSource } from '@museum/denoiser';
import { TrainerServer } from '../src';

const NATS_URL = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
const run = `tt${process.pid}x${Date.now().toString(36)}`;
const subjects = museumSubjects(`${run}.museum`);
const spans = new InMemorySpanExporter();

let tmp: string;
let telemetry: Telemetry;
let bus: NatsEventBus;
let trainer: TrainerServer;
let textEncoder: TextEncoderServer;
let denoiser: DenoiserServer;
let client: museum.v1.TrainerServiceClient;

beforeAll(async () => {
  await initBackend({ log: () => {} });
  telemetry = initTracing({ serviceName: 'museum-test', spanExporter: spans });
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'museum-trainer-trace-'));
  const modelDir = path.join(tmp, 'model');
  writeTinyPipelineFolder(modelDir);
  bus = await NatsEventBus.connect({ url: NATS_URL, stream: `${run.toUpperCase()}_MUSEUM`, subjects: [subjects.all] });
  const events = { bus, subjects };
  const museumDir = path.join(tmp, 'museum');
  trainer = new TrainerServer({ modelDir, museumDir, events, learn: { batchSize: 1, featRegBatch: 1, rank: 2, alpha: 2, warmup: 0 }, drainGraceMs: 5000 });
  const port = await trainer.start();
  await trainer.ready;
  textEncoder = new TextEncoderServer({ modelDir, versions: museumTokenSource(Museum.open(museumDir)), events });
  denoiser = new DenoiserServer({ modelDir, versions: museumLoraSource(Museum.open(museumDir)), events });
  await Promise.all([textEncoder.start(), denoiser.start()]);
  await Promise.all([textEncoder.ready, denoiser.ready]);
  client = new museum.v1.TrainerServiceClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), clientOptions());
});

afterAll(async () => {
  client?.close();
  await Promise.all([trainer?.stop(), textEncoder?.stop(), denoiser?.stop()]);
  if (bus) {
    await bus.deleteStream().catch(() => {});
    await bus.close();
  }
  await telemetry?.shutdown();
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

test('LearnStyle, the job, its publish on NATS and every stage’s load of the version form one trace', async () => {
  const rgb = new Uint8Array(16 * 16 * 3).map((_, i) => (i % 7) * 36);
  const png = await pngFromRgbBytes(rgb, 16, 16);
  const root = museumTracer().startSpan('client');
  let jobId = '';
  await context.with(trace.setSpan(context.active(), root), async () => {
    ({ jobId } = await unary(client.learnStyle.bind(client), museum.v1.LearnStyleRequest.fromPartial({ name: 'traced', images: [png], options: { steps: 2, seed: 1, captions: [] } })));
  });
  root.end();
  for await (const _ of serverStream(client.watchJob.bind(client), { jobId }, { deadline: Date.now() + 60_000 })) void _;
  const until = Date.now() + 10_000;
  while ((textEncoder.stats.versionsAnnounced < 1 || denoiser.events.versionsAnnounced < 1) && Date.now() < until) await new Promise((r) => setTimeout(r, 10));

  const all = spans.getFinishedSpans().filter((s) => s.spanContext().traceId === root.spanContext().traceId);
  const one = (name: string, kind: SpanKind) => {
    const found = all.filter((s) => s.name === name && s.kind === kind);
    expect({ name, count: found.length }).toEqual({ name, count: 1 });
    return found[0];
  };
  const parent = (s: ReadableSpan) => s.parentSpanContext?.spanId;
  const learnClient = one('museum.v1.TrainerService/LearnStyle', SpanKind.CLIENT);
  const learnServer = one('museum.v1.TrainerService/LearnStyle', SpanKind.SERVER);
  const job = one('trainer.job', SpanKind.INTERNAL);
  const publish = one(`publish ${subjects.stylesLearned}`, SpanKind.PRODUCER);
  expect(parent(learnClient)).toBe(root.spanContext().spanId);
  expect(parent(learnServer)).toBe(learnClient.spanContext().spanId);
  expect(parent(job)).toBe(learnServer.spanContext().spanId);
  expect(job.attributes).toMatchObject({ 'museum.job_id': jobId, 'museum.style': 'traced', 'museum.version': 1 });
  expect(parent(publish)).toBe(job.spanContext().spanId);
  const consumers = all.filter((s) => s.kind === SpanKind.CONSUMER);
  expect(consumers.map((s) => s.attributes['messaging.consumer.group.name']).sort()).toEqual(['denoiser', 'text-encoder']);
  for (const c of consumers) expect(parent(c)).toBe(publish.spanContext().spanId);
});
