/**
 * Client-side helpers: insecure loopback/cluster channels with the same message-size limits as the
 * servers, promise-returning unary calls and async-iterable server streams that honour a deadline
 * and an AbortSignal (cancelling the call on abort). Clients made with `clientOptions()` carry the
 * caller's trace context to the server.
 */
import * as grpc from '@grpc/grpc-js';
import { abortError } from './call';
import { tracingInterceptor } from './tracing';

export const DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

export interface ChannelOptions {
  maxReceiveMessageLength?: number;
  maxSendMessageLength?: number;
}

/** grpc-js options for a client: message limits, no retries, round-robin over resolved addresses, and trace-context propagation (a no-op while tracing is off). */
export function clientOptions(o: ChannelOptions = {}): grpc.ClientOptions {
  return {
    interceptors: [tracingInterceptor],
    'grpc.max_receive_message_length': o.maxReceiveMessageLength ?? DEFAULT_MAX_MESSAGE_BYTES,
    'grpc.max_send_message_length': o.maxSendMessageLength ?? DEFAULT_MAX_MESSAGE_BYTES,
    // Fail fast when a stage is down instead of queueing until the deadline.
    'grpc.enable_retries': 0,
    // Spread calls over every address a name resolves to (a headless Kubernetes Service lists one per
    // replica); grpc-js' default pick_first would send all traffic to the first replica.
    'grpc.service_config': JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }] }),
  };
}

export interface CallControl {
  /** Absolute deadline (ms since epoch or Date). */
  deadline?: grpc.Deadline;
  signal?: AbortSignal;
  metadata?: grpc.Metadata;
}

type UnaryFn<Req, Res> = (req: Req, metadata: grpc.Metadata, options: Partial<grpc.CallOptions>, cb: (err: grpc.ServiceError | null, res: Res) => void) => grpc.ClientUnaryCall;

/** Call a unary method of a generated client: `await unary(client.encode.bind(client), req, { deadline, signal })`. */
export function unary<Req, Res>(fn: UnaryFn<Req, Res>, req: Req, ctl: CallControl = {}): Promise<Res> {
  return new Promise<Res>((resolve, reject) => {
    if (ctl.signal?.aborted) return reject(ctl.signal.reason ?? abortError('aborted'));
    const call = fn(req, ctl.metadata ?? new grpc.Metadata(), ctl.deadline !== undefined ? { deadline: ctl.deadline } : {}, (err, res) => {
      ctl.signal?.removeEventListener('abort', onAbort);
      if (err) reject(err);
      else resolve(res);
    });
    const onAbort = () => call.cancel();
    ctl.signal?.addEventListener('abort', onAbort, { once: true });
  });
}

type StreamFn<Req, Res> = (req: Req, metadata: grpc.Metadata, options?: Partial<grpc.CallOptions>) => grpc.ClientReadableStream<Res>;

/** Iterate a server stream; aborting the signal cancels the call (the iteration then throws CANCELLED). */
export async function* serverStream<Req, Res>(fn: StreamFn<Req, Res>, req: Req, ctl: CallControl = {}): AsyncGenerator<Res, void, void> {
  if (ctl.signal?.aborted) throw ctl.signal.reason ?? abortError('aborted');
  const call = fn(req, ctl.metadata ?? new grpc.Metadata(), ctl.deadline !== undefined ? { deadline: ctl.deadline } : {});
  const onAbort = () => call.cancel();
  ctl.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    for await (const msg of call as AsyncIterable<Res>) yield msg;
  } finally {
    ctl.signal?.removeEventListener('abort', onAbort);
    // leaving the loop early (break/throw in the consumer) must not leave the call running
    call.cancel();
  }
}

/** Resolve once the channel is READY (or reject after `timeoutMs`). */
export function waitForReady(client: grpc.Client, timeoutMs = 5000): Promise<void> {
  return new Promise((resolve, reject) => client.waitForReady(Date.now() + timeoutMs, (err) => (err ? reject(err) : resolve())));
}
