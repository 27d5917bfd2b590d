#!/usr/bin/env node
// Committed launcher so that `npm ci` links the `museum` bin even before the first build.
try {
  require('../dist/main.js');
} catch (err) {
  if (err && err.code === 'MODULE_NOT_FOUND' && /dist[\\/]main\.js/.test(String(err.message))) {
    console.error('museum: not built yet — run `npm run build` first');
    process.exit(1);
  }
  throw err;
}
