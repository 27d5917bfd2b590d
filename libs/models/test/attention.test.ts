import { initBackend, tf } from '@museum/tensor';
import { Attention, GroupNorm, Linear, seedInit } from '../src';

/** y = x · W + b over rows of x ([n, in]), W in our [in, out] layout, in float64 loops. */
function naiveLinear(x: Float32Array, n: number, lin: Linear): Float64Array {
  const w = lin.weight.value.dataSync();
  const b = lin.bias ? lin.bias.value.dataSync() : null;
  const [inF, outF] = [lin.inFeatures, lin.outFeatures];
  const y = new Float64Array(n * outF);
  for (let r = 0; r < n; r++) {
    for (let o = 0; o < outF; o++) {
      let s = b ? b[o] : 0;
      for (let i = 0; i < inF; i++) s += x[r * inF + i] * w[i * outF + o];
      y[r * outF + o] = s;
    }
  }
  return y;
}

/**
 * Reference multi-head attention by explicit loops: per sample, head and query, softmax over keys of
 * (q·k)/√d + mask, then the weighted sum of values and the output projection.
 */
function naiveAttention(
  attn: Attention,
  x: Float32Array,
  b: number,
  lq: number,
  ctx: Float32Array | null,
  lk: number,
  mask: ((bi: number, qi: number, ki: number) => number) | null,
): Float64Array {
  const inner = attn.innerDim;
  const heads = attn.heads;
  const d = inner / heads;
  const q = naiveLinear(x, b * lq, attn.to_q);
  const src = ctx ?? x;
  const k = naiveLinear(src, b * lk, attn.to_k);
  const v = naiveLinear(src, b * lk, attn.to_v);
  const mixed = new Float32Array(b * lq * inner);
  for (let bi = 0; bi < b; bi++) {
    for (let h = 0; h < heads; h++) {
      for (let qi = 0; qi < lq; qi++) {
        const logits: number[] = [];
        for (let ki = 0; ki < lk; ki++) {
          let s = 0;
          for (let j = 0; j < d; j++) s += q[(bi * lq + qi) * inner + h * d + j] * k[(bi * lk + ki) * inner + h * d + j];
          logits.push(s / Math.sqrt(d) + (mask ? mask(bi, qi, ki) : 0));
        }
        const mx = Math.max(...logits);
        const e = logits.map((l) => Math.exp(l - mx));
        const z = e.reduce((a, c) => a + c, 0);
        for (let j = 0; j < d; j++) {
          let s = 0;
          for (let ki = 0; ki < lk; ki++) s += (e[ki] / z) * v[(bi * lk + ki) * inner + h * d + j];
          mixed[(bi * lq + qi) * inner + h * d + j] = s;
        }
      }
    }
  }
  return naiveLinear(mixed, b * lq, attn.to_out.at(0) as Linear);
}

function maxRelErr(ours: ArrayLike<number>, ref: ArrayLike<number>): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < ref.length; i++) {
    diff = Math.max(diff, Math.abs(ours[i] - ref[i]));
    scale = Math.max(scale, Math.abs(ref[i]));
  }
  return diff / scale;
}

/** Give every bias a random value (upstream inits some to zero; we want every path to count). */
function randomiseBiases(attn: Attention): void {
  for (const [name, p] of attn.namedParameters()) {
    if (name.endsWith('bias')) tf.tidy(() => p.variable.assign(tf.randomNormal(p.shape, 0, 0.5, 'float32', 7)));
  }
}

