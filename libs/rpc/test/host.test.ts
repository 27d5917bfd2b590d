import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { initBackend } from '@museum/tensor';
import { grpc as g, museum } from '@museum/proto';
import { ManagedService, RpcError, ServiceHost, clientOptions, invalidArgument, serverStream, streamHandler, unary, unaryHandler, VersionCache, type ServiceOptions } from '../src';

/** A model-free service: Encode echoes, Denoise streams `steps` slow steps (and records how far it got). */
class FakeService extends ManagedService {
  stepsDone = 0;
  encodeCalls = 0;
  aborted: string[] = [];
  didLoad = false;
  constructor(options: ServiceOptions) {
    super('fake', options);
  }
  protected register(host: ServiceHost): void {
    const te: museum.v1.TextEncoderServiceServer = {
      encode: unaryHandler(async (req) => {
        this.encodeCalls++;
        if (req.prompts[0] === 'boom') throw new Error('kaboom');
        if (req.prompts[0] === 'bad') throw invalidArgument('prompts[0]', 'is bad');
        if (req.prompts[0] === 'museum') throw Object.assign(new Error('no such style'), { code: 'NOT_FOUND' });
        return { embeddings: undefined, museumVersion: 0, tokenCounts: [req.prompts.join('').length] };
      }),
    };
    const dn: museum.v1.DenoiserServiceServer = {
      denoise: streamHandler(async (req, { signal, write }) => {
        for (let i = 1; i <= req.steps; i++) {
          if (signal.aborted) {
            this.aborted.push(String((signal.reason as Error).message));
            throw signal.reason;
          }
          await new Promise((r) => setTimeout(r, 20));
          this.stepsDone++;
          write({ event: { $case: 'progress', value: { step: i, total: req.steps, timestep: 0, preview: undefined } } });
        }
      }),
    };
    host.addService('museum.v1.TextEncoderService', museum.v1.TextEncoderServiceService, te);
    host.addService('museum.v1.DenoiserService', museum.v1.DenoiserServiceService, dn);
  }
  protected async load(): Promise<void> {
    this.didLoad = true;
  }
  protected async unload(): Promise<void> {}
}

const creds = grpc.credentials.createInsecure();
let svc: FakeService;
let addr: string;

beforeAll(async () => {
  await initBackend({ log: () => {} });
  svc = new FakeService({ maxReceiveMessageLength: 1024 });
  addr = `127.0.0.1:${await svc.start()}`;
  await svc.ready;
});
afterAll(() => svc.stop(1000));

test('errors become statuses: RpcError and library codes kept, anything else INTERNAL; the server survives', async () => {
  const c = new museum.v1.TextEncoderServiceClient(addr, creds);
  const call = (p: string) => unary(c.encode.bind(c), { prompts: [p] }).then(() => null, (e: grpc.ServiceError) => [e.code, e.details]);
  expect(await call('bad')).toEqual([grpc.status.INVALID_ARGUMENT, 'prompts[0]: is bad']);
  expect(await call('museum')).toEqual([grpc.status.NOT_FOUND, 'no such style']);
  expect(await call('boom')).toEqual([grpc.status.INTERNAL, 'kaboom']);
  expect(await call('fine')).toBeNull();
  c.close();
});

test('messages over max_receive_message_length are refused with RESOURCE_EXHAUSTED before the handler runs', async () => {
  const c = new museum.v1.TextEncoderServiceClient(addr, creds);
  const e = await unary(c.encode.bind(c), { prompts: ['x'.repeat(2000)] }).catch((err: grpc.ServiceError) => err);
  expect((e as grpc.ServiceError).code).toBe(grpc.status.RESOURCE_EXHAUSTED);
  c.close();
});

test('deadlines and cancellation reach the handler as an AbortSignal', async () => {
  const c = new museum.v1.DenoiserServiceClient(addr, creds);
  const before = svc.stepsDone;
  const e = await (async () => {
    try {
      for await (const _ of serverStream(c.denoise.bind(c), museum.v1.DenoiseRequest.fromPartial({ steps: 1000 }), { deadline: Date.now() + 150 })) void _;
    } catch (err) {
      return err as grpc.ServiceError;
    }
    return null;
  })();
  expect(e?.code).toBe(grpc.status.DEADLINE_EXCEEDED);
  await new Promise((r) => setTimeout(r, 100));
  expect(svc.aborted).toContain('deadline exceeded');
  const stopped = svc.stepsDone;
  expect(stopped - before).toBeLessThan(20);
  await new Promise((r) => setTimeout(r, 100));
  expect(svc.stepsDone).toBe(stopped);
  c.close();
});

