/** Shared setup of the experiment scripts (development tools, not part of the product). */
import * as fs from 'fs';
import * as path from 'path';
import { HEAD_FILE, versionName } from '@museum/museum';

/**
 * Copy the museum at `src` into `dir/museum` with its head set to `version`, so an experiment can continue it
 * from there (e.g. a benchmark's museum after task 3) without touching the original; the copy's later version
 * folders are dropped when it is opened. Returns the copy's folder.
 */
export function copyMuseumAt(src: string, version: number, dir: string): string {
  const dst = path.join(dir, 'museum');
  fs.cpSync(path.resolve(src), dst, { recursive: true });
  fs.writeFileSync(path.join(dst, HEAD_FILE), `${versionName(version)}\n`);
  return dst;
}
