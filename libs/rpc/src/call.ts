/**
 * The life of a server call as an AbortSignal: it aborts when the client cancels (or goes away) and
 * when the call's deadline passes, so that long work (the denoising loop) stops between steps.
 */
import type * as grpc from '@grpc/grpc-js';

/** An Error named 'AbortError', as the pipeline's cancellation errors are. */
export function abortError(message: string): Error {
  const e = new Error(message);
  e.name = 'AbortError';
  return e;
}

export interface CallSignal {
  signal: AbortSignal;
  /** Stop watching the call (clears the deadline timer). */
  dispose(): void;
}

type AnyServerCall = grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerWritableStream<unknown, unknown>;

/** A client cancel this close to the deadline is the client's deadline firing first. */
const DEADLINE_SLACK_MS = 250;

/** Milliseconds until the call's deadline (Infinity when it has none). */
export function msUntilDeadline(call: { getDeadline(): grpc.Deadline }): number {
  const d = call.getDeadline();
  const at = d instanceof Date ? d.getTime() : d;
  if (!Number.isFinite(at)) return Infinity;
  return at - Date.now();
}

export function callSignal(call: AnyServerCall): CallSignal {
  const ctl = new AbortController();
  // a client whose deadline passed cancels too, maybe before our own timer fires: name the deadline then
  // The server's deadline is the client's plus the request's transit, so allow slack for it (more under load).
  const onCancel = () => ctl.abort(abortError(msUntilDeadline(call) <= DEADLINE_SLACK_MS ? 'deadline exceeded' : 'the call was cancelled by the client'));
  if (call.cancelled) onCancel();
  call.on('cancelled', onCancel);
  let timer: NodeJS.Timeout | null = null;
  const ms = msUntilDeadline(call);
  if (Number.isFinite(ms)) {
    if (ms <= 0) ctl.abort(abortError('deadline exceeded'));
    else {
      timer = setTimeout(() => ctl.abort(abortError('deadline exceeded')), ms);
      timer.unref();
    }
  }
  return {
    signal: ctl.signal,
    dispose: () => {
      if (timer) clearTimeout(timer);
      call.removeListener('cancelled', onCancel);
    },
  };
}

/** Throw the signal's reason (an AbortError) when it has fired. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw signal.reason instanceof Error ? signal.reason : abortError(String(signal.reason ?? 'aborted'));
}
