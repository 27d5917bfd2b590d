/**
 * Re-measures the shipped instruments' held-out accuracy on the world as it renders now (same held-out
 * stream: count and seed from each instrument's training record), next to what was recorded when they
 * were trained. Run it after any change to a rendering:
 *
 *   node -r ./scripts/ts-register.js scripts/eval_instruments.ts bench/results/instruments-reeval.json
 */
import * as fs from 'fs';
import { initBackend } from '@museum/tensor';
import { evaluateInstrument, loadInstruments, disposeInstruments, INSTRUMENT_KINDS } from '@museum/instruments';

async function main(): Promise<void> {
  const [jsonOut] = process.argv.slice(2);
  if (!jsonOut) throw new Error('usage: eval_instruments.ts OUT.json');
  await initBackend({ log: () => {} });
  const inst = loadInstruments();
  const report: Record<string, unknown> = {};
  try {
    for (const kind of INSTRUMENT_KINDS) {
      const clf = inst[kind];
      const recorded = clf.record?.heldout;
      // The recorded stream when there is one, else evaluateInstrument's default stream.
      const now = evaluateInstrument(clf, { count: recorded?.count, seed: recorded?.seed });
      const degraded = evaluateInstrument(clf, { count: now.count, seed: now.seed, degraded: true });
      report[kind] = {
        heldout_count: now.count,
        heldout_seed: now.seed,
        recorded_accuracy: recorded?.accuracy ?? null,
        accuracy: now.accuracy,
        recorded_degraded_accuracy: clf.record?.heldout_degraded?.accuracy ?? null,
        degraded_accuracy: degraded.accuracy,
        recorded_per_style_accuracy: recorded?.per_style_accuracy ?? null,
        per_style_accuracy: now.per_style_accuracy,
        per_class_accuracy: now.per_class_accuracy,
        confusion: now.confusion,
        classes: clf.classes,
      };
      process.stderr.write(`[${kind}] held-out ${(100 * now.accuracy).toFixed(2)}% now, ${recorded ? (100 * recorded.accuracy).toFixed(2) + '% recorded' : 'none recorded'}\n`);
    }
  } finally {
    disposeInstruments(inst);
  }
  const out = { instruments: report, command: `node -r ./scripts/ts-register.js scripts/eval_instruments.ts ${jsonOut}`, date: new Date().toISOString() };
  fs.writeFileSync(jsonOut, JSON.stringify(out, null, 2) + '\n');
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
