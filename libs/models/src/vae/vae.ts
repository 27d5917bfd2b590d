import { tf } from '@museum/tensor';
import { Module, ModuleList } from '../nn/module';
import { Conv2d, GroupNorm } from '../nn/layers';
import { Activation, getActivation } from '../blocks/activations';
import { DownEncoderBlock2D, UNetMidBlock2D, UpDecoderBlock2D } from '../blocks/unet_2d_blocks';
import { ResolvedVaeConfig } from './config';

/** Image → moments: conv_in → down blocks → mid block (with attention) → conv_norm_out → act → conv_out (2·latent channels). */
export class Encoder extends Module {
  readonly conv_in: Conv2d;
  readonly down_blocks: ModuleList<DownEncoderBlock2D>;
  readonly mid_block: UNetMidBlock2D;
  readonly conv_norm_out: GroupNorm;
  readonly conv_out: Conv2d;
  private readonly act: Activation;

  constructor(c: ResolvedVaeConfig) {
    super();
    const boc = c.block_out_channels;
    const n = boc.length;
    const common = { numLayers: c.layers_per_block, resnetEps: 1e-6, resnetActFn: c.act_fn, resnetGroups: c.norm_num_groups };
    this.act = getActivation(c.act_fn);
    this.conv_in = this.addModule('conv_in', new Conv2d(c.in_channels, boc[0], 3, 1, 1));
    this.down_blocks = this.addModule('down_blocks', new ModuleList<DownEncoderBlock2D>());
    let out = boc[0];
    for (let i = 0; i < n; i++) {
      const inCh = out;
      out = boc[i];
      this.down_blocks.push(new DownEncoderBlock2D({ ...common, inChannels: inCh, outChannels: out, addDownsample: i !== n - 1, downsamplePadding: 0 }));
    }
    this.mid_block = this.addModule(
      'mid_block',
      new UNetMidBlock2D({ ...common, numLayers: 1, inChannels: boc[n - 1], tembChannels: null, attentionHeadDim: boc[n - 1] }),
    );
    this.conv_norm_out = this.addModule('conv_norm_out', new GroupNorm(c.norm_num_groups, boc[n - 1], 1e-6));
    this.conv_out = this.addModule('conv_out', new Conv2d(boc[n - 1], 2 * c.latent_channels, 3, 1, 1));
  }

  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      let h = this.conv_in.forward(x);
      for (const b of this.down_blocks.items) h = b.forward(h);
      h = this.mid_block.forward(h);
      return this.conv_out.forward(this.act(this.conv_norm_out.forward(h)));
    });
  }
}

/** Latent → image: conv_in → mid block → up blocks (widest first) → conv_norm_out → act → conv_out. */
export class Decoder extends Module {
  readonly conv_in: Conv2d;
  readonly mid_block: UNetMidBlock2D;
  readonly up_blocks: ModuleList<UpDecoderBlock2D>;
  readonly conv_norm_out: GroupNorm;
  readonly conv_out: Conv2d;
  private readonly act: Activation;

  constructor(c: ResolvedVaeConfig) {
    super();
    const boc = c.block_out_channels;
    const n = boc.length;
    const common = { resnetEps: 1e-6, resnetActFn: c.act_fn, resnetGroups: c.norm_num_groups };
    this.act = getActivation(c.act_fn);
    this.conv_in = this.addModule('conv_in', new Conv2d(c.latent_channels, boc[n - 1], 3, 1, 1));
    this.mid_block = this.addModule(
      'mid_block',
      new UNetMidBlock2D({ ...common, numLayers: 1, inChannels: boc[n - 1], tembChannels: null, attentionHeadDim: boc[n - 1] }),
    );
    this.up_blocks = this.addModule('up_blocks', new ModuleList<UpDecoderBlock2D>());
    const rev = [...boc].reverse();
    let out = rev[0];
    for (let i = 0; i < n; i++) {
      const prev = out;
      out = rev[i];
      this.up_blocks.push(new UpDecoderBlock2D({ ...common, numLayers: c.layers_per_block + 1, inChannels: prev, outChannels: out, addUpsample: i !== n - 1 }));
    }
    this.conv_norm_out = this.addModule('conv_norm_out', new GroupNorm(c.norm_num_groups, boc[0], 1e-6));
    this.conv_out = this.addModule('conv_out', new Conv2d(boc[0], c.out_channels, 3, 1, 1));
  }

  forward(z: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      let h = this.mid_block.forward(this.conv_in.forward(z));
      for (const b of this.up_blocks.items) h = b.forward(h);
      return this.conv_out.forward(this.act(this.conv_norm_out.forward(h)));
    });
  }
}