test('server reflection lists the services and serves their descriptors', async () => {
  const def = protoLoader.loadSync(path.join(path.dirname(require.resolve('@grpc/reflection')), '..', 'proto', 'grpc', 'reflection', 'v1', 'reflection.proto'), { keepCase: true });
  const pkg = grpc.loadPackageDefinition(def) as unknown as { grpc: { reflection: { v1: { ServerReflection: grpc.ServiceClientConstructor } } } };
  const client = new pkg.grpc.reflection.v1.ServerReflection(addr, creds);
  const ask = (req: object) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const call = client.ServerReflectionInfo();
      call.on('data', (m: Record<string, unknown>) => {
        resolve(m);
        call.end();
      });
      call.on('error', reject);
      call.write(req);
    });
  const listed = (await ask({ list_services: '' })) as { list_services_response: { service: Array<{ name: string }> } };
  const names = listed.list_services_response.service.map((s) => s.name).sort();
  expect(names).toEqual(['grpc.health.v1.Health', 'museum.v1.DenoiserService', 'museum.v1.InfoService', 'museum.v1.TextEncoderService']);
  const file = (await ask({ file_containing_symbol: 'museum.v1.DenoiserService' })) as { file_descriptor_response: { file_descriptor_proto: Buffer[] } };
  const bytes = Buffer.concat(file.file_descriptor_response.file_descriptor_proto).toString('latin1');
  // proto-loader hands reflection one descriptor per package (museum_v1.proto), holding every message of it
  expect(bytes).toContain('museum.v1');
  expect(bytes).toContain('DenoiseRequest');
  expect(bytes).toContain('negative_embeddings');
  client.close();
});

test('InfoService answers for every service', async () => {
  const c = new museum.v1.InfoServiceClient(addr, creds);
  const info = await unary(c.getInfo.bind(c), {});
  expect(info.service).toBe('fake');
  expect(info.backend).toBe('wasm');
  c.close();
});

test('drain: NOT_SERVING at once, in-flight calls finish, new calls are refused', async () => {
  const other = new FakeService({});
  const a = `127.0.0.1:${await other.start()}`;
  await other.ready;
  const c = new museum.v1.DenoiserServiceClient(a, creds);
  const h = new g.health.v1.HealthClient(a, creds);
  const steps: number[] = [];
  const inflight = (async () => {
    for await (const m of serverStream(c.denoise.bind(c), museum.v1.DenoiseRequest.fromPartial({ steps: 10 }))) if (m.event?.$case === 'progress') steps.push(m.event.value.step);
  })();
  const statuses: number[] = [];
  const watch = h.watch({ service: '' });
  watch.on('data', (m: g.health.v1.HealthCheckResponse) => statuses.push(m.status));
  watch.on('error', () => {});
  const watchEnded = new Promise<void>((r) => watch.on('end', () => r()));
  await new Promise((r) => setTimeout(r, 60));
  const drained = other.drain(5000);
  await new Promise((r) => setTimeout(r, 10));
  await inflight;
  expect(steps).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  await drained;
  // watchers heard NOT_SERVING before their stream was closed
  await watchEnded;
  const { SERVING, NOT_SERVING } = g.health.v1.HealthCheckResponse_ServingStatus;
  expect(statuses).toEqual([SERVING, NOT_SERVING]);
  const refused = await unary(h.check.bind(h), { service: '' }, { deadline: Date.now() + 1000 }).catch((e: grpc.ServiceError) => e);
  expect((refused as grpc.ServiceError).code).toBe(grpc.status.UNAVAILABLE);
  c.close();
  h.close();
  await other.stop();
});

test('a VersionCache pins the version a request started with; newer versions are loaded beside it', async () => {
  const disposed: number[] = [];
  let latest = 0;
  const cache = new VersionCache<{ v: number }>({
    latest: async () => latest,
    load: async (v) => {
      if (v > latest) throw new RpcError(grpc.status.NOT_FOUND, `no version ${v}`);
      return { v };
    },
    dispose: (_x, v) => disposed.push(v),
    keep: 0,
  });
  await cache.refresh();
  const inflight = await cache.acquire();
  expect(inflight.version).toBe(0);
  latest = 1;
  await cache.announce(1);
  expect(cache.latest).toBe(1);
  expect((await cache.acquire()).version).toBe(1);
  // the old version stays loaded while pinned, and is evicted once released
  expect(inflight.value).toEqual({ v: 0 });
  expect(disposed).toEqual([]);
  inflight.release();
  await new Promise((r) => setImmediate(r));
  expect(disposed).toEqual([0]);
  // a version committed but not yet announced is found in the museum
  latest = 2;
  expect((await cache.acquire(2)).version).toBe(2);
  await expect(cache.acquire(5)).rejects.toMatchObject({ code: grpc.status.NOT_FOUND });
  await cache.close();
});

test('clients spread calls round-robin over every address a target resolves to (replicas behind one name)', async () => {
  const a = new FakeService({});
  const b = new FakeService({});
  const pa = await a.start();
  const pb = await b.start();
  await Promise.all([a.ready, b.ready]);
  const c = new museum.v1.TextEncoderServiceClient(`ipv4:127.0.0.1:${pa},127.0.0.1:${pb}`, creds, clientOptions());
  try {
    for (let i = 0; i < 12; i++) await unary(c.encode.bind(c), { prompts: ['x'], museumVersion: 0 });
    expect(a.encodeCalls + b.encodeCalls).toBe(12);
    expect(a.encodeCalls).toBeGreaterThanOrEqual(4);
    expect(b.encodeCalls).toBeGreaterThanOrEqual(4);
  } finally {
    c.close();
    await Promise.all([a.stop(1000), b.stop(1000)]);
  }
});
