/**
 * Offline checks of the Kubernetes manifests (no cluster here):
 *   schema   each object against the Kubernetes OpenAPI schema bundled in the `kubernetes-models`
 *            npm package, plus a strict check of the field names of the objects we write (the
 *            bundled schemas accept unknown fields, so a typo such as `readinesProbe` would pass);
 *   cross    what no schema sees: every Service selects exactly one Deployment and its ports
 *            reach a container port of the same number; every Deployment is behind a Service;
 *            HPAs target existing Deployments and every heavy stage has one; probes are gRPC
 *            health checks on the service port; requests are set; volumes, claims, ConfigMaps
 *            and the gateway's stage addresses resolve; `museum serve --port` agrees with the port;
 *            GPU stages ask for `nvidia.com/gpu` with the tensorflow backend, nothing else does.
 */
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { PersistentVolumeClaim } from 'kubernetes-models/v1/PersistentVolumeClaim';
import { Service } from 'kubernetes-models/v1/Service';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { objectName, podSpec, type Finding, type K8sObject, type Loaded } from './load';

type Validatable = { validate(): void };
const MODELS: Record<string, new (data: any) => Validatable> = {
  'v1/Namespace': Namespace,
  'v1/ConfigMap': ConfigMap,
  'v1/PersistentVolumeClaim': PersistentVolumeClaim,
  'v1/Service': Service,
  'apps/v1/Deployment': Deployment,
  'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
};

/** Field names allowed where we write objects by hand (the Kubernetes API's, for the parts we use). */
const KNOWN_FIELDS: Record<string, string[]> = {
  object: ['apiVersion', 'kind', 'metadata', 'spec', 'data', 'binaryData', 'immutable', 'status'],
  metadata: ['name', 'namespace', 'labels', 'annotations', 'generateName', 'finalizers', 'ownerReferences'],
  deploymentSpec: ['replicas', 'selector', 'template', 'strategy', 'minReadySeconds', 'revisionHistoryLimit', 'progressDeadlineSeconds', 'paused'],
  podSpec: [
    'containers', 'initContainers', 'volumes', 'nodeSelector', 'tolerations', 'affinity', 'securityContext', 'serviceAccountName', 'terminationGracePeriodSeconds',
    'topologySpreadConstraints', 'priorityClassName', 'imagePullSecrets', 'runtimeClassName', 'automountServiceAccountToken', 'restartPolicy', 'dnsPolicy', 'hostname',
  ],
  container: [
    'name', 'image', 'imagePullPolicy', 'command', 'args', 'workingDir', 'ports', 'env', 'envFrom', 'resources', 'volumeMounts', 'startupProbe', 'readinessProbe',
    'livenessProbe', 'lifecycle', 'securityContext', 'terminationMessagePath', 'terminationMessagePolicy', 'stdin', 'tty',
  ],
  probe: ['grpc', 'httpGet', 'tcpSocket', 'exec', 'initialDelaySeconds', 'periodSeconds', 'timeoutSeconds', 'successThreshold', 'failureThreshold', 'terminationGracePeriodSeconds'],
  serviceSpec: ['selector', 'ports', 'type', 'clusterIP', 'clusterIPs', 'sessionAffinity', 'publishNotReadyAddresses', 'internalTrafficPolicy', 'externalTrafficPolicy', 'ipFamilyPolicy', 'loadBalancerClass'],
  servicePort: ['name', 'port', 'targetPort', 'protocol', 'appProtocol', 'nodePort'],
  hpaSpec: ['scaleTargetRef', 'minReplicas', 'maxReplicas', 'metrics', 'behavior'],
};

function unknownFields(where: string, value: unknown, allowed: string[], report: (m: string) => void): void {
  if (!value || typeof value !== 'object' || Array.isArray(value)) return;
  for (const k of Object.keys(value)) if (!allowed.includes(k)) report(`unknown field ${where}.${k}`);
}

