import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { initBackend, pngFromRgbBytes } from '@museum/tensor';
import { museum } from '@museum/proto';
import { serverStream, unary, writeTinyPipelineFolder } from '@museum/rpc';
import { JobJournal, JobQueue, TrainerServer, isFinal, jobJournalDir, type JobStatus } from '../src';

const S = museum.v1.JobState;
let tmp: string;

beforeAll(async () => {
  await initBackend({ log: () => {} });
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'museum-journal-'));
});
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

async function settled(q: JobQueue, id: string): Promise<JobStatus> {
  await q.idle();
  return { ...q.get(id)!.status };
}

/** A record as a trainer killed mid-job leaves it (written by the journal itself, then never updated). */
function crashedRecord(dir: string, jobId: string, style: string): void {
  new JobJournal(dir).record({ jobId, style, state: S.JOB_STATE_RUNNING, step: 5, totalSteps: 400, loss: 0.1, museumVersion: 0, error: '' });
}

test('job states survive a new queue on the same journal; interrupted jobs are settled, bad records skipped', async () => {
  const dir = path.join(tmp, 'unit');
  const journal = new JobJournal(dir);
  const q1 = new JobQueue(async (job) => {
    if (job.spec.style === 'broken') throw new Error('no luck');
    return 7;
  }, { journal });
  const ok = q1.submit({ style: 'dots', images: [Buffer.from('x')], seed: 1 });
  const bad = q1.submit({ style: 'broken', images: [Buffer.from('x')], seed: 1 });
  expect((await settled(q1, ok.status.jobId)).state).toBe(S.JOB_STATE_SUCCEEDED);
  expect((await settled(q1, bad.status.jobId)).state).toBe(S.JOB_STATE_FAILED);

  crashedRecord(dir, 'job-00000000-0000-4000-8000-000000000001', 'lost');
  crashedRecord(dir, 'job-00000000-0000-4000-8000-000000000002', 'made-it');
  fs.writeFileSync(path.join(dir, 'job-00000000-0000-4000-8000-000000000003.json'), '{"status": ');
  const logs: string[] = [];
  let ran = 0;
  const q2 = new JobQueue(async () => ++ran, {
    journal: new JobJournal(dir),
    log: (m) => logs.push(m),
    settleInterrupted: (s) => (s.style === 'made-it' ? { state: S.JOB_STATE_SUCCEEDED, museumVersion: 3 } : { state: S.JOB_STATE_FAILED, error: 'interrupted' }),
  });
  expect(q2.get(ok.status.jobId)!.status).toEqual({ ...ok.status, state: S.JOB_STATE_SUCCEEDED, museumVersion: 7 });
  expect(q2.get(bad.status.jobId)!.status).toMatchObject({ state: S.JOB_STATE_FAILED, error: 'no luck' });
  expect(q2.get('job-00000000-0000-4000-8000-000000000001')!.status).toMatchObject({ style: 'lost', state: S.JOB_STATE_FAILED, error: 'interrupted', step: 5 });
  expect(q2.get('job-00000000-0000-4000-8000-000000000002')!.status).toMatchObject({ style: 'made-it', state: S.JOB_STATE_SUCCEEDED, museumVersion: 3 });
  expect(logs).toEqual([expect.stringMatching(/skipped job record job-00000000-0000-4000-8000-000000000003\.json/)]);
  // recovered jobs are history: never run again, watchable, cancel answers their final status
  await q2.idle();
  expect(ran).toBe(0);
  expect(q2.activeStyles().size).toBe(0);
  const watched: JobStatus[] = [];
  q2.watch(ok.status.jobId, (s) => watched.push(s));
  expect(watched.map((s) => s.state)).toEqual([S.JOB_STATE_SUCCEEDED]);
  expect((await q2.cancel(ok.status.jobId)).state).toBe(S.JOB_STATE_SUCCEEDED);
  // the settlement was written back: a third queue sees it without settling again
  const q3 = new JobQueue(async () => 0, { journal: new JobJournal(dir), settleInterrupted: () => ({ state: S.JOB_STATE_CANCELLED }) });
  expect(q3.get('job-00000000-0000-4000-8000-000000000001')!.status.state).toBe(S.JOB_STATE_FAILED);
});

