import { initBackend, tf } from '@museum/tensor';
import { AutoencoderKL, seedInit } from '@museum/models';
import { loadInstruments, disposeInstruments, type Instruments } from '@museum/instruments';
import { ALL_STYLES } from '@museum/world';
import { runCodecBench } from '@museum/bench';
import { decodePng } from '@museum/world';

let inst: Instruments;
beforeAll(async () => {
  await initBackend({ log: () => {} });
  inst = loadInstruments();
});
afterAll(() => disposeInstruments(inst));

test('codec bench judges originals and reconstructions of every rendering, leak-free', async () => {
  seedInit(3);
  const vae = new AutoencoderKL({
    in_channels: 3, out_channels: 3, latent_channels: 4, block_out_channels: [8, 8, 8], layers_per_block: 1,
    down_block_types: ['DownEncoderBlock2D', 'DownEncoderBlock2D', 'DownEncoderBlock2D'],
    up_block_types: ['UpDecoderBlock2D', 'UpDecoderBlock2D', 'UpDecoderBlock2D'],
    norm_num_groups: 4, act_fn: 'silu', sample_size: 64, scaling_factor: 1,
  } as never);
  const before = tf.memory().numTensors;
  const r = await runCodecBench(vae, inst, { perStyle: 4 });
  expect(tf.memory().numTensors).toBe(before);
  expect(Object.keys(r.styles)).toEqual([...ALL_STYLES]);
  const originals = Object.values(r.styles).map((s) => s.style_acc_original);
  const recon = Object.values(r.styles).map((s) => s.style_acc);
  // The instruments know the real renders; a random decoder's output is not any style.
  expect(originals.reduce((a, b) => a + b) / originals.length).toBeGreaterThan(0.8);
  expect(recon.reduce((a, b) => a + b) / recon.length).toBeLessThan(0.5);
  for (const s of Object.values(r.styles)) expect(s.mse).toBeGreaterThan(0.01);
  expect(r.images).toBe(4 * ALL_STYLES.length);
  // Two rows (originals, reconstructions) per style of 4 tiles of 64 px with 2 px gaps.
  const png = decodePng(r.sheetPng!);
  expect(png.width).toBe(4 * 64 + 5 * 2);
  expect(png.height).toBe(2 * ALL_STYLES.length * 64 + (2 * ALL_STYLES.length + 1) * 2);
  vae.dispose();
});
