/**
 * A worker process of `museum bench continual --workers N`: runs one job it is sent over IPC (see
 * `runInWorker` in continual.ts), reports progress events back, and exits.
 */
import { initBackend } from '@museum/tensor';
import { runContinualJob, type WorkerReply, type WorkerRequest } from './continual';

function reply(m: WorkerReply): Promise<void> {
  return new Promise((resolve) => (process.send ? process.send(m, () => resolve()) : resolve()));
}

// The coordinator gone (killed, crashed) closes the IPC channel: stop too, instead of training on as an orphan.
process.once('disconnect', () => process.exit(1));

process.once('message', (m: WorkerRequest) => {
  void (async () => {
    try {
      if (m.type !== 'run') throw new Error(`unexpected message ${JSON.stringify(m)}`);
      await initBackend({ log: () => {} });
      await runContinualJob(m.config, m.workDir, m.job, (event) => void reply({ type: 'event', event }));
      await reply({ type: 'done' });
      process.exit(0);
    } catch (err) {
      await reply({ type: 'error', message: err instanceof Error ? (err.stack ?? err.message) : String(err) });
      process.exit(1);
    }
  })();
});
