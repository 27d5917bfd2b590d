import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { initBackend } from '@museum/tensor';
import { grpc as g, museum } from '@museum/proto';
import { serverStream, unary, writeTinyPipelineFolder } from '@museum/rpc';
import { SERVICE_NAMES, museumDataDir, requireModelFolder, startAll } from '../src/commands/start';
import { serveOne } from '../src/commands/serve';

let tmp: string;
let modelDir: string;
const creds = grpc.credentials.createInsecure();

beforeAll(async () => {
  await initBackend({ log: () => {} });
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'museum-start-'));
  modelDir = path.join(tmp, 'model');
  writeTinyPipelineFolder(modelDir);
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

test('a missing model fails with a message that says how to get one; the museum folder defaults to <repo>/museum-data or $MUSEUM_DIR', () => {
  expect(() => requireModelFolder(path.join(tmp, 'nope'))).toThrow(/no model at .*nope \(model_index.json missing\)[\s\S]*npx museum pretrain[\s\S]*--model DIR/);
  expect(museumDataDir({}, '/repo')).toBe(path.resolve('/repo/museum-data'));
  expect(museumDataDir({ MUSEUM_DIR: '/data/m' }, '/repo')).toBe(path.resolve('/data/m'));
});

test('museum start: every service in one process, on the ports it prints, with the in-process bus when NATS_URL is unset', async () => {
  const logs: string[] = [];
  const stack = await startAll({ model: modelDir, museumDir: path.join(tmp, 'museum'), host: '127.0.0.1', maxMessageMb: '64', portBase: '0' }, (m) => logs.push(m), {});
  try {
    expect(Object.keys(stack.addresses).sort()).toEqual([...SERVICE_NAMES].sort());
    expect(new Set(Object.values(stack.addresses)).size).toBe(5);
    expect(logs.some((l) => /in-process event bus \(NATS_URL not set/.test(l))).toBe(true);
    await stack.ready;
    for (const a of Object.values(stack.addresses)) {
      const h = new g.health.v1.HealthClient(a, creds);
      expect((await unary(h.check.bind(h), { service: '' })).status).toBe(g.health.v1.HealthCheckResponse_ServingStatus.SERVING);
      h.close();
    }
    const gw = new museum.v1.GatewayServiceClient(stack.addresses.gateway, creds);
    const pngs: Buffer[] = [];
    for await (const m of serverStream(gw.generate.bind(gw), museum.v1.GenerateRequest.fromPartial({ prompt: 'a red star', steps: 2 }))) {
      if (m.event?.$case === 'image') pngs.push(Buffer.from(m.event.value.png));
    }
    gw.close();
    expect(pngs).toHaveLength(1);
    const trainer = new museum.v1.TrainerServiceClient(stack.addresses.trainer, creds);
    expect(await unary(trainer.listStyles.bind(trainer), {})).toEqual({ museumVersion: 0, styles: [] });
    trainer.close();
    expect(fs.existsSync(path.join(tmp, 'museum', 'HEAD'))).toBe(true);
  } finally {
    await stack.stop();
  }
});

test('museum serve runs one service', async () => {
  const s = await serveOne({ service: 'vae-decoder', port: '0', model: modelDir, museumDir: path.join(tmp, 'museum'), host: '127.0.0.1', maxMessageMb: '1' }, () => {}, {});
  try {
    await s.service.ready;
    const info = new museum.v1.InfoServiceClient(s.address, creds);
    expect((await unary(info.getInfo.bind(info), {})).service).toBe('vae-decoder');
    info.close();
  } finally {
    await s.stop();
  }
  await expect(serveOne({ service: 'nope', port: '0', host: '127.0.0.1', maxMessageMb: '1' }, () => {}, {})).rejects.toThrow(/--service must be one of/);
  await expect(serveOne({ service: 'gateway', port: '0', host: '127.0.0.1', maxMessageMb: '1' }, () => {}, {})).rejects.toThrow(/--text-encoder/);
});
