/**
 * Where a worker script (thread or child process) beside the calling module is, and how Node must
 * run it: compiled `.js` as is; TypeScript sources (tests, development) through the repository's
 * swc hook `scripts/ts-register.js`, found by walking up from the caller.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface WorkerScript {
  file: string;
  execArgv: string[];
}

/** `callerFile` is the caller's `__filename`; `name` the script's base name without extension. */
export function workerScript(callerFile: string, name: string): WorkerScript {
  const dir = path.dirname(callerFile);
  const ts = callerFile.endsWith('.ts');
  const file = path.join(dir, `${name}${ts ? '.ts' : '.js'}`);
  if (!ts) return { file, execArgv: [] };
  for (let d = dir; ; d = path.dirname(d)) {
    const hook = path.join(d, 'scripts', 'ts-register.js');
    if (fs.existsSync(hook)) return { file, execArgv: ['-r', hook] };
    if (path.dirname(d) === d) throw new Error(`cannot find scripts/ts-register.js to run ${file} from TypeScript sources`);
  }
}
