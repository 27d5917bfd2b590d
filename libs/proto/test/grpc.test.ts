import * as grpc from '@grpc/grpc-js';
import { grpc as grpcPkg, museum } from '@museum/proto';

/** The generated grpc-js service/client pair works end to end on loopback. */
test('InfoService and Health generated stubs talk over a real grpc-js channel', async () => {
  const server = new grpc.Server();
  const info: museum.v1.InfoServiceServer = {
    getInfo: (_call, cb) =>
      cb(null, { service: 'test', version: '1.2.3', museumVersion: '0.1.0', backend: 'wasm', backendPackage: '@tensorflow/tfjs-backend-wasm' }),
  };
  const { HealthCheckResponse_ServingStatus: Status } = grpcPkg.health.v1;
  const health: grpcPkg.health.v1.HealthServer = {
    check: (call, cb) => {
      if (call.request.service === '' || call.request.service === 'museum.v1.InfoService') cb(null, { status: Status.SERVING });
      else cb({ code: grpc.status.NOT_FOUND, details: `unknown service ${call.request.service}` });
    },
    list: (_call, cb) => cb(null, { statuses: { '': { status: Status.SERVING } } }),
    watch: (call) => {
      call.write({ status: Status.SERVING });
      call.end();
    },
  };
  server.addService(museum.v1.InfoServiceService, info);
  server.addService(grpcPkg.health.v1.HealthService, health);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  const addr = `127.0.0.1:${port}`;
  const infoClient = new museum.v1.InfoServiceClient(addr, grpc.credentials.createInsecure());
  const healthClient = new grpcPkg.health.v1.HealthClient(addr, grpc.credentials.createInsecure());
  try {
    const got = await new Promise<museum.v1.GetInfoResponse>((resolve, reject) =>
      infoClient.getInfo({}, (err, res) => (err ? reject(err) : resolve(res))),
    );
    expect(got).toEqual({ service: 'test', version: '1.2.3', museumVersion: '0.1.0', backend: 'wasm', backendPackage: '@tensorflow/tfjs-backend-wasm' });

    const ok = await new Promise<grpcPkg.health.v1.HealthCheckResponse>((resolve, reject) =>
      healthClient.check({ service: '' }, (err, res) => (err ? reject(err) : resolve(res))),
    );
    expect(ok.status).toBe(Status.SERVING);
    const missing = await new Promise<grpc.ServiceError>((resolve, reject) =>
      healthClient.check({ service: 'nope' }, (err) => (err ? resolve(err) : reject(new Error('expected NOT_FOUND')))),
    );
    expect(missing.code).toBe(grpc.status.NOT_FOUND);
    const listed = await new Promise<grpcPkg.health.v1.HealthListResponse>((resolve, reject) =>
      healthClient.list({}, (err, res) => (err ? reject(err) : resolve(res))),
    );
    expect(listed.statuses['']?.status).toBe(Status.SERVING);
  } finally {
    infoClient.close();
    healthClient.close();
    await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
  }
});
