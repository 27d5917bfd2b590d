import * as grpc from '@grpc/grpc-js';
import { SpanKind, SpanStatusCode, context, trace } from '@opentelemetry/api';
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { AggregationTemporality, InMemoryMetricExporter, PeriodicExportingMetricReader, type HistogramMetricData } from '@opentelemetry/sdk-metrics';
import { museum } from '@museum/proto';
import {
  InProcessEventBus,
  NatsEventBus,
  clientOptions,
  initTracing,
  initTracingFromEnv,
  invalidArgument,
  museumSubjects,
  museumTracer,
  otlpEndpoint,
  publishStyleLearned,
  serverStream,
  streamHandler,
  subscribeStyleLearned,
  tracingEnabled,
  unary,
  unaryHandler,
  type EventBus,
} from '../src';

const NATS_URL = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';

/** What a handler saw: the traceparent metadata and the span active while it ran. */
interface Seen {
  traceparent: string[];
  activeSpanId?: string;
  activeTraceId?: string;
}

let server: grpc.Server;
let address: string;
let seen: Seen[] = [];

function observe(call: { metadata: grpc.Metadata }) {
  const span = trace.getActiveSpan();
  seen.push({ traceparent: call.metadata.get('traceparent').map(String), activeSpanId: span?.spanContext().spanId, activeTraceId: span?.spanContext().traceId });
}

beforeAll(async () => {
  server = new grpc.Server();
  const te: museum.v1.TextEncoderServiceServer = {
    encode: unaryHandler(async (req, { call }) => {
      observe(call);
      if (req.prompts[0] === 'bad') throw invalidArgument('prompts[0]', 'is bad');
      return { embeddings: undefined, museumVersion: 0, tokenCounts: [1] };
    }),
  };
  const dn: museum.v1.DenoiserServiceServer = {
    denoise: streamHandler(async (req, { call, write }) => {
      observe(call);
      for (let i = 1; i <= req.steps; i++) write({ event: { $case: 'progress', value: { step: i, total: req.steps, timestep: 0, preview: undefined } } });
    }),
  };
  server.addService(museum.v1.TextEncoderServiceService, te as unknown as grpc.UntypedServiceImplementation);
  server.addService(museum.v1.DenoiserServiceService, dn as unknown as grpc.UntypedServiceImplementation);
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  address = `127.0.0.1:${port}`;
});

afterAll(() => server?.forceShutdown());

beforeEach(() => {
  seen = [];
});

function clients() {
  const creds = grpc.credentials.createInsecure();
  return { te: new museum.v1.TextEncoderServiceClient(address, creds, clientOptions()), dn: new museum.v1.DenoiserServiceClient(address, creds, clientOptions()) };
}

