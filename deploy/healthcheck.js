#!/usr/bin/env node
// Container health check (docker compose): grpc.health.v1.Health/Check of the whole server ("")
// at ADDRESS (default 127.0.0.1:$PORT). Exit 0 when SERVING, 1 otherwise (loading, draining, down).
// Kubernetes does not need this: its probes speak gRPC health natively (`grpc:`).
'use strict';
const { grpc: g } = require('../libs/proto/dist');
const grpc = require('@grpc/grpc-js');

const address = process.argv[2] || `127.0.0.1:${process.env.PORT || 50051}`;
const client = new g.health.v1.HealthClient(address, grpc.credentials.createInsecure());
client.check({ service: '' }, new grpc.Metadata(), { deadline: Date.now() + 3000 }, (err, res) => {
  const serving = !err && res.status === g.health.v1.HealthCheckResponse_ServingStatus.SERVING;
  if (!serving) process.stderr.write(`${address}: ${err ? err.message : `status ${res.status}`}\n`);
  client.close();
  process.exit(serving ? 0 : 1);
});
