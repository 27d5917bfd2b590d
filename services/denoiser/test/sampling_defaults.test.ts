/** A model folder's sampling_config.json is the denoiser's default guidance shaping; a request can override it. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { initBackend, tf } from '@museum/tensor';
import { museum, tensorFromProto, tensorToProto } from '@museum/proto';
import { StableDiffusionPipeline, saveSamplingConfig } from '@museum/models';
import { serverStream, writeTinyPipelineFolder } from '@museum/rpc';
import { DenoiserServer } from '../src';

let dir: string;
let server: DenoiserServer;
let client: museum.v1.DenoiserServiceClient;

beforeAll(async () => {
  await initBackend({ log: () => {} });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'museum-denoiser-sampling-'));
  writeTinyPipelineFolder(path.join(dir, 'model'));
  saveSamplingConfig(path.join(dir, 'model'), { guidanceInterval: [300, 800], guidanceRescale: 0.7 });
  server = new DenoiserServer({ modelDir: path.join(dir, 'model'), drainGraceMs: 5000 });
  const port = await server.start();
  await server.ready;
  client = new museum.v1.DenoiserServiceClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
});

afterAll(async () => {
  client?.close();
  await server?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function finalLatents(req: museum.v1.DenoiseRequest): Promise<Float32Array> {
  let out: Float32Array = new Float32Array();
  for await (const m of serverStream(client.denoise.bind(client), req, { deadline: Date.now() + 30_000 })) {
    if (m.event?.$case === 'result') {
      const t = tensorFromProto(m.event.value.latents!);
      out = t.dataSync() as Float32Array;
      t.dispose();
    }
  }
  return out;
}

test('unset shaping is the folder\'s; an explicit [0, inf] interval and rescale 0 give plain every-step guidance', async () => {
  const pipe = StableDiffusionPipeline.fromPretrained(path.join(dir, 'model'));
  const c = tf.randomNormal([1, 16, 16], 0, 1, 'float32', 1) as tf.Tensor3D;
  const n = tf.randomNormal([1, 16, 16], 0, 1, 'float32', 2) as tf.Tensor3D;
  const common = { seed: 9, steps: 4, guidance: 5, sampler: 'ddim' as const };
  const shaped = await pipe.denoise({ embeddings: c, negativeEmbeddings: n, ...common, guidanceInterval: [300, 800], guidanceRescale: 0.7 });
  const plain = await pipe.denoise({ embeddings: c, negativeEmbeddings: n, ...common, guidanceInterval: null, guidanceRescale: 0 });
  const [wantShaped, wantPlain] = [shaped.dataSync() as Float32Array, plain.dataSync() as Float32Array];
  const req = { embeddings: tensorToProto(c), negativeEmbeddings: tensorToProto(n), seed: 9, steps: 4, guidance: 5, sampler: museum.v1.Sampler.SAMPLER_DDIM };
  tf.dispose([c, n, shaped, plain]);
  pipe.dispose();

  const byDefault = await finalLatents(museum.v1.DenoiseRequest.fromPartial(req));
  const overridden = await finalLatents(museum.v1.DenoiseRequest.fromPartial({ ...req, guidanceRescale: 0, guidanceInterval: { fromTimestep: 0, toTimestep: Infinity } }));
  const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
  expect(byDefault.length).toBe(wantShaped.length);
  expect(maxDiff(byDefault, wantShaped)).toBeLessThan(1e-4);
  expect(maxDiff(overridden, wantPlain)).toBeLessThan(1e-4);
  expect(maxDiff(wantShaped, wantPlain)).toBeGreaterThan(1e-3);
});
