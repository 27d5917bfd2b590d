import { tf } from '@museum/tensor';
import { Module, ModuleList } from '../nn/module';
import { Conv2d, GroupNorm } from '../nn/layers';
import { Activation, getActivation } from '../blocks/activations';
import { Timesteps, TimestepEmbedding } from '../blocks/embeddings';
import {
  CrossAttnDownBlock2D,
  CrossAttnUpBlock2D,
  DownBlock2D,
  UNetBlockOptions,
  UNetMidBlock2DCrossAttn,
  UpBlock2D,
} from '../blocks/unet_2d_blocks';
import { ResolvedUNetConfig, UNet2DConditionConfig, resolveUNetConfig } from './config';

/**
 * Intermediate UNet activations for feature distillation / regularisation, filled by `forward` when passed:
 * `mid` is the mid-block output, `up[i]` the output of up block i (coarse to fine). The caller owns (and
 * disposes) these tensors; they are recorded on the gradient tape like any other tensor of the forward.
 */
export interface UNetFeatures {
  mid?: tf.Tensor;
  up: tf.Tensor[];
}

export interface UNetForwardOptions {
  /** Out-parameter collecting intermediate features. */
  features?: UNetFeatures;
  /** [B, L] with 1 = attend to the token, 0 = ignore it, for every cross-attention (upstream's encoder_attention_mask). */
  encoderAttentionMask?: tf.Tensor;
}

/**
 * The conditional denoising UNet of Stable Diffusion (diffusers' UNet2DConditionModel, v0.21 semantics), on NHWC
 * tensors: conv_in → down blocks (keeping skip states) → mid block → up blocks (consuming them) → conv_norm_out →
 * act → conv_out; every resnet receives the time embedding, every transformer the text context.
 */
export class UNet2DConditionModel extends Module {
  readonly config: ResolvedUNetConfig;
  readonly conv_in: Conv2d;
  readonly time_proj: Timesteps;
  readonly time_embedding: TimestepEmbedding;
  readonly down_blocks: ModuleList<DownBlock2D | CrossAttnDownBlock2D>;
  readonly mid_block: UNetMidBlock2DCrossAttn | null;
  readonly up_blocks: ModuleList<UpBlock2D | CrossAttnUpBlock2D>;
  readonly conv_norm_out: GroupNorm;
  readonly conv_out: Conv2d;
  private readonly act: Activation;
  private readonly timeEmbedAct: Activation | null;
  private readonly numUpsamplers: number;

  constructor(config: UNet2DConditionConfig = {}) {
    super();
    const c = resolveUNetConfig(config);
    this.config = c;
    const boc = c.block_out_channels;
    const n = boc.length;
    this.act = getActivation(c.act_fn);

    this.conv_in = this.addModule('conv_in', new Conv2d(c.in_channels, boc[0], c.conv_in_kernel, 1, (c.conv_in_kernel - 1) / 2));
    const timeEmbedDim = c.time_embedding_dim ?? boc[0] * 4;
    this.time_proj = this.addModule('time_proj', new Timesteps(boc[0], c.flip_sin_to_cos, c.freq_shift));
    this.time_embedding = this.addModule('time_embedding', new TimestepEmbedding(boc[0], timeEmbedDim, c.act_fn, null, c.timestep_post_act));
    this.timeEmbedAct = c.time_embedding_act_fn ? getActivation(c.time_embedding_act_fn) : null;

    const common = {
      tembChannels: timeEmbedDim,
      resnetEps: c.norm_eps,
      resnetActFn: c.act_fn,
      resnetGroups: c.norm_num_groups,
      useLinearProjection: c.use_linear_projection,
      upcastAttention: c.upcast_attention,
    };

    this.down_blocks = this.addModule('down_blocks', new ModuleList<DownBlock2D | CrossAttnDownBlock2D>());
    let outCh = boc[0];
    for (let i = 0; i < n; i++) {
      const inCh = outCh;
      outCh = boc[i];
      const o: UNetBlockOptions = {
        ...common,
        numLayers: c.layers_per_block[i],
        inChannels: inCh,
        outChannels: outCh,
        addDownsample: i !== n - 1,
        downsamplePadding: c.downsample_padding,
        transformerLayersPerBlock: c.transformer_layers_per_block[i],
        numAttentionHeads: c.num_attention_heads[i],
        crossAttentionDim: c.cross_attention_dim[i],
      };
      this.down_blocks.push(c.down_block_types[i] === 'CrossAttnDownBlock2D' ? new CrossAttnDownBlock2D(o) : new DownBlock2D(o));
    }

    this.mid_block =
      c.mid_block_type === null
        ? null
        : this.addModule(
            'mid_block',
            new UNetMidBlock2DCrossAttn({
              ...common,
              numLayers: 1,
              inChannels: boc[n - 1],
              outputScaleFactor: c.mid_block_scale_factor,
              transformerLayersPerBlock: c.transformer_layers_per_block[n - 1],
              numAttentionHeads: c.num_attention_heads[n - 1],
              crossAttentionDim: c.cross_attention_dim[n - 1],
            }),
          );

    this.up_blocks = this.addModule('up_blocks', new ModuleList<UpBlock2D | CrossAttnUpBlock2D>());
    const rev = <T>(a: T[]) => [...a].reverse();
    const rBoc = rev(boc);
    const rHeads = rev(c.num_attention_heads);
    const rLayers = rev(c.layers_per_block);
    const rCross = rev(c.cross_attention_dim);
    const rTransformerLayers = rev(c.transformer_layers_per_block);
    let numUpsamplers = 0;
    outCh = rBoc[0];
    for (let i = 0; i < n; i++) {
      const isFinal = i === n - 1;
      const prevOut = outCh;
      outCh = rBoc[i];
      const inCh = rBoc[Math.min(i + 1, n - 1)];
      if (!isFinal) numUpsamplers++;
      const o: UNetBlockOptions = {
        ...common,
        numLayers: rLayers[i] + 1,
        inChannels: inCh,
        outChannels: outCh,
        prevOutputChannel: prevOut,
        addUpsample: !isFinal,
        transformerLayersPerBlock: rTransformerLayers[i],
        numAttentionHeads: rHeads[i],
        crossAttentionDim: rCross[i],
      };
      this.up_blocks.push(c.up_block_types[i] === 'CrossAttnUpBlock2D' ? new CrossAttnUpBlock2D(o) : new UpBlock2D(o));
    }
    this.numUpsamplers = numUpsamplers;

    this.conv_norm_out = this.addModule('conv_norm_out', new GroupNorm(c.norm_num_groups, boc[0], c.norm_eps));
    this.conv_out = this.addModule('conv_out', new Conv2d(boc[0], c.out_channels, c.conv_out_kernel, 1, (c.conv_out_kernel - 1) / 2));
  }

