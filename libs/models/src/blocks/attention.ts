import { tf } from '@museum/tensor';
import { Module, ModuleList } from '../nn/module';
import { GroupNorm, LayerNorm, Linear, gelu } from '../nn/layers';
import { multiHeadAttention } from '../nn/attention';
import { Dropout } from './common';

export interface AttentionOptions {
  queryDim: number;
  /** Width of the context for cross-attention; null/undefined makes a self-attention layer. */
  crossAttentionDim?: number | null;
  heads?: number;
  dimHead?: number;
  /** Bias on to_q/to_k/to_v (false in the UNet's transformers, true in the VAE's mid-block attention). */
  bias?: boolean;
  outBias?: boolean;
  /** Group-normalise the input first (the VAE mid-block attention); null for none. */
  normNumGroups?: number | null;
  eps?: number;
  residualConnection?: boolean;
  rescaleOutputFactor?: number;
  /** Upstream computes softmax in float32 when set; everything here already is float32, so these are accepted no-ops. */
  upcastAttention?: boolean;
  upcastSoftmax?: boolean;
}

/**
 * diffusers' `Attention`: multi-head scaled dot-product attention with projections to_q, to_k, to_v and
 * to_out (a ModuleList: the Linear at index 0, dropout at 1). Self-attention when no context is given or the
 * layer was built without `crossAttentionDim`; cross-attention over the context otherwise. Accepts [B, L, C]
 * sequences or NHWC maps (flattened to H·W tokens and restored, as the VAE's mid-block uses it).
 */
export class Attention extends Module {
  readonly group_norm: GroupNorm | null;
  readonly to_q: Linear;
  readonly to_k: Linear;
  readonly to_v: Linear;
  readonly to_out: ModuleList<Linear | Dropout>;
  readonly heads: number;
  readonly innerDim: number;
  readonly isCrossAttention: boolean;
  readonly residualConnection: boolean;
  readonly rescaleOutputFactor: number;

  constructor(o: AttentionOptions) {
    super();
    const heads = o.heads ?? 8;
    const dimHead = o.dimHead ?? 64;
    const bias = o.bias ?? false;
    this.heads = heads;
    this.innerDim = heads * dimHead;
    this.isCrossAttention = o.crossAttentionDim !== undefined && o.crossAttentionDim !== null;
    const contextDim = this.isCrossAttention ? (o.crossAttentionDim as number) : o.queryDim;
    this.residualConnection = o.residualConnection ?? false;
    this.rescaleOutputFactor = o.rescaleOutputFactor ?? 1;

    const groups = o.normNumGroups ?? null;
    this.group_norm = groups !== null ? this.addModule('group_norm', new GroupNorm(groups, o.queryDim, o.eps ?? 1e-5)) : null;
    this.to_q = this.addModule('to_q', new Linear(o.queryDim, this.innerDim, bias));
    this.to_k = this.addModule('to_k', new Linear(contextDim, this.innerDim, bias));
    this.to_v = this.addModule('to_v', new Linear(contextDim, this.innerDim, bias));
    this.to_out = this.addModule('to_out', new ModuleList<Linear | Dropout>());
    this.to_out.push(new Linear(this.innerDim, o.queryDim, o.outBias ?? true));
    this.to_out.push(new Dropout());
  }

  /**
   * hidden: [B, L, C] or [B, H, W, C]; context: [B, Lk, Ck] (defaults to hidden); mask: an additive bias
   * broadcastable to [B, Lq, Lk] (e.g. [B, 1, Lk] with 0 = keep and -10000 = drop), shared by all heads.
   */
  forward(hidden: tf.Tensor, context: tf.Tensor | null = null, mask: tf.Tensor | null = null): tf.Tensor {
    return tf.tidy(() => {
      const spatial = hidden.rank === 4 ? hidden.shape : null;
      const b = hidden.shape[0];
      const c = hidden.shape[hidden.rank - 1];
      let x = spatial ? tf.reshape(hidden, [b, -1, c]) : hidden;
      if (this.group_norm) x = tf.reshape(this.group_norm.forward(tf.reshape(x, [b, -1, 1, c])), [b, -1, c]);
      const ctx = context ?? x;
      const q = this.to_q.forward(x);
      const k = this.to_k.forward(ctx);
      const v = this.to_v.forward(ctx);
      const headMask = mask ? this.maskPerHead(mask, b) : undefined;
      const attn = multiHeadAttention(q, k, v, this.heads, headMask);
      let out = (this.to_out.at(0) as Linear).forward(attn);
      if (spatial) out = tf.reshape(out, spatial);
      if (this.residualConnection) out = tf.add(out, hidden);
      return this.rescaleOutputFactor === 1 ? out : tf.div(out, this.rescaleOutputFactor);
    });
  }

