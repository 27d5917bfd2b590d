import { tf } from '@museum/tensor';
import { Module } from '../nn/module';
import { Linear } from '../nn/layers';
import { Activation, getActivation } from './activations';

/**
 * The sinusoidal frequencies exp(-ln(maxPeriod) · i / (half - shift)), rounded step by step to float32
 * exactly as PyTorch computes them, so that large timesteps (t·f up to ~1000 rad) give the same angles.
 */
function sinusoidFrequencies(half: number, downscaleFreqShift: number, maxPeriod: number): Float32Array {
  const f = Math.fround;
  const negLog = f(-Math.log(maxPeriod));
  const denom = f(half - downscaleFreqShift);
  const out = new Float32Array(half);
  for (let i = 0; i < half; i++) out[i] = f(Math.exp(f(f(negLog * i) / denom)));
  return out;
}

/**
 * diffusers' `get_timestep_embedding`: [N] timesteps → [N, dim] of [sin | cos] (or [cos | sin] when
 * `flipSinToCos`), zero-padded by one column when `dim` is odd.
 */
export function timestepEmbedding(
  timesteps: tf.Tensor1D,
  dim: number,
  flipSinToCos: boolean,
  downscaleFreqShift: number,
  scale = 1,
  maxPeriod = 10000,
): tf.Tensor2D {
  return tf.tidy(() => {
    const half = Math.floor(dim / 2);
    const freqs = tf.tensor2d(sinusoidFrequencies(half, downscaleFreqShift, maxPeriod), [1, half]);
    let args: tf.Tensor = tf.mul(tf.reshape(tf.cast(timesteps, 'float32'), [-1, 1]), freqs);
    if (scale !== 1) args = tf.mul(args, scale);
    const [sin, cos] = [tf.sin(args), tf.cos(args)];
    let emb = flipSinToCos ? tf.concat([cos, sin], -1) : tf.concat([sin, cos], -1);
    if (dim % 2 === 1) emb = tf.pad(emb, [[0, 0], [0, 1]]);
    return emb as tf.Tensor2D;
  });
}

/** Parameter-free module producing the sinusoidal embedding of the timesteps (`time_proj`). */
export class Timesteps extends Module {
  constructor(
    readonly numChannels: number,
    readonly flipSinToCos: boolean,
    readonly downscaleFreqShift: number,
  ) {
    super();
  }
  forward(timesteps: tf.Tensor1D): tf.Tensor2D {
    return timestepEmbedding(timesteps, this.numChannels, this.flipSinToCos, this.downscaleFreqShift);
  }
}

/** The MLP lifting the sinusoidal embedding to the UNet's time-embedding width: linear_1 → act → linear_2 (→ post_act). */
export class TimestepEmbedding extends Module {
  readonly linear_1: Linear;
  readonly linear_2: Linear;
  private readonly act: Activation;
  private readonly postAct: Activation | null;

  constructor(inChannels: number, timeEmbedDim: number, actFn = 'silu', outDim: number | null = null, postActFn: string | null = null) {
    super();
    this.linear_1 = this.addModule('linear_1', new Linear(inChannels, timeEmbedDim));
    this.act = getActivation(actFn);
    this.linear_2 = this.addModule('linear_2', new Linear(timeEmbedDim, outDim ?? timeEmbedDim));
    this.postAct = postActFn ? getActivation(postActFn) : null;
  }

  forward(sample: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const h = this.linear_2.forward(this.act(this.linear_1.forward(sample)));
      return this.postAct ? this.postAct(h) : h;
    });
  }
}
