/**
 * Analytic FLOP count of a UNet2DConditionModel forward, from its module tree and the input shapes.
 *
 * What is counted (and only this): the multiply-adds of the three kinds of products, 2 FLOPs each:
 * - Conv2d: 2 · H_out · W_out · k² · C_in · C_out per image (1×1 projections included, k = 1);
 * - Linear: 2 · in · out per token (+ 2 · r · (in + out) for an attached LoRA of rank r);
 * - attention: 2 · 2 · L_q · L_k · d per head and image (the q·kᵀ logits and the probs·v product).
 * Biases, norms, activations, softmax, residual adds, resizes and the timestep sinusoids are
 * element-wise (linear in the activation size) and left out, as is customary for GFLOP/s figures:
 * the count is the work a matmul-bound implementation cannot avoid, so counted FLOPs / time is
 * directly comparable with the backend's matmul GFLOP/s.
 */
import { Conv2d, Linear } from '../nn/layers';
import { Attention, BasicTransformerBlock, FeedForward, GEGLU } from '../blocks/attention';
import { TimestepEmbedding } from '../blocks/embeddings';
import { Downsample2D, ResnetBlock2D, Upsample2D } from '../blocks/resnet';
import { Transformer2DModel } from '../blocks/transformer_2d';
import {
  CrossAttnDownBlock2D,
  CrossAttnUpBlock2D,
  DownBlock2D,
  UNetMidBlock2DCrossAttn,
  UpBlock2D,
} from '../blocks/unet_2d_blocks';
import { UNet2DConditionModel } from '../unet/unet_2d_condition';

export type FlopKind = 'conv' | 'linear' | 'attention';

/** The input of one forward: latents [batch, height, width, C] and a text context of `textLength` tokens. */
export interface UNetFlopInput {
  batch: number;
  height: number;
  width: number;
  textLength: number;
}

export interface LayerFlops {
  kind: FlopKind;
  flops: number;
}

export interface FlopCount {
  total: number;
  /**
   * Per layer, by upstream dotted module name: `...conv1` (conv), `...attn1.to_q` (linear), and the
   * attention core itself under the Attention module's own name (`...attn1`).
   */
  layers: Record<string, LayerFlops>;
  /** Per top-level part: `time_embedding`, `conv_in`, `down_blocks.i`, `mid_block`, `up_blocks.i`, `conv_out`. */
  blocks: Record<string, number>;
  byKind: Record<FlopKind, number>;
}

/** 2 · H_out · W_out · k² · C_in · C_out · images. */
export function conv2dFlops(images: number, hOut: number, wOut: number, k: number, cin: number, cout: number): number {
  return 2 * images * hOut * wOut * k * k * cin * cout;
}

/** 2 · in · out · tokens. */
export function linearFlops(tokens: number, inFeatures: number, outFeatures: number): number {
  return 2 * tokens * inFeatures * outFeatures;
}

/** 2 · 2 · L_q · L_k · d · heads · images (q·kᵀ and probs·v). */
export function attentionFlops(images: number, heads: number, lq: number, lk: number, headDim: number): number {
  return 4 * images * heads * lq * lk * headDim;
}

/** Output size of a conv along one axis: floor((n + pads − k) / stride) + 1. */
function convOut(n: number, padBefore: number, padAfter: number, k: number, stride: number): number {
  return Math.floor((n + padBefore + padAfter - k) / stride) + 1;
}

class Counter {
  readonly layers: Record<string, LayerFlops> = {};

  private add(name: string, kind: FlopKind, flops: number): void {
    const prev = this.layers[name];
    if (prev && prev.kind !== kind) throw new Error(`flops: layer ${name} counted as both ${prev.kind} and ${kind}`);
    this.layers[name] = { kind, flops: (prev?.flops ?? 0) + flops };
  }

