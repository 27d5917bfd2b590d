import { tf } from '@museum/tensor';
import { Module, ModuleList } from '../nn/module';
import { Attention } from './attention';
import { Downsample2D, ResnetBlock2D, Upsample2D } from './resnet';
import { Transformer2DModel } from './transformer_2d';

/** Constructor arguments shared by the UNet/VAE blocks (diffusers' `get_down_block` / `get_up_block` arguments). */
export interface UNetBlockOptions {
  numLayers: number;
  inChannels: number;
  outChannels: number;
  /** Channels coming from the block below (up blocks of the UNet only). */
  prevOutputChannel?: number;
  tembChannels: number | null;
  resnetEps: number;
  resnetActFn: string;
  resnetGroups: number;
  resnetTimeScaleShift?: string;
  outputScaleFactor?: number;
  addDownsample?: boolean;
  addUpsample?: boolean;
  downsamplePadding?: number;
  // Cross-attention blocks only:
  transformerLayersPerBlock?: number;
  numAttentionHeads?: number;
  crossAttentionDim?: number;
  useLinearProjection?: boolean;
  upcastAttention?: boolean;
}

/** A down block's result: the downsampled map and every intermediate state kept for the skip connections. */
export interface DownBlockOutput {
  hidden: tf.Tensor;
  states: tf.Tensor[];
}

function resnet(o: UNetBlockOptions, inChannels: number, outChannels: number): ResnetBlock2D {
  return new ResnetBlock2D({
    inChannels,
    outChannels,
    tembChannels: o.tembChannels,
    eps: o.resnetEps,
    groups: o.resnetGroups,
    nonLinearity: o.resnetActFn,
    outputScaleFactor: o.outputScaleFactor ?? 1,
    timeEmbeddingNorm: o.resnetTimeScaleShift ?? 'default',
  });
}

function transformer(o: UNetBlockOptions, channels: number): Transformer2DModel {
  const heads = o.numAttentionHeads ?? 1;
  if (o.crossAttentionDim === undefined) throw new Error('cross_attention_dim must be specified for cross-attention blocks');
  if (channels % heads !== 0) throw new Error(`${channels} channels are not divisible by ${heads} attention heads`);
  return new Transformer2DModel(heads, channels / heads, {
    inChannels: channels,
    numLayers: o.transformerLayersPerBlock ?? 1,
    crossAttentionDim: o.crossAttentionDim,
    normNumGroups: o.resnetGroups,
    useLinearProjection: o.useLinearProjection ?? false,
    upcastAttention: o.upcastAttention ?? false,
  });
}

/** Resnets (each followed by a spatial transformer when `attentions` exist), then an optional stride-2 downsampler. */
abstract class DownBlockBase extends Module {
  readonly attentions: ModuleList<Transformer2DModel> | null;
  readonly resnets: ModuleList<ResnetBlock2D>;
  readonly downsamplers: ModuleList<Downsample2D> | null = null;

  constructor(o: UNetBlockOptions, withAttention: boolean) {
    super();
    const attentions = withAttention ? this.addModule('attentions', new ModuleList<Transformer2DModel>()) : null;
    this.attentions = attentions;
    this.resnets = this.addModule('resnets', new ModuleList<ResnetBlock2D>());
    for (let i = 0; i < o.numLayers; i++) {
      this.resnets.push(resnet(o, i === 0 ? o.inChannels : o.outChannels, o.outChannels));
      attentions?.push(transformer(o, o.outChannels));
    }
    if (o.addDownsample ?? true) {
      this.downsamplers = this.addModule('downsamplers', new ModuleList<Downsample2D>());
      this.downsamplers.push(new Downsample2D(o.outChannels, true, o.outChannels, o.downsamplePadding ?? 1));
    }
  }

  protected run(x: tf.Tensor, temb: tf.Tensor | null, attentions: ModuleList<Transformer2DModel> | null, ctx: tf.Tensor | null, mask: tf.Tensor | null): DownBlockOutput {
    const out = tf.tidy(() => {
      const states: tf.Tensor[] = [];
      let h = x;
      this.resnets.items.forEach((r, i) => {
        h = r.forward(h, temb);
        if (attentions) h = attentions.at(i).forward(h, ctx, mask);
        states.push(h);
      });
      if (this.downsamplers) {
        h = this.downsamplers.at(0).forward(h);
        states.push(h);
      }
      return [h, ...states];
    });
    return { hidden: out[0], states: out.slice(1) };
  }
}

/** Resnet-only down block of the UNet (SD's lowest resolution). */
export class DownBlock2D extends DownBlockBase {
  constructor(o: UNetBlockOptions) {
    super(o, false);
  }
  forward(x: tf.Tensor, temb: tf.Tensor | null): DownBlockOutput {
    return this.run(x, temb, null, null, null);
  }
}

