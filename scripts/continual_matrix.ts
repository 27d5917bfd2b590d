/**
 * Accuracy matrices of several continual-benchmark reports side by side (one block per LABEL=FILE#METHOD),
 * e.g. the same method run with different training seeds:
 *
 *   node -r ./scripts/ts-register.js scripts/continual_matrix.ts OUT.png 'seed 0=bench/results/continual.json#museummaker' ...
 *
 * `--matrix` of `museum bench continual` draws the methods of one run; this draws blocks from several runs.
 */
import * as fs from 'fs';
import { continualMatrixPng, type ContinualBenchResult } from '@museum/bench';

function main(): void {
  const [out, ...specs] = process.argv.slice(2);
  if (!out || specs.length === 0) throw new Error('usage: continual_matrix.ts OUT.png LABEL=FILE#METHOD...');
  let first: ContinualBenchResult | null = null;
  const methods: ContinualBenchResult['methods'] = {};
  for (const spec of specs) {
    const m = /^([^=]+)=([^#]+)#(.+)$/.exec(spec);
    if (!m) throw new Error(`expected LABEL=FILE#METHOD, got '${spec}'`);
    const [, label, file, method] = m;
    const report = JSON.parse(fs.readFileSync(file, 'utf8')) as ContinualBenchResult;
    const rep = report.methods[method];
    if (!rep) throw new Error(`${file} has no method ${method}`);
    first ??= report;
    methods[label] = rep;
  }
  fs.writeFileSync(out, continualMatrixPng({ ...first!, methods }));
}

main();
