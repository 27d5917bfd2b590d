/**
 * Adapters from async functions to grpc-js handlers: every call gets an AbortSignal (client
 * cancellation and deadline), and whatever the function throws becomes a gRPC status (RpcError
 * codes kept, aborts as CANCELLED / DEADLINE_EXCEEDED, anything else INTERNAL) instead of crashing
 * the process. Each call runs in a SERVER span, child of the trace context its metadata carries
 * (when tracing is on).
 */
import type * as grpc from '@grpc/grpc-js';
import { context } from '@opentelemetry/api';
import { callSignal } from './call';
import { statusOf, toServiceError } from './errors';
import { startServerSpan, tracingEnabled } from './tracing';

export type UnaryImpl<Req, Res> = (request: Req, ctx: { signal: AbortSignal; call: grpc.ServerUnaryCall<Req, Res> }) => Promise<Res>;
export type StreamImpl<Req, Res> = (
  request: Req,
  ctx: { signal: AbortSignal; call: grpc.ServerWritableStream<Req, Res>; write: (msg: Res) => void },
) => Promise<void>;

export interface HandlerHooks {
  /** Reports handler failures that are not the client's fault (INTERNAL). */
  log?: (msg: string) => void;
  /** Name for messages, e.g. "denoiser.Denoise". */
  name?: string;
}

/** Run `fn` in the call's server span (directly when tracing is off). */
function traced<T>(call: { getPath(): string; metadata: grpc.Metadata }, fn: () => Promise<T>): Promise<T> {
  if (!tracingEnabled()) return fn();
  const s = startServerSpan(call);
  return context.with(s.context, fn).then(
    (res) => {
      s.end(0);
      return res;
    },
    (err: unknown) => {
      s.end(statusOf(err), err instanceof Error ? err.message : String(err));
      throw err;
    },
  );
}

function report(err: unknown, hooks: HandlerHooks) {
  const e = toServiceError(err, hooks.name);
  if (e.code === 13 /* INTERNAL */) hooks.log?.(`${hooks.name ?? 'rpc'}: ${e.details}${err instanceof Error && err.stack ? `\n${err.stack}` : ''}`);
  return e;
}

export function unaryHandler<Req, Res>(impl: UnaryImpl<Req, Res>, hooks: HandlerHooks = {}): grpc.handleUnaryCall<Req, Res> {
  return (call, cb) => {
    const sig = callSignal(call as grpc.ServerUnaryCall<unknown, unknown>);
    traced(call, () => impl(call.request, { signal: sig.signal, call }))
      .then((res) => cb(null, res))
      .catch((err: unknown) => cb(report(err, hooks)))
      .finally(() => sig.dispose());
  };
}

export function streamHandler<Req, Res>(impl: StreamImpl<Req, Res>, hooks: HandlerHooks = {}): grpc.handleServerStreamingCall<Req, Res> {
  return (call) => {
    const sig = callSignal(call as grpc.ServerWritableStream<unknown, unknown>);
    const write = (msg: Res) => {
      if (!call.cancelled && !call.writableEnded) call.write(msg);
    };
    traced(call, () => impl(call.request, { signal: sig.signal, call, write }))
      .then(() => {
        if (!call.writableEnded) call.end();
      })
      .catch((err: unknown) => {
        const e = report(err, hooks);
        if (!call.writableEnded) call.emit('error', e);
      })
      .finally(() => sig.dispose());
  };
}
