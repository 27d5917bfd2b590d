/**
 * Statistics of a load run: latency percentiles, throughput and error counts by gRPC status.
 * Percentiles interpolate linearly between the two closest ranks (numpy's default, "type 7"), so
 * p50 of [1, 2, 3, 4] is 2.5 and any percentile of one sample is that sample.
 */

/** The p-th percentile (0 ≤ p ≤ 100) of `sorted` (ascending); NaN when empty. */
export function percentileSorted(sorted: readonly number[], p: number): number {
  if (!(p >= 0 && p <= 100)) throw new RangeError(`percentile must be in [0, 100], got ${p}`);
  const n = sorted.length;
  if (n === 0) return NaN;
  const rank = (p / 100) * (n - 1);
  const lo = Math.floor(rank);
  const hi = Math.min(n - 1, lo + 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo);
}

/** The p-th percentile of unsorted values. */
export function percentile(values: readonly number[], p: number): number {
  return percentileSorted([...values].sort((a, b) => a - b), p);
}

export interface LatencySummary {
  count: number;
  min: number;
  mean: number;
  p50: number;
  p90: number;
  p95: number;
  p99: number;
  max: number;
}

export function summarize(values: readonly number[]): LatencySummary {
  const s = [...values].sort((a, b) => a - b);
  const n = s.length;
  const mean = n ? s.reduce((a, b) => a + b, 0) / n : NaN;
  return {
    count: n,
    min: n ? s[0] : NaN,
    mean,
    p50: percentileSorted(s, 50),
    p90: percentileSorted(s, 90),
    p95: percentileSorted(s, 95),
    p99: percentileSorted(s, 99),
    max: n ? s[n - 1] : NaN,
  };
}

/** Round every number of a summary (for reports). */
export function roundSummary(s: LatencySummary, digits = 2): LatencySummary {
  const r = (x: number) => (Number.isFinite(x) ? Number(x.toFixed(digits)) : x);
  return { count: s.count, min: r(s.min), mean: r(s.mean), p50: r(s.p50), p90: r(s.p90), p95: r(s.p95), p99: r(s.p99), max: r(s.max) };
}

/** Counts per key (status names), kept in first-seen order. */
export class Counter {
  private readonly m = new Map<string, number>();
  add(key: string, n = 1): void {
    this.m.set(key, (this.m.get(key) ?? 0) + n);
  }
  get(key: string): number {
    return this.m.get(key) ?? 0;
  }
  get total(): number {
    let t = 0;
    for (const v of this.m.values()) t += v;
    return t;
  }
  toJSON(): Record<string, number> {
    return Object.fromEntries(this.m);
  }
}