/** Down block alternating resnets and spatial transformers (self + cross-attention on the text context). */
export class CrossAttnDownBlock2D extends DownBlockBase {
  declare readonly attentions: ModuleList<Transformer2DModel>;
  constructor(o: UNetBlockOptions) {
    super(o, true);
  }
  forward(x: tf.Tensor, temb: tf.Tensor | null, context: tf.Tensor, contextMask: tf.Tensor | null = null): DownBlockOutput {
    return this.run(x, temb, this.attentions, context, contextMask);
  }
}

/**
 * Up blocks: each resnet first concatenates (on channels) the latest remaining skip state, popped from the end;
 * then an optional transformer; finally nearest-2× upsampling + conv.
 */
abstract class UpBlockBase extends Module {
  readonly attentions: ModuleList<Transformer2DModel> | null;
  readonly resnets: ModuleList<ResnetBlock2D>;
  readonly upsamplers: ModuleList<Upsample2D> | null = null;

  constructor(o: UNetBlockOptions, withAttention: boolean) {
    super();
    const attentions = withAttention ? this.addModule('attentions', new ModuleList<Transformer2DModel>()) : null;
    this.attentions = attentions;
    this.resnets = this.addModule('resnets', new ModuleList<ResnetBlock2D>());
    const prev = o.prevOutputChannel ?? o.inChannels;
    for (let i = 0; i < o.numLayers; i++) {
      const skip = i === o.numLayers - 1 ? o.inChannels : o.outChannels;
      const resIn = i === 0 ? prev : o.outChannels;
      this.resnets.push(resnet(o, resIn + skip, o.outChannels));
      attentions?.push(transformer(o, o.outChannels));
    }
    if (o.addUpsample ?? true) {
      this.upsamplers = this.addModule('upsamplers', new ModuleList<Upsample2D>());
      this.upsamplers.push(new Upsample2D(o.outChannels, true, o.outChannels));
    }
  }

  protected run(
    x: tf.Tensor,
    skips: tf.Tensor[],
    temb: tf.Tensor | null,
    attentions: ModuleList<Transformer2DModel> | null,
    ctx: tf.Tensor | null,
    mask: tf.Tensor | null,
    upsampleSize: [number, number] | null,
  ): tf.Tensor {
    if (skips.length !== this.resnets.length) throw new Error(`up block expects ${this.resnets.length} skip states, got ${skips.length}`);
    return tf.tidy(() => {
      let h = x;
      this.resnets.items.forEach((r, i) => {
        h = r.forward(tf.concat([h, skips[skips.length - 1 - i]], -1), temb);
        if (attentions) h = attentions.at(i).forward(h, ctx, mask);
      });
      if (this.upsamplers) h = this.upsamplers.at(0).forward(h, upsampleSize);
      return h;
    });
  }
}

export class UpBlock2D extends UpBlockBase {
  constructor(o: UNetBlockOptions) {
    super(o, false);
  }
  /** skips: the states of the matching down block, in the order they were produced. */
  forward(x: tf.Tensor, skips: tf.Tensor[], temb: tf.Tensor | null, upsampleSize: [number, number] | null = null): tf.Tensor {
    return this.run(x, skips, temb, null, null, null, upsampleSize);
  }
}

export class CrossAttnUpBlock2D extends UpBlockBase {
  declare readonly attentions: ModuleList<Transformer2DModel>;
  constructor(o: UNetBlockOptions) {
    super(o, true);
  }
  forward(
    x: tf.Tensor,
    skips: tf.Tensor[],
    temb: tf.Tensor | null,
    context: tf.Tensor,
    upsampleSize: [number, number] | null = null,
    contextMask: tf.Tensor | null = null,
  ): tf.Tensor {
    return this.run(x, skips, temb, this.attentions, context, contextMask, upsampleSize);
  }
}

/** The UNet's bottleneck: resnet → (transformer → resnet) × numLayers, at constant width. */
export class UNetMidBlock2DCrossAttn extends Module {
  readonly attentions: ModuleList<Transformer2DModel>;
  readonly resnets: ModuleList<ResnetBlock2D>;
  constructor(o: Omit<UNetBlockOptions, 'outChannels'>) {
    super();
    const c = o.inChannels;
    const opts = { ...o, outChannels: c };
    this.attentions = this.addModule('attentions', new ModuleList<Transformer2DModel>());
    this.resnets = this.addModule('resnets', new ModuleList<ResnetBlock2D>());
    this.resnets.push(resnet(opts, c, c));
    for (let i = 0; i < o.numLayers; i++) {
      this.attentions.push(transformer(opts, c));
      this.resnets.push(resnet(opts, c, c));
    }
  }
  forward(x: tf.Tensor, temb: tf.Tensor | null, context: tf.Tensor, contextMask: tf.Tensor | null = null): tf.Tensor {
    return tf.tidy(() => {
      let h = this.resnets.at(0).forward(x, temb);
      this.attentions.items.forEach((a, i) => {
        h = this.resnets.at(i + 1).forward(a.forward(h, context, contextMask), temb);
      });
      return h;
    });
  }
}