  /** [B, Lq|1, Lk] (or [B, Lk]) bias → [B·heads, Lq|1, Lk], each sample's mask repeated for its heads. */
  private maskPerHead(mask: tf.Tensor, b: number): tf.Tensor {
    const ms = mask.shape as number[];
    const m = mask.rank === 2 ? tf.reshape(mask, [ms[0], 1, ms[1]]) : mask;
    if (m.rank !== 3) throw new Error(`attention mask must be [B, Lk] or [B, Lq, Lk], got [${mask.shape}]`);
    const [mb, lq, lk] = m.shape as number[];
    if (mb === 1 && b > 1) return m; // broadcasts over every sample and head
    if (mb !== b) throw new Error(`attention mask batch ${mb} differs from input batch ${b}`);
    return tf.reshape(tf.tile(tf.reshape(m, [b, 1, lq, lk]), [1, this.heads, 1, 1]), [b * this.heads, lq, lk]);
  }
}

/** Gated GELU (Shazeer 2020): proj → [hidden | gate], hidden · gelu(gate). */
export class GEGLU extends Module {
  readonly proj: Linear;
  constructor(
    dimIn: number,
    readonly dimOut: number,
  ) {
    super();
    this.proj = this.addModule('proj', new Linear(dimIn, dimOut * 2));
  }
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const p = this.proj;
      const tokens = x.size / p.inFeatures;
      if (tokens <= p.inFeatures) {
        const [h, gate] = tf.split(p.forward(x), 2, -1);
        return tf.mul(h, gelu(gate));
      }
      // Many tokens (high-resolution maps): splitting the [tokens, 2·out] product copies more than splitting the
      // [in, 2·out] weight does, so multiply by each half of the weight instead (the same numbers). An adapter
      // is split the same way: its [tokens, r] down-projection is shared, its up-projection is halved.
      const n = this.dimOut;
      const x2 = tf.reshape(x, [-1, p.inFeatures]) as tf.Tensor2D;
      const lora = p.lora;
      const low = lora ? tf.matMul(x2, lora.down as tf.Tensor2D) : null;
      const half = (i: number) => {
        let y: tf.Tensor = tf.matMul(x2, tf.slice(p.weight.value, [0, i * n], [p.inFeatures, n]) as tf.Tensor2D);
        if (p.bias) y = tf.add(y, tf.slice(p.bias.value, [i * n], [n]));
        if (lora && low) y = tf.add(y, tf.mul(tf.matMul(low, tf.slice(lora.up, [0, i * n], [lora.up.shape[0], n]) as tf.Tensor2D), lora.scale));
        return y;
      };
      return tf.reshape(tf.mul(half(0), gelu(half(1))), [...x.shape.slice(0, -1), n]);
    });
  }
}

/** The transformer MLP: net.0 = GEGLU(dim → mult·dim), net.1 = dropout, net.2 = Linear(mult·dim → dimOut). */
export class FeedForward extends Module {
  readonly net: ModuleList<GEGLU | Dropout | Linear>;
  constructor(dim: number, dimOut: number | null = null, mult = 4) {
    super();
    const inner = Math.floor(dim * mult);
    this.net = this.addModule('net', new ModuleList<GEGLU | Dropout | Linear>());
    this.net.push(new GEGLU(dim, inner));
    this.net.push(new Dropout());
    this.net.push(new Linear(inner, dimOut ?? dim));
  }
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => (this.net.at(2) as Linear).forward((this.net.at(0) as GEGLU).forward(x)));
  }
}

export interface BasicTransformerBlockOptions {
  crossAttentionDim?: number | null;
  attentionBias?: boolean;
  upcastAttention?: boolean;
  normEps?: number;
}

/**
 * Pre-norm transformer block: x += attn1(norm1(x)) (self); x += attn2(norm2(x), context) (cross, present
 * when `crossAttentionDim` is set); x += ff(norm3(x)).
 */
export class BasicTransformerBlock extends Module {
  readonly norm1: LayerNorm;
  readonly attn1: Attention;
  readonly norm2: LayerNorm | null;
  readonly attn2: Attention | null;
  readonly norm3: LayerNorm;
  readonly ff: FeedForward;

  constructor(dim: number, heads: number, headDim: number, o: BasicTransformerBlockOptions = {}) {
    super();
    const eps = o.normEps ?? 1e-5;
    const common = { queryDim: dim, heads, dimHead: headDim, bias: o.attentionBias ?? false, upcastAttention: o.upcastAttention };
    this.norm1 = this.addModule('norm1', new LayerNorm(dim, eps));
    this.attn1 = this.addModule('attn1', new Attention(common));
    const cross = o.crossAttentionDim ?? null;
    this.norm2 = cross !== null ? this.addModule('norm2', new LayerNorm(dim, eps)) : null;
    this.attn2 = cross !== null ? this.addModule('attn2', new Attention({ ...common, crossAttentionDim: cross })) : null;
    this.norm3 = this.addModule('norm3', new LayerNorm(dim, eps));
    this.ff = this.addModule('ff', new FeedForward(dim));
  }

  /** x: [B, L, dim]; context: [B, Lk, crossDim]; contextMask: additive bias for the cross-attention. */
  forward(x: tf.Tensor, context: tf.Tensor | null = null, contextMask: tf.Tensor | null = null): tf.Tensor {
    return tf.tidy(() => {
      let h = tf.add(this.attn1.forward(this.norm1.forward(x)), x);
      if (this.attn2 && this.norm2) h = tf.add(this.attn2.forward(this.norm2.forward(h), context, contextMask), h);
      return tf.add(this.ff.forward(this.norm3.forward(h)), h);
    });
  }
}
