import { tf } from '@museum/tensor';
import { Module, Parameter, uniformInit, normalInit } from './module';

/**
 * A low-rank adapter on a Linear: y += scale · (x · down) · up, with down [in, r] and up [r, out]
 * (upstream peft files store them as `lora_A.weight` [r, in] and `lora_B.weight` [out, r]).
 */
export interface LoraWeights {
  down: tf.Variable;
  up: tf.Variable;
  scale: number;
}

/** torch.nn.Linear over the last axis; weights stored [in, out] so the product never transposes. */
export class Linear extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter | null;
  /** The adapter applied unmerged on this layer, if any: set by `applyLora`, swappable at run time. */
  lora: LoraWeights | null = null;

  constructor(
    readonly inFeatures: number,
    readonly outFeatures: number,
    useBias = true,
  ) {
    super();
    const bound = 1 / Math.sqrt(inFeatures);
    this.weight = this.addParam('weight', [inFeatures, outFeatures], 'linear', () => uniformInit([inFeatures, outFeatures], bound));
    this.bias = useBias ? this.addParam('bias', [outFeatures], 'same', () => uniformInit([outFeatures], bound)) : null;
  }

  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const lead = x.shape.slice(0, -1);
      const x2 = tf.reshape(x, [-1, this.inFeatures]) as tf.Tensor2D;
      let y: tf.Tensor = tf.matMul(x2, this.weight.value as tf.Tensor2D);
      if (this.bias) y = tf.add(y, this.bias.value);
      if (this.lora) {
        const low = tf.matMul(x2, this.lora.down as tf.Tensor2D);
        y = tf.add(y, tf.mul(tf.matMul(low, this.lora.up as tf.Tensor2D), this.lora.scale));
      }
      return tf.reshape(y, [...lead, this.outFeatures]);
    });
  }
}

export type Padding = number | [number, number, number, number]; // [top, bottom, left, right]

/** torch.nn.Conv2d on NHWC tensors, with PyTorch's symmetric (or explicit) zero padding. */
export class Conv2d extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter | null;
  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    readonly kernelSize: number,
    readonly stride = 1,
    readonly padding: Padding = 0,
    useBias = true,
  ) {
    super();
    const fanIn = inChannels * kernelSize * kernelSize;
    const bound = 1 / Math.sqrt(fanIn);
    const shape = [kernelSize, kernelSize, inChannels, outChannels];
    this.weight = this.addParam('weight', shape, 'conv2d', () => uniformInit(shape, bound));
    this.bias = useBias ? this.addParam('bias', [outChannels], 'same', () => uniformInit([outChannels], bound)) : null;
  }

  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      let input = x as tf.Tensor4D;
      const p = this.padding;
      const pads: [number, number, number, number] = typeof p === 'number' ? [p, p, p, p] : p;
      if (pads.some((v) => v !== 0)) {
        input = tf.pad(input, [[0, 0], [pads[0], pads[1]], [pads[2], pads[3]], [0, 0]]);
      }
      let y: tf.Tensor = tf.conv2d(input, this.weight.value as tf.Tensor4D, this.stride, 'valid');
      if (this.bias) y = tf.add(y, this.bias.value);
      return y;
    });
  }
}

/** torch.nn.LayerNorm over the last axis. */
export class LayerNorm extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter;
  constructor(
    readonly dim: number,
    readonly eps = 1e-5,
  ) {
    super();
    this.weight = this.addParam('weight', [dim], 'same', () => tf.ones([dim]));
    this.bias = this.addParam('bias', [dim], 'same', () => tf.zeros([dim]));
  }
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const { mean, variance } = tf.moments(x, -1, true);
      const normed = tf.mul(tf.sub(x, mean), tf.rsqrt(tf.add(variance, this.eps)));
      return tf.add(tf.mul(normed, this.weight.value), this.bias.value);
    });
  }
}

/** torch.nn.GroupNorm on NHWC tensors (statistics per sample over H, W and the group's channels). */
export class GroupNorm extends Module {
  readonly weight: Parameter;
  readonly bias: Parameter;
  constructor(
    readonly numGroups: number,
    readonly numChannels: number,
    readonly eps = 1e-5,
  ) {
    super();
    if (numChannels % numGroups !== 0) throw new Error(`GroupNorm: ${numChannels} channels not divisible by ${numGroups} groups`);
    this.weight = this.addParam('weight', [numChannels], 'same', () => tf.ones([numChannels]));
    this.bias = this.addParam('bias', [numChannels], 'same', () => tf.zeros([numChannels]));
  }
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const [n, h, w, c] = x.shape;
      const g = this.numGroups;
      const grouped = tf.reshape(x, [n, h * w, g, c / g]);
      // Statistics over each group made contiguous ([n, g, h·w·c/g]): one explicit transpose, where moments over
      // axes [1, 3] would transpose inside each of its two means.
      const m = tf.moments(tf.reshape(tf.transpose(grouped, [0, 2, 1, 3]), [n, g, -1]), 2, true);
      const mean = tf.reshape(m.mean, [n, 1, g, 1]);
      const variance = tf.reshape(m.variance, [n, 1, g, 1]);
      // (x − mean)·rstd·weight + bias = x·scale + shift, with scale and shift per sample and channel: two passes
      // over the full map instead of four.
      const perChannel = (p: Parameter) => tf.reshape(p.value, [1, 1, g, c / g]);
      const scale = tf.mul(tf.rsqrt(tf.add(variance, this.eps)), perChannel(this.weight));
      const shift = tf.sub(perChannel(this.bias), tf.mul(mean, scale));
      return tf.reshape(tf.add(tf.mul(grouped, scale), shift), [n, h, w, c]);
    });
  }
}

/** torch.nn.Embedding: a lookup table [num, dim]. */
export class Embedding extends Module {
  readonly weight: Parameter;
  constructor(
    readonly num: number,
    readonly dim: number,
    std = 0.02,
  ) {
    super();
    this.weight = this.addParam('weight', [num, dim], 'same', () => normalInit([num, dim], std));
  }
  forward(ids: tf.Tensor): tf.Tensor {
    return tf.gather(this.weight.value, tf.cast(ids, 'int32'));
  }
}

export function silu(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.mul(x, tf.sigmoid(x)));
}

/** The exact (erf) GELU that PyTorch's F.gelu computes by default. */
export function gelu(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.mul(x, Math.SQRT1_2)))));
}

/** CLIP's quick GELU: x · σ(1.702 x). */
export function quickGelu(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.mul(x, tf.sigmoid(tf.mul(x, 1.702))));
}
