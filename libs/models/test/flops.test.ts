import * as fs from 'fs';
import * as path from 'path';
import { initBackend, tf } from '@museum/tensor';
import { Attention, Conv2d, Linear, UNet2DConditionModel, attentionFlops, conv2dFlops, countUNetFlops, linearFlops, seedInit } from '../src';

/** The parity config: block_out_channels [32, 64, 64], 8 heads (d = 4 at 32 channels), cross_attention_dim 32. */
const CONFIG = JSON.parse(fs.readFileSync(path.join(__dirname, 'fixtures', 'unet', 'config.json'), 'utf8'));

describe('countUNetFlops', () => {
  let unet: UNet2DConditionModel;

  beforeAll(async () => {
    await initBackend({ log: () => {} });
    seedInit(5);
    unet = new UNet2DConditionModel(CONFIG);
  });
  afterAll(() => unet.dispose());

  it('matches hand computations for a conv, a strided conv, linears and attention cores', () => {
    const n = countUNetFlops(unet, { batch: 2, height: 16, width: 16, textLength: 7 });
    // conv_in: 4 → 32 channels, 3×3, 16×16 output, 2 images.
    expect(n.layers['conv_in']).toEqual({ kind: 'conv', flops: 2 * 2 * 16 * 16 * 9 * 4 * 32 });
    // stride-2 downsampler of the first block: 16×16 → 8×8, 32 → 32.
    expect(n.layers['down_blocks.0.downsamplers.0.conv'].flops).toBe(2 * 2 * 8 * 8 * 9 * 32 * 32);
    // first resnet of block 1 changes 32 → 64 channels at 8×8: a 1×1 shortcut.
    expect(n.layers['down_blocks.1.resnets.0.conv_shortcut'].flops).toBe(2 * 2 * 8 * 8 * 1 * 32 * 64);
    // up block 0 upsamples 4×4 → 8×8, then its conv 64 → 64.
    expect(n.layers['up_blocks.0.upsamplers.0.conv'].flops).toBe(2 * 2 * 8 * 8 * 9 * 64 * 64);
    // conv_out: 32 → 4 channels at 16×16.
    expect(n.layers['conv_out'].flops).toBe(2 * 2 * 16 * 16 * 9 * 32 * 4);

    const tb = 'down_blocks.0.attentions.0.transformer_blocks.0';
    // cross-attention keys: 32 (context width) → 32 over 2 × 7 text tokens.
    expect(n.layers[`${tb}.attn2.to_k`]).toEqual({ kind: 'linear', flops: 2 * (2 * 7) * 32 * 32 });
    // GEGLU projection 32 → 2 · 128 over 2 × 256 pixel tokens.
    expect(n.layers[`${tb}.ff.net.0.proj`].flops).toBe(2 * (2 * 256) * 32 * 256);
    // time embedding MLP: one token per image.
    expect(n.layers['time_embedding.linear_1'].flops).toBe(2 * 2 * 32 * 128);
    // self-attention core: 8 heads of d = 4 over 256 × 256 positions, q·kᵀ and probs·v, 2 images.
    expect(n.layers[`${tb}.attn1`]).toEqual({ kind: 'attention', flops: 2 * 2 * 256 * 256 * 4 * 8 * 2 });
    // cross-attention core: 256 queries × 7 keys.
    expect(n.layers[`${tb}.attn2`].flops).toBe(2 * 2 * 256 * 7 * 4 * 8 * 2);
    expect(attentionFlops(2, 8, 256, 7, 4)).toBe(n.layers[`${tb}.attn2`].flops);

    // totals are consistent: sum of kinds = sum of blocks = total
    const kinds = n.byKind.conv + n.byKind.linear + n.byKind.attention;
    const blocks = Object.values(n.blocks).reduce((a, b) => a + b, 0);
    expect(kinds).toBe(n.total);
    expect(blocks).toBe(n.total);
    expect(n.byKind.attention).toBeGreaterThan(0);
  });

  it('names only modules that exist, and covers every conv and linear of the model', () => {
    const n = countUNetFlops(unet, { batch: 1, height: 16, width: 16, textLength: 7 });
    const modules = new Map(unet.namedModules());
    for (const [name, l] of Object.entries(n.layers)) {
      const m = modules.get(name);
      expect(m).toBeDefined();
      expect(m instanceof (l.kind === 'conv' ? Conv2d : l.kind === 'linear' ? Linear : Attention)).toBe(true);
    }
    const products = [...modules].filter(([, m]) => m instanceof Conv2d || m instanceof Linear).map(([k]) => k);
    expect(products.filter((k) => !(k in n.layers))).toEqual([]);
  });

  it('scales linearly with the batch', () => {
    const one = countUNetFlops(unet, { batch: 1, height: 16, width: 16, textLength: 7 });
    const three = countUNetFlops(unet, { batch: 3, height: 16, width: 16, textLength: 7 });
    expect(three.total).toBe(3 * one.total);
    for (const [k, l] of Object.entries(one.layers)) expect(three.layers[k].flops).toBe(3 * l.flops);
    // and quadratically in the token count for self-attention only
    const big = countUNetFlops(unet, { batch: 1, height: 32, width: 32, textLength: 7 });
    const name = 'down_blocks.0.attentions.0.transformer_blocks.0';
    expect(big.layers[`${name}.attn1`].flops).toBe(16 * one.layers[`${name}.attn1`].flops);
    expect(big.layers[`${name}.attn2`].flops).toBe(4 * one.layers[`${name}.attn2`].flops);
    expect(big.layers['conv_in'].flops).toBe(4 * one.layers['conv_in'].flops);
    expect(() => countUNetFlops(unet, { batch: 0, height: 16, width: 16, textLength: 7 })).toThrow(/batch/);
  });

  it('agrees with the shapes the real forward computes (odd 10×10 latents, batch 2)', () => {
    // Record every conv, linear and attention call of one forward, then recount from the observed shapes.
    const seen: Array<{ m: Conv2d | Linear | Attention; flops: number }> = [];
    const convFwd = Conv2d.prototype.forward;
    const linFwd = Linear.prototype.forward;
    const attnFwd = Attention.prototype.forward;
    Conv2d.prototype.forward = function (this: Conv2d, x: tf.Tensor) {
      const y = convFwd.call(this, x);
      const [b, ho, wo] = y.shape;
      seen.push({ m: this, flops: conv2dFlops(b, ho, wo, this.kernelSize, this.inChannels, this.outChannels) });
      return y;
    };
    Linear.prototype.forward = function (this: Linear, x: tf.Tensor) {
      seen.push({ m: this, flops: linearFlops(x.size / this.inFeatures, this.inFeatures, this.outFeatures) });
      return linFwd.call(this, x);
    };
    Attention.prototype.forward = function (this: Attention, hidden: tf.Tensor, context: tf.Tensor | null = null, mask: tf.Tensor | null = null) {
      const [b, lq] = hidden.shape as number[];
      const lk = (context ?? hidden).shape[1] as number;
      seen.push({ m: this, flops: attentionFlops(b, this.heads, lq, lk, this.innerDim / this.heads) });
      return attnFwd.call(this, hidden, context, mask);
    };
    try {
      tf.tidy(() => {
        const out = unet.forward(tf.zeros([2, 10, 10, 4]), 500, tf.zeros([2, 5, 32]));
        expect(out.shape).toEqual([2, 10, 10, 4]);
      });
    } finally {
      Conv2d.prototype.forward = convFwd;
      Linear.prototype.forward = linFwd;
      Attention.prototype.forward = attnFwd;
    }
    const names = new Map<unknown, string>(unet.namedModules().map(([k, m]) => [m, k]));
    const n = countUNetFlops(unet, { batch: 2, height: 10, width: 10, textLength: 5 });
    const observed = new Map<string, number>();
    for (const s of seen) {
      const name = names.get(s.m) as string;
      observed.set(name, (observed.get(name) ?? 0) + s.flops);
    }
    // 1×1 convs run as matMuls (conv1x1) and so are not observed through Conv2d.forward: skip those.
    expect(observed.size).toBeGreaterThan(50);
    for (const [name, f] of observed) expect([name, n.layers[name]?.flops]).toEqual([name, f]);
  });
});
