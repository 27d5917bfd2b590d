import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { initBackend, tf } from '@museum/tensor';
import { museum, tensorFromProto, tensorToProto } from '@museum/proto';
import { StableDiffusionPipeline } from '@museum/models';
import { serverStream, writeTinyPipelineFolder } from '@museum/rpc';
import { DenoiserServer } from '../src';

let dir: string;
let server: DenoiserServer;
let client: museum.v1.DenoiserServiceClient;
let ctx: museum.v1.Tensor;
let neg: museum.v1.Tensor;

beforeAll(async () => {
  await initBackend({ log: () => {} });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'museum-denoiser-'));
  writeTinyPipelineFolder(path.join(dir, 'model'));
  server = new DenoiserServer({ modelDir: path.join(dir, 'model'), batching: { maxWaitMs: 20, maxBatchRows: 8, maxJobs: 3 }, drainGraceMs: 5000 });
  const port = await server.start();
  await server.ready;
  client = new museum.v1.DenoiserServiceClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const c = tf.randomNormal([1, 16, 16], 0, 1, 'float32', 1);
  const n = tf.randomNormal([1, 16, 16], 0, 1, 'float32', 2);
  ctx = tensorToProto(c);
  neg = tensorToProto(n);
  tf.dispose([c, n]);
});

