import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { initBackend } from '@museum/tensor';
import { startStack, removeTinyModelDir, type Stack } from './stack';

// Debian's interpreter: the python3-grpcio / python3-grpc-tools packages live there (.ci/run installs them).
const PYTHON = '/usr/bin/python3';
const root = path.resolve(__dirname, '../../..');
// The folder holding grpc/reflection/v1alpha/reflection.proto (shipped by @grpc/reflection).
const reflectionProtoDir = path.resolve(require.resolve('@grpc/reflection/build/proto/grpc/reflection/v1alpha/reflection.proto'), '../../../..');

function pythonHasGrpc(): boolean {
  if (!fs.existsSync(PYTHON)) return false;
  return spawnSync(PYTHON, ['-c', 'import grpc, grpc_tools'], { encoding: 'utf8' }).status === 0;
}

let stack: Stack;

beforeAll(async () => {
  await initBackend({ log: () => {} });
  stack = await startStack();
  await stack.gateway.ready;
});

afterAll(async () => {
  await stack?.stop();
  removeTinyModelDir();
});

test('an independent Python grpcio client: health, reflection listing and one Generate', async () => {
  if (!pythonHasGrpc()) {
    // Never silently pass in CI, where .ci/run installs the packages.
    if (process.env.CI) throw new Error('python3-grpcio / python3-grpc-tools are not installed for /usr/bin/python3');
    console.warn('skipping: apt-get install python3-grpcio python3-grpc-tools');
    return;
  }
  const script = path.join(__dirname, '../interop/python_client.py');
  // Run asynchronously: the gateway serves from this same process.
  const { spawn } = await import('node:child_process');
  const child = spawn(PYTHON, [script, stack.addr.gateway, path.join(root, 'proto'), reflectionProtoDir], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  if (code !== 0) throw new Error(`python client failed (${code}): ${err}\n${out}`);
  const seen = JSON.parse(out.trim().split('\n').pop()!);
  expect(seen.health).toBe('SERVING');
  expect(seen.services).toEqual(expect.arrayContaining(['museum.v1.GatewayService', 'grpc.health.v1.Health']));
  expect(seen.progress_events).toBeGreaterThan(0);
  expect(seen.png_bytes).toBeGreaterThan(8);
});
