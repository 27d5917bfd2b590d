import { tf } from '@museum/tensor';
import { Module } from '../nn/module';
import { Conv2d } from '../nn/layers';

/**
 * A 1×1 convolution computed as one 2-D matMul over [N·H·W, C] (the fast path on wasm, and it needs no
 * Conv2DBackpropFilter kernel); the parameter keeps its conv layout so names and shapes stay upstream's.
 */
export function conv1x1(conv: Conv2d, x: tf.Tensor): tf.Tensor {
  if (conv.kernelSize !== 1 || conv.stride !== 1 || conv.padding !== 0) throw new Error('conv1x1: not a pointwise convolution');
  return tf.tidy(() => {
    const lead = x.shape.slice(0, -1);
    const w = tf.reshape(conv.weight.value, [conv.inChannels, conv.outChannels]) as tf.Tensor2D;
    let y: tf.Tensor = tf.matMul(tf.reshape(x, [-1, conv.inChannels]) as tf.Tensor2D, w);
    if (conv.bias) y = tf.add(y, conv.bias.value);
    return tf.reshape(y, [...lead, conv.outChannels]);
  });
}

/**
 * torch.nn.Dropout placeholder: holds an index in a ModuleList (e.g. `to_out.1`, `ff.net.1`) so the following
 * layers keep upstream's indices. Dropout is never applied here (inference and dropout-free fine-tuning).
 */
export class Dropout extends Module {
  constructor(readonly p = 0) {
    super();
  }
  forward(x: tf.Tensor): tf.Tensor {
    return x;
  }
}
