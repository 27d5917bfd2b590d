/**
 * Tracing and metrics with OpenTelemetry. Off unless configured: with no provider registered the
 * API hands out non-recording spans and no-op instruments, and the gRPC interceptor does not even
 * wrap calls, so an unconfigured service pays next to nothing.
 *
 *   initTracingFromEnv()   OTLP export (OpenTelemetry's NodeSDK, configured by the standard
 *                          OTEL_* variables) when OTEL_EXPORTER_OTLP_ENDPOINT or
 *                          OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set; otherwise nothing.
 *   initTracing({ spanExporter, metricReader })   explicit exporters (tests: InMemorySpanExporter).
 *
 * The trace context travels by hand, which is deterministic whatever the module loader (no require
 * hooks): W3C `traceparent` in gRPC metadata (client interceptor in `clientOptions`, server spans
 * in `unaryHandler` / `streamHandler`) and in NATS headers (`publishStyleLearned` /
 * `subscribeStyleLearned`). One Generate is thus one trace: gateway -> text encoder -> denoiser ->
 * VAE decoder, and one learned style one trace: LearnStyle -> job -> publish -> every replica's load.
 */
import * as grpc from '@grpc/grpc-js';
import {
  INVALID_SPAN_CONTEXT,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  context,
  metrics,
  propagation,
  trace,
  type Attributes,
  type Context,
  type Histogram,
  type Span,
  type TextMapGetter,
  type TextMapSetter,
  type UpDownCounter,
} from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { CompositePropagator, W3CBaggagePropagator, W3CTraceContextPropagator } from '@opentelemetry/core';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { MeterProvider, type IMetricReader } from '@opentelemetry/sdk-metrics';
import { BasicTracerProvider, SimpleSpanProcessor, type SpanExporter } from '@opentelemetry/sdk-trace-base';

/** Instrumentation scope of Museum's spans and instruments. */
export const TELEMETRY_SCOPE = '@museum/rpc';

export interface TracingOptions {
  /** service.name of the resource, e.g. `museum-denoiser` (default `museum`). */
  serviceName?: string;
  /** Export spans here (synchronously, one by one) instead of OTLP. */
  spanExporter?: SpanExporter;
  /** Collect metrics with this reader. */
  metricReader?: IMetricReader;
}

export interface Telemetry {
  readonly enabled: boolean;
  /** For logs: where spans go. */
  readonly description: string;
  /** Flush and unregister (the global providers can then be set again). */
  shutdown(): Promise<void>;
}

const OFF: Telemetry = { enabled: false, description: 'tracing off (set OTEL_EXPORTER_OTLP_ENDPOINT to export traces and metrics over OTLP)', shutdown: async () => {} };

let active: Telemetry | null = null;

/** Whether spans are being recorded (the interceptor and handlers skip all work when not). */
export function tracingEnabled(): boolean {
  return active?.enabled ?? false;
}

/** The telemetry set up in this process, if any. */
export function currentTelemetry(): Telemetry | null {
  return active;
}

function registerGlobals(): void {
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new CompositePropagator({ propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()] }));
}

function unregisterGlobals(): void {
  trace.disable();
  metrics.disable();
  propagation.disable();
  context.disable();
  instruments = null;
}

/** Register tracer and meter providers with explicit exporters. Replaces what was set before. */
export function initTracing(o: TracingOptions = {}): Telemetry {
  if (active) throw new Error(`telemetry is already set up (${active.description}); shut it down first`);
  const resource = resourceFromAttributes({ 'service.name': o.serviceName ?? 'museum' });
  const tracerProvider = new BasicTracerProvider({ resource, spanProcessors: o.spanExporter ? [new SimpleSpanProcessor(o.spanExporter)] : [] });
  const meterProvider = o.metricReader ? new MeterProvider({ resource, readers: [o.metricReader] }) : null;
  registerGlobals();
  trace.setGlobalTracerProvider(tracerProvider);
  if (meterProvider) metrics.setGlobalMeterProvider(meterProvider);
  const t: Telemetry = {
    enabled: true,
    description: `tracing to ${o.spanExporter?.constructor.name ?? 'nowhere'}${o.metricReader ? `, metrics to ${o.metricReader.constructor.name}` : ''}`,
    shutdown: async () => {
      if (active !== t) return;
      active = null;
      await tracerProvider.shutdown().catch(() => {});
      await meterProvider?.shutdown().catch(() => {});
      unregisterGlobals();
    },
  };
  active = t;
  return t;
}