/** Schema errors of one object (bundled OpenAPI schema + the strict field-name check). */
export function schemaFindings(l: Loaded): Finding[] {
  const o = l.obj;
  const out: Finding[] = [];
  const report = (message: string) => out.push({ file: l.file, object: objectName(o), message });
  if (!o || typeof o !== 'object' || typeof o.apiVersion !== 'string' || typeof o.kind !== 'string') {
    out.push({ file: l.file, object: '?', message: 'not a Kubernetes object (apiVersion and kind are required)' });
    return out;
  }
  const Model = MODELS[`${o.apiVersion}/${o.kind}`];
  if (!Model) report(`no bundled schema for ${o.apiVersion} ${o.kind} (add it to MODELS if it is intended)`);
  else {
    try {
      new Model(o).validate();
    } catch (err) {
      report(`schema: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  if (!o.metadata?.name) report('metadata.name is required');
  unknownFields('', o, KNOWN_FIELDS.object, report);
  unknownFields('metadata', o.metadata, KNOWN_FIELDS.metadata, report);
  if (o.kind === 'Deployment') {
    unknownFields('spec', o.spec, KNOWN_FIELDS.deploymentSpec, report);
    const ps = podSpec(o);
    unknownFields('spec.template.spec', ps, KNOWN_FIELDS.podSpec, report);
    for (const [i, c] of (ps?.containers ?? []).entries()) {
      unknownFields(`containers[${i}]`, c, KNOWN_FIELDS.container, report);
      for (const p of ['startupProbe', 'readinessProbe', 'livenessProbe']) unknownFields(`containers[${i}].${p}`, c[p], KNOWN_FIELDS.probe, report);
    }
  }
  if (o.kind === 'Service') {
    unknownFields('spec', o.spec, KNOWN_FIELDS.serviceSpec, report);
    for (const [i, p] of (o.spec?.ports ?? []).entries()) unknownFields(`spec.ports[${i}]`, p, KNOWN_FIELDS.servicePort, report);
  }
  if (o.kind === 'HorizontalPodAutoscaler') unknownFields('spec', o.spec, KNOWN_FIELDS.hpaSpec, report);
  return out;
}

const ns = (o: K8sObject) => o.metadata?.namespace ?? 'default';
const subset = (sel: Record<string, string> | undefined, labels: Record<string, string> | undefined) =>
  !!sel && Object.keys(sel).length > 0 && Object.entries(sel).every(([k, v]) => labels?.[k] === v);

/** Bytes of a memory quantity (`512Mi`, `2Gi`, `1G`, plain bytes); NaN when unparsable. */
export function parseQuantity(q: unknown): number {
  const m = /^([0-9.]+)([KMGTE]i?|m)?$/.exec(String(q));
  if (!m) return NaN;
  const units: Record<string, number> = { '': 1, m: 1e-3, K: 1e3, M: 1e6, G: 1e9, T: 1e12, E: 1e18, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, Ti: 1024 ** 4, Ei: 1024 ** 6 };
  return Number(m[1]) * units[m[2] ?? ''];
}

export interface CrossCheckOptions {
  /** Deployments that must have an HPA (default: text-encoder, denoiser, vae-decoder). */
  heavyStages?: string[];
  /** Deployments that must ask for a GPU and the tensorflow backend (default: none may). */
  gpuStages?: string[];
  /** Deployments that need not be behind a Service (default none). */
  withoutService?: string[];
}

const arg = (args: unknown[], flag: string): string | undefined => {
  const i = args.indexOf(flag);
  return i >= 0 ? String(args[i + 1]) : undefined;
};

export function crossFindings(all: Loaded[], opts: CrossCheckOptions = {}): Finding[] {
  const out: Finding[] = [];
  const heavy = opts.heavyStages ?? ['text-encoder', 'denoiser', 'vae-decoder'];
  const gpu = new Set(opts.gpuStages ?? []);
  const of = (kind: string) => all.filter((l) => l.obj?.kind === kind);
  const deployments = of('Deployment');
  const services = of('Service');
  const hpas = of('HorizontalPodAutoscaler');
  const pvcs = of('PersistentVolumeClaim');
  const configMaps = of('ConfigMap');
  const add = (l: Loaded, message: string) => out.push({ file: l.file, object: objectName(l.obj), message });

  // names are unique per kind and namespace
  const seen = new Set<string>();
  for (const l of all) {
    const key = `${l.obj.kind}/${ns(l.obj)}/${l.obj.metadata?.name}`;
    if (seen.has(key)) add(l, `defined twice in namespace ${ns(l.obj)}`);
    seen.add(key);
  }

  for (const d of deployments) {
    const spec = d.obj.spec ?? {};
    const labels = spec.template?.metadata?.labels;
    if (!subset(spec.selector?.matchLabels, labels)) add(d, 'spec.selector.matchLabels must be non-empty and match spec.template.metadata.labels');
    const ps = podSpec(d.obj);
    const volumes = new Map<string, any>((ps?.volumes ?? []).map((v: any) => [v.name, v]));
    for (const c of ps?.containers ?? []) {
      const where = `container ${c.name}`;
      const req = c.resources?.requests ?? {};
      if (req.cpu === undefined || req.memory === undefined) add(d, `${where}: resources.requests.cpu and .memory are required (the scheduler and the HPA need them)`);
      const lim = c.resources?.limits?.memory;
      if (lim !== undefined && req.memory !== undefined && parseQuantity(lim) < parseQuantity(req.memory)) add(d, `${where}: memory limit ${lim} is below the request ${req.memory}`);
      for (const m of c.volumeMounts ?? []) if (!volumes.has(m.name)) add(d, `${where}: volumeMount ${m.name} names no volume of the pod`);
      for (const e of c.envFrom ?? []) {
        const name = e.configMapRef?.name;
        if (name && !configMaps.some((cm) => cm.obj.metadata.name === name && ns(cm.obj) === ns(d.obj))) add(d, `${where}: envFrom ConfigMap ${name} does not exist`);
      }
      // `museum serve --service NAME --port P` must agree with the Deployment and its port
      const args: unknown[] = [...(c.command ?? []), ...(c.args ?? [])];
      if (args.includes('serve')) {
        const service = arg(args, '--service');
        const port = arg(args, '--port');
        if (service !== d.obj.metadata.name) add(d, `${where}: runs \`museum serve --service ${service}\` in Deployment ${d.obj.metadata.name}`);
        const ports = (c.ports ?? []).map((p: any) => p.containerPort);
        if (!port || !ports.includes(Number(port))) add(d, `${where}: \`museum serve --port ${port}\` is not one of its containerPorts (${ports.join(', ') || 'none'})`);
      }
      // GPU scheduling
      const gpus = Number(c.resources?.limits?.['nvidia.com/gpu'] ?? 0);
      const backend = (c.env ?? []).find((e: any) => e.name === 'MUSEUM_BACKEND')?.value;
      if (gpu.has(d.obj.metadata.name)) {
        if (!(gpus >= 1)) add(d, `${where}: a GPU stage must set resources.limits["nvidia.com/gpu"] ≥ 1`);
        if (backend !== 'tensorflow') add(d, `${where}: a GPU stage must run MUSEUM_BACKEND=tensorflow (got ${backend ?? 'unset'})`);
      } else if (gpus > 0) add(d, `${where}: asks for ${gpus} GPU(s) but is not a GPU stage`);
    }
    for (const v of volumes.values()) {
      const claim = v.persistentVolumeClaim?.claimName;
      if (claim && !pvcs.some((p) => p.obj.metadata.name === claim && ns(p.obj) === ns(d.obj))) add(d, `volume ${v.name}: PersistentVolumeClaim ${claim} does not exist`);
    }
    if (!(opts.withoutService ?? []).includes(d.obj.metadata.name) && !services.some((s) => ns(s.obj) === ns(d.obj) && subset(s.obj.spec?.selector, d.obj.spec?.template?.metadata?.labels))) {
      add(d, 'no Service selects this Deployment');
    }
  }

  // Services: exactly one Deployment behind each, ports reaching a container port of the same number, gRPC probes on it
  const servicePortOf = new Map<Loaded, number[]>();
  for (const s of services) {
    const selector = s.obj.spec?.selector;
    const targets = deployments.filter((d) => ns(d.obj) === ns(s.obj) && subset(selector, d.obj.spec?.template?.metadata?.labels));
    if (targets.length !== 1) {
      add(s, `selects ${targets.length} Deployments (${targets.map((t) => t.obj.metadata.name).join(', ') || 'none'}); exactly one expected`);
      continue;
    }
    const d = targets[0];
    const containers = podSpec(d.obj)?.containers ?? [];
    for (const p of s.obj.spec?.ports ?? []) {
      const target = p.targetPort ?? p.port;
      const hit = containers.flatMap((c: any) => (c.ports ?? []).map((cp: any) => ({ c, cp }))).find(({ cp }: any) => (typeof target === 'string' ? cp.name === target : cp.containerPort === target));
      if (!hit) {
        add(s, `port ${p.name ?? p.port}: targetPort ${target} is no containerPort of Deployment ${d.obj.metadata.name}`);
        continue;
      }
      if (hit.cp.containerPort !== p.port) add(s, `port ${p.name ?? p.port}: Service port ${p.port} ≠ containerPort ${hit.cp.containerPort} (keep them equal: \`museum serve --port\` is the same number everywhere)`);
      servicePortOf.set(d, [...(servicePortOf.get(d) ?? []), hit.cp.containerPort]);
    }
  }
  for (const d of deployments) {
    const ports = servicePortOf.get(d) ?? [];
    for (const c of podSpec(d.obj)?.containers ?? []) {
      const probes: Array<[string, any]> = [['readinessProbe', c.readinessProbe], ['livenessProbe', c.livenessProbe], ['startupProbe', c.startupProbe]];
      if (!c.readinessProbe) add(d, `container ${c.name}: readinessProbe is required (gRPC health)`);
      for (const [name, p] of probes) {
        if (!p) continue;
        if (!p.grpc) add(d, `container ${c.name}: ${name} must be a gRPC health probe (\`grpc:\`), not ${Object.keys(p).find((k) => ['httpGet', 'tcpSocket', 'exec'].includes(k)) ?? 'unset'}`);
        else if (ports.length && !ports.includes(p.grpc.port)) add(d, `container ${c.name}: ${name} probes port ${p.grpc.port}, the Service port is ${ports.join(', ')}`);
      }
    }
  }

  // HPAs
  for (const h of hpas) {
    const ref = h.obj.spec?.scaleTargetRef ?? {};
    const target = deployments.find((d) => ns(d.obj) === ns(h.obj) && d.obj.metadata.name === ref.name);
    if (ref.kind !== 'Deployment' || ref.apiVersion !== 'apps/v1' || !target) add(h, `scaleTargetRef ${ref.apiVersion}/${ref.kind}/${ref.name} is no Deployment of namespace ${ns(h.obj)}`);
    const min = h.obj.spec?.minReplicas ?? 1;
    if (!(min <= h.obj.spec?.maxReplicas)) add(h, `minReplicas ${min} > maxReplicas ${h.obj.spec?.maxReplicas}`);
    const usesCpu = (h.obj.spec?.metrics ?? []).some((m: any) => m.type === 'Resource' && m.resource?.name === 'cpu');
    if (target && usesCpu) for (const c of podSpec(target.obj)?.containers ?? []) if (c.resources?.requests?.cpu === undefined) add(h, `scales on CPU utilisation but container ${c.name} of ${ref.name} requests no CPU`);
  }
  for (const name of heavy) {
    if (!deployments.some((d) => d.obj.metadata.name === name)) out.push({ file: '-', object: `Deployment/${name}`, message: 'heavy stage missing' });
    else if (!hpas.some((h) => h.obj.spec?.scaleTargetRef?.name === name)) out.push({ file: '-', object: `Deployment/${name}`, message: 'heavy stage without a HorizontalPodAutoscaler' });
  }

  // the gateway's stage addresses must name Services and their ports
  for (const d of deployments) {
    for (const c of podSpec(d.obj)?.containers ?? []) {
      for (const e of c.env ?? []) {
        if (!/^MUSEUM_[A-Z_]+_ADDR$/.test(e.name) || typeof e.value !== 'string') continue;
        const m = /^(?:dns:\/\/\/)?([a-z0-9-]+)(?:\.([a-z0-9-]+))?[a-z0-9.-]*:(\d+)$/.exec(e.value);
        const svc = m && services.find((s) => s.obj.metadata.name === m[1] && ns(s.obj) === (m[2] ?? ns(d.obj)));
        if (!m || !svc) add(d, `env ${e.name}=${e.value} names no Service`);
        else if (!(svc.obj.spec?.ports ?? []).some((p: any) => p.port === Number(m[3]))) add(d, `env ${e.name}=${e.value}: Service ${m[1]} has no port ${m[3]}`);
      }
    }
  }
  return out;
}

