/**
 * The load engine, independent of what is called: a fixed concurrency (closed loop: each of N
 * workers calls again as soon as its call ends) or a fixed request rate (open loop: request i is
 * due at t0 + i/rate whatever the earlier ones did, with a cap on calls in flight; a due request
 * that finds the cap reached is skipped and counted, never queued, so the schedule cannot drift).
 *
 * A run is a warm-up, then the measured window; it is bounded in time (warm-up + duration + drain)
 * and in requests (`maxRequests`), and stops by itself: after the window no call is started, calls
 * still running get `drainS` to end and are then aborted.
 *
 * What is measured: a request belongs to the window when it was due (rate) or started
 * (concurrency) inside it. Its latency runs from that due/start time to its end, so in rate mode a
 * late start counts against the service (no coordinated omission). Throughput counts the successful
 * calls that *ended* inside the window, divided by its length.
 */
import { setMaxListeners } from 'node:events';
import { status as grpcStatus } from '@grpc/grpc-js';
import { realClock, type Clock } from './clock';
import { Counter, roundSummary, summarize, type LatencySummary } from './stats';

export type LoadMode = { kind: 'concurrency'; concurrency: number } | { kind: 'rate'; rps: number; maxInFlight?: number };

export interface CallContext {
  /** 0-based request number over the whole run (warm-up included). */
  index: number;
  /** Concurrency mode: which worker (0 … N-1) makes the call; rate mode: undefined. */
  worker?: number;
  /** Aborted when the drain grace is over. */
  signal: AbortSignal;
}

export type LoadCall = (ctx: CallContext) => Promise<void>;

export interface LoadOptions {
  mode: LoadMode;
  warmupS: number;
  durationS: number;
  /** Hard cap on requests started, warm-up included (default 100 000). */
  maxRequests?: number;
  /** How long calls still running after the window may take before they are aborted (default 30 s). */
  drainS?: number;
  clock?: Clock;
  /** Status name of a failed call (default: its gRPC status name). */
  classify?: (err: unknown) => string;
  /** Called when the measured window starts and when it ends (e.g. to read CPU counters). */
  onWindow?: (edge: 'start' | 'end') => void;
}

export interface LoadResult {
  mode: LoadMode;
  warmup_s: number;
  duration_s: number;
  /** Requests due/started in the window. */
  requests: number;
  ok: number;
  /** Every outcome of the window's requests by status name (`OK` included). */
  statuses: Record<string, number>;
  /** Failed requests of the window by status name. */
  errors: Record<string, number>;
  /** Successful calls that ended inside the window, per second. */
  throughput_rps: number;
  /** Rate mode: the rate asked for. */
  offered_rps?: number;
  /** Rate mode: due requests not started because `maxInFlight` calls were running. */
  skipped?: number;
  /** Rate mode: how late calls started against their due time (ms). */
  start_lag_ms?: LatencySummary;
  /** Latency of the window's successful calls (ms). */
  latency_ms: LatencySummary;
  /** Latency of the window's failed calls (ms); absent when none failed. */
  error_latency_ms?: LatencySummary;
  /** Calls (any) started over the whole run, and those aborted at the end of the drain. */
  started_total: number;
  aborted_after_drain: number;
  max_in_flight: number;
}

/** gRPC status name of an error (`CANCELLED` for an AbortError, `CLIENT_ERROR` for anything else). */
export function grpcStatusName(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'number' && grpcStatus[code] !== undefined) return grpcStatus[code];
  if ((err as { name?: string } | null)?.name === 'AbortError') return 'CANCELLED';
  return 'CLIENT_ERROR';
}

/** Largest sensible run: the engine refuses longer ones (it must stop by itself). */
export const MAX_RUN_SECONDS = 3600;

export function checkLoadOptions(o: LoadOptions): void {
  const pos = (name: string, v: number, allowZero = false) => {
    if (!Number.isFinite(v) || v < 0 || (!allowZero && v === 0)) throw new RangeError(`${name} must be a ${allowZero ? 'non-negative' : 'positive'} number, got ${v}`);
  };
  pos('warmupS', o.warmupS, true);
  pos('durationS', o.durationS);
  if (o.drainS !== undefined) pos('drainS', o.drainS, true);
  if (o.warmupS + o.durationS + (o.drainS ?? 30) > MAX_RUN_SECONDS) throw new RangeError(`a run is bounded by ${MAX_RUN_SECONDS} s (warm-up + duration + drain)`);
  if (o.maxRequests !== undefined && (!Number.isInteger(o.maxRequests) || o.maxRequests < 1)) throw new RangeError(`maxRequests must be a positive integer, got ${o.maxRequests}`);
  if (o.mode.kind === 'concurrency') {
    if (!Number.isInteger(o.mode.concurrency) || o.mode.concurrency < 1 || o.mode.concurrency > 10_000) throw new RangeError(`concurrency must be an integer in [1, 10000], got ${o.mode.concurrency}`);
  } else {
    pos('rps', o.mode.rps);
    const cap = o.mode.maxInFlight;
    if (cap !== undefined && (!Number.isInteger(cap) || cap < 1)) throw new RangeError(`maxInFlight must be a positive integer, got ${cap}`);
  }
}

