import * as grpc from '@grpc/grpc-js';
import { decodeImage, initBackend, tf } from '@museum/tensor';
import { grpc as g, museum } from '@museum/proto';
import { serverStream } from '@museum/rpc';
import { removeTinyModelDir, startStack, collectGenerate, generateError, type Stack } from './stack';

const { SERVING, NOT_SERVING } = g.health.v1.HealthCheckResponse_ServingStatus;

const check = (client: g.health.v1.HealthClient, service = '') =>
  new Promise<number>((resolve, reject) => client.check({ service }, (err, res) => (err ? reject(err) : resolve(res.status))));

let stack: Stack;
let release!: () => void;

beforeAll(async () => {
  await initBackend({ log: () => {} });
  stack = await startStack({ loadGate: new Promise<void>((r) => (release = r)) });
});

afterAll(async () => {
  await stack?.stop();
  removeTinyModelDir();
});

test('health is NOT_SERVING until the weights are loaded, then SERVING (Check, Watch, List)', async () => {
  const denoiserHealth = stack.health(stack.addr.denoiser);
  expect(await check(denoiserHealth)).toBe(NOT_SERVING);
  expect(await check(denoiserHealth, 'museum.v1.DenoiserService')).toBe(NOT_SERVING);
  const missing = await check(denoiserHealth, 'nope').catch((e: grpc.ServiceError) => e.code);
  expect(missing).toBe(grpc.status.NOT_FOUND);

  // Watch sees the change
  const seen: number[] = [];
  const watch = denoiserHealth.watch({ service: 'museum.v1.DenoiserService' });
  let firstSeen!: () => void;
  const first = new Promise<void>((resolve) => (firstSeen = resolve));
  const servingSeen = new Promise<void>((resolve) =>
    watch.on('data', (m: g.health.v1.HealthCheckResponse) => {
      seen.push(m.status);
      firstSeen();
      if (m.status === SERVING) resolve();
    }),
  );
  watch.on('error', () => {});
  // the first message (not a fixed wait, which a loaded machine overran) is the current status; nothing follows while the load gate holds
  try {
    await first;
    await new Promise((r) => setTimeout(r, 50));
    expect(seen).toEqual([NOT_SERVING]);
  } finally {
    release(); // even when this test fails, the others get a loaded stack
  }
  await Promise.all([stack.textEncoder.ready, stack.denoiser.ready, stack.vae.ready, stack.gateway.ready]);
  await servingSeen;
  watch.cancel();
  expect(seen).toEqual([NOT_SERVING, SERVING]);
  for (const a of [stack.addr.textEncoder, stack.addr.denoiser, stack.addr.vaeDecoder, stack.addr.gateway]) expect(await check(stack.health(a))).toBe(SERVING);
  const listed = await new Promise<g.health.v1.HealthListResponse>((resolve, reject) => denoiserHealth.list({}, (err, res) => (err ? reject(err) : resolve(res))));
  expect(Object.keys(listed.statuses).sort()).toEqual(['', 'museum.v1.DenoiserService', 'museum.v1.InfoService']);
  expect(Object.values(listed.statuses).every((s) => s.status === SERVING)).toBe(true);
});

