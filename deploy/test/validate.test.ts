import * as path from 'node:path';
import { MUTATIONS, crossFindings, dockerfileStages, loadDeploy, newFindings, parseQuantity, strategicMerge, validateDeploy, type Loaded } from '../validate';

const DIR = path.resolve(__dirname, '..');

describe('deploy/ as committed', () => {
  it('is valid: schemas, cross-checks, NATS values and both compose files', () => {
    const r = validateDeploy(loadDeploy(DIR));
    expect(r.findings).toEqual([]);
    expect(r.counts.Deployment).toBe(5);
    expect(r.counts.Service).toBe(5);
    expect(r.counts.HorizontalPodAutoscaler).toBeGreaterThanOrEqual(3);
    expect(r.counts.compose_services).toBeGreaterThanOrEqual(6);
  });

  it('renders the GPU overlay: GPUs and the tensorflow backend on the three heavy GPU stages only', () => {
    const { gpu } = loadDeploy(DIR);
    const c = (name: string) => gpu.find((l) => l.obj.kind === 'Deployment' && l.obj.metadata.name === name)!.obj.spec.template.spec.containers[0];
    for (const n of ['denoiser', 'trainer', 'vae-decoder']) {
      expect(c(n).resources.limits['nvidia.com/gpu']).toBe(1);
      expect(c(n).env).toEqual(expect.arrayContaining([{ name: 'MUSEUM_BACKEND', value: 'tensorflow' }]));
      // the patch merges into the base container: its probes and requests are kept
      expect(c(n).readinessProbe.grpc.port).toBeGreaterThan(50050);
      expect(c(n).resources.requests.cpu).toBeDefined();
      expect(c(n).image).toBe('museum-gpu:latest');
    }
    expect(c('gateway').resources.limits?.['nvidia.com/gpu']).toBeUndefined();
    expect(c('text-encoder').image).toBe('museum:latest');
  });
});

describe('a broken manifest is caught', () => {
  it.each(Object.keys(MUTATIONS))('%s', (name) => {
    const found = newFindings(DIR, MUTATIONS[name]);
    expect(found.length).toBeGreaterThan(0);
  });

  it('names what is wrong', () => {
    const msg = (name: string) => newFindings(DIR, MUTATIONS[name]).map((f) => `${f.object}: ${f.message}`).join('\n');
    expect(msg('Service selects no Deployment')).toMatch(/Service\/denoiser: selects 0 Deployments/);
    expect(msg('Service selects no Deployment')).toMatch(/Deployment\/denoiser: no Service selects/);
    expect(msg('HPA targets a missing Deployment')).toMatch(/scaleTargetRef .*unet/);
    expect(msg('readiness probe over HTTP')).toMatch(/readinessProbe must be a gRPC health probe/);
    expect(msg('probe on the wrong port')).toMatch(/livenessProbe probes port 50051, the Service port is 50053/);
    expect(msg('misspelt field (readinesProbe)')).toMatch(/unknown field containers\[0\]\.readinesProbe/);
    expect(msg('schema violation (replicas as text)')).toMatch(/schema: .*replicas/);
    expect(msg('compose depends_on a missing service')).toMatch(/depends_on unet/);
  });
});

describe('cross-checks on hand-made objects', () => {
  const dep = (name: string, labels: Record<string, string>, port: number, probePort = port): Loaded => ({
    file: 'x.yaml',
    obj: {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name, namespace: 'm' },
      spec: {
        selector: { matchLabels: labels },
        template: {
          metadata: { labels },
          spec: { containers: [{ name, image: 'i', ports: [{ name: 'grpc', containerPort: port }], resources: { requests: { cpu: '1', memory: '1Gi' } }, readinessProbe: { grpc: { port: probePort } } }] },
        },
      },
    },
  });
  const svc = (name: string, selector: Record<string, string>, port: number, targetPort: string | number = 'grpc'): Loaded => ({
    file: 'x.yaml',
    obj: { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'm' }, spec: { selector, ports: [{ name: 'grpc', port, targetPort }] } },
  });

  it('accepts a matching pair and flags a Service over two Deployments', () => {
    expect(crossFindings([dep('a', { app: 'a' }, 1), svc('a', { app: 'a' }, 1)], { heavyStages: [] })).toEqual([]);
    const two = crossFindings([dep('a', { app: 'x', n: 'a' }, 1), dep('b', { app: 'x', n: 'b' }, 1), svc('x', { app: 'x' }, 1)], { heavyStages: [] });
    expect(two.map((f) => f.message)).toEqual(expect.arrayContaining([expect.stringMatching(/selects 2 Deployments/)]));
  });

  it('resolves numeric target ports and catches a probe off the service port', () => {
    expect(crossFindings([dep('a', { app: 'a' }, 7), svc('a', { app: 'a' }, 7, 7)], { heavyStages: [] })).toEqual([]);
    const f = crossFindings([dep('a', { app: 'a' }, 7, 8), svc('a', { app: 'a' }, 7, 7)], { heavyStages: [] });
    expect(f.map((x) => x.message)).toEqual([expect.stringMatching(/readinessProbe probes port 8, the Service port is 7/)]);
  });
});

describe('helpers', () => {
  it('merges patches by name as kustomize does', () => {
    const base = { spec: { containers: [{ name: 'a', image: 'x', env: [{ name: 'A', value: '1' }] }, { name: 'b', image: 'y' }] } };
    const merged = strategicMerge(base, { spec: { containers: [{ name: 'a', env: [{ name: 'B', value: '2' }] }] } }) as typeof base;
    expect(merged.spec.containers).toEqual([
      { name: 'a', image: 'x', env: [{ name: 'A', value: '1' }, { name: 'B', value: '2' }] },
      { name: 'b', image: 'y' },
    ]);
    expect(base.spec.containers[0].env).toHaveLength(1); // the base is not modified
  });

  it('parses quantities and Dockerfile stages', () => {
    expect(parseQuantity('2Gi')).toBe(2 * 1024 ** 3);
    expect(parseQuantity('512Mi')).toBeLessThan(parseQuantity('1G'));
    expect(Number.isNaN(parseQuantity('lots'))).toBe(true);
    expect(dockerfileStages('FROM node:20 AS build\nRUN x\nFROM build AS gpu-deps\nFROM scratch\n')).toEqual(['build', 'gpu-deps']);
  });
});
