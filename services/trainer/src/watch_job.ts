/** TrainerService.WatchJob: the job's status now, then each change, ending after the final state. */
import type { museum } from '@museum/proto';
import { notFound } from '@museum/rpc';
import { isFinal, type JobQueue } from './jobs';

/** `closing` ends the stream early when the service drains. */
export function watchJob(
  req: museum.v1.WatchJobRequest,
  jobs: JobQueue,
  signal: AbortSignal,
  write: (msg: museum.v1.WatchJobResponse) => void,
  closing: AbortSignal,
): Promise<void> {
  if (!jobs.get(req.jobId)) return Promise.reject(notFound(`job_id: no job ${JSON.stringify(req.jobId)}`));
  return new Promise<void>((resolve) => {
    let unsubscribe: (() => void) | null = null;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      unsubscribe?.();
      signal.removeEventListener('abort', finish);
      closing.removeEventListener('abort', finish);
      resolve();
    };
    // the first call comes synchronously, with the current status
    unsubscribe = jobs.watch(req.jobId, (status) => {
      if (done) return;
      write({ status });
      if (isFinal(status)) queueMicrotask(finish);
    });
    if (done) unsubscribe();
    signal.addEventListener('abort', finish, { once: true });
    closing.addEventListener('abort', finish, { once: true });
  });
}
