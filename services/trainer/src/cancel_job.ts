/** TrainerService.CancelJob: a queued job is dropped at once, a running one stops between two steps (nothing is committed). */
import type { museum } from '@museum/proto';
import { notFound } from '@museum/rpc';
import type { JobQueue } from './jobs';

export async function cancelJob(req: museum.v1.CancelJobRequest, jobs: JobQueue): Promise<museum.v1.CancelJobResponse> {
  if (!jobs.get(req.jobId)) throw notFound(`job_id: no job ${JSON.stringify(req.jobId)}`);
  return { status: await jobs.cancel(req.jobId) };
}
