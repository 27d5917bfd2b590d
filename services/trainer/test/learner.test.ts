import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { initBackend, pngFromRgbBytes, tf } from '@museum/tensor';
import { museum } from '@museum/proto';
import { Museum, isMuseumError } from '@museum/museum';
import { unary, writeTinyPipelineFolder } from '@museum/rpc';
import { TrainerServer, WorkerLearner, isFinal } from '../src';

const S = museum.v1.JobState;
let tmp: string;
let modelDir: string;
let png: Buffer;

beforeAll(async () => {
  await initBackend({ log: () => {} });
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'museum-learner-'));
  modelDir = path.join(tmp, 'model');
  writeTinyPipelineFolder(modelDir);
  png = await pngFromRgbBytes(new Uint8Array(16 * 16 * 3).map((_, i) => (i % 5) * 50), 16, 16);
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

async function waitUntil(cond: () => boolean, ms = 60_000): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('training runs in the learner thread: the service thread holds no training tensors and keeps answering RPCs', async () => {
  const museumDir = path.join(tmp, 'museum-a');
  const trainer = new TrainerServer({ modelDir, museumDir, learn: { batchSize: 1, featRegBatch: 1, rank: 2, alpha: 2, warmup: 0 } });
  const port = await trainer.start();
  await trainer.ready;
  const client = new museum.v1.TrainerServiceClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  try {
    const before = tf.memory().numTensors;
    const { jobId } = await unary(client.learnStyle.bind(client), museum.v1.LearnStyleRequest.fromPartial({ name: 'dots', images: [png], options: { steps: 3000, seed: 1, captions: [] } }));
    await waitUntil(() => trainer.jobs.get(jobId)!.status.step >= 2);
    // in-process training would hold the LoRA, the task token and the optimiser state here
    expect(tf.memory().numTensors).toBe(before);
    // RPCs are served between the learner's steps (the job is still running when they answer)
    const styles = await unary(client.listStyles.bind(client), {});
    expect(styles.museumVersion).toBe(0);
    const stepBefore = trainer.jobs.get(jobId)!.status.step;
    await waitUntil(() => trainer.jobs.get(jobId)!.status.step > stepBefore);
    expect(trainer.jobs.get(jobId)!.status.state).toBe(S.JOB_STATE_RUNNING);
    // cancellation crosses to the thread and stops it between steps
    const res = await unary(client.cancelJob.bind(client), { jobId });
    expect(res.status?.state).toBe(S.JOB_STATE_CANCELLED);
    expect(res.status!.step).toBeLessThan(3000);
    expect(Museum.open(museumDir).latestVersion()).toBe(0);
    // and the thread takes the next job: it commits, and the service thread's store sees the version
    const next = await unary(client.learnStyle.bind(client), museum.v1.LearnStyleRequest.fromPartial({ name: 'dots', images: [png], options: { steps: 2, seed: 1, captions: [] } }));
    await waitUntil(() => isFinal(trainer.jobs.get(next.jobId)!.status));
    expect(trainer.jobs.get(next.jobId)!.status).toMatchObject({ state: S.JOB_STATE_SUCCEEDED, museumVersion: 1 });
    expect(trainer.museum.listStyles().map((s) => s.name)).toEqual(['dots']);
    expect(tf.memory().numTensors).toBe(before);
  } finally {
    client.close();
    await trainer.stop();
  }
});

test('museum errors keep their code across the thread boundary; a learner that cannot load says why', async () => {
  const museumDir = path.join(tmp, 'museum-b');
  Museum.create(museumDir, { baseModelDir: modelDir });
  const learner = new WorkerLearner({ modelDir, museumDir, settings: { batchSize: 1, featRegBatch: 1, rank: 2, alpha: 2, warmup: 0, steps: 1 } });
  try {
    await learner.ready;
    const bad = await learner.learn({ style: 'Not A Name', images: [png], seed: 0 }, new AbortController().signal, () => {}).catch((e: unknown) => e);
    expect(isMuseumError(bad, 'INVALID_ARGUMENT')).toBe(true);
    const aborted = new AbortController();
    aborted.abort();
    const cancelled = await learner.learn({ style: 'late', images: [png], seed: 0 }, aborted.signal, () => {}).catch((e: unknown) => e);
    expect(isMuseumError(cancelled, 'CANCELLED')).toBe(true);
    expect((cancelled as Error).name).toBe('AbortError');
  } finally {
    await learner.close();
  }
  const broken = new WorkerLearner({ modelDir: path.join(tmp, 'no-model-here'), museumDir });
  await expect(broken.ready).rejects.toThrow(/no-model-here/);
  await expect(broken.learn({ style: 'x', images: [png], seed: 0 }, new AbortController().signal, () => {})).rejects.toThrow(/no-model-here/);
  await broken.close();
});
