/** `museum styles`: the styles of a museum version, as a table or JSON. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { Museum, type StyleRecord } from '@museum/museum';
import { museum as pb } from '@museum/proto';
import { museumDataDir } from './start';
import { formatRemoteStyles, remoteListStyles, trainerAddress } from './client';

export interface StylesOpts {
  museum?: string;
  version?: string;
  json?: boolean;
}

export interface StylesListing {
  museum: string;
  version: number;
  latest: number;
  method: string | null;
  base: string;
  /** Bytes of the version's files. */
  bytes: number;
  styles: StyleRecord[];
}

/** Parse `--version N` (a non-negative integer) or undefined for the latest. */
export function parseVersion(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!/^\d+$/.test(v.trim()) || !Number.isSafeInteger(n)) throw new InvalidArgumentError(`--version must be a non-negative integer, got ${JSON.stringify(v)}`);
  return n;
}

/** Open an existing museum, saying how to make one when there is none. */
export function openExistingMuseum(dir: string): Museum {
  const abs = path.resolve(dir);
  if (!fs.existsSync(path.join(abs, 'HEAD'))) throw new Error(`no museum at ${abs}: learn a style first with \`museum learn --name NAME --images DIR\` (or pass --museum DIR)`);
  return Museum.open(abs);
}

export function listStyles(o: StylesOpts, env: NodeJS.ProcessEnv = process.env): StylesListing {
  const museum = openExistingMuseum(o.museum ?? museumDataDir(env));
  const latest = museum.latestVersion();
  const m = museum.manifest(parseVersion(o.version));
  return { museum: museum.dir, version: m.version, latest, method: m.method, base: m.base.hash, bytes: m.bytes, styles: m.styles };
}

export function formatStyles(l: StylesListing): string {
  const head = [`museum ${l.museum}`, `version ${l.version} of ${l.latest}${l.method ? `, method ${l.method}` : ''}, ${(l.bytes / 1024).toFixed(1)} KB, base ${l.base.slice(0, 19)}…`];
  if (l.styles.length === 0) return [...head, 'no styles yet (version 0 is the base model)'].join('\n');
  const rows = l.styles.map((s) => [String(s.index), s.token, s.embedding.kind === 'word' ? `word "${s.embedding.word}"` : 'token', String(s.images.length), String(s.metrics.steps ?? '-'), s.trainSeconds.toFixed(1), String(s.version), s.createdAt]);
  const cols = ['#', 'style', 'embedding', 'images', 'steps', 'train s', 'added in', 'created'];
  const w = cols.map((c, i) => Math.max(c.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((c, i) => c.padEnd(w[i])).join('  ').trimEnd();
  return [...head, '', line(cols), ...rows.map(line)].join('\n');
}

export function registerStyles(program: Command): void {
  program
    .command('styles')
    .description('list the styles of a museum version')
    .option('--museum <dir>', 'museum store folder (default: $MUSEUM_DIR or <repo>/museum-data)')
    .option('--version <n>', 'the version to list (default: the latest)')
    .option('--json', 'print JSON (the version manifest’s style records)')
    .option('--address [host:port]', 'ask a running trainer instead (default 127.0.0.1:50055, as `museum start` prints, or $MUSEUM_TRAINER_ADDR)')
    .action(async (o: StylesOpts & { address?: string | true }) => {
      if (o.address !== undefined) {
        const address = trainerAddress(o.address);
        const res = await remoteListStyles(address, parseVersion(o.version));
        process.stdout.write((o.json ? JSON.stringify(pb.v1.ListStylesResponse.toJSON(res), null, 2) : formatRemoteStyles(res, address)) + '\n');
        return;
      }
      const l = listStyles(o);
      process.stdout.write((o.json ? JSON.stringify(l, null, 2) : formatStyles(l)) + '\n');
    });
}
