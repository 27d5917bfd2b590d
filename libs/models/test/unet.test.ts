import * as fs from 'fs';
import * as path from 'path';
import { initBackend, loadSafetensors, tf } from '@museum/tensor';
import { UNet2DConditionModel, UNetFeatures, loadStateDict, resolveUNetConfig, seedInit } from '../src';

const FIX = path.join(__dirname, 'fixtures', 'unet');
const nchwToNhwc = (t: tf.Tensor) => tf.transpose(t, [0, 2, 3, 1]);

function maxRelErr(ours: tf.Tensor, theirs: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(ours, theirs))).dataSync()[0] / tf.max(tf.abs(theirs)).dataSync()[0]);
}

describe('UNet2DConditionModel', () => {
  let unet: UNet2DConditionModel;
  let io: Map<string, tf.Tensor>;

  beforeAll(async () => {
    await initBackend({ log: () => {} });
    seedInit(3);
    const config = JSON.parse(fs.readFileSync(path.join(FIX, 'config.json'), 'utf8'));
    unet = new UNet2DConditionModel(config);
    const weights = loadSafetensors(path.join(FIX, 'diffusion_pytorch_model.safetensors')).tensors;
    const result = loadStateDict(unet, weights); // strict: throws on any missing/unexpected/mis-shaped name
    expect(result.loaded).toBe(weights.size);
    for (const t of weights.values()) t.dispose();
    io = loadSafetensors(path.join(FIX, 'io.safetensors')).tensors;
  });

  afterAll(() => {
    unet.dispose();
    for (const t of io.values()) t.dispose();
  });

  it('matches diffusers 0.21.4 on both timesteps (10 and 981) within 1e-4', () => {
    const sample = nchwToNhwc(io.get('sample')!);
    const expected = nchwToNhwc(io.get('out')!);
    const before = tf.memory().numTensors;
    const t0 = Date.now();
    const out = unet.forward(sample, io.get('timestep')!, io.get('encoder_hidden_states')!);
    const ms = Date.now() - t0;
    expect(out.shape).toEqual([2, 16, 16, 4]);
    const err = maxRelErr(out, expected);
    const t1 = Date.now();
    unet.forward(sample, io.get('timestep')!, io.get('encoder_hidden_states')!).dispose();
    process.stdout.write(`UNet parity: max rel err ${err.toExponential(2)}; forward (B=2, 16×16) ${ms} ms cold, ${Date.now() - t1} ms warm\n`);
    expect(err).toBeLessThan(1e-4);
    out.dispose();
    expect(tf.memory().numTensors).toBe(before); // nothing leaked by the forward
    tf.dispose([sample, expected]);
  });

  it('accepts the timestep as a number (broadcast over the batch) or a scalar tensor', () => {
    const sample = nchwToNhwc(io.get('sample')!);
    const ehs = io.get('encoder_hidden_states')!;
    const a = unet.forward(sample, 981, ehs);
    const scalar = tf.scalar(981, 'int32');
    const b = unet.forward(sample, scalar, ehs);
    const c = unet.forward(sample, tf.tensor1d([981, 981], 'int32'), ehs);
    expect(maxRelErr(a, c)).toBe(0);
    expect(maxRelErr(b, c)).toBe(0);
    // and the second sample of the reference batch (t = 981) is reproduced by the broadcast number
    const ref = tf.slice(nchwToNhwc(io.get('out')!), [1, 0, 0, 0], [1, -1, -1, -1]);
    expect(maxRelErr(tf.slice(a, [1, 0, 0, 0], [1, -1, -1, -1]), ref)).toBeLessThan(1e-4);
    tf.dispose([sample, a, b, c, scalar, ref]);
  });

  it('collects mid-block and up-block features on request', () => {
    const sample = nchwToNhwc(io.get('sample')!);
    const features: UNetFeatures = { up: [] };
    const out = unet.forward(sample, io.get('timestep')!, io.get('encoder_hidden_states')!, { features });
    expect(features.mid?.shape).toEqual([2, 4, 4, 64]);
    expect(features.up.map((t) => t.shape)).toEqual([
      [2, 8, 8, 64],
      [2, 16, 16, 64],
      [2, 16, 16, 32],
    ]);
    const plain = unet.forward(sample, io.get('timestep')!, io.get('encoder_hidden_states')!);
    expect(maxRelErr(out, plain)).toBe(0);
    tf.dispose([sample, out, plain, features.mid!, ...features.up]);
  });

  it('handles sizes that are not a multiple of the upsampling factor (odd skips)', () => {
    const sample = tf.randomNormal([1, 10, 6, 4], 0, 1, 'float32', 1);
    const ehs = tf.randomNormal([1, 3, 32], 0, 1, 'float32', 2);
    const out = unet.forward(sample, 500, ehs);
    expect(out.shape).toEqual([1, 10, 6, 4]);
    tf.dispose([sample, ehs, out]);
  });

  it('an encoder attention mask hides tokens from every cross-attention', () => {
    const sample = tf.slice(nchwToNhwc(io.get('sample')!), [0, 0, 0, 0], [1, -1, -1, -1]);
    const ehs = tf.slice(io.get('encoder_hidden_states')!, [0, 0, 0], [1, -1, -1]);
    const mask = tf.tensor2d([[1, 1, 1, 1, 0, 0, 0]]);
    const masked = unet.forward(sample, 10, ehs, { encoderAttentionMask: mask });
    // changing the hidden tokens changes nothing; changing a visible one does
    const changedHidden = tf.concat([tf.slice(ehs, [0, 0, 0], [1, 4, -1]), tf.mul(tf.slice(ehs, [0, 4, 0], [1, 3, -1]), -3)], 1);
    const masked2 = unet.forward(sample, 10, changedHidden, { encoderAttentionMask: mask });
    expect(maxRelErr(masked, masked2)).toBeLessThan(1e-6);
    const unmasked = unet.forward(sample, 10, ehs);
    expect(maxRelErr(masked, unmasked)).toBeGreaterThan(1e-4);
    tf.dispose([sample, ehs, mask, masked, changedHidden, masked2, unmasked]);
  });

  it('reads attention_head_dim as the number of heads (diffusers 0.21 semantics)', () => {
    const c = resolveUNetConfig({ attention_head_dim: [5, 10, 20, 20], block_out_channels: [320, 640, 1280, 1280] });
    expect(c.num_attention_heads).toEqual([5, 10, 20, 20]);
    // the parity model: attention_head_dim 8 → 8 heads of 4 channels in the 32-channel block
    const attn = unet.down_blocks.at(0).attentions!.at(0).transformer_blocks.at(0).attn1;
    expect(attn.heads).toBe(8);
    expect(attn.innerDim).toBe(32);
  });

  it('rejects configurations it does not implement, with the field named', () => {
    expect(() => resolveUNetConfig({ num_attention_heads: 8 })).toThrow(/num_attention_heads/);
    expect(() => resolveUNetConfig({ num_attention_heads: 4, attention_head_dim: 8 })).toThrow(/num_attention_heads/);
    // a resolved config (heads under both names) builds the same model again
    expect(resolveUNetConfig(unet.config)).toEqual(unet.config);
    expect(() => resolveUNetConfig({ only_cross_attention: true })).toThrow(/only_cross_attention/);
    expect(() => resolveUNetConfig({ resnet_time_scale_shift: 'scale_shift' })).toThrow(/resnet_time_scale_shift/);
    expect(() => resolveUNetConfig({ class_embed_type: 'timestep' })).toThrow(/class_embed_type/);
    expect(() => resolveUNetConfig({ mid_block_type: 'UNetMidBlock2DSimpleCrossAttn' })).toThrow(/mid_block_type/);
    expect(() => resolveUNetConfig({ down_block_types: ['AttnDownBlock2D', 'DownBlock2D', 'DownBlock2D', 'DownBlock2D'] })).toThrow(/AttnDownBlock2D/);
    expect(() => resolveUNetConfig({ act_fn: 'silu', some_future_field: 1 })).not.toThrow();
    expect(() => new UNet2DConditionModel({ act_fn: 'tanh', block_out_channels: [32], down_block_types: ['DownBlock2D'], up_block_types: ['UpBlock2D'] })).toThrow(/tanh/);
  });
});