afterAll(async () => {
  client?.close();
  await server?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

interface Run {
  latents: Float32Array;
  shared: number;
  progress: number[];
}

async function run(req: Partial<museum.v1.DenoiseRequest>, onProgress?: (step: number) => void): Promise<Run> {
  const out: Run = { latents: new Float32Array(), shared: -1, progress: [] };
  const full = museum.v1.DenoiseRequest.fromPartial({ embeddings: ctx, negativeEmbeddings: neg, guidance: 5, ...req });
  for await (const m of serverStream(client.denoise.bind(client), full, { deadline: Date.now() + 30_000 })) {
    if (m.event?.$case === 'progress') {
      out.progress.push(m.event.value.step);
      onProgress?.(m.event.value.step);
    } else if (m.event?.$case === 'result') {
      const t = tensorFromProto(m.event.value.latents!);
      out.latents = t.dataSync() as Float32Array;
      t.dispose();
      out.shared = m.event.value.sharedSteps;
    }
  }
  return out;
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

const calls = () => server.batcher.stats.unetCalls;

test('concurrent compatible requests are stepped together in one UNet batch, with the results of solo runs', async () => {
  let c0 = calls();
  const solo = await run({ seed: 11, steps: 4, sampler: museum.v1.Sampler.SAMPLER_DDIM });
  expect(calls() - c0).toBe(4);
  expect(solo.shared).toBe(0);
  expect(solo.progress).toEqual([1, 2, 3, 4]);

  c0 = calls();
  const shared0 = server.batcher.stats.sharedCalls;
  const [a, b, c] = await Promise.all([
    run({ seed: 11, steps: 4, sampler: museum.v1.Sampler.SAMPLER_DDIM }),
    run({ seed: 12, steps: 4, sampler: museum.v1.Sampler.SAMPLER_DDIM }),
    run({ seed: 13, steps: 4, sampler: museum.v1.Sampler.SAMPLER_DDIM }),
  ]);
  // three guided requests = 6 rows <= 8: four UNet calls for twelve steps
  expect(calls() - c0).toBe(4);
  expect(server.batcher.stats.sharedCalls - shared0).toBe(4);
  expect(server.batcher.stats.maxJobsPerCall).toBeGreaterThanOrEqual(3);
  expect([a.shared, b.shared, c.shared]).toEqual([4, 4, 4]);
  // batching does not change a request's result (each keeps its own noise and scheduler)
  expect(maxDiff(a.latents, solo.latents)).toBeLessThan(1e-4);
  expect(maxDiff(a.latents, b.latents)).toBeGreaterThan(1e-2);
});

test('requests at different steps, with different samplers and step counts, share UNet calls', async () => {
  const soloB = await run({ seed: 5, steps: 5, sampler: museum.v1.Sampler.SAMPLER_EULER_A, guidance: 3 });
  const c0 = calls();
  let startB!: () => void;
  const bStarted = new Promise<void>((r) => (startB = r));
  const pa = run({ seed: 4, steps: 12, sampler: museum.v1.Sampler.SAMPLER_DPMPP_2M }, (step) => step === 4 && startB());
  await bStarted;
  const b = await run({ seed: 5, steps: 5, sampler: museum.v1.Sampler.SAMPLER_EULER_A, guidance: 3 });
  const a = await pa;
  expect(a.progress).toHaveLength(12);
  expect(b.progress).toEqual([1, 2, 3, 4, 5]);
  // B joined A mid-run: fewer UNet calls than the 17 steps
  expect(b.shared).toBeGreaterThanOrEqual(3);
  expect(calls() - c0).toBeLessThanOrEqual(17 - 3);
  expect(maxDiff(b.latents, soloB.latents)).toBeLessThan(1e-4);
});

test('a guidance interval and rescale give the in-process pipeline\'s result, alone and batched with an every-step request', async () => {
  const pipe = StableDiffusionPipeline.fromPretrained(path.join(dir, 'model'));
  const [c, n] = [tensorFromProto(ctx), tensorFromProto(neg)];
  const shaping = { guidanceRescale: 0.7, guidanceInterval: [300, 800] as const };
  const expected = await pipe.denoise({ embeddings: c, negativeEmbeddings: n, seed: 21, steps: 4, guidance: 5, sampler: 'ddim', ...shaping });
  const expectedEveryStep = await pipe.denoise({ embeddings: c, negativeEmbeddings: n, seed: 22, steps: 4, guidance: 5, sampler: 'ddim' });
  const want = expected.dataSync() as Float32Array;
  const wantEveryStep = expectedEveryStep.dataSync() as Float32Array;
  tf.dispose([c, n, expected, expectedEveryStep]);
  pipe.dispose();

  const shaped = { seed: 21, steps: 4, sampler: museum.v1.Sampler.SAMPLER_DDIM, guidanceRescale: 0.7, guidanceInterval: { fromTimestep: 300, toTimestep: 800 } };
  const rows0 = server.batcher.stats.unetRows;
  const solo = await run(shaped);
  expect(maxDiff(solo.latents, want)).toBeLessThan(1e-4);
  // DDIM 4 steps are timesteps 751, 501, 251, 1: two guided steps (two rows), two outside the interval (one row).
  expect(server.batcher.stats.unetRows - rows0).toBe(2 + 2 + 1 + 1);

  const c0 = calls();
  const [a, b] = await Promise.all([run(shaped), run({ seed: 22, steps: 4, sampler: museum.v1.Sampler.SAMPLER_DDIM })]);
  expect(calls() - c0).toBe(4);
  expect([a.shared, b.shared]).toEqual([4, 4]);
  expect(maxDiff(a.latents, want)).toBeLessThan(1e-4);
  expect(maxDiff(b.latents, wantEveryStep)).toBeLessThan(1e-4);
  // the shaping is not a no-op: without it the same seed gives another result
  const plain = await run({ seed: 21, steps: 4, sampler: museum.v1.Sampler.SAMPLER_DDIM });
  expect(maxDiff(plain.latents, want)).toBeGreaterThan(1e-3);
});

test('incompatible shapes are not batched together', async () => {
  const c0 = calls();
  const [a, b] = await Promise.all([run({ seed: 1, steps: 3, height: 16, width: 16 }), run({ seed: 1, steps: 3, height: 8, width: 8 })]);
  expect(calls() - c0).toBe(6);
  expect([a.shared, b.shared]).toEqual([0, 0]);
  expect(a.latents.length).toBe(8 * 8 * 4);
  expect(b.latents.length).toBe(4 * 4 * 4);
});

test('a full denoiser answers RESOURCE_EXHAUSTED and keeps serving the admitted requests', async () => {
  const results = await Promise.allSettled([1, 2, 3, 4].map((s) => run({ seed: s, steps: 3 })));
  const rejected = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
  expect(rejected).toHaveLength(1);
  expect((rejected[0].reason as grpc.ServiceError).code).toBe(grpc.status.RESOURCE_EXHAUSTED);
  expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(3);
  expect(server.batcher.size).toBe(0);
});

test('previews every n steps are float16 latents', async () => {
  const full = museum.v1.DenoiseRequest.fromPartial({ embeddings: ctx, negativeEmbeddings: neg, guidance: 5, seed: 2, steps: 4, previewEvery: 2 });
  const previews: number[] = [];
  for await (const m of serverStream(client.denoise.bind(client), full)) {
    if (m.event?.$case === 'progress' && m.event.value.preview) {
      expect(m.event.value.preview.dtype).toBe(museum.v1.DType.DTYPE_FLOAT16);
      expect(m.event.value.preview.shape).toEqual([1, 8, 8, 4]);
      previews.push(m.event.value.step);
    }
  }
  expect(previews).toEqual([2, 4]);
});