  conv(name: string, m: Conv2d, b: number, h: number, w: number): [number, number] {
    const p = m.padding;
    const [pt, pb, pl, pr] = typeof p === 'number' ? [p, p, p, p] : p;
    const ho = convOut(h, pt, pb, m.kernelSize, m.stride);
    const wo = convOut(w, pl, pr, m.kernelSize, m.stride);
    this.add(name, 'conv', conv2dFlops(b, ho, wo, m.kernelSize, m.inChannels, m.outChannels));
    return [ho, wo];
  }

  linear(name: string, m: Linear, tokens: number): void {
    let f = linearFlops(tokens, m.inFeatures, m.outFeatures);
    if (m.lora) {
      const r = m.lora.down.shape[1] as number;
      f += linearFlops(tokens, m.inFeatures, r) + linearFlops(tokens, r, m.outFeatures);
    }
    this.add(name, 'linear', f);
  }

  attention(name: string, m: Attention, b: number, lq: number, lk: number): void {
    this.linear(`${name}.to_q`, m.to_q, b * lq);
    this.linear(`${name}.to_k`, m.to_k, b * lk);
    this.linear(`${name}.to_v`, m.to_v, b * lk);
    this.add(name, 'attention', attentionFlops(b, m.heads, lq, lk, m.innerDim / m.heads));
    this.linear(`${name}.to_out.0`, m.to_out.at(0) as Linear, b * lq);
  }

  feedForward(name: string, m: FeedForward, tokens: number): void {
    this.linear(`${name}.net.0.proj`, (m.net.at(0) as GEGLU).proj, tokens);
    this.linear(`${name}.net.2`, m.net.at(2) as Linear, tokens);
  }

  basicTransformer(name: string, m: BasicTransformerBlock, b: number, l: number, lctx: number): void {
    this.attention(`${name}.attn1`, m.attn1, b, l, l);
    if (m.attn2) this.attention(`${name}.attn2`, m.attn2, b, l, lctx);
    this.feedForward(`${name}.ff`, m.ff, b * l);
  }

  /** proj_in / proj_out: 1×1 conv (SD 1.x) or Linear (SD 2.x), the same product either way. */
  projection(name: string, m: Conv2d | Linear, b: number, h: number, w: number): void {
    if (m instanceof Linear) this.linear(name, m, b * h * w);
    else this.conv(name, m, b, h, w);
  }

  transformer2d(name: string, m: Transformer2DModel, b: number, h: number, w: number, lctx: number): void {
    this.projection(`${name}.proj_in`, m.proj_in, b, h, w);
    m.transformer_blocks.items.forEach((blk, i) => this.basicTransformer(`${name}.transformer_blocks.${i}`, blk, b, h * w, lctx));
    this.projection(`${name}.proj_out`, m.proj_out, b, h, w);
  }

  resnet(name: string, m: ResnetBlock2D, b: number, h: number, w: number): [number, number] {
    const [ho, wo] = this.conv(`${name}.conv1`, m.conv1, b, h, w);
    if (m.time_emb_proj) this.linear(`${name}.time_emb_proj`, m.time_emb_proj, b);
    this.conv(`${name}.conv2`, m.conv2, b, ho, wo);
    if (m.conv_shortcut) this.conv(`${name}.conv_shortcut`, m.conv_shortcut, b, h, w);
    return [ho, wo];
  }

  downsample(name: string, m: Downsample2D, b: number, h: number, w: number): [number, number] {
    if (m.conv) return this.conv(`${name}.conv`, m.conv, b, h, w);
    return [Math.floor(h / 2), Math.floor(w / 2)]; // average pooling: not a product
  }

  upsample(name: string, m: Upsample2D, b: number, size: [number, number]): [number, number] {
    return m.conv ? this.conv(`${name}.conv`, m.conv, b, size[0], size[1]) : size;
  }

  timeEmbedding(name: string, m: TimestepEmbedding, b: number): void {
    this.linear(`${name}.linear_1`, m.linear_1, b);
    this.linear(`${name}.linear_2`, m.linear_2, b);
  }
}

