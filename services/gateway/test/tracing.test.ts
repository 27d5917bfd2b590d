/**
 * Tracing across the real stack (four servers on loopback sockets, NATS for events): one Generate is
 * one trace, gateway -> text encoder -> denoiser -> VAE decoder, with client/server spans nested as
 * the calls are; a style-learned event's handling in each stage is a child of its publish span.
 */
import * as grpc from '@grpc/grpc-js';
import { SpanKind, SpanStatusCode, context, trace } from '@opentelemetry/api';
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { initBackend } from '@museum/tensor';
import { museum } from '@museum/proto';
import { NatsEventBus, clientOptions, initTracing, museumSubjects, museumTracer, notFound, publishStyleLearned, serverStream, type Telemetry } from '@museum/rpc';
import type { TokenVersionSource } from '@museum/text-encoder';
import type { LoraVersionSource } from '@museum/denoiser';
import { removeTinyModelDir, startStack, type Stack } from './stack';

const NATS_URL = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';
const run = `tg${process.pid}x${Date.now().toString(36)}`;
const subjects = museumSubjects(`${run}.museum`);

// versions 0 and 1 exist, neither with styles: enough for events to be loaded
const tokens: TokenVersionSource = {
  latest: async () => 0,
  version: async (v) => {
    if (v > 1) throw notFound(`museum_version ${v} does not exist`);
    return { tokens: new Map(), placeholders: new Map() };
  },
};
const lora: LoraVersionSource = {
  latest: async () => 0,
  lora: async (v) => {
    if (v > 1) throw notFound(`museum_version ${v} does not exist`);
    return null;
  },
};

const spans = new InMemorySpanExporter();
let telemetry: Telemetry;
let bus: NatsEventBus;
let stack: Stack;
let gw: museum.v1.GatewayServiceClient;

beforeAll(async () => {
  await initBackend({ log: () => {} });
  telemetry = initTracing({ serviceName: 'museum-test', spanExporter: spans });
  bus = await NatsEventBus.connect({ url: NATS_URL, stream: `${run.toUpperCase()}_MUSEUM`, subjects: [subjects.all] });
  stack = await startStack({ tokens, lora, events: { bus, subjects } });
  await Promise.all([stack.textEncoder.ready, stack.denoiser.ready, stack.vae.ready, stack.gateway.ready]);
  gw = new museum.v1.GatewayServiceClient(stack.addr.gateway, grpc.credentials.createInsecure(), clientOptions());
});

afterAll(async () => {
  gw?.close();
  await stack?.stop();
  if (bus) {
    await bus.deleteStream().catch(() => {});
    await bus.close();
  }
  await telemetry?.shutdown();
  removeTinyModelDir();
});

/** Generate under a root span of its own; resolves to the root span and the image. */
async function tracedGenerate(req: Partial<museum.v1.GenerateRequest>): Promise<{ root: ReadableSpan; image?: museum.v1.GeneratedImage; error?: grpc.ServiceError }> {
  const root = museumTracer().startSpan('client');
  let image: museum.v1.GeneratedImage | undefined;
  let error: grpc.ServiceError | undefined;
  await context.with(trace.setSpan(context.active(), root), async () => {
    try {
      for await (const m of serverStream(gw.generate.bind(gw), museum.v1.GenerateRequest.fromPartial(req), { deadline: Date.now() + 30_000 })) {
        if (m.event?.$case === 'image') image = m.event.value;
      }
    } catch (err) {
      error = err as grpc.ServiceError;
    }
  });
  root.end();
  return { root: root as unknown as ReadableSpan, image, error };
}

const inTrace = (traceId: string) => spans.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId);
const id = (s: ReadableSpan) => s.spanContext().spanId;
const parentOf = (s: ReadableSpan) => s.parentSpanContext?.spanId;
const KIND = { [SpanKind.CLIENT]: 'client', [SpanKind.SERVER]: 'server', [SpanKind.INTERNAL]: 'internal', [SpanKind.PRODUCER]: 'producer', [SpanKind.CONSUMER]: 'consumer' };

function find(list: ReadableSpan[], name: string, kind: SpanKind): ReadableSpan {
  const found = list.filter((s) => s.name === name && s.kind === kind);
  expect({ name, kind: KIND[kind], count: found.length }).toEqual({ name, kind: KIND[kind], count: 1 });
  return found[0];
}

