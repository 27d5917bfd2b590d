import { Rng, deriveSeed } from '@museum/world';

describe('Rng', () => {
  it('is deterministic from its seed and differs across seeds', () => {
    const a = new Rng(42);
    const b = new Rng(42);
    const c = new Rng(43);
    const xa = Array.from({ length: 100 }, () => a.uint32());
    const xb = Array.from({ length: 100 }, () => b.uint32());
    const xc = Array.from({ length: 100 }, () => c.uint32());
    expect(xa).toEqual(xb);
    expect(xa.filter((v, i) => v === xc[i]).length).toBeLessThan(3);
    expect(new Rng('neon').uint32()).toBe(new Rng('neon').uint32());
  });

  it('draws uniform floats in [0, 1) with the right moments', () => {
    const r = new Rng(7);
    const n = 20000;
    let s = 0;
    let s2 = 0;
    let lo = 1;
    let hi = 0;
    for (let i = 0; i < n; i++) {
      const v = r.float();
      s += v;
      s2 += v * v;
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
    expect(lo).toBeGreaterThanOrEqual(0);
    expect(hi).toBeLessThan(1);
    expect(Math.abs(s / n - 0.5)).toBeLessThan(0.01);
    expect(Math.abs(s2 / n - s ** 2 / n ** 2 - 1 / 12)).toBeLessThan(0.005);
  });

  it('int() covers its inclusive range evenly and shuffle() permutes', () => {
    const r = new Rng(1);
    const counts = new Array(6).fill(0);
    for (let i = 0; i < 6000; i++) counts[r.int(0, 5)]++;
    for (const c of counts) expect(Math.abs(c - 1000)).toBeLessThan(120);
    const items = [1, 2, 3, 4, 5, 6, 7, 8];
    const sh = r.shuffle(items);
    expect([...sh].sort()).toEqual(items);
    expect(sh).not.toEqual(items);
  });

  it('deriveSeed separates paths', () => {
    const seeds = new Set<number>();
    for (let i = 0; i < 1000; i++) seeds.add(deriveSeed('fewshot', 'neon', i));
    expect(seeds.size).toBe(1000);
    expect(deriveSeed(1, 'a')).toBe(deriveSeed(1, 'a'));
    expect(deriveSeed(1, 'a')).not.toBe(deriveSeed('1', 'a'));
    expect(deriveSeed('ab', 'c')).not.toBe(deriveSeed('a', 'bc'));
  });
});