export interface NatsValues {
  config?: { jetstream?: { enabled?: boolean; fileStore?: { enabled?: boolean; pvc?: { enabled?: boolean } } } };
}

/** The NATS chart's values: JetStream on, persisted; the ConfigMap's NATS_URL reaching the release. */
export function natsFindings(values: NatsValues, file: string, all: Loaded[], release = 'nats'): Finding[] {
  const out: Finding[] = [];
  const js = values?.config?.jetstream;
  if (js?.enabled !== true) out.push({ file, object: 'helm/nats', message: 'config.jetstream.enabled must be true (the style events live in a JetStream stream)' });
  if (js?.fileStore?.enabled === false || js?.fileStore?.pvc?.enabled === false) out.push({ file, object: 'helm/nats', message: 'JetStream must persist to a file store on a PVC (replicas replay the stream from its first message)' });
  const urls = all.filter((l) => l.obj.kind === 'ConfigMap' && l.obj.data?.NATS_URL);
  if (urls.length === 0) out.push({ file, object: 'helm/nats', message: 'no ConfigMap sets NATS_URL' });
  for (const l of urls) {
    const m = /^nats:\/\/([a-z0-9-]+)(?:\.([a-z0-9-]+))?[a-z0-9.-]*:(\d+)$/.exec(l.obj.data.NATS_URL);
    if (!m || m[1] !== release || m[3] !== '4222' || (m[2] && m[2] !== ns(l.obj))) {
      out.push({ file: l.file, object: objectName(l.obj), message: `NATS_URL ${l.obj.data.NATS_URL} does not reach the Helm release ${release} (nats://${release}.${ns(l.obj)}.svc…:4222)` });
    }
  }
  return out;
}
