import { tf } from '@museum/tensor';

/**
 * A seeded source of random numbers that gives the same values on every run, machine and TF.js
 * backend: the numbers are made in plain JS (sfc32 seeded through splitmix32, Box–Muller for
 * Gaussians) and only then copied into a tensor. tf.randomNormal's seeded path is not used because
 * its values depend on the backend.
 *
 * Specification (so that other implementations can reproduce a seed):
 * - the seed is an integer in [0, 2^53); its low and high 32-bit words feed splitmix32, whose first
 *   four outputs are the sfc32 state; 12 outputs are discarded to mix;
 * - a uniform double in [0, 1) takes two 32-bit outputs a, b: ((a >>> 5) · 2^26 + (b >>> 6)) / 2^53;
 * - Gaussians come in pairs from u1, u2: r = √(−2 ln(1 − u1)), z0 = r cos 2πu2, z1 = r sin 2πu2,
 *   written in that order and rounded to float32.
 */
export interface Generator {
  readonly seed: number;
  /** A float32 tensor of standard normal values; the caller owns it. */
  normal(shape: number[]): tf.Tensor;
  /** `size` standard normal values. */
  normalArray(size: number): Float32Array;
  /** A uniform double in [0, 1). */
  uniform(): number;
  /** A uniform integer in [low, high). */
  randint(low: number, high: number): number;
}

function splitmix32(state: number): () => number {
  let s = state >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

class Sfc32Generator implements Generator {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  /** The second value of the last Box–Muller pair, kept for the next draw. */
  private spare: number | null = null;

  constructor(readonly seed: number) {
    if (!Number.isSafeInteger(seed) || seed < 0) throw new Error(`seed must be an integer in [0, 2^53), got ${seed}`);
    const lo = seed >>> 0;
    const hi = Math.floor(seed / 4294967296) >>> 0;
    const mix = splitmix32(lo ^ Math.imul(hi, 0x27d4eb2d));
    this.a = mix() ^ hi;
    this.b = mix();
    this.c = mix();
    this.d = mix();
    for (let i = 0; i < 12; i++) this.nextUint32();
  }

  private nextUint32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  uniform(): number {
    const a = this.nextUint32() >>> 5;
    const b = this.nextUint32() >>> 6;
    return (a * 67108864 + b) / 9007199254740992;
  }

  randint(low: number, high: number): number {
    if (!(high > low)) throw new Error(`randint: empty range [${low}, ${high})`);
    return low + Math.floor(this.uniform() * (high - low));
  }

  private gaussian(): number {
    if (this.spare !== null) {
      const z = this.spare;
      this.spare = null;
      return z;
    }
    const u1 = this.uniform();
    const u2 = this.uniform();
    const r = Math.sqrt(-2 * Math.log(1 - u1));
    const theta = 2 * Math.PI * u2;
    this.spare = r * Math.sin(theta);
    return r * Math.cos(theta);
  }

  normalArray(size: number): Float32Array {
    const out = new Float32Array(size);
    for (let i = 0; i < size; i++) out[i] = this.gaussian();
    return out;
  }

  normal(shape: number[]): tf.Tensor {
    const size = shape.reduce((p, s) => p * s, 1);
    return tf.tensor(this.normalArray(size), shape, 'float32');
  }
}

/** A new deterministic generator for `seed` (an integer in [0, 2^53)). */
export function createGenerator(seed: number): Generator {
  return new Sfc32Generator(seed);
}

/**
 * One generator per batch row: `normal([B, …])` draws row i from the generator of `seeds[i]`, so an
 * image made in a batch gets the same noise as when made alone with its seed.
 */
export function createBatchGenerator(seeds: number[]): Generator {
  if (seeds.length === 0) throw new Error('createBatchGenerator: no seeds');
  const gens = seeds.map((s) => createGenerator(s));
  const rows = (size: number) => {
    if (size % gens.length !== 0) throw new Error(`batch generator: ${size} values do not split into ${gens.length} rows`);
    const per = size / gens.length;
    const out = new Float32Array(size);
    gens.forEach((g, i) => out.set(g.normalArray(per), i * per));
    return out;
  };
  return {
    seed: seeds[0],
    normalArray: rows,
    normal(shape: number[]): tf.Tensor {
      if (shape[0] !== gens.length) throw new Error(`batch generator for ${gens.length} rows asked for shape [${shape}]`);
      return tf.tensor(rows(shape.reduce((p, s) => p * s, 1)), shape, 'float32');
    },
    uniform: () => gens[0].uniform(),
    randint: (low, high) => gens[0].randint(low, high),
  };
}
