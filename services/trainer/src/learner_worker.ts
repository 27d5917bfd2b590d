/**
 * The learner thread (see learner.ts): its own tensor backend, the base model loaded once, the
 * museum store opened on the same folder as the service (commits are serialised by the store's
 * lock file, and HEAD is read from disk, so the service sees each new version at once). One job at
 * a time; a `cancel` aborts between two steps (learnStyle yields to the event loop every step).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { initBackend } from '@museum/tensor';
import { StableDiffusionPipeline } from '@museum/models';
import { Museum, learnStyle, modelsFromPipeline } from '@museum/museum';
import { serializeError, toLearnOutcome, type FromWorker, type LearnerWorkerData, type ToWorker } from './learner';

async function main(port: NonNullable<typeof parentPort>, data: LearnerWorkerData): Promise<void> {
  const post = (m: FromWorker) => port.postMessage(m);
  await initBackend({ log: () => {} });
  const models = modelsFromPipeline(StableDiffusionPipeline.fromPretrained(data.modelDir));
  // the service thread verified the base model's hash when it opened the museum
  const museum = Museum.open(data.museumDir, { baseModelDir: data.modelDir, verifyBase: false });
  const aborts = new Map<number, AbortController>();
  let queue = Promise.resolve();
  port.on('message', (m: ToWorker) => {
    if (m.type === 'cancel') {
      aborts.get(m.id)?.abort();
      return;
    }
    const abort = new AbortController();
    aborts.set(m.id, abort);
    queue = queue.then(async () => {
      try {
        const r = await learnStyle(museum, m.req.style, m.req.images, {
          ...m.options,
          models,
          signal: abort.signal,
          onProgress: (progress) => post({ type: 'progress', id: m.id, progress }),
        });
        post({ type: 'done', id: m.id, outcome: toLearnOutcome(r) });
      } catch (err) {
        post({ type: 'error', id: m.id, error: serializeError(err) });
      } finally {
        aborts.delete(m.id);
      }
    });
  });
  post({ type: 'ready' });
}

const data = workerData as LearnerWorkerData | undefined;
if (parentPort && data?.museumLearner) {
  const port = parentPort;
  main(port, data).catch((err: unknown) => port.postMessage({ type: 'fatal', error: serializeError(err) } satisfies FromWorker));
}