interface Outcome {
  measured: boolean;
  status: string;
  latency: number;
  end: number;
}

export async function runLoad(call: LoadCall, o: LoadOptions): Promise<LoadResult> {
  checkLoadOptions(o);
  const clock = o.clock ?? realClock;
  const classify = o.classify ?? grpcStatusName;
  const maxRequests = o.maxRequests ?? 100_000;
  const t0 = clock.now();
  const windowStart = t0 + o.warmupS * 1000;
  const windowEnd = windowStart + o.durationS * 1000;
  const abort = new AbortController();
  // every call in flight listens to the one abort signal
  setMaxListeners(0, abort.signal);
  const outcomes: Outcome[] = [];
  const lags: number[] = [];
  const inFlight = new Set<Promise<void>>();
  let started = 0;
  let maxInFlight = 0;
  let skipped = 0;
  if (o.onWindow) {
    const hook = o.onWindow;
    void clock.sleep(windowStart - t0).then(() => hook('start'));
    void clock.sleep(windowEnd - t0).then(() => hook('end'));
  }

  /** Start request number `index`, due at `due`; resolves when it has ended. */
  const launch = (index: number, due: number, worker?: number): Promise<void> => {
    started++;
    const measured = due >= windowStart && due < windowEnd;
    let p: Promise<void>;
    const record = (s: string) => {
      const end = clock.now();
      outcomes.push({ measured, status: s, latency: end - due, end });
    };
    try {
      p = call({ index, worker, signal: abort.signal }).then(
        () => record('OK'),
        (err: unknown) => record(classify(err)),
      );
    } catch (err) {
      record(classify(err));
      p = Promise.resolve();
    }
    const tracked = p.finally(() => inFlight.delete(tracked));
    inFlight.add(tracked);
    maxInFlight = Math.max(maxInFlight, inFlight.size);
    return tracked;
  };

  if (o.mode.kind === 'concurrency') {
    const worker = async (w: number) => {
      for (;;) {
        const now = clock.now();
        if (now >= windowEnd || started >= maxRequests) return;
        await launch(started, now, w);
      }
    };
    await Promise.all(Array.from({ length: o.mode.concurrency }, (_, w) => worker(w)));
  } else {
    const interval = 1000 / o.mode.rps;
    const cap = o.mode.maxInFlight ?? 1000;
    for (let i = 0; ; i++) {
      const due = t0 + i * interval;
      if (due >= windowEnd || started >= maxRequests) break;
      const wait = due - clock.now();
      if (wait > 0) await clock.sleep(wait);
      if (inFlight.size >= cap) {
        if (due >= windowStart) skipped++;
        continue;
      }
      if (due >= windowStart) lags.push(clock.now() - due);
      void launch(i, due);
    }
  }

  // The window is over: no new calls; give those running `drainS`, then abort them.
  let aborted = 0;
  if (inFlight.size > 0) {
    const drainMs = (o.drainS ?? 30) * 1000;
    const settled = Promise.all([...inFlight]).then(() => true);
    const timedOut = clock.sleep(Math.max(0, windowEnd + drainMs - clock.now())).then(() => false);
    if (!(await Promise.race([settled, timedOut]))) {
      aborted = inFlight.size;
      abort.abort(Object.assign(new Error('load test over: call aborted after the drain grace'), { name: 'AbortError' }));
      await settled;
    }
  }

  const window = outcomes.filter((x) => x.measured);
  const statuses = new Counter();
  const errors = new Counter();
  for (const x of window) {
    statuses.add(x.status);
    if (x.status !== 'OK') errors.add(x.status);
  }
  const okLat = window.filter((x) => x.status === 'OK').map((x) => x.latency);
  const errLat = window.filter((x) => x.status !== 'OK').map((x) => x.latency);
  const endedOkInWindow = outcomes.filter((x) => x.status === 'OK' && x.end > windowStart && x.end <= windowEnd).length;
  const result: LoadResult = {
    mode: o.mode,
    warmup_s: o.warmupS,
    duration_s: o.durationS,
    requests: window.length,
    ok: okLat.length,
    statuses: statuses.toJSON(),
    errors: errors.toJSON(),
    throughput_rps: Number((endedOkInWindow / o.durationS).toFixed(3)),
    latency_ms: roundSummary(summarize(okLat)),
    started_total: started,
    aborted_after_drain: aborted,
    max_in_flight: maxInFlight,
  };
  if (errLat.length) result.error_latency_ms = roundSummary(summarize(errLat));
  if (o.mode.kind === 'rate') {
    result.offered_rps = o.mode.rps;
    result.skipped = skipped;
    result.start_lag_ms = roundSummary(summarize(lags));
  }
  return result;
}
