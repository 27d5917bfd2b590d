/** No tensor leak: 200 generations through the gateway (tiny model, 2 steps) leave the tensor count flat. */
import { initBackend, tf } from '@museum/tensor';
import { museum } from '@museum/proto';
import { removeTinyModelDir, startStack, collectGenerate, type Stack } from './stack';

let stack: Stack;

beforeAll(async () => {
  await initBackend({ log: () => {} });
  stack = await startStack();
  await Promise.all([stack.textEncoder.ready, stack.denoiser.ready, stack.vae.ready, stack.gateway.ready]);
});

afterAll(async () => {
  await stack?.stop();
  removeTinyModelDir();
});

const SAMPLERS = [museum.v1.Sampler.SAMPLER_DDIM, museum.v1.Sampler.SAMPLER_DPMPP_2M, museum.v1.Sampler.SAMPLER_EULER_A];
const PROMPTS = ['a red star', 'a blue circle', 'a green square'];

/** Generation i: samplers, guided and unguided, prompts and seeds vary. */
function request(i: number): Partial<museum.v1.GenerateRequest> {
  return { prompt: PROMPTS[i % 3], negativePrompt: i % 2 ? 'blurry' : '', seed: i, steps: 2, guidance: i % 4 === 0 ? 1 : 4, sampler: SAMPLERS[i % 3] };
}

/** `count` generations, `concurrency` at a time (so the denoiser batches some of them). */
async function generateMany(from: number, count: number, concurrency: number): Promise<number> {
  let next = from;
  let images = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < from + count) {
        const got = await collectGenerate(stack.gatewayClient, request(next++));
        images += got.images.length;
      }
    }),
  );
  return images;
}

test('200 generations through the gateway leave tf.memory().numTensors flat', async () => {
  // warm-up: every sampler, guided and not, alone and batched
  expect(await generateMany(0, 12, 3)).toBe(12);
  const before = tf.memory();
  const calls0 = stack.denoiser.batcher.stats.unetCalls;

  expect(await generateMany(12, 200, 4)).toBe(200);

  const after = tf.memory();
  expect(stack.denoiser.batcher.size).toBe(0);
  expect(stack.denoiser.batcher.stats.unetCalls - calls0).toBeGreaterThanOrEqual(2 * 200 / 8);
  expect(after.numTensors).toBe(before.numTensors);
  expect(after.numBytes).toBe(before.numBytes);
});