test('off by default: no exporter without OTEL_EXPORTER_OTLP_ENDPOINT, no traceparent sent, no active span in handlers', async () => {
  expect(otlpEndpoint({})).toBeUndefined();
  expect(otlpEndpoint({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_SDK_DISABLED: 'true' })).toBeUndefined();
  expect(otlpEndpoint({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://c:4318/v1/traces' })).toBe('http://c:4318/v1/traces');
  const off = initTracingFromEnv({ env: {} });
  expect(off.enabled).toBe(false);
  expect(tracingEnabled()).toBe(false);
  const { te, dn } = clients();
  try {
    await unary(te.encode.bind(te), { prompts: ['x'] });
    for await (const _ of serverStream(dn.denoise.bind(dn), museum.v1.DenoiseRequest.fromPartial({ steps: 2 }))) void _;
  } finally {
    te.close();
    dn.close();
  }
  expect(seen).toEqual([{ traceparent: [] }, { traceparent: [] }]);
});

describe('with an in-memory exporter', () => {
  const spans = new InMemorySpanExporter();
  const metricExporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
  const reader = new PeriodicExportingMetricReader({ exporter: metricExporter, exportIntervalMillis: 3_600_000 });
  let telemetry: ReturnType<typeof initTracing>;

  beforeAll(() => {
    telemetry = initTracing({ serviceName: 'rpc-test', spanExporter: spans, metricReader: reader });
  });
  afterAll(async () => {
    await telemetry.shutdown();
    expect(tracingEnabled()).toBe(false);
  });
  beforeEach(() => spans.reset());

  const byName = (name: string) => spans.getFinishedSpans().filter((s) => s.name === name);
  const parentId = (s: ReadableSpan) => s.parentSpanContext?.spanId;

  test('a call carries the caller’s trace: root -> CLIENT span -> SERVER span, the handler runs inside the server span', async () => {
    expect(tracingEnabled()).toBe(true);
    expect(() => initTracing({})).toThrow(/already set up/);
    const { te, dn } = clients();
    const root = museumTracer().startSpan('root');
    try {
      await context.with(trace.setSpan(context.active(), root), async () => {
        await unary(te.encode.bind(te), { prompts: ['x'] });
        for await (const _ of serverStream(dn.denoise.bind(dn), museum.v1.DenoiseRequest.fromPartial({ steps: 3 }))) void _;
      });
    } finally {
      root.end();
      te.close();
      dn.close();
    }
    const traceId = root.spanContext().traceId;
    const [encClient] = byName('museum.v1.TextEncoderService/Encode').filter((s) => s.kind === SpanKind.CLIENT);
    const [encServer] = byName('museum.v1.TextEncoderService/Encode').filter((s) => s.kind === SpanKind.SERVER);
    const [dnClient] = byName('museum.v1.DenoiserService/Denoise').filter((s) => s.kind === SpanKind.CLIENT);
    const [dnServer] = byName('museum.v1.DenoiserService/Denoise').filter((s) => s.kind === SpanKind.SERVER);
    for (const s of [encClient, encServer, dnClient, dnServer]) expect(s.spanContext().traceId).toBe(traceId);
    expect(parentId(encClient)).toBe(root.spanContext().spanId);
    expect(parentId(dnClient)).toBe(root.spanContext().spanId);
    expect(parentId(encServer)).toBe(encClient.spanContext().spanId);
    expect(parentId(dnServer)).toBe(dnClient.spanContext().spanId);
    // the metadata the servers received, and the span active in the handlers
    expect(seen.map((s) => s.traceparent[0])).toEqual([`00-${traceId}-${encClient.spanContext().spanId}-01`, `00-${traceId}-${dnClient.spanContext().spanId}-01`]);
    expect(seen.map((s) => s.activeSpanId)).toEqual([encServer.spanContext().spanId, dnServer.spanContext().spanId]);
    expect(encServer.attributes).toMatchObject({ 'rpc.system': 'grpc', 'rpc.service': 'museum.v1.TextEncoderService', 'rpc.method': 'Encode', 'rpc.grpc.status_code': 0 });
    expect(dnServer.status.code).toBe(SpanStatusCode.UNSET);
  });

  test('a failing call marks both spans as errors with the status code; durations are recorded per method and code', async () => {
    const { te } = clients();
    await expect(unary(te.encode.bind(te), { prompts: ['bad'] })).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT });
    te.close();
    const enc = byName('museum.v1.TextEncoderService/Encode');
    expect(enc.map((s) => s.kind).sort()).toEqual([SpanKind.SERVER, SpanKind.CLIENT].sort());
    for (const s of enc) {
      expect(s.attributes['rpc.grpc.status_code']).toBe(grpc.status.INVALID_ARGUMENT);
      expect(s.status).toEqual({ code: SpanStatusCode.ERROR, message: 'INVALID_ARGUMENT: prompts[0]: is bad' });
    }
    // without a caller span, the client span starts a new trace
    expect(enc.find((s) => s.kind === SpanKind.CLIENT)!.parentSpanContext).toBeUndefined();

    await reader.forceFlush();
    const metrics = metricExporter.getMetrics().at(-1)!.scopeMetrics.flatMap((m) => m.metrics);
    const server = metrics.find((m) => m.descriptor.name === 'rpc.server.duration') as HistogramMetricData;
    const count = (method: string, code: number) =>
      server.dataPoints.filter((p) => p.attributes['rpc.method'] === method && p.attributes['rpc.grpc.status_code'] === code).reduce((n, p) => n + p.value.count, 0);
    expect(count('Encode', grpc.status.INVALID_ARGUMENT)).toBe(1);
    expect(count('Encode', grpc.status.OK)).toBe(1);
    expect(count('Denoise', grpc.status.OK)).toBe(1);
    expect(metrics.some((m) => m.descriptor.name === 'rpc.client.duration')).toBe(true);
  });

  async function eventTrace(bus: EventBus, prefix: string) {
    const subjects = museumSubjects(prefix);
    const handled: Array<{ consumer: string; traceId?: string }> = [];
    const subs = await Promise.all(
      ['text-encoder', 'denoiser'].map((consumer) =>
        subscribeStyleLearned(bus, () => void handled.push({ consumer, traceId: trace.getActiveSpan()?.spanContext().traceId }), subjects, undefined, { consumer }),
      ),
    );
    const root = museumTracer().startSpan('learn');
    await context.with(trace.setSpan(context.active(), root), () => publishStyleLearned(bus, { museumVersion: 1, style: 's', token: '<s>', committedAtMs: 1 }, subjects));
    root.end();
    const until = Date.now() + 5000;
    while (handled.length < 2 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    await Promise.all(subs.map((s) => s.unsubscribe()));
    const traceId = root.spanContext().traceId;
    expect(handled.map((h) => h.traceId)).toEqual([traceId, traceId]);
    const [publish] = byName(`publish ${subjects.stylesLearned}`);
    expect(publish.kind).toBe(SpanKind.PRODUCER);
    expect(parentId(publish)).toBe(root.spanContext().spanId);
    const consumers = byName(`process ${subjects.stylesLearned}`);
    expect(consumers.map((s) => s.attributes['messaging.consumer.group.name']).sort()).toEqual(['denoiser', 'text-encoder']);
    for (const c of consumers) {
      expect(c.kind).toBe(SpanKind.CONSUMER);
      expect(c.spanContext().traceId).toBe(traceId);
      expect(parentId(c)).toBe(publish.spanContext().spanId);
      expect(c.attributes['museum.version']).toBe(1);
    }
  }

  test('the trace context crosses the in-process bus in message headers', async () => {
    await eventTrace(new InProcessEventBus(), 'trace');
  });

  test('the trace context crosses NATS JetStream in message headers', async () => {
    const run = `tr${process.pid}x${Date.now().toString(36)}`;
    const bus = await NatsEventBus.connect({ url: NATS_URL, stream: `${run.toUpperCase()}_MUSEUM`, subjects: [`${run}.museum.>`] });
    try {
      await eventTrace(bus, `${run}.museum`);
    } finally {
      await bus.deleteStream().catch(() => {});
      await bus.close();
    }
  });
});

test('with OTEL_EXPORTER_OTLP_ENDPOINT set, spans and metrics are exported over OTLP (to a collector stand-in on loopback)', async () => {
  // OTLP/gRPC here: the HTTP exporter loads `http` with a dynamic import(), which jest's VM refuses
  const received: Array<{ path: string; bytes: number }> = [];
  const raw = (b: Buffer) => b;
  const exportMethod = (path: string) => ({ path, requestStream: false, responseStream: false, requestSerialize: raw, requestDeserialize: raw, responseSerialize: raw, responseDeserialize: raw });
  const collector = new grpc.Server();
  const handler: grpc.handleUnaryCall<Buffer, Buffer> = (call, cb) => {
    received.push({ path: call.getPath(), bytes: call.request.length });
    cb(null, Buffer.alloc(0));
  };
  collector.addService({ export: exportMethod('/opentelemetry.proto.collector.trace.v1.TraceService/Export') }, { export: handler });
  collector.addService({ export: exportMethod('/opentelemetry.proto.collector.metrics.v1.MetricsService/Export') }, { export: handler });
  const port = await new Promise<number>((resolve, reject) => collector.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  const saved = { ...process.env };
  // the SDK reads the standard variables itself
  Object.assign(process.env, { OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`, OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc', OTEL_LOGS_EXPORTER: 'none', OTEL_METRIC_EXPORT_INTERVAL: '600000' });
  try {
    const t = initTracingFromEnv({ serviceName: 'museum-test' });
    expect(t.enabled).toBe(true);
    expect(t.description).toBe(`OTLP export to http://127.0.0.1:${port} as museum-test`);
    // idempotent: a second call returns the same telemetry
    expect(initTracingFromEnv({ serviceName: 'other' })).toBe(t);
    const { te } = clients();
    await unary(te.encode.bind(te), { prompts: ['x'] });
    te.close();
    expect(seen[0].traceparent[0]).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    await t.shutdown();
    expect(tracingEnabled()).toBe(false);
  } finally {
    process.env = saved;
    collector.forceShutdown();
  }
  const traces = received.filter((r) => r.path.includes('TraceService'));
  expect(traces.length).toBeGreaterThanOrEqual(1);
  // two spans (client and server), each with its name and attributes
  expect(traces.reduce((n, r) => n + r.bytes, 0)).toBeGreaterThan(200);
  expect(received.some((r) => r.path.includes('MetricsService'))).toBe(true);
});