/** Check the nine spans of one successful Generate; returns them by stage. */
function checkGenerateTrace(root: ReadableSpan) {
  const traceId = root.spanContext().traceId;
  const all = inTrace(traceId);
  const names = all.map((s) => `${KIND[s.kind]} ${s.name}`).sort();
  expect(names).toEqual(
    [
      'internal client',
      'client museum.v1.GatewayService/Generate',
      'server museum.v1.GatewayService/Generate',
      'client museum.v1.TextEncoderService/Encode',
      'server museum.v1.TextEncoderService/Encode',
      'client museum.v1.DenoiserService/Denoise',
      'server museum.v1.DenoiserService/Denoise',
      'client museum.v1.VaeDecoderService/Decode',
      'server museum.v1.VaeDecoderService/Decode',
    ].sort(),
  );
  const gwClient = find(all, 'museum.v1.GatewayService/Generate', SpanKind.CLIENT);
  const gwServer = find(all, 'museum.v1.GatewayService/Generate', SpanKind.SERVER);
  expect(parentOf(gwClient)).toBe(id(root));
  expect(parentOf(gwServer)).toBe(id(gwClient));
  const stages = ['museum.v1.TextEncoderService/Encode', 'museum.v1.DenoiserService/Denoise', 'museum.v1.VaeDecoderService/Decode'].map((name) => {
    const client = find(all, name, SpanKind.CLIENT);
    const server = find(all, name, SpanKind.SERVER);
    // the gateway calls each stage from its own server span; each stage serves in a child of that call
    expect(parentOf(client)).toBe(id(gwServer));
    expect(parentOf(server)).toBe(id(client));
    expect(server.status.code).toBe(SpanStatusCode.UNSET);
    return { client, server };
  });
  // Spans are exported as they end, so the export order is the order of their ends (span timestamps
  // are not comparable across spans to the millisecond: each is anchored to the wall clock when it
  // starts). Each server span ends before its client's; the stages run one after the other, all
  // inside the gateway's span, which ends before the caller's.
  const ended = spans.getFinishedSpans();
  const at = (x: ReadableSpan) => ended.indexOf(x);
  const sequence = [...stages.flatMap((st) => [st.server, st.client]), gwServer, gwClient];
  expect(sequence.map(at)).toEqual([...sequence.map(at)].sort((a, b) => a - b));
  return { gwServer, encode: stages[0], denoise: stages[1], decode: stages[2] };
}

test('one Generate is one trace: gateway -> text encoder -> denoiser -> VAE decoder, client and server spans nested', async () => {
  spans.reset();
  const { root, image, error } = await tracedGenerate({ prompt: 'a red star', seed: 1, steps: 3, guidance: 4 });
  expect(error).toBeUndefined();
  expect(image?.museumVersion).toBe(0);
  const t = checkGenerateTrace(root);
  expect(t.denoise.server.attributes).toMatchObject({ 'museum.version': 0, 'museum.steps': 3, 'rpc.grpc.status_code': 0 });
  expect(t.gwServer.attributes).toMatchObject({ 'museum.version': 0, 'rpc.service': 'museum.v1.GatewayService', 'rpc.method': 'Generate' });
  // health checks and other traffic make no spans of their own in this trace
  expect(spans.getFinishedSpans().every((s) => !s.name.startsWith('grpc.health'))).toBe(true);
});

test('concurrent Generates batched together in the denoiser keep a trace each', async () => {
  spans.reset();
  const shared0 = stack.denoiser.batcher.stats.sharedCalls;
  const runs = await Promise.all([1, 2, 3].map((seed) => tracedGenerate({ prompt: 'a green square', seed, steps: 4, guidance: 4 })));
  expect(stack.denoiser.batcher.stats.sharedCalls).toBeGreaterThan(shared0);
  const ids = runs.map((r) => r.root.spanContext().traceId);
  expect(new Set(ids).size).toBe(3);
  for (const r of runs) {
    expect(r.image).toBeDefined();
    checkGenerateTrace(r.root);
  }
  expect(spans.getFinishedSpans()).toHaveLength(27);
});

test('a failing stage marks its spans and the gateway’s as errors, and the later stages are never called', async () => {
  spans.reset();
  const { root, error } = await tracedGenerate({ prompt: 'a red star in <nope>', steps: 2 });
  expect(error?.code).toBe(grpc.status.INVALID_ARGUMENT);
  const all = inTrace(root.spanContext().traceId);
  expect(all.map((s) => `${KIND[s.kind]} ${s.name}`).sort()).toEqual(
    [
      'internal client',
      'client museum.v1.GatewayService/Generate',
      'server museum.v1.GatewayService/Generate',
      'client museum.v1.TextEncoderService/Encode',
      'server museum.v1.TextEncoderService/Encode',
    ].sort(),
  );
  for (const s of all.filter((x) => x.kind !== SpanKind.INTERNAL)) {
    expect(s.status.code).toBe(SpanStatusCode.ERROR);
    expect(s.attributes['rpc.grpc.status_code']).toBe(grpc.status.INVALID_ARGUMENT);
  }
});

test('a style-learned event on NATS: each stage’s handling is a child of the publish span, in the publisher’s trace', async () => {
  spans.reset();
  const root = museumTracer().startSpan('trainer');
  await context.with(trace.setSpan(context.active(), root), () => publishStyleLearned(bus, { museumVersion: 1, style: 'x', token: '<x>', committedAtMs: 1 }, subjects));
  root.end();
  const until = Date.now() + 10_000;
  while ((stack.textEncoder.stats.versionsAnnounced < 1 || stack.denoiser.events.versionsAnnounced < 1) && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
  expect(stack.denoiser.versions.latest).toBe(1);
  const all = inTrace(root.spanContext().traceId);
  const publish = find(all, `publish ${subjects.stylesLearned}`, SpanKind.PRODUCER);
  expect(parentOf(publish)).toBe(id(root as unknown as ReadableSpan));
  const consumers = all.filter((s) => s.kind === SpanKind.CONSUMER);
  expect(consumers.map((s) => s.attributes['messaging.consumer.group.name']).sort()).toEqual(['denoiser', 'text-encoder']);
  for (const c of consumers) expect(parentOf(c)).toBe(id(publish));

  // the next Generate uses version 1, in a trace of its own
  const { root: r2, image } = await tracedGenerate({ prompt: 'a red star', steps: 2 });
  expect(image?.museumVersion).toBe(1);
  expect(checkGenerateTrace(r2).denoise.server.attributes['museum.version']).toBe(1);
});