describe('Attention', () => {
  beforeAll(async () => {
    await initBackend({ log: () => {} });
    seedInit(11);
  });

  it('self-attention equals the per-element reference', () => {
    const attn = new Attention({ queryDim: 12, heads: 3, dimHead: 5, bias: true });
    randomiseBiases(attn);
    const x = tf.randomNormal([2, 6, 12], 0, 1, 'float32', 1);
    const y = attn.forward(x);
    expect(y.shape).toEqual([2, 6, 12]);
    const err = maxRelErr(y.dataSync(), naiveAttention(attn, x.dataSync() as Float32Array, 2, 6, null, 6, null));
    expect(err).toBeLessThan(1e-5);
    tf.dispose([x, y]);
    attn.dispose();
  });

  it('cross-attention with a per-sample key mask equals the reference (mask repeated per head)', () => {
    const attn = new Attention({ queryDim: 8, crossAttentionDim: 10, heads: 2, dimHead: 4 });
    expect(attn.isCrossAttention).toBe(true);
    expect(attn.to_q.bias).toBeNull(); // the UNet's attention has no q/k/v bias
    const x = tf.randomNormal([2, 5, 8], 0, 1, 'float32', 2);
    const ctx = tf.randomNormal([2, 7, 10], 0, 1, 'float32', 3);
    // sample 0 keeps keys 0..3, sample 1 keeps keys 0..5: different per sample so a head/batch mix-up shows
    const keep = [4, 6];
    const bias = tf.tensor3d(Array.from({ length: 2 * 7 }, (_, i) => (i % 7 < keep[Math.floor(i / 7)] ? 0 : -10000)), [2, 1, 7]);
    const y = attn.forward(x, ctx, bias);
    const ref = naiveAttention(attn, x.dataSync() as Float32Array, 2, 5, ctx.dataSync() as Float32Array, 7, (bi, _qi, ki) => (ki < keep[bi] ? 0 : -10000));
    expect(maxRelErr(y.dataSync(), ref)).toBeLessThan(1e-5);
    // the mask matters: without it the result differs
    const unmasked = attn.forward(x, ctx);
    expect(maxRelErr(unmasked.dataSync(), ref)).toBeGreaterThan(1e-3);
    tf.dispose([x, ctx, bias, y, unmasked]);
    attn.dispose();
  });

  it('a full [B, Lq, Lk] mask is honoured per query', () => {
    const attn = new Attention({ queryDim: 6, heads: 2, dimHead: 3 });
    const x = tf.randomNormal([2, 4, 6], 0, 1, 'float32', 4);
    const causal = (_b: number, qi: number, ki: number) => (ki <= qi ? 0 : -1e9);
    const m = tf.tensor3d(Array.from({ length: 2 * 4 * 4 }, (_, i) => causal(0, Math.floor(i / 4) % 4, i % 4)), [2, 4, 4]);
    const y = attn.forward(x, null, m);
    expect(maxRelErr(y.dataSync(), naiveAttention(attn, x.dataSync() as Float32Array, 2, 4, null, 4, causal))).toBeLessThan(1e-5);
    tf.dispose([x, m, y]);
    attn.dispose();
  });

  it("the VAE variant (group_norm, biases, residual, NHWC) equals the reference", () => {
    const c = 8;
    const attn = new Attention({ queryDim: c, heads: 1, dimHead: c, bias: true, normNumGroups: 4, eps: 1e-6, residualConnection: true });
    randomiseBiases(attn);
    const gn = attn.group_norm as GroupNorm;
    tf.tidy(() => {
      gn.weight.variable.assign(tf.randomNormal([c], 1, 0.3, 'float32', 5));
      gn.bias.variable.assign(tf.randomNormal([c], 0, 0.3, 'float32', 6));
    });
    const x = tf.randomNormal([1, 3, 3, c], 0.5, 2, 'float32', 8);
    const y = attn.forward(x);
    expect(y.shape).toEqual([1, 3, 3, c]);

    // group norm by loops: statistics over all pixels and the 2 channels of each group
    const xs = x.dataSync();
    const g = gn.weight.value.dataSync();
    const beta = gn.bias.value.dataSync();
    const n = 9;
    const normed = new Float32Array(n * c);
    for (let grp = 0; grp < 4; grp++) {
      const vals: number[] = [];
      for (let p = 0; p < n; p++) for (let j = 0; j < 2; j++) vals.push(xs[p * c + grp * 2 + j]);
      const mean = vals.reduce((a, v) => a + v, 0) / vals.length;
      const variance = vals.reduce((a, v) => a + (v - mean) ** 2, 0) / vals.length;
      for (let p = 0; p < n; p++) {
        for (let j = 0; j < 2; j++) {
          const ch = grp * 2 + j;
          normed[p * c + ch] = ((xs[p * c + ch] - mean) / Math.sqrt(variance + 1e-6)) * g[ch] + beta[ch];
        }
      }
    }
    const out = naiveAttention(attn, normed, 1, n, null, n, null).map((v, i) => v + xs[i]);
    expect(maxRelErr(y.dataSync(), out)).toBeLessThan(1e-5);
    tf.dispose([x, y]);
    attn.dispose();
  });

  it('names its parameters as diffusers does', () => {
    const attn = new Attention({ queryDim: 8, heads: 1, dimHead: 8, bias: true, normNumGroups: 4 });
    expect(attn.namedParameters().map(([n, p]) => `${n}:${p.torchShape}`)).toEqual([
      'group_norm.weight:8',
      'group_norm.bias:8',
      'to_q.weight:8,8',
      'to_q.bias:8',
      'to_k.weight:8,8',
      'to_k.bias:8',
      'to_v.weight:8,8',
      'to_v.bias:8',
      'to_out.0.weight:8,8',
      'to_out.0.bias:8',
    ]);
    attn.dispose();
  });
});
