/**
 * Validate deploy/ offline: the Kubernetes base and its GPU overlay, the NATS Helm values, the
 * Compose files. `validateDeploy()` returns every finding (empty = valid); `MUTATIONS` are known
 * breakages the checks must catch (the CLI runs them as negative controls, the tests too).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadKustomization, readYamlDocuments, type Finding, type K8sObject, type Loaded } from './load';
import { crossFindings, natsFindings, schemaFindings, type NatsValues } from './k8s';
import { composeCrossFindings, composeSchemaFindings, mergeCompose } from './compose';

export * from './load';
export * from './k8s';
export * from './compose';

export const GPU_STAGES = ['denoiser', 'trainer', 'vae-decoder'];

export interface DeployInputs {
  base: Loaded[];
  gpu: Loaded[];
  nats: { file: string; values: NatsValues };
  compose: { file: string; doc: any };
  composeGpu: { file: string; doc: any };
  dir: string;
}

export function loadDeploy(dir: string): DeployInputs {
  const natsFile = path.join(dir, 'k8s', 'nats', 'values.yaml');
  const composeFile = path.join(dir, 'compose.yaml');
  const composeGpuFile = path.join(dir, 'compose.gpu.yaml');
  return {
    dir,
    base: loadKustomization(path.join(dir, 'k8s', 'base')),
    gpu: loadKustomization(path.join(dir, 'k8s', 'overlays', 'gpu')),
    nats: { file: natsFile, values: readYamlDocuments(natsFile)[0] as NatsValues },
    compose: { file: composeFile, doc: readYamlDocuments(composeFile)[0] },
    composeGpu: { file: composeGpuFile, doc: readYamlDocuments(composeGpuFile)[0] },
  };
}

export interface DeployReport {
  findings: Finding[];
  counts: Record<string, number>;
}

export function validateDeploy(x: DeployInputs): DeployReport {
  const findings: Finding[] = [];
  for (const l of x.base) findings.push(...schemaFindings(l));
  findings.push(...crossFindings(x.base));
  for (const l of x.gpu) findings.push(...schemaFindings(l));
  findings.push(...crossFindings(x.gpu, { gpuStages: GPU_STAGES }).map((f) => ({ ...f, message: `[gpu overlay] ${f.message}` })));
  findings.push(...natsFindings(x.nats.values, x.nats.file, x.base));
  findings.push(...composeSchemaFindings(x.compose.doc, x.compose.file));
  findings.push(...composeCrossFindings(x.compose.doc, x.compose.file, { dir: x.dir }));
  const merged = mergeCompose([x.compose.doc, x.composeGpu.doc]);
  const mergedName = `${x.compose.file} + ${x.composeGpu.file}`;
  findings.push(...composeSchemaFindings(merged, mergedName));
  findings.push(...composeCrossFindings(merged, mergedName, { dir: x.dir, gpuServices: GPU_STAGES }));
  const kinds: Record<string, number> = {};
  for (const l of x.base) kinds[l.obj.kind] = (kinds[l.obj.kind] ?? 0) + 1;
  return { findings, counts: { ...kinds, compose_services: Object.keys(x.compose.doc?.services ?? {}).length } };
}

const find = (ls: Loaded[], kind: string, name: string): K8sObject => {
  const l = ls.find((x) => x.obj.kind === kind && x.obj.metadata.name === name);
  if (!l) throw new Error(`mutation: no ${kind}/${name}`);
  return l.obj;
};

/** Known breakages, each applied to a fresh copy of the inputs; the validator must report every one. */
export const MUTATIONS: Record<string, (x: DeployInputs) => void> = {
  'Service selects no Deployment': (x) => (find(x.base, 'Service', 'denoiser').spec.selector['app.kubernetes.io/name'] = 'denoiserr'),
  'Service targetPort is no container port': (x) => (find(x.base, 'Service', 'vae-decoder').spec.ports[0].targetPort = 'http'),
  'Service port differs from the container port': (x) => (find(x.base, 'Service', 'text-encoder').spec.ports[0].port = 8080),
  'HPA targets a missing Deployment': (x) => (find(x.base, 'HorizontalPodAutoscaler', 'denoiser').spec.scaleTargetRef.name = 'unet'),
  'heavy stage without an HPA': (x) => (x.base = x.base.filter((l) => !(l.obj.kind === 'HorizontalPodAutoscaler' && l.obj.metadata.name === 'vae-decoder'))),
  'readiness probe over HTTP': (x) => (find(x.base, 'Deployment', 'gateway').spec.template.spec.containers[0].readinessProbe = { httpGet: { path: '/healthz', port: 8080 } }),
  'probe on the wrong port': (x) => (find(x.base, 'Deployment', 'denoiser').spec.template.spec.containers[0].livenessProbe.grpc.port = 50051),
  'misspelt field (readinesProbe)': (x) => {
    const c = find(x.base, 'Deployment', 'trainer').spec.template.spec.containers[0];
    c.readinesProbe = c.readinessProbe;
  },
  'schema violation (replicas as text)': (x) => (find(x.base, 'Deployment', 'text-encoder').spec.replicas = 'two'),
  'missing resource requests': (x) => delete find(x.base, 'Deployment', 'denoiser').spec.template.spec.containers[0].resources.requests,
  'serve --port disagrees with containerPort': (x) => {
    const args = find(x.base, 'Deployment', 'vae-decoder').spec.template.spec.containers[0].args as string[];
    args[args.indexOf('--port') + 1] = '50099';
  },
  'gateway stage address names no Service': (x) => {
    const env = find(x.base, 'Deployment', 'gateway').spec.template.spec.containers[0].env as Array<{ name: string; value: string }>;
    env.find((e) => e.name === 'MUSEUM_DENOISER_ADDR')!.value = 'dns:///unet.museum.svc.cluster.local:50053';
  },
  'missing PersistentVolumeClaim': (x) => (x.base = x.base.filter((l) => !(l.obj.kind === 'PersistentVolumeClaim' && l.obj.metadata.name === 'museum-data'))),
  'GPU stage without a GPU': (x) => delete find(x.gpu, 'Deployment', 'denoiser').spec.template.spec.containers[0].resources.limits['nvidia.com/gpu'],
  'NATS without JetStream': (x) => (x.nats.values.config!.jetstream!.enabled = false),
  'compose depends_on a missing service': (x) => (x.compose.doc.services.gateway.depends_on.unet = { condition: 'service_healthy' }),
  'compose health check on the wrong port': (x) => (x.compose.doc.services.denoiser.healthcheck.test = ['CMD', 'node', '/app/deploy/healthcheck.js', '127.0.0.1:50051']),
  'compose build target missing from the Dockerfile': (x) => (x.compose.doc.services['vae-decoder'].build = { ...x.compose.doc.services['vae-decoder'].build, target: 'runtime-tpu' }),
  'compose schema violation': (x) => (x.compose.doc.services.trainer.restart = { policy: 'always' }),
  'compose NATS without JetStream': (x) => (x.compose.doc.services.nats.command = ['--store_dir', '/data']),
};

const key = (f: Finding) => `${f.object}|${f.message}`;

/** Findings of the mutated inputs that the unmutated ones do not have. */
export function newFindings(dir: string, mutate: (x: DeployInputs) => void): Finding[] {
  const baseline = new Set(validateDeploy(loadDeploy(dir)).findings.map(key));
  const x = loadDeploy(dir);
  mutate(x);
  return validateDeploy(x).findings.filter((f) => !baseline.has(key(f)));
}

/** Run every mutation on a fresh load of `dir`; returns those the validator missed. */
export function missedMutations(dir: string): string[] {
  return Object.entries(MUTATIONS)
    .filter(([, mutate]) => newFindings(dir, mutate).length === 0)
    .map(([name]) => name);
}

/** deploy/ of this checkout. */
export function deployDir(): string {
  const d = path.resolve(__dirname, '..');
  if (!fs.existsSync(path.join(d, 'compose.yaml'))) throw new Error(`${d} holds no compose.yaml`);
  return d;
}