/** The OTLP endpoint configured for traces, if any. */
export function otlpEndpoint(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (/^true$/i.test(env.OTEL_SDK_DISABLED ?? '')) return undefined;
  return env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || env.OTEL_EXPORTER_OTLP_ENDPOINT || undefined;
}

/**
 * OTLP export when an endpoint is configured (idempotent: the first call of the process wins,
 * later ones return the same telemetry), else tracing stays off. Protocol, headers, sampling and
 * the metrics export interval follow the standard OTEL_* variables (OTLP over HTTP/protobuf unless
 * OTEL_EXPORTER_OTLP_PROTOCOL=grpc).
 */
export function initTracingFromEnv(o: { serviceName?: string; env?: NodeJS.ProcessEnv } = {}): Telemetry {
  if (active) return active;
  const env = o.env ?? process.env;
  const endpoint = otlpEndpoint(env);
  if (!endpoint) return OFF;
  // loaded only when used: the SDK and its exporters are large
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { NodeSDK } = require('@opentelemetry/sdk-node') as typeof import('@opentelemetry/sdk-node');
  const serviceName = env.OTEL_SERVICE_NAME || o.serviceName || 'museum';
  const sdk = new NodeSDK({
    serviceName,
    // no automatic instrumentation: the gRPC and NATS spans are made here, by hand
    instrumentations: [],
    contextManager: new AsyncLocalStorageContextManager(),
    textMapPropagator: new CompositePropagator({ propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()] }),
  });
  sdk.start();
  const t: Telemetry = {
    enabled: true,
    description: `OTLP export to ${endpoint} as ${serviceName}`,
    shutdown: async () => {
      if (active !== t) return;
      active = null;
      await sdk.shutdown().catch(() => {});
      instruments = null;
    },
  };
  active = t;
  return t;
}

/** Flush and unregister whatever telemetry this process set up. */
export async function shutdownTracing(): Promise<void> {
  await active?.shutdown();
}

export function museumTracer() {
  return trace.getTracer(TELEMETRY_SCOPE);
}

// ---------------------------------------------------------------- metrics

interface Instruments {
  serverDuration: Histogram;
  clientDuration: Histogram;
  serverActive: UpDownCounter;
}

let instruments: Instruments | null = null;

function rpcInstruments(): Instruments {
  if (!instruments) {
    const meter = metrics.getMeter(TELEMETRY_SCOPE);
    instruments = {
      serverDuration: meter.createHistogram('rpc.server.duration', { unit: 'ms', description: 'Duration of gRPC calls served, by method and status code' }),
      clientDuration: meter.createHistogram('rpc.client.duration', { unit: 'ms', description: 'Duration of gRPC calls made, by method and status code' }),
      serverActive: meter.createUpDownCounter('rpc.server.active_calls', { description: 'gRPC calls being served' }),
    };
  }
  return instruments;
}

// ---------------------------------------------------------------- propagation carriers

export const metadataSetter: TextMapSetter<grpc.Metadata> = {
  set: (md, key, value) => md.set(key, value),
};

export const metadataGetter: TextMapGetter<grpc.Metadata> = {
  keys: (md) => Object.keys(md.getMap()),
  get: (md, key) => {
    const v = md.get(key).map(String);
    return v.length === 0 ? undefined : v.length === 1 ? v[0] : v;
  },
};

/** Headers of an event as a plain record (the bus carries them to NATS headers). */
export type EventHeaders = Record<string, string>;

const recordSetter: TextMapSetter<EventHeaders> = { set: (h, k, v) => void (h[k] = v) };
const recordGetter: TextMapGetter<EventHeaders> = { keys: (h) => Object.keys(h), get: (h, k) => h[k] };

/** The trace context of `ctx` (default: the active one) as W3C headers. */
export function injectHeaders(headers: EventHeaders = {}, ctx: Context = context.active()): EventHeaders {
  propagation.inject(ctx, headers, recordSetter);
  return headers;
}

/** The remote parent carried by `headers` (ROOT when none). */
export function extractHeaders(headers: EventHeaders | undefined): Context {
  return headers ? propagation.extract(ROOT_CONTEXT, headers, recordGetter) : ROOT_CONTEXT;
}

// ---------------------------------------------------------------- gRPC

/** `/pkg.Service/Method` -> semantic-convention attributes. */
function rpcAttributes(path: string): Attributes {
  const [, service = '', method = ''] = /^\/?([^/]+)\/([^/]+)$/.exec(path) ?? [];
  return { 'rpc.system': 'grpc', 'rpc.service': service, 'rpc.method': method };
}

