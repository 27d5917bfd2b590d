/**
 * Seeded randomness for the procedural world. Everything the world draws comes from an `Rng`
 * built from a seed, so the same seed always gives the same bytes.
 */

// Math functions bound at module scope: global lookups are slow inside vm contexts (jest).
const { PI, cos, floor, imul, log, sqrt } = Math;

/** 32-bit FNV-1a over a string, used to turn names and seed paths into numbers. */
function fnv1a(text: string, hash = 0x811c9dc5): number {
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/** Final avalanche (murmur3 fmix32) so that nearby inputs give unrelated seeds. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * Derives a 32-bit seed from a path of parts, e.g. `deriveSeed(1234, 'fewshot', 'neon', 3)`.
 * Distinct paths give independent streams; the same path always gives the same seed.
 */
export function deriveSeed(...parts: Array<string | number>): number {
  let h = 0x811c9dc5;
  for (const part of parts) {
    h = fnv1a(typeof part === 'number' ? `#${part}` : `$${part}`, h);
    h = fmix32(h ^ 0x9e3779b9);
  }
  return h;
}

/**
 * sfc32 (Small Fast Counting generator): 128-bit state, passes PractRand, a few integer ops
 * per draw. Seeded from one 32-bit number via splitmix-style expansion.
 */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number | string) {
    let s = typeof seed === 'string' ? deriveSeed(seed) : seed >>> 0;
    const next = (): number => {
      s = (s + 0x9e3779b9) >>> 0;
      return fmix32(s);
    };
    this.a = next();
    this.b = next();
    this.c = next();
    this.d = next() | 1;
    // Warm up so the first outputs do not echo the seed expansion.
    for (let i = 0; i < 12; i++) this.uint32();
  }

  /** Uniform integer in [0, 2^32). */
  uint32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** Uniform float in [0, 1). */
  float(): number {
    return this.uint32() / 4294967296;
  }

  /** Uniform float in [lo, hi). */
  range(lo: number, hi: number): number {
    return lo + (hi - lo) * this.float();
  }

  /** Uniform integer in [lo, hi] (inclusive). */
  int(lo: number, hi: number): number {
    return lo + floor(this.float() * (hi - lo + 1));
  }

  /** True with probability p. */
  bool(p = 0.5): boolean {
    return this.float() < p;
  }

  /** ±1 with equal probability. */
  sign(): number {
    return this.float() < 0.5 ? -1 : 1;
  }

  pick<T>(items: readonly T[]): T {
    return items[floor(this.float() * items.length)];
  }

  /** Standard normal (Box-Muller). */
  normal(): number {
    const u = 1 - this.float();
    const v = this.float();
    return sqrt(-2 * log(u)) * cos(2 * PI * v);
  }

  /** Fisher-Yates shuffle into a new array. */
  shuffle<T>(items: readonly T[]): T[] {
    const out = items.slice();
    for (let i = out.length - 1; i > 0; i--) {
      const j = floor(this.float() * (i + 1));
      const t = out[i];
      out[i] = out[j];
      out[j] = t;
    }
    return out;
  }

  /** A child generator with its own stream, so sub-steps do not perturb the parent's draws. */
  fork(label: string | number): Rng {
    return new Rng(deriveSeed(this.uint32(), label));
  }
}
