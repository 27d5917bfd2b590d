import { status } from '@grpc/grpc-js';
import { SimulatedClock } from '../src/clock';
import { grpcStatusName, runLoad, type CallContext } from '../src/runner';

/** A call taking `ms` of simulated time. */
const takes = (clock: SimulatedClock, ms: number | ((i: number) => number)) => async (ctx: CallContext) => {
  await clock.sleep(typeof ms === 'number' ? ms : ms(ctx.index));
};

describe('fixed concurrency', () => {
  it('keeps exactly N calls in flight and measures their latency', async () => {
    const clock = new SimulatedClock();
    let inFlight = 0;
    let peak = 0;
    const r = await runLoad(
      async (ctx) => {
        inFlight++;
        peak = Math.max(peak, inFlight);
        await takes(clock, 10)(ctx);
        inFlight--;
      },
      { mode: { kind: 'concurrency', concurrency: 4 }, warmupS: 0.1, durationS: 1, clock },
    );
    expect(peak).toBe(4);
    expect(r.max_in_flight).toBe(4);
    // 4 workers × 100 calls of 10 ms in one second
    expect(r.throughput_rps).toBe(400);
    expect(r.requests).toBe(400);
    expect(r.ok).toBe(400);
    expect(r.latency_ms.p50).toBe(10);
    expect(r.latency_ms.p99).toBe(10);
    expect(r.errors).toEqual({});
    // warm-up calls ran but are not in the window
    expect(r.started_total).toBe(440);
  });

  it('counts errors by gRPC status and keeps them out of the latency figures', async () => {
    const clock = new SimulatedClock();
    const r = await runLoad(
      async ({ index }) => {
        await clock.sleep(index % 4 === 3 ? 1 : 20);
        if (index % 4 === 3) throw Object.assign(new Error('full'), { code: status.RESOURCE_EXHAUSTED });
        if (index % 50 === 7) throw new Error('not a grpc error');
      },
      { mode: { kind: 'concurrency', concurrency: 2 }, warmupS: 0, durationS: 2, clock },
    );
    expect(r.errors.RESOURCE_EXHAUSTED).toBeGreaterThan(0);
    expect(r.errors.CLIENT_ERROR).toBeGreaterThan(0);
    expect(r.statuses.OK).toBe(r.ok);
    expect(r.ok + r.errors.RESOURCE_EXHAUSTED + r.errors.CLIENT_ERROR).toBe(r.requests);
    expect(r.latency_ms.min).toBe(20);
    expect(r.error_latency_ms!.min).toBe(1);
  });

  it('stops at maxRequests', async () => {
    const clock = new SimulatedClock();
    const r = await runLoad(takes(clock, 1), { mode: { kind: 'concurrency', concurrency: 3 }, warmupS: 0, durationS: 100, maxRequests: 25, clock });
    expect(r.started_total).toBe(25);
  });
});

describe('fixed rate', () => {
  it('starts requests on schedule whatever their latency', async () => {
    const clock = new SimulatedClock();
    const starts: number[] = [];
    const r = await runLoad(
      async (ctx) => {
        starts.push(clock.now());
        await clock.sleep(ctx.index % 2 ? 5 : 35); // latency > interval: calls overlap
      },
      { mode: { kind: 'rate', rps: 50 }, warmupS: 0.5, durationS: 2, clock },
    );
    expect(r.offered_rps).toBe(50);
    expect(r.requests).toBe(100);
    expect(r.started_total).toBe(125);
    expect(r.skipped).toBe(0);
    expect(r.start_lag_ms!.max).toBe(0);
    // evenly spaced at 20 ms
    for (let i = 1; i < starts.length; i++) expect(starts[i] - starts[i - 1]).toBeCloseTo(20, 9);
    expect(r.latency_ms.p50).toBe(20); // half 5 ms, half 35 ms
    expect(r.latency_ms.max).toBe(35);
    expect(r.max_in_flight).toBe(2);
    expect(r.throughput_rps).toBeCloseTo(50, 0);
  });

  it('skips (and counts) due requests when the in-flight cap is reached instead of queueing them', async () => {
    const clock = new SimulatedClock();
    const r = await runLoad(takes(clock, 100), { mode: { kind: 'rate', rps: 50, maxInFlight: 2 }, warmupS: 0, durationS: 2, clock });
    // 100 due; each call holds a slot for 5 intervals, 2 slots: 2 of every 5 start (the rest are skipped)
    expect(r.requests + r.skipped!).toBe(100);
    expect(r.requests).toBe(40);
    expect(r.max_in_flight).toBe(2);
    expect(r.throughput_rps).toBeGreaterThanOrEqual(19);
    expect(r.throughput_rps).toBeLessThanOrEqual(20);
  });

  it('aborts calls still running after the drain grace', async () => {
    const clock = new SimulatedClock();
    const r = await runLoad(
      ({ signal }) =>
        new Promise<void>((_, reject) => {
          signal.addEventListener('abort', () => reject(signal.reason));
        }),
      { mode: { kind: 'rate', rps: 10 }, warmupS: 0, durationS: 1, drainS: 0.5, clock },
    );
    expect(r.aborted_after_drain).toBe(10);
    expect(r.errors).toEqual({ CANCELLED: 10 });
    expect(r.ok).toBe(0);
    expect(clock.now()).toBeCloseTo(1500, 6);
  });
});

describe('limits', () => {
  it('refuses unbounded or nonsensical runs', async () => {
    const call = async () => {};
    await expect(runLoad(call, { mode: { kind: 'concurrency', concurrency: 0 }, warmupS: 0, durationS: 1 })).rejects.toThrow(RangeError);
    await expect(runLoad(call, { mode: { kind: 'rate', rps: 0 }, warmupS: 0, durationS: 1 })).rejects.toThrow(RangeError);
    await expect(runLoad(call, { mode: { kind: 'rate', rps: 5 }, warmupS: 0, durationS: Infinity })).rejects.toThrow(RangeError);
    await expect(runLoad(call, { mode: { kind: 'rate', rps: 5 }, warmupS: 0, durationS: 4000 })).rejects.toThrow(/bounded/);
  });

  it('names gRPC statuses', () => {
    expect(grpcStatusName({ code: status.RESOURCE_EXHAUSTED })).toBe('RESOURCE_EXHAUSTED');
    expect(grpcStatusName(Object.assign(new Error('x'), { name: 'AbortError' }))).toBe('CANCELLED');
    expect(grpcStatusName(new Error('x'))).toBe('CLIENT_ERROR');
  });
});