  /** The time embedding `emb` ([B, 4·C0]) for timesteps given as one number or one per sample. */
  embedTimesteps(timestep: number | tf.Tensor, batch: number): tf.Tensor {
    return tf.tidy(() => {
      let t: tf.Tensor1D;
      if (typeof timestep === 'number') t = tf.fill([batch], timestep, 'float32') as tf.Tensor1D;
      else if (timestep.size === 1 && batch !== 1) t = tf.broadcastTo(tf.cast(tf.reshape(timestep, [1]), 'float32'), [batch]) as tf.Tensor1D;
      else if (timestep.size === batch) t = tf.cast(tf.reshape(timestep, [batch]), 'float32') as tf.Tensor1D;
      else throw new Error(`UNet: ${timestep.size} timesteps for a batch of ${batch}`);
      const emb = this.time_embedding.forward(this.time_proj.forward(t));
      return this.timeEmbedAct ? this.timeEmbedAct(emb) : emb;
    });
  }

  /**
   * sample: NHWC [B, H, W, in]; timestep: a number or [B] (or scalar) tensor; encoderHiddenStates: [B, L, D].
   * Returns the prediction NHWC [B, H, W, out].
   */
  forward(sample: tf.Tensor, timestep: number | tf.Tensor, encoderHiddenStates: tf.Tensor, options: UNetForwardOptions = {}): tf.Tensor {
    const [b, h, w, ch] = sample.shape;
    if (sample.rank !== 4 || ch !== this.config.in_channels) throw new Error(`UNet: sample must be NHWC [B, H, W, ${this.config.in_channels}], got [${sample.shape}]`);
    const wantFeatures = options.features !== undefined;
    const outs = tf.tidy(() => {
      // Upsampling must land on the skip's size when H or W is not a multiple of 2^numUpsamplers.
      const factor = 2 ** this.numUpsamplers;
      const forwardUpsampleSize = h % factor !== 0 || w % factor !== 0;
      const ctxMask = options.encoderAttentionMask
        ? tf.reshape(tf.mul(tf.sub(1, tf.cast(options.encoderAttentionMask, 'float32')), -10000), [b, 1, -1])
        : null;
      let x = this.config.center_input_sample ? tf.sub(tf.mul(sample, 2), 1) : sample;
      const emb = this.embedTimesteps(timestep, b);

      x = this.conv_in.forward(x);
      const skips: tf.Tensor[] = [x];
      for (const block of this.down_blocks.items) {
        const r = block instanceof CrossAttnDownBlock2D ? block.forward(x, emb, encoderHiddenStates, ctxMask) : block.forward(x, emb);
        x = r.hidden;
        skips.push(...r.states);
      }

      if (this.mid_block) x = this.mid_block.forward(x, emb, encoderHiddenStates, ctxMask);
      const feats: tf.Tensor[] = wantFeatures && this.mid_block ? [x] : [];

      this.up_blocks.items.forEach((block, i) => {
        const isFinal = i === this.up_blocks.length - 1;
        const mine = skips.splice(skips.length - block.resnets.length, block.resnets.length);
        let size: [number, number] | null = null;
        if (!isFinal && forwardUpsampleSize) {
          const next = skips[skips.length - 1];
          size = [next.shape[1] as number, next.shape[2] as number];
        }
        x = block instanceof CrossAttnUpBlock2D ? block.forward(x, mine, emb, encoderHiddenStates, size, ctxMask) : block.forward(x, mine, emb, size);
        if (wantFeatures) feats.push(x);
      });

      x = this.conv_out.forward(this.act(this.conv_norm_out.forward(x)));
      return [x, ...feats];
    });
    if (options.features) {
      options.features.mid = this.mid_block ? outs[1] : undefined;
      options.features.up = outs.slice(this.mid_block ? 2 : 1);
    }
    return outs[0];
  }
}