/** Methods that get no spans (load-balancer probes and tooling would drown the traces). */
function untraced(path: string): boolean {
  return path.startsWith('/grpc.health.') || path.startsWith('/grpc.reflection.');
}

/**
 * Client interceptor: a CLIENT span per call, child of the caller's active span, whose context is
 * sent as `traceparent` metadata; ends with the call's status. Installed by `clientOptions()`.
 */
export const tracingInterceptor: grpc.Interceptor = (options, nextCall) => {
  const path = options.method_definition.path;
  if (!tracingEnabled() || untraced(path)) return new grpc.InterceptingCall(nextCall(options));
  const parent = context.active();
  const attributes = rpcAttributes(path);
  const span = museumTracer().startSpan(path.slice(1), { kind: SpanKind.CLIENT, attributes }, parent);
  const t0 = performance.now();
  return new grpc.InterceptingCall(nextCall(options), {
    start(metadata, listener, next) {
      propagation.inject(trace.setSpan(parent, span), metadata, metadataSetter);
      next(metadata, {
        onReceiveStatus(status, nextStatus) {
          span.setAttribute('rpc.grpc.status_code', status.code);
          if (status.code !== grpc.status.OK) span.setStatus({ code: SpanStatusCode.ERROR, message: `${grpc.status[status.code]}: ${status.details}` });
          span.end();
          rpcInstruments().clientDuration.record(performance.now() - t0, { ...attributes, 'rpc.grpc.status_code': status.code });
          nextStatus(status);
        },
      });
    },
  });
};

export interface ServerSpan {
  /** Context to run the handler in (the span active). */
  context: Context;
  span: Span;
  /** End with the call's status code (and message when it failed). */
  end(code: grpc.status, message?: string): void;
}

const NOOP_SERVER_SPAN: ServerSpan = { context: ROOT_CONTEXT, span: trace.wrapSpanContext(INVALID_SPAN_CONTEXT), end: () => {} };

/** A SERVER span for an incoming call, child of the `traceparent` its metadata carries. */
export function startServerSpan(call: { getPath(): string; metadata: grpc.Metadata }): ServerSpan {
  if (!tracingEnabled()) return NOOP_SERVER_SPAN;
  const path = call.getPath();
  const attributes = rpcAttributes(path);
  const parent = propagation.extract(ROOT_CONTEXT, call.metadata, metadataGetter);
  const span = museumTracer().startSpan(path.slice(1), { kind: SpanKind.SERVER, attributes }, parent);
  const t0 = performance.now();
  const ins = rpcInstruments();
  ins.serverActive.add(1, attributes);
  let ended = false;
  return {
    context: trace.setSpan(parent, span),
    span,
    end: (code, message) => {
      if (ended) return;
      ended = true;
      span.setAttribute('rpc.grpc.status_code', code);
      if (code !== grpc.status.OK) span.setStatus({ code: SpanStatusCode.ERROR, message: `${grpc.status[code]}${message ? `: ${message}` : ''}` });
      span.end();
      ins.serverActive.add(-1, attributes);
      ins.serverDuration.record(performance.now() - t0, { ...attributes, 'rpc.grpc.status_code': code });
    },
  };
}

// ---------------------------------------------------------------- events

/** Run `fn` in a span (`kind`, child of `parent`), ending it when the promise settles. */
export async function inSpan<T>(name: string, o: { kind?: SpanKind; parent?: Context; attributes?: Attributes }, fn: (span: Span) => Promise<T>): Promise<T> {
  if (!tracingEnabled()) return fn(NOOP_SERVER_SPAN.span);
  const parent = o.parent ?? context.active();
  const span = museumTracer().startSpan(name, { kind: o.kind ?? SpanKind.INTERNAL, attributes: o.attributes }, parent);
  try {
    return await context.with(trace.setSpan(parent, span), () => fn(span));
  } catch (err) {
    span.recordException(err instanceof Error ? err : String(err));
    span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) });
    throw err;
  } finally {
    span.end();
  }
}

/** A trace context (what `captureContext` returns). */
export type TraceContext = Context;

/** The active context, to hand to work that runs later (a queued job). */
export function captureContext(): Context {
  return context.active();
}

/** Set attributes on the active span (a no-op when tracing is off). */
export function setSpanAttributes(attributes: Attributes): void {
  if (tracingEnabled()) trace.getActiveSpan()?.setAttributes(attributes);
}

export { SpanKind };
