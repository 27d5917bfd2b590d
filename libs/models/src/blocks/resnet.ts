import { tf } from '@museum/tensor';
import { Module } from '../nn/module';
import { Conv2d, GroupNorm, Linear } from '../nn/layers';
import { Activation, getActivation } from './activations';
import { conv1x1, Dropout } from './common';

export interface ResnetBlock2DOptions {
  inChannels: number;
  outChannels?: number;
  /** Width of the time embedding, or null for time-free blocks (the VAE). */
  tembChannels: number | null;
  groups?: number;
  groupsOut?: number;
  eps?: number;
  nonLinearity?: string;
  outputScaleFactor?: number;
  /** Only 'default' (add the projected time embedding after conv1) is supported. */
  timeEmbeddingNorm?: string;
  /** Skip the activation on the time embedding before `time_emb_proj`. */
  skipTimeAct?: boolean;
  useInShortcut?: boolean;
  convShortcutBias?: boolean;
}

/**
 * The residual block of the UNet and VAE: norm1 → act → conv1 (+ time_emb_proj(act(temb))) → norm2 → act →
 * dropout → conv2, added to the (1×1-projected when channels change) input and divided by `output_scale_factor`.
 */
export class ResnetBlock2D extends Module {
  readonly norm1: GroupNorm;
  readonly conv1: Conv2d;
  readonly time_emb_proj: Linear | null;
  readonly norm2: GroupNorm;
  readonly dropout: Dropout;
  readonly conv2: Conv2d;
  readonly conv_shortcut: Conv2d | null;
  readonly inChannels: number;
  readonly outChannels: number;
  readonly outputScaleFactor: number;
  private readonly act: Activation;
  private readonly skipTimeAct: boolean;

  constructor(o: ResnetBlock2DOptions) {
    super();
    const timeNorm = o.timeEmbeddingNorm ?? 'default';
    if (timeNorm !== 'default') throw new Error(`ResnetBlock2D: time_embedding_norm '${timeNorm}' is not supported (only 'default')`);
    const groups = o.groups ?? 32;
    const eps = o.eps ?? 1e-6;
    this.inChannels = o.inChannels;
    this.outChannels = o.outChannels ?? o.inChannels;
    this.outputScaleFactor = o.outputScaleFactor ?? 1;
    this.act = getActivation(o.nonLinearity ?? 'swish');
    this.skipTimeAct = o.skipTimeAct ?? false;

    this.norm1 = this.addModule('norm1', new GroupNorm(groups, this.inChannels, eps));
    this.conv1 = this.addModule('conv1', new Conv2d(this.inChannels, this.outChannels, 3, 1, 1));
    this.time_emb_proj = o.tembChannels !== null ? this.addModule('time_emb_proj', new Linear(o.tembChannels, this.outChannels)) : null;
    this.norm2 = this.addModule('norm2', new GroupNorm(o.groupsOut ?? groups, this.outChannels, eps));
    this.dropout = this.addModule('dropout', new Dropout());
    this.conv2 = this.addModule('conv2', new Conv2d(this.outChannels, this.outChannels, 3, 1, 1));
    const useShortcut = o.useInShortcut ?? this.inChannels !== this.outChannels;
    this.conv_shortcut = useShortcut
      ? this.addModule('conv_shortcut', new Conv2d(this.inChannels, this.outChannels, 1, 1, 0, o.convShortcutBias ?? true))
      : null;
  }

  /** x: [B, H, W, in]; temb: [B, temb] or null → [B, H, W, out]. */
  forward(x: tf.Tensor, temb: tf.Tensor | null = null): tf.Tensor {
    return tf.tidy(() => {
      let h = this.conv1.forward(this.act(this.norm1.forward(x)));
      if (this.time_emb_proj && temb) {
        const t = this.time_emb_proj.forward(this.skipTimeAct ? temb : this.act(temb));
        h = tf.add(h, tf.reshape(t, [t.shape[0], 1, 1, this.outChannels]));
      }
      h = this.conv2.forward(this.dropout.forward(this.act(this.norm2.forward(h))));
      const skip = this.conv_shortcut ? conv1x1(this.conv_shortcut, x) : x;
      const out = tf.add(skip, h);
      return this.outputScaleFactor === 1 ? out : tf.div(out, this.outputScaleFactor);
    });
  }
}

/**
 * Halves H and W with a stride-2 3×3 conv (`conv`). With padding 0 (the VAE encoder) the input is first padded
 * by one row/column at the bottom/right only, as upstream does; without a conv it average-pools 2×2.
 */
export class Downsample2D extends Module {
  readonly conv: Conv2d | null;
  constructor(
    readonly channels: number,
    readonly useConv = true,
    outChannels: number | null = null,
    readonly padding = 1,
  ) {
    super();
    const out = outChannels ?? channels;
    if (!useConv && out !== channels) throw new Error('Downsample2D: pooling cannot change the channel count');
    this.conv = useConv ? this.addModule('conv', new Conv2d(channels, out, 3, 2, padding === 0 ? [0, 1, 0, 1] : padding)) : null;
  }
  forward(x: tf.Tensor): tf.Tensor {
    if (!this.conv) return tf.avgPool(x as tf.Tensor4D, 2, 2, 'valid');
    return this.conv.forward(x);
  }
}

/**
 * Doubles H and W (or resizes to `outputSize`) by nearest-neighbour interpolation, then a 3×3 conv (`conv`).
 * TF's nearest resize without corner alignment picks floor(dst · in/out), the same source pixel as torch.
 */
export class Upsample2D extends Module {
  readonly conv: Conv2d | null;
  constructor(
    readonly channels: number,
    readonly useConv = true,
    outChannels: number | null = null,
  ) {
    super();
    this.conv = useConv ? this.addModule('conv', new Conv2d(channels, outChannels ?? channels, 3, 1, 1)) : null;
  }
  forward(x: tf.Tensor, outputSize: [number, number] | null = null): tf.Tensor {
    return tf.tidy(() => {
      const [, h, w] = x.shape;
      const size: [number, number] = outputSize ?? [h * 2, w * 2];
      const up = tf.image.resizeNearestNeighbor(x as tf.Tensor4D, size, false, false);
      return this.conv ? this.conv.forward(up) : up;
    });
  }
}
