import { Worker } from 'worker_threads';
import * as path from 'path';
import { AllReducer, createAllReduceShared } from '@museum/training';

const register = path.resolve(__dirname, '../../../scripts/ts-register.js');

// Each worker contributes rank-dependent values for several rounds; every rank must see the same mean.
const workerCode = `
const { workerData, parentPort } = require('worker_threads');
require(workerData.register);
const { AllReducer } = require('@museum/training');
const r = new AllReducer(workerData.shared, workerData.rank, 20000);
const results = [];
for (let round = 0; round < 5; round++) {
  const v = new Float32Array(workerData.shared.length);
  for (let i = 0; i < v.length; i++) v[i] = (workerData.rank + 1) * (i + 1) + round;
  results.push(Array.from(r.mean(v)));
}
parentPort.postMessage(results);
`;

test('three workers agree on the mean over five rounds', async () => {
  const worldSize = 3;
  const shared = createAllReduceShared(7, worldSize);
  const outs = await Promise.all(
    Array.from({ length: worldSize }, (_, rank) =>
      new Promise<number[][]>((resolve, reject) => {
        const w = new Worker(workerCode, { eval: true, workerData: { shared, rank, register } });
        w.once('message', (m) => {
          resolve(m);
          void w.terminate();
        });
        w.once('error', reject);
      }),
    ),
  );
  for (let round = 0; round < 5; round++) {
    const expected = Array.from({ length: 7 }, (_, i) => ((1 + 2 + 3) * (i + 1)) / 3 + round);
    for (const o of outs) {
      o[round].forEach((x, i) => expect(x).toBeCloseTo(expected[i], 4));
    }
  }
});

test('a lone rank times out instead of hanging when its peer never arrives', () => {
  const shared = createAllReduceShared(2, 2);
  const r = new AllReducer(shared, 0, 300);
  expect(() => r.mean(new Float32Array(2))).toThrow(/timed out/);
});

test('wrong lengths and ranks are refused', () => {
  const shared = createAllReduceShared(2, 2);
  expect(() => new AllReducer(shared, 2)).toThrow(/rank/);
  expect(() => new AllReducer(shared, 0).mean(new Float32Array(3))).toThrow(/expected 2/);
  expect(() => createAllReduceShared(0, 2)).toThrow();
});
