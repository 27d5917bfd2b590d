import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { initBackend, tf } from '@museum/tensor';
import { readCheckpointState, readCheckpointTensors, writeCheckpoint } from '@museum/atelier';

beforeAll(() => initBackend({ log: () => {} }));

test('checkpoints keep weights exactly and optimizer moments to bfloat16 precision without underflow', () => {
  const dir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'atelier-ckpt-')), 'stage');
  const w = tf.tensor1d([0.1, -2.5, 3.14159265]);
  const moments = tf.tensor1d([1e-30, 3e-12, 0.123456, -7.77]);
  const state = { stage: 'vae', step: 7, totalSteps: 10, seed: 1, lossHistory: [[7, 0.5]] as Array<[number, number]>, imagesSeen: 70, trainSeconds: 1 };
  writeCheckpoint(dir, { weights: new Map([['m.w', w]]), optimizer: new Map([['m', moments]]), state });
  const back = readCheckpointTensors(dir, 'weights')!;
  expect(Array.from(back.get('m.w')!.dataSync())).toEqual(Array.from(w.dataSync()));
  const opt = readCheckpointTensors(dir, 'optimizer')!.get('m')!;
  const a = moments.dataSync();
  const b = opt.dataSync();
  for (let i = 0; i < a.length; i++) {
    expect(b[i]).not.toBe(0);
    expect(Math.abs(b[i] - a[i]) / Math.abs(a[i])).toBeLessThan(1 / 128);
  }
  expect(readCheckpointState(dir)?.step).toBe(7);
  // Rewriting replaces the folder whole (no temporary or old copies left beside it).
  writeCheckpoint(dir, { weights: new Map([['m.w', w]]), state: { ...state, step: 8 } });
  expect(readCheckpointState(dir)?.step).toBe(8);
  expect(fs.readdirSync(path.dirname(dir))).toEqual(['stage']);
  tf.dispose([w, moments, opt, ...back.values()]);
});
