import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { initBackend, tf } from '@museum/tensor';
import { buildProgram, checkModels, checkNats, formatDoctor, runDoctor } from '@museum/cli';

const NATS_URL = process.env.NATS_URL ?? 'nats://127.0.0.1:4222';

beforeAll(async () => {
  await initBackend({ log: () => {} });
});

/** A loopback port that nothing listens on. */
async function unusedPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

test('runDoctor reports backend, matmul speed, node, cpus, NATS with JetStream, models', async () => {
  const before = tf.memory().numTensors;
  const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'museum-doctor-'));
  const r = await runDoctor({ natsUrl: NATS_URL, modelDir: empty, matmulRuns: 3, renderCount: 200 });
  expect(tf.memory().numTensors).toBe(before);

  expect(r.backend).toBe(process.env.MUSEUM_BACKEND ?? 'wasm');
  expect(r.backend_package).toMatch(/^@tensorflow\/tfjs-/);
  expect(typeof r.simd).toBe('boolean');
  expect(typeof r.threads).toBe('boolean');
  expect(r.matmul_gflops).toBeGreaterThan(0);
  expect(Number.isFinite(r.matmul_gflops)).toBe(true);
  expect(r.world_render_per_cpu_s).toBeGreaterThan(0);
  expect(Number.isFinite(r.world_render_per_cpu_s)).toBe(true);
  expect(r.node_version).toBe(process.version);
  expect(r.cpus).toBeGreaterThanOrEqual(1);
  expect(r.museum_version).toMatch(/^\d+\.\d+\.\d+/);

  expect(r.nats.url).toBe(NATS_URL);
  expect(r.nats.reachable).toBe(true);
  expect(r.nats.server_version).toMatch(/^\d+\.\d+\.\d+/);
  expect(r.nats.rtt_ms).toBeGreaterThanOrEqual(0);
  expect(r.nats.jetstream).toBe(true); // the local server runs with -js
  expect(typeof r.nats.jetstream_streams).toBe('number');

  expect(r.models).toEqual({ dir: empty, model_index: false, components: [] });

  // JSON-serialisable as printed by --json, and readable by people.
  expect(JSON.parse(JSON.stringify(r))).toEqual(r);
  const text = formatDoctor(r);
  expect(text).toContain(`backend   ${r.backend} (${r.backend_package})`);
  expect(text).toContain('jetstream ok');
  expect(text).toContain('model_index.json missing');
  fs.rmSync(empty, { recursive: true });
});

test('an unreachable NATS is reported quickly, not thrown', async () => {
  const url = `nats://127.0.0.1:${await unusedPort()}`;
  const t0 = Date.now();
  const n = await checkNats(url, 1500);
  expect(Date.now() - t0).toBeLessThan(1500);
  expect(n.url).toBe(url);
  expect(n.reachable).toBe(false);
  expect(n.jetstream).toBe(false);
  expect(n.error).toBeTruthy();
  expect(n.server_version).toBeUndefined();
});

test('checkModels reports each component of model_index.json', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'museum-atelier-'));
  fs.writeFileSync(
    path.join(dir, 'model_index.json'),
    JSON.stringify({
      _class_name: 'StableDiffusionPipeline',
      _diffusers_version: '0.21.4',
      unet: ['museum', 'UNet2DConditionModel'],
      vae: ['museum', 'AutoencoderKL'],
      text_encoder: ['museum', 'CLIPTextModel'],
      scheduler: ['museum', 'DDIMScheduler'],
    }),
  );
  fs.mkdirSync(path.join(dir, 'unet'));
  fs.writeFileSync(path.join(dir, 'unet', 'config.json'), '{}');
  fs.writeFileSync(path.join(dir, 'unet', 'diffusion_pytorch_model.safetensors'), '');
  fs.mkdirSync(path.join(dir, 'vae'));
  fs.writeFileSync(path.join(dir, 'vae', 'config.json'), '{}'); // weights not written yet
  fs.mkdirSync(path.join(dir, 'scheduler'));
  fs.writeFileSync(path.join(dir, 'scheduler', 'scheduler_config.json'), '{}');

  const m = checkModels(dir);
  expect(m.model_index).toBe(true);
  expect(m.error).toBeUndefined();
  const byName = Object.fromEntries(m.components.map((c) => [c.name, c]));
  expect(Object.keys(byName).sort()).toEqual(['scheduler', 'text_encoder', 'unet', 'vae']);
  expect(byName.unet).toEqual({ name: 'unet', class: 'UNet2DConditionModel', status: 'present', files: ['config.json', 'diffusion_pytorch_model.safetensors'] });
  expect(byName.vae.status).toBe('incomplete');
  expect(byName.text_encoder.status).toBe('missing');
  expect(byName.scheduler.status).toBe('present');

  fs.writeFileSync(path.join(dir, 'model_index.json'), '{not json');
  expect(checkModels(dir).error).toMatch(/not valid JSON/);
  fs.rmSync(dir, { recursive: true });
});

test('an unknown command is an error that points to --help', async () => {
  const program = buildProgram();
  let stderr = '';
  program.exitOverride().configureOutput({ writeErr: (s) => (stderr += s), writeOut: () => {} });
  await expect(program.parseAsync(['node', 'museum', 'frobnicate'])).rejects.toMatchObject({ code: 'commander.unknownCommand' });
  expect(stderr).toContain("unknown command 'frobnicate'");
  expect(stderr).toContain('museum --help');
  expect(program.commands.map((c) => c.name())).toContain('doctor');
});
