import { tf } from '@museum/tensor';
import { Module, ModuleList } from '../nn/module';
import { Conv2d, GroupNorm, Linear } from '../nn/layers';
import { BasicTransformerBlock } from './attention';
import { conv1x1 } from './common';

export interface Transformer2DOptions {
  inChannels: number;
  numLayers?: number;
  crossAttentionDim?: number | null;
  normNumGroups?: number;
  /** proj_in/proj_out as Linear layers (SD 2.x) instead of 1×1 convs (SD 1.x). */
  useLinearProjection?: boolean;
  attentionBias?: boolean;
  upcastAttention?: boolean;
}

/**
 * The spatial transformer of the UNet (continuous input): GroupNorm(eps 1e-6) → proj_in → H·W tokens →
 * transformer_blocks → proj_out → back to the map, plus the input as residual.
 */
export class Transformer2DModel extends Module {
  readonly norm: GroupNorm;
  readonly proj_in: Conv2d | Linear;
  readonly transformer_blocks: ModuleList<BasicTransformerBlock>;
  readonly proj_out: Conv2d | Linear;
  readonly innerDim: number;

  constructor(
    readonly numHeads: number,
    readonly headDim: number,
    o: Transformer2DOptions,
  ) {
    super();
    const inner = numHeads * headDim;
    const c = o.inChannels;
    this.innerDim = inner;
    const linear = o.useLinearProjection ?? false;
    this.norm = this.addModule('norm', new GroupNorm(o.normNumGroups ?? 32, c, 1e-6));
    this.proj_in = this.addModule('proj_in', linear ? new Linear(c, inner) : new Conv2d(c, inner, 1));
    this.transformer_blocks = this.addModule('transformer_blocks', new ModuleList<BasicTransformerBlock>());
    for (let i = 0; i < (o.numLayers ?? 1); i++) {
      this.transformer_blocks.push(
        new BasicTransformerBlock(inner, numHeads, headDim, {
          crossAttentionDim: o.crossAttentionDim ?? null,
          attentionBias: o.attentionBias,
          upcastAttention: o.upcastAttention,
        }),
      );
    }
    this.proj_out = this.addModule('proj_out', linear ? new Linear(inner, c) : new Conv2d(inner, c, 1));
  }

  /** x: [B, H, W, C]; context: [B, L, D]; contextMask: additive bias [B, 1, L] for the cross-attention. */
  forward(x: tf.Tensor, context: tf.Tensor | null = null, contextMask: tf.Tensor | null = null): tf.Tensor {
    return tf.tidy(() => {
      const [b, h, w, c] = x.shape;
      const project = (m: Conv2d | Linear, t: tf.Tensor) => (m instanceof Linear ? m.forward(t) : conv1x1(m, t));
      let tokens = tf.reshape(project(this.proj_in, this.norm.forward(x)), [b, h * w, this.innerDim]);
      for (const block of this.transformer_blocks.items) tokens = block.forward(tokens, context, contextMask);
      const out = tf.reshape(project(this.proj_out, tokens), [b, h, w, c]);
      return tf.add(out, x);
    });
  }
}