/**
 * The VAE's bottleneck: resnet → (single-head self-attention over all pixels, with group_norm, biases and a
 * residual → resnet) × numLayers. `attentionHeadDim` = channels gives one head, as in every SD VAE.
 */
export class UNetMidBlock2D extends Module {
  readonly attentions: ModuleList<Attention>;
  readonly resnets: ModuleList<ResnetBlock2D>;
  constructor(o: Omit<UNetBlockOptions, 'outChannels'> & { attentionHeadDim?: number | null; addAttention?: boolean }) {
    super();
    const c = o.inChannels;
    const opts = { ...o, outChannels: c };
    const headDim = o.attentionHeadDim ?? c;
    if ((o.resnetTimeScaleShift ?? 'default') !== 'default') throw new Error("UNetMidBlock2D: only resnet_time_scale_shift 'default' is supported");
    if (o.addAttention === false) throw new Error('UNetMidBlock2D: add_attention=false is not supported');
    this.attentions = this.addModule('attentions', new ModuleList<Attention>());
    this.resnets = this.addModule('resnets', new ModuleList<ResnetBlock2D>());
    this.resnets.push(resnet(opts, c, c));
    for (let i = 0; i < o.numLayers; i++) {
      this.attentions.push(
        new Attention({
          queryDim: c,
          heads: Math.floor(c / headDim),
          dimHead: headDim,
          rescaleOutputFactor: o.outputScaleFactor ?? 1,
          eps: o.resnetEps,
          normNumGroups: o.resnetGroups,
          residualConnection: true,
          bias: true,
          upcastSoftmax: true,
        }),
      );
      this.resnets.push(resnet(opts, c, c));
    }
  }
  forward(x: tf.Tensor, temb: tf.Tensor | null = null): tf.Tensor {
    return tf.tidy(() => {
      let h = this.resnets.at(0).forward(x, temb);
      this.attentions.items.forEach((a, i) => {
        h = this.resnets.at(i + 1).forward(a.forward(h), temb);
      });
      return h;
    });
  }
}

/** VAE encoder block: time-free resnets, then a stride-2 conv (padding 0 + bottom/right pad in the VAE). */
export class DownEncoderBlock2D extends Module {
  readonly resnets: ModuleList<ResnetBlock2D>;
  readonly downsamplers: ModuleList<Downsample2D> | null = null;
  constructor(o: Omit<UNetBlockOptions, 'tembChannels'>) {
    super();
    const opts = { ...o, tembChannels: null };
    this.resnets = this.addModule('resnets', new ModuleList<ResnetBlock2D>());
    for (let i = 0; i < o.numLayers; i++) this.resnets.push(resnet(opts, i === 0 ? o.inChannels : o.outChannels, o.outChannels));
    if (o.addDownsample ?? true) {
      this.downsamplers = this.addModule('downsamplers', new ModuleList<Downsample2D>());
      this.downsamplers.push(new Downsample2D(o.outChannels, true, o.outChannels, o.downsamplePadding ?? 1));
    }
  }
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      let h = x;
      for (const r of this.resnets.items) h = r.forward(h, null);
      return this.downsamplers ? this.downsamplers.at(0).forward(h) : h;
    });
  }
}

/** VAE decoder block: time-free resnets, then nearest-2× upsampling + conv. */
export class UpDecoderBlock2D extends Module {
  readonly resnets: ModuleList<ResnetBlock2D>;
  readonly upsamplers: ModuleList<Upsample2D> | null = null;
  constructor(o: Omit<UNetBlockOptions, 'tembChannels'> & { tembChannels?: number | null }) {
    super();
    const opts = { ...o, tembChannels: o.tembChannels ?? null };
    this.resnets = this.addModule('resnets', new ModuleList<ResnetBlock2D>());
    for (let i = 0; i < o.numLayers; i++) this.resnets.push(resnet(opts, i === 0 ? o.inChannels : o.outChannels, o.outChannels));
    if (o.addUpsample ?? true) {
      this.upsamplers = this.addModule('upsamplers', new ModuleList<Upsample2D>());
      this.upsamplers.push(new Upsample2D(o.outChannels, true, o.outChannels));
    }
  }
  forward(x: tf.Tensor, temb: tf.Tensor | null = null): tf.Tensor {
    return tf.tidy(() => {
      let h = x;
      for (const r of this.resnets.items) h = r.forward(h, temb);
      return this.upsamplers ? this.upsamplers.at(0).forward(h) : h;
    });
  }
}

/** Strip the historical `UNetRes` prefix as upstream's `get_down_block` / `get_up_block` do. */
export function normaliseBlockType(type: string): string {
  return type.startsWith('UNetRes') ? type.slice(7) : type;
}