function sumUnder(layers: Record<string, LayerFlops>, prefix: string): number {
  let s = 0;
  for (const [n, l] of Object.entries(layers)) if (n === prefix || n.startsWith(`${prefix}.`)) s += l.flops;
  return s;
}

/**
 * Walks `unet`'s module tree in forward order, propagating spatial sizes (stride-2 downsamplers,
 * nearest upsampling onto the skip's size), and counts the FLOPs of every conv, linear and attention.
 */
export function countUNetFlops(unet: UNet2DConditionModel, input: UNetFlopInput): FlopCount {
  const { batch: b, textLength: lctx } = input;
  for (const [k, v] of Object.entries(input)) {
    if (!Number.isInteger(v) || v <= 0) throw new Error(`countUNetFlops: ${k} must be a positive integer, got ${v}`);
  }
  const c = new Counter();
  c.timeEmbedding('time_embedding', unet.time_embedding, b);

  let [h, w] = c.conv('conv_in', unet.conv_in, b, input.height, input.width);
  const skips: Array<[number, number]> = [[h, w]];
  unet.down_blocks.items.forEach((blk: DownBlock2D | CrossAttnDownBlock2D, i) => {
    const name = `down_blocks.${i}`;
    blk.resnets.items.forEach((r, j) => {
      [h, w] = c.resnet(`${name}.resnets.${j}`, r, b, h, w);
      if (blk instanceof CrossAttnDownBlock2D) c.transformer2d(`${name}.attentions.${j}`, blk.attentions.at(j), b, h, w, lctx);
      skips.push([h, w]);
    });
    if (blk.downsamplers) {
      [h, w] = c.downsample(`${name}.downsamplers.0`, blk.downsamplers.at(0), b, h, w);
      skips.push([h, w]);
    }
  });

  const mid: UNetMidBlock2DCrossAttn | null = unet.mid_block;
  if (mid) {
    [h, w] = c.resnet('mid_block.resnets.0', mid.resnets.at(0), b, h, w);
    mid.attentions.items.forEach((a, i) => {
      c.transformer2d(`mid_block.attentions.${i}`, a, b, h, w, lctx);
      [h, w] = c.resnet(`mid_block.resnets.${i + 1}`, mid.resnets.at(i + 1), b, h, w);
    });
  }

  unet.up_blocks.items.forEach((blk: UpBlock2D | CrossAttnUpBlock2D, i) => {
    const name = `up_blocks.${i}`;
    skips.splice(skips.length - blk.resnets.length, blk.resnets.length); // the states this block consumes
    blk.resnets.items.forEach((r, j) => {
      [h, w] = c.resnet(`${name}.resnets.${j}`, r, b, h, w);
      if (blk instanceof CrossAttnUpBlock2D) c.transformer2d(`${name}.attentions.${j}`, blk.attentions.at(j), b, h, w, lctx);
    });
    if (blk.upsamplers) {
      // The forward doubles H and W, or lands on the next skip's size when they are not powers of two.
      const next = skips[skips.length - 1];
      const size: [number, number] = next ?? [2 * h, 2 * w];
      [h, w] = c.upsample(`${name}.upsamplers.0`, blk.upsamplers.at(0), b, size);
    }
  });
  c.conv('conv_out', unet.conv_out, b, h, w);

  const blocks: Record<string, number> = {};
  const tops = ['time_embedding', 'conv_in', ...unet.down_blocks.items.map((_, i) => `down_blocks.${i}`)];
  if (mid) tops.push('mid_block');
  tops.push(...unet.up_blocks.items.map((_, i) => `up_blocks.${i}`), 'conv_out');
  for (const t of tops) blocks[t] = sumUnder(c.layers, t);
  const byKind: Record<FlopKind, number> = { conv: 0, linear: 0, attention: 0 };
  let total = 0;
  for (const l of Object.values(c.layers)) {
    byKind[l.kind] += l.flops;
    total += l.flops;
  }
  return { total, layers: c.layers, blocks, byKind };
}

