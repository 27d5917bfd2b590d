#!/usr/bin/env node
/**
 * Generates the TypeScript gRPC code from proto/ into libs/proto/src/gen (committed).
 *
 *   node scripts/proto.js          clean libs/proto/src/gen and regenerate it
 *   node scripts/proto.js --check  generate into a temp dir and fail if the committed code is stale
 *
 * Runs `buf lint` first, then `buf generate proto --template proto/buf.gen.yaml` with the local
 * ts-proto plugin: no remote plugins, no BSR, no network.
 */
'use strict';

const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const genRel = path.join('libs', 'proto', 'src', 'gen');
const genDir = path.join(root, genRel);
const template = path.join('proto', 'buf.gen.yaml');

function resolveBuf() {
  const local = path.join(root, 'node_modules', '.bin', process.platform === 'win32' ? 'buf.cmd' : 'buf');
  if (fs.existsSync(local)) return local;
  return 'buf';
}

function run(args) {
  const r = spawnSync(resolveBuf(), args, { cwd: root, stdio: 'inherit' });
  if (r.error) throw r.error;
  if (r.status !== 0) {
    console.error(`proto: \`buf ${args.join(' ')}\` failed (exit ${r.status})`);
    process.exit(r.status || 1);
  }
}

/** Relative paths of all files under dir, sorted. */
function listFiles(dir) {
  const out = [];
  const walk = (d) => {
    if (!fs.existsSync(d)) return;
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(path.relative(dir, p).split(path.sep).join('/'));
    }
  };
  walk(dir);
  return out.sort();
}

/** Generate into `base`/libs/proto/src/gen (buf's -o sets the base the template's `out` is relative to). */
function generate(base) {
  run(['lint', 'proto']);
  const args = ['generate', 'proto', '--template', template];
  if (base !== root) args.push('-o', base);
  run(args);
}

function main() {
  const check = process.argv.includes('--check');
  if (!check) {
    fs.rmSync(genDir, { recursive: true, force: true });
    generate(root);
    console.log(`proto: generated ${listFiles(genDir).length} files into ${genRel}`);
    return;
  }

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'museum-proto-'));
  try {
    generate(tmp);
    const fresh = path.join(tmp, genRel);
    const want = listFiles(fresh);
    const have = listFiles(genDir);
    const problems = [];
    for (const f of want) {
      if (!have.includes(f)) problems.push(`missing: ${genRel}/${f}`);
      else if (!fs.readFileSync(path.join(fresh, f)).equals(fs.readFileSync(path.join(genDir, f)))) {
        problems.push(`differs: ${genRel}/${f}`);
      }
    }
    for (const f of have) if (!want.includes(f)) problems.push(`extra:   ${genRel}/${f}`);
    if (problems.length > 0) {
      console.error(`proto: generated code is stale (${problems.length} file(s)):`);
      for (const p of problems) console.error(`  ${p}`);
      console.error('proto: run `npm run proto` and commit libs/proto/src/gen');
      process.exit(1);
    }
    console.log(`proto: ${genRel} is up to date (${want.length} files)`);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main();
