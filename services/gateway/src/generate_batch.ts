/**
 * GatewayService.GenerateBatch: every item is checked before any work starts, then the items run
 * concurrently (bounded), so the denoiser batches their steps; events carry the item's index. The
 * first failing item cancels the others and its status (naming `items[i]`) ends the call.
 */
import { museum } from '@museum/proto';
import { invalidArgument } from '@museum/rpc';
import { generateOne, planGeneration, type GenerateContext } from './pipeline';

export async function generateBatch(
  req: museum.v1.GenerateBatchRequest,
  ctx: Omit<GenerateContext, 'field'>,
  write: (msg: museum.v1.GenerateBatchResponse) => void,
  concurrency: number,
): Promise<void> {
  const items = req.items ?? [];
  if (items.length === 0) throw invalidArgument('items', 'at least one item is needed');
  if (items.length > ctx.limits.maxPrompts) throw invalidArgument('items', `${items.length} items, at most ${ctx.limits.maxPrompts} per call`);
  const plans = items.map((item, i) => planGeneration(item, ctx.limits, `items[${i}].`));

  const ctl = new AbortController();
  const onAbort = () => ctl.abort(ctx.signal.reason);
  ctx.signal.addEventListener('abort', onAbort, { once: true });
  let next = 0;
  const worker = async () => {
    while (next < plans.length && !ctl.signal.aborted) {
      const index = next++;
      await generateOne(plans[index], { ...ctx, signal: ctl.signal, field: `items[${index}].` }, (ev) =>
        write(ev.$case === 'progress' ? { index, event: { $case: 'progress', value: ev.value } } : { index, event: { $case: 'image', value: ev.value } }),
      );
    }
  };
  try {
    const workers = Array.from({ length: Math.min(concurrency, plans.length) }, () =>
      worker().catch((err: unknown) => {
        ctl.abort(err);
        throw err;
      }),
    );
    const results = await Promise.allSettled(workers);
    // report the first real failure, not the cancellations it caused
    const failures = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => r.reason as unknown);
    const first = failures.find((e) => !(e instanceof Error && (e.name === 'AbortError' || /cancel/i.test(e.message)))) ?? failures[0];
    if (first !== undefined) throw first;
  } finally {
    ctx.signal.removeEventListener('abort', onAbort);
  }
}