test('Generate streams progress (encoding, every denoising step, decoding) and then a valid PNG', async () => {
  const got = await collectGenerate(stack.gatewayClient, { prompt: 'a red star', negativePrompt: 'blurry', seed: 3, steps: 4, guidance: 5, sampler: museum.v1.Sampler.SAMPLER_DDIM });
  const stages = got.progress.map((p) => p.stage);
  expect(stages[0]).toBe(museum.v1.Stage.STAGE_ENCODING);
  expect(stages[stages.length - 1]).toBe(museum.v1.Stage.STAGE_DECODING);
  const steps = got.progress.filter((p) => p.stage === museum.v1.Stage.STAGE_DENOISING && p.step > 0).map((p) => `${p.step}/${p.total}`);
  expect(steps).toEqual(['1/4', '2/4', '3/4', '4/4']);
  expect(got.images).toHaveLength(1);
  const img = got.images[0];
  expect(img.png.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
  expect([img.width, img.height]).toEqual([16, 16]);
  const decoded = await decodeImage(img.png);
  expect(decoded.shape).toEqual([16, 16, 3]);
  decoded.dispose();
  expect(img.museumVersion).toBe(0);

  // same seed, same image; another seed, another image
  const again = await collectGenerate(stack.gatewayClient, { prompt: 'a red star', negativePrompt: 'blurry', seed: 3, steps: 4, guidance: 5, sampler: museum.v1.Sampler.SAMPLER_DDIM });
  expect(Buffer.compare(again.images[0].png, img.png)).toBe(0);
  const other = await collectGenerate(stack.gatewayClient, { prompt: 'a red star', negativePrompt: 'blurry', seed: 4, steps: 4, guidance: 5, sampler: museum.v1.Sampler.SAMPLER_DDIM });
  expect(Buffer.compare(other.images[0].png, img.png)).not.toBe(0);
});

test('bad input is INVALID_ARGUMENT naming the field, and no service crashes', async () => {
  const cases: Array<[Partial<museum.v1.GenerateRequest>, RegExp]> = [
    [{ prompt: '' }, /^prompt: must not be empty/],
    [{ prompt: '   ' }, /^prompt: must not be empty/],
    [{ prompt: 'a '.repeat(600) }, /^prompt: is 1200 characters long/],
    [{ prompt: 'a red star a red star a red star a red star a red star' }, /^prompt: is \d+ tokens long, the text encoder takes at most 16/],
    [{ prompt: 'a red star in <nope>' }, /^prompt: unknown style token <nope> for museum version 0/],
    [{ prompt: 'a red star', negativePrompt: 'x <bad>' }, /^negative_prompt: unknown style token <bad>/],
    [{ prompt: 'a red star', steps: 500 }, /^steps: must be an integer in \[1, 200\]/],
    [{ prompt: 'a red star', guidance: 99 }, /^guidance: must be a number in \[0, 30\]/],
    [{ prompt: 'a red star', guidance: -1 }, /^guidance: /],
    [{ prompt: 'a red star', width: 4096 }, /^width: must be in \[8, 1024\]/],
    [{ prompt: 'a red star', height: 17, steps: 2 }, /^height: must be a multiple of 2/],
    [{ prompt: 'a red star', sampler: 42 as museum.v1.Sampler }, /^sampler: unknown sampler/],
    [{ prompt: 'a red star', guidanceRescale: 1.5 }, /^guidance_rescale: must be a number in \[0, 1\]/],
    [{ prompt: 'a red star', guidanceInterval: { fromTimestep: 800, toTimestep: 300 } }, /^guidance_interval: must satisfy 0 <= from_timestep <= to_timestep/],
  ];
  for (const [req, pattern] of cases) {
    const err = await generateError(stack.gatewayClient, req);
    expect({ req, code: err.code, details: err.details }).toEqual({ req, code: grpc.status.INVALID_ARGUMENT, details: expect.stringMatching(pattern) });
  }
  const unknownVersion = await generateError(stack.gatewayClient, { prompt: 'a red star', museumVersion: 7 });
  expect(unknownVersion.code).toBe(grpc.status.NOT_FOUND);
  expect(unknownVersion.details).toMatch(/museum_version 7 does not exist/);
  // still alive and well
  const ok = await collectGenerate(stack.gatewayClient, { prompt: 'a green square', steps: 2 });
  expect(ok.images).toHaveLength(1);
  // Guidance shaping reaches the denoiser: same seed, another image; the same shaping twice, the same image.
  const shaping = { guidanceRescale: 0.7, guidanceInterval: { fromTimestep: 0, toTimestep: 600 } };
  const shaped = await collectGenerate(stack.gatewayClient, { prompt: 'a green square', steps: 2, ...shaping });
  const again = await collectGenerate(stack.gatewayClient, { prompt: 'a green square', steps: 2, ...shaping });
  expect(Buffer.from(shaped.images[0].png).equals(Buffer.from(again.images[0].png))).toBe(true);
  expect(Buffer.from(shaped.images[0].png).equals(Buffer.from(ok.images[0].png))).toBe(false);
});

test('direct stage calls validate too: malformed tensors, wrong shapes, oversize messages', async () => {
  const denoiser = new museum.v1.DenoiserServiceClient(stack.addr.denoiser, grpc.credentials.createInsecure());
  const vae = new museum.v1.VaeDecoderServiceClient(stack.addr.vaeDecoder, grpc.credentials.createInsecure());
  try {
    const denoiseErr = (req: Partial<museum.v1.DenoiseRequest>) =>
      new Promise<grpc.ServiceError>((resolve, reject) => {
        const call = denoiser.denoise(museum.v1.DenoiseRequest.fromPartial(req));
        call.on('data', () => {});
        call.on('error', resolve);
        call.on('end', () => reject(new Error('expected an error')));
      });
    const bytes = (n: number) => Buffer.alloc(n);
    let e = await denoiseErr({ steps: 2 });
    expect([e.code, e.details]).toEqual([grpc.status.INVALID_ARGUMENT, 'embeddings: is required']);
    e = await denoiseErr({ steps: 2, embeddings: { dtype: museum.v1.DType.DTYPE_FLOAT32, shape: [1, 16, 16], data: bytes(10) } });
    expect(e.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(e.details).toMatch(/^embeddings: tensor data has 10 bytes/);
    e = await denoiseErr({ steps: 2, guidance: 1, embeddings: { dtype: museum.v1.DType.DTYPE_FLOAT32, shape: [1, 16, 7], data: bytes(16 * 7 * 4) } });
    expect(e.details).toMatch(/^embeddings: has width 7, the UNet's cross-attention takes 16/);
    e = await denoiseErr({ steps: 2, guidance: 5, embeddings: { dtype: museum.v1.DType.DTYPE_FLOAT32, shape: [1, 16, 16], data: bytes(16 * 16 * 4) } });
    expect(e.details).toBe('negative_embeddings: is required');

    const decodeErr = (req: Partial<museum.v1.DecodeRequest>) =>
      new Promise<grpc.ServiceError>((resolve, reject) => vae.decode(museum.v1.DecodeRequest.fromPartial(req), (err) => (err ? resolve(err) : reject(new Error('expected an error')))));
    const d = await decodeErr({ latents: { dtype: museum.v1.DType.DTYPE_FLOAT32, shape: [1, 8, 8, 3], data: bytes(8 * 8 * 3 * 4) } });
    expect([d.code, d.details]).toEqual([grpc.status.INVALID_ARGUMENT, 'latents: has 3 channels, the VAE takes 4']);

    // bigger than the 64 MiB default limit: refused by grpc-js before any decoding
    const big = await decodeErr({ latents: { dtype: museum.v1.DType.DTYPE_FLOAT32, shape: [1], data: Buffer.alloc(65 * 1024 * 1024) } });
    expect(big.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
  } finally {
    denoiser.close();
    vae.close();
  }
  expect(await check(stack.health(stack.addr.vaeDecoder))).toBe(SERVING);
});

test('a cancelled Generate stops the denoiser loop between steps and frees its tensors', async () => {
  const stats = stack.denoiser.batcher.stats;
  const before = { steps: stats.steps, cancelled: stats.cancelled };
  const tensorsBefore = tf.memory().numTensors;
  const call = stack.gatewayClient.generate(museum.v1.GenerateRequest.fromPartial({ prompt: 'a blue circle', steps: 200, guidance: 5 }));
  const ended = new Promise<grpc.ServiceError | null>((resolve) => {
    call.on('error', (e: grpc.ServiceError) => resolve(e));
    call.on('end', () => resolve(null));
  });
  await new Promise<void>((resolve) =>
    call.on('data', (m: museum.v1.GenerateResponse) => {
      if (m.event?.$case === 'progress' && m.event.value.stage === museum.v1.Stage.STAGE_DENOISING && m.event.value.step >= 3) resolve();
    }),
  );
  call.cancel();
  expect((await ended)?.code).toBe(grpc.status.CANCELLED);
  // the denoiser notices between two steps
  for (let i = 0; i < 100 && stats.cancelled === before.cancelled; i++) await new Promise((r) => setTimeout(r, 20));
  expect(stats.cancelled).toBe(before.cancelled + 1);
  const stoppedAt = stats.steps;
  await new Promise((r) => setTimeout(r, 300));
  expect(stats.steps).toBe(stoppedAt);
  expect(stoppedAt - before.steps).toBeGreaterThanOrEqual(3);
  expect(stoppedAt - before.steps).toBeLessThan(200);
  expect(stack.denoiser.batcher.size).toBe(0);

  // a deadline that expires mid-loop does the same
  const err = await new Promise<grpc.ServiceError>((resolve, reject) => {
    const c = stack.gatewayClient.generate(museum.v1.GenerateRequest.fromPartial({ prompt: 'a blue circle', steps: 200, guidance: 5 }), { deadline: Date.now() + 250 });
    c.on('data', () => {});
    c.on('error', resolve);
    c.on('end', () => reject(new Error('expected DEADLINE_EXCEEDED')));
  });
  expect(err.code).toBe(grpc.status.DEADLINE_EXCEEDED);
  for (let i = 0; i < 100 && stats.cancelled === before.cancelled + 1; i++) await new Promise((r) => setTimeout(r, 20));
  expect(stats.cancelled).toBe(before.cancelled + 2);
  expect(stack.denoiser.batcher.size).toBe(0);
  // the cancelled runs' latents, contexts and scheduler state are all freed
  expect(tf.memory().numTensors).toBe(tensorsBefore);
});

test('GenerateBatch runs the items concurrently (the denoiser batches them) and tags events with their index', async () => {
  const shared0 = stack.denoiser.batcher.stats.sharedCalls;
  const req = museum.v1.GenerateBatchRequest.fromPartial({
    items: [
      { prompt: 'a red star', seed: 1, steps: 3, guidance: 4 },
      { prompt: 'a blue circle', seed: 2, steps: 3, guidance: 4 },
      { prompt: 'a green square', seed: 3, steps: 3, guidance: 4 },
    ],
  });
  const images = new Map<number, museum.v1.GeneratedImage>();
  const steps = new Map<number, number>();
  for await (const m of serverStream(stack.gatewayClient.generateBatch.bind(stack.gatewayClient), req, { deadline: Date.now() + 30_000 })) {
    if (m.event?.$case === 'image') images.set(m.index, m.event.value);
    else if (m.event?.$case === 'progress' && m.event.value.stage === museum.v1.Stage.STAGE_DENOISING) steps.set(m.index, Math.max(steps.get(m.index) ?? 0, m.event.value.step));
  }
  expect([...images.keys()].sort()).toEqual([0, 1, 2]);
  expect([...steps.values()]).toEqual([3, 3, 3]);
  expect(images.get(1)!.seed).toBe(2);
  expect(stack.denoiser.batcher.stats.sharedCalls).toBeGreaterThan(shared0);

  const bad = await (async () => {
    try {
      const r = museum.v1.GenerateBatchRequest.fromPartial({ items: [{ prompt: 'a red star' }, { prompt: '' }] });
      for await (const _ of serverStream(stack.gatewayClient.generateBatch.bind(stack.gatewayClient), r)) void _;
    } catch (err) {
      return err as grpc.ServiceError;
    }
    throw new Error('expected an error');
  })();
  expect([bad.code, bad.details]).toEqual([grpc.status.INVALID_ARGUMENT, 'items[1].prompt: must not be empty']);
});

test('numTensors stays flat over repeated requests', async () => {
  const run = () => collectGenerate(stack.gatewayClient, { prompt: 'a red star', seed: 1, steps: 3, guidance: 4 });
  await run();
  const before = tf.memory().numTensors;
  for (let i = 0; i < 3; i++) await run();
  await Promise.all([run(), run()]);
  expect(tf.memory().numTensors).toBe(before);
});