test('the journal keeps only the newest finished jobs of the history bound', async () => {
  const dir = path.join(tmp, 'bounded');
  const q = new JobQueue(async () => 1, { journal: new JobJournal(dir), history: 2 });
  const ids: string[] = [];
  for (let i = 0; i < 4; i++) {
    const j = q.submit({ style: `s${i}`, images: [], seed: 0 });
    ids.push(j.status.jobId);
    await settled(q, j.status.jobId);
  }
  // trimming runs on submit: the newest 2 finished jobs before the 4th submit, plus the 4th
  const files = fs.readdirSync(dir).sort();
  expect(files).toEqual(ids.slice(1).map((id) => `${id}.json`).sort());
  expect(q.get(ids[0])).toBeUndefined();
});

test('a restarted trainer answers WatchJob and CancelJob for jobs of its previous run over gRPC', async () => {
  const modelDir = path.join(tmp, 'model');
  writeTinyPipelineFolder(modelDir);
  const museumDir = path.join(tmp, 'museum');
  const learn = { batchSize: 1, featRegBatch: 1, rank: 2, alpha: 2, warmup: 0 };
  const rgb = new Uint8Array(16 * 16 * 3).map((_, i) => (i % 7) * 40);
  const png = await pngFromRgbBytes(rgb, 16, 16);

  const first = new TrainerServer({ modelDir, museumDir, learn });
  const port1 = await first.start();
  await first.ready;
  const c1 = new museum.v1.TrainerServiceClient(`127.0.0.1:${port1}`, grpc.credentials.createInsecure());
  const { jobId } = await unary(c1.learnStyle.bind(c1), museum.v1.LearnStyleRequest.fromPartial({ name: 'dots', images: [png], options: { steps: 2, seed: 1, captions: [] } }));
  await waitUntil(() => isFinal(first.jobs.get(jobId)!.status));
  expect(first.jobs.get(jobId)!.status).toMatchObject({ state: S.JOB_STATE_SUCCEEDED, museumVersion: 1 });
  c1.close();
  await first.stop();

  // as a crash between the commit and the journal write leaves it, and a job lost before its commit
  const dir = jobJournalDir(museumDir);
  crashedRecord(dir, jobId, 'dots');
  const lostId = 'job-00000000-0000-4000-8000-00000000000a';
  crashedRecord(dir, lostId, 'never');

  const second = new TrainerServer({ modelDir, museumDir, learn });
  const port2 = await second.start();
  await second.ready;
  const c2 = new museum.v1.TrainerServiceClient(`127.0.0.1:${port2}`, grpc.credentials.createInsecure());
  try {
    const watch = async (id: string) => {
      const seen: JobStatus[] = [];
      for await (const m of serverStream(c2.watchJob.bind(c2), { jobId: id }, { deadline: Date.now() + 10_000 })) seen.push(m.status!);
      return seen;
    };
    const done = await watch(jobId);
    expect(done).toHaveLength(1);
    expect(done[0]).toMatchObject({ jobId, style: 'dots', state: S.JOB_STATE_SUCCEEDED, museumVersion: 1, error: '' });
    const lost = await watch(lostId);
    expect(lost[0]).toMatchObject({ style: 'never', state: S.JOB_STATE_FAILED, error: expect.stringMatching(/^interrupted: /) });
    expect((await unary(c2.cancelJob.bind(c2), { jobId })).status?.state).toBe(S.JOB_STATE_SUCCEEDED);
    const unknown = await unary(c2.cancelJob.bind(c2), { jobId: 'job-nope' }).catch((e: grpc.ServiceError) => e);
    expect((unknown as grpc.ServiceError).code).toBe(grpc.status.NOT_FOUND);
    // the journal is beside the versions, not in them: the museum is unchanged
    expect(second.museum.latestVersion()).toBe(1);
  } finally {
    c2.close();
    await second.stop();
  }
});

async function waitUntil(cond: () => boolean, ms = 60_000): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}
