/**
 * Lets a plain Node process (e.g. a worker thread spawned by a test) run the project's TypeScript
 * sources directly: compiles .ts with swc on require and maps `@museum/<lib>` to libs/<lib>/src.
 * Only for tests and development; production runs the compiled dist/.
 */
const path = require('path');
const Module = require('module');
const { transformSync } = require('@swc/core');
const fs = require('fs');

const root = path.resolve(__dirname, '..');
const origResolve = Module._resolveFilename;
Module._resolveFilename = function (request, parent, ...rest) {
  const m = /^@museum\/([a-z-]+)$/.exec(request);
  if (m) {
    // Libraries live in libs/, services in services/ (both are `@museum/<folder>`).
    const lib = path.join(root, 'libs', m[1], 'src', 'index.ts');
    return fs.existsSync(lib) ? lib : path.join(root, 'services', m[1], 'src', 'index.ts');
  }
  return origResolve.call(this, request, parent, ...rest);
};
require.extensions['.ts'] = function (mod, filename) {
  const src = fs.readFileSync(filename, 'utf8');
  const out = transformSync(src, {
    filename,
    jsc: { parser: { syntax: 'typescript' }, target: 'es2022' },
    module: { type: 'commonjs' },
    sourceMaps: 'inline',
  });
  mod._compile(out.code, filename);
};
