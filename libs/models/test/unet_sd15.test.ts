import * as fs from 'fs';
import * as path from 'path';
import { initBackend, tf } from '@museum/tensor';
import { SD15_UNET_CONFIG, UNet2DConditionModel, seedInit } from '../src';

/**
 * Stable Diffusion 1.5's UNet built for real (random weights, 860M float32 parameters = 3.4 GB in the wasm heap):
 * every parameter name and PyTorch shape must equal the published model's.
 */
describe('SD 1.5 UNet configuration', () => {
  beforeAll(async () => {
    await initBackend({ log: () => {} });
  });

  it('has exactly the 686 parameters (names and shapes) of runwayml/stable-diffusion-v1-5', () => {
    const expected: Record<string, number[]> = JSON.parse(fs.readFileSync(path.join(__dirname, 'fixtures', 'sd15', 'unet-parameter-shapes.json'), 'utf8')).unet;
    expect(Object.keys(expected).length).toBe(686);
    seedInit(15);
    const t0 = Date.now();
    const before = tf.memory().numTensors;
    const unet = new UNet2DConditionModel(SD15_UNET_CONFIG);
    try {
      const ours = Object.fromEntries(unet.namedParameters().map(([n, p]) => [n, p.torchShape]));
      expect(Object.keys(ours).sort()).toEqual(Object.keys(expected).sort());
      expect(ours).toEqual(expected);
      expect(unet.parameterCount()).toBe(859_520_964);
      // the weights are real, random and distinct (not a shape-only stand-in)
      const w = unet.mid_block!.attentions.at(0).transformer_blocks.at(0).attn2!.to_k.weight.value;
      expect(tf.tidy(() => tf.moments(w).variance.dataSync()[0])).toBeGreaterThan(0);
      expect(unet.config.num_attention_heads).toEqual([8, 8, 8, 8]);
      expect(unet.down_blocks.at(2).attentions!.at(0).transformer_blocks.at(0).attn1.innerDim).toBe(1280);
    } finally {
      unet.dispose();
    }
    expect(tf.memory().numTensors).toBe(before);
    process.stdout.write(`SD 1.5 UNet built and disposed in ${Date.now() - t0} ms\n`);
  });
});
