/**
 * Reading the deployment files offline: YAML documents (with their file), a kustomization's
 * resources (recursively), its strategic-merge patches and image overrides — the subset of
 * kustomize this repository uses, so the validator sees what `kubectl apply -k` would apply.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseAllDocuments } from 'yaml';

export type K8sObject = Record<string, any> & { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> } };

export interface Loaded {
  file: string;
  obj: K8sObject;
}

export interface Finding {
  file: string;
  /** `Kind/name` (or a compose service). */
  object: string;
  message: string;
}

/** Every YAML document of a file (empty documents skipped); YAML syntax errors throw, naming the file. */
export function readYamlDocuments(file: string, text = fs.readFileSync(file, 'utf8')): unknown[] {
  const docs = parseAllDocuments(text, { merge: true, prettyErrors: true });
  const list = Array.isArray(docs) ? docs : [docs];
  const out: unknown[] = [];
  for (const d of list) {
    if (d.errors.length) throw new Error(`${file}: ${d.errors.map((e) => e.message).join('; ')}`);
    const v = d.toJS({ maxAliasCount: 100 });
    if (v !== null && v !== undefined) out.push(v);
  }
  return out;
}

export const objectName = (o: K8sObject) => `${o.kind}/${o.metadata?.name ?? '?'}`;

/** Keys of list items that strategic merge patches merge by (the rest of the lists are replaced). */
const MERGE_KEYS: Record<string, string> = {
  containers: 'name',
  initContainers: 'name',
  env: 'name',
  volumes: 'name',
  volumeMounts: 'name',
  ports: 'containerPort',
};

/** A strategic merge patch, for the fields this repository patches: maps merge, named lists merge by key. */
export function strategicMerge(base: unknown, patch: unknown, field = ''): unknown {
  if (patch === null) return undefined;
  if (Array.isArray(patch)) {
    const key = MERGE_KEYS[field];
    if (!key || !Array.isArray(base)) return structuredClone(patch);
    const out = base.map((x) => structuredClone(x));
    for (const item of patch as Array<Record<string, unknown>>) {
      const i = out.findIndex((x) => (x as Record<string, unknown>)[key] === item[key]);
      if (i >= 0) out[i] = strategicMerge(out[i], item, '');
      else out.push(structuredClone(item));
    }
    return out;
  }
  if (patch && typeof patch === 'object') {
    const out: Record<string, unknown> = base && typeof base === 'object' && !Array.isArray(base) ? { ...(base as Record<string, unknown>) } : {};
    for (const [k, v] of Object.entries(patch as Record<string, unknown>)) {
      const merged = strategicMerge(out[k], v, k);
      if (merged === undefined) delete out[k];
      else out[k] = merged;
    }
    return out;
  }
  return patch;
}

interface Kustomization {
  namespace?: string;
  resources?: string[];
  patches?: Array<{ path: string; target?: { kind?: string; name?: string } }>;
  images?: Array<{ name: string; newName?: string; newTag?: string }>;
}

/** The objects a kustomization directory renders to (resources, then patches, namespace, images). */
export function loadKustomization(dir: string): Loaded[] {
  const kfile = path.join(dir, 'kustomization.yaml');
  const [k] = readYamlDocuments(kfile) as Kustomization[];
  let out: Loaded[] = [];
  for (const r of k.resources ?? []) {
    const p = path.resolve(dir, r);
    if (fs.existsSync(p) && fs.statSync(p).isDirectory()) out.push(...loadKustomization(p));
    else if (!fs.existsSync(p)) throw new Error(`${kfile}: resource ${r} does not exist`);
    else for (const obj of readYamlDocuments(p)) out.push({ file: p, obj: obj as K8sObject });
  }
  for (const patch of k.patches ?? []) {
    const pfile = path.resolve(dir, patch.path);
    if (!fs.existsSync(pfile)) throw new Error(`${kfile}: patch ${patch.path} does not exist`);
    for (const doc of readYamlDocuments(pfile) as K8sObject[]) {
      const kind = patch.target?.kind ?? doc.kind;
      const name = patch.target?.name ?? doc.metadata?.name;
      const hits = out.filter((l) => l.obj.kind === kind && l.obj.metadata?.name === name);
      if (hits.length === 0) throw new Error(`${pfile}: the patch targets ${kind}/${name}, which no resource of ${dir} defines`);
      out = out.map((l) => (hits.includes(l) ? { file: `${l.file} + ${pfile}`, obj: strategicMerge(l.obj, doc) as K8sObject } : l));
    }
  }
  if (k.namespace) for (const l of out) if (l.obj.kind !== 'Namespace') l.obj.metadata.namespace = k.namespace;
  for (const img of k.images ?? []) {
    for (const l of out) {
      for (const c of podSpec(l.obj)?.containers ?? []) {
        const [name, tag] = String(c.image).split(':');
        if (name === img.name) c.image = `${img.newName ?? name}:${img.newTag ?? tag ?? 'latest'}`;
      }
    }
  }
  return out;
}

/** The pod spec of a workload object (Deployment, StatefulSet, DaemonSet, Job), else undefined. */
export function podSpec(o: K8sObject): { containers: any[]; volumes?: any[] } | undefined {
  return o?.spec?.template?.spec;
}
