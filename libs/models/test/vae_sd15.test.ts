import * as fs from 'fs';
import * as path from 'path';
import { initBackend, tf } from '@museum/tensor';
import { AutoencoderKL, SD15_VAE_CONFIG, seedInit } from '../src';

describe('SD 1.5 VAE configuration', () => {
  beforeAll(async () => {
    await initBackend({ log: () => {} });
  });

  it('has exactly the 248 parameters (names and shapes, new attention names) of runwayml/stable-diffusion-v1-5', () => {
    const expected: Record<string, number[]> = JSON.parse(fs.readFileSync(path.join(__dirname, 'fixtures', 'sd15', 'vae-parameter-shapes.json'), 'utf8')).vae;
    expect(Object.keys(expected).length).toBe(248);
    seedInit(15);
    const before = tf.memory().numTensors;
    const vae = new AutoencoderKL(SD15_VAE_CONFIG);
    try {
      const ours = Object.fromEntries(vae.namedParameters().map(([n, p]) => [n, p.torchShape]));
      expect(Object.keys(ours).sort()).toEqual(Object.keys(expected).sort());
      expect(ours).toEqual(expected);
      expect(vae.parameterCount()).toBe(83_653_863);
      expect(vae.config.scaling_factor).toBe(0.18215);
      // a 64×64 image encodes to 8×8 latents and decodes back to 64×64
      const img = tf.randomUniform([1, 64, 64, 3], -1, 1, 'float32', 1);
      const post = vae.encode(img);
      expect(post.mean.shape).toEqual([1, 8, 8, 4]);
      const dec = vae.decode(post.mean);
      expect(dec.shape).toEqual([1, 64, 64, 3]);
      tf.dispose([img, dec]);
      post.dispose();
    } finally {
      vae.dispose();
    }
    expect(tf.memory().numTensors).toBe(before);
  });
});
