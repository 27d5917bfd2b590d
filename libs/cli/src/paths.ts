import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * The monorepo root: the nearest folder above `from` whose package.json declares workspaces.
 * Works from libs/cli/src (tests) and libs/cli/dist (built CLI) alike; falls back to the cwd.
 */
export function findRepoRoot(from: string = __dirname): string {
  let dir = path.resolve(from);
  for (;;) {
    const pkg = path.join(dir, 'package.json');
    if (fs.existsSync(pkg)) {
      try {
        if (JSON.parse(fs.readFileSync(pkg, 'utf8')).workspaces) return dir;
      } catch {
        // unreadable package.json: keep walking up
      }
    }
    const parent = path.dirname(dir);
    if (parent === dir) return process.cwd();
    dir = parent;
  }
}

/** Version of the Museum release (the root package.json). */
export function museumVersion(root: string = findRepoRoot()): string {
  try {
    return String(JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')).version ?? 'unknown');
  } catch {
    return 'unknown';
  }
}

/** Folder holding the project's models: $MUSEUM_MODEL_DIR, else `<repo>/models`. */
export function modelsDir(env: NodeJS.ProcessEnv = process.env, root: string = findRepoRoot()): string {
  return path.resolve(env.MUSEUM_MODEL_DIR || path.join(root, 'models'));
}

/** The Atelier base model (diffusers layout: model_index.json plus one folder per component). */
export function atelierDir(env: NodeJS.ProcessEnv = process.env, root: string = findRepoRoot()): string {
  return path.join(modelsDir(env, root), 'atelier');
}
