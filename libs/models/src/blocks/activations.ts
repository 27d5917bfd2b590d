import { tf } from '@museum/tensor';
import { gelu, silu } from '../nn/layers';

/** Activation names as diffusers configs spell them (`act_fn`, `timestep_post_act`, …). */
export type ActivationName = 'silu' | 'swish' | 'gelu' | 'mish' | 'relu';
export type Activation = (x: tf.Tensor) => tf.Tensor;

function mish(x: tf.Tensor): tf.Tensor {
  return tf.tidy(() => tf.mul(x, tf.tanh(tf.softplus(x))));
}

/** diffusers' `get_activation`: the function for a config's activation name, or a clear error. */
export function getActivation(name: string): Activation {
  switch (name) {
    case 'silu':
    case 'swish':
      return silu;
    case 'gelu':
      return gelu;
    case 'mish':
      return mish;
    case 'relu':
      return (x) => tf.relu(x);
    default:
      throw new Error(`unsupported activation function '${name}' (expected silu, swish, gelu, mish or relu)`);
  }
}
