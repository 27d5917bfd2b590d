/**
 * `npm run deploy:validate`: validate deploy/ offline (schemas + cross-checks, see index.ts), then
 * run the negative controls (every known breakage must be reported). Exit 1 on any finding or
 * missed breakage.
 */
import { deployDir, loadDeploy, missedMutations, validateDeploy, MUTATIONS } from './index';

function main(): number {
  const dir = process.argv[2] ?? deployDir();
  const report = validateDeploy(loadDeploy(dir));
  for (const f of report.findings) process.stdout.write(`✗ ${f.object}: ${f.message}\n    (${f.file})\n`);
  process.stdout.write(`deploy: ${Object.entries(report.counts).map(([k, v]) => `${v} ${k}`).join(', ')}; ${report.findings.length} finding(s)\n`);
  const missed = missedMutations(dir);
  for (const m of missed) process.stdout.write(`✗ negative control not caught: ${m}\n`);
  const total = Object.keys(MUTATIONS).length;
  process.stdout.write(`negative controls: ${total - missed.length}/${total} breakages caught\n`);
  const ok = report.findings.length === 0 && missed.length === 0;
  process.stdout.write(ok ? 'deploy: valid\n' : 'deploy: INVALID\n');
  return ok ? 0 : 1;
}

process.exitCode = main();
