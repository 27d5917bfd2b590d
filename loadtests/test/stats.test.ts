import { Counter, percentile, percentileSorted, summarize } from '../src/stats';

describe('percentiles', () => {
  it('interpolates between the closest ranks', () => {
    expect(percentile([4, 1, 3, 2], 50)).toBe(2.5);
    expect(percentile([1, 2, 3, 4, 5], 50)).toBe(3);
    expect(percentile([1, 2, 3, 4, 5], 0)).toBe(1);
    expect(percentile([1, 2, 3, 4, 5], 100)).toBe(5);
    expect(percentile([10, 20], 25)).toBeCloseTo(12.5, 12);
    expect(percentile([7], 99)).toBe(7);
    expect(Number.isNaN(percentile([], 50))).toBe(true);
  });

  it('matches the numpy figures of 1..100 and is monotone in p', () => {
    const xs = Array.from({ length: 100 }, (_, i) => 100 - i); // unsorted on purpose
    expect(percentile(xs, 95)).toBeCloseTo(95.05, 10);
    expect(percentile(xs, 99)).toBeCloseTo(99.01, 10);
    const s = [...xs].sort((a, b) => a - b);
    let prev = -Infinity;
    for (let p = 0; p <= 100; p += 0.5) {
      const v = percentileSorted(s, p);
      expect(v).toBeGreaterThanOrEqual(prev);
      prev = v;
    }
  });

  it('sees a heavy tail in p99 but not in p50', () => {
    const xs = [...new Array<number>(990).fill(10), ...new Array<number>(10).fill(1000)];
    const s = summarize(xs);
    expect(s.p50).toBe(10);
    expect(s.p95).toBe(10);
    expect(s.p99).toBeGreaterThan(10);
    expect(s.max).toBe(1000);
    expect(s.mean).toBeCloseTo(19.9, 10);
    expect(s.count).toBe(1000);
  });

  it('rejects percentiles outside [0, 100]', () => {
    expect(() => percentile([1], 101)).toThrow(RangeError);
    expect(() => percentile([1], -1)).toThrow(RangeError);
    expect(() => percentile([1], NaN)).toThrow(RangeError);
  });
});

describe('Counter', () => {
  it('counts by key', () => {
    const c = new Counter();
    c.add('OK');
    c.add('RESOURCE_EXHAUSTED', 2);
    c.add('OK');
    expect(c.toJSON()).toEqual({ OK: 2, RESOURCE_EXHAUSTED: 2 });
    expect(c.total).toBe(4);
    expect(c.get('UNAVAILABLE')).toBe(0);
  });
});
