import * as tf from '@tensorflow/tfjs-core';
import { installKernels } from './kernels';

export type BackendName = 'tensorflow' | 'wasm' | 'cpu';

export interface BackendInfo {
  name: BackendName;
  /** Which package provided the backend (e.g. `@tensorflow/tfjs-node-gpu`). */
  package: string;
  simd: boolean;
  threads: boolean;
}

let ready: Promise<BackendInfo> | null = null;
let info: BackendInfo | null = null;
let logged = false;

function tryRequire(name: string): boolean {
  try {
    // Optional backends are plain runtime requires: none of them is a dependency of the project.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    require(name);
    return true;
  } catch {
    return false;
  }
}

/** Hooks run once after the backend is chosen (the wasm gradient kernels register here). */
const afterInitHooks: Array<(name: BackendName) => void> = [];
export function onBackendReady(hook: (name: BackendName) => void): void {
  afterInitHooks.push(hook);
}

async function select(preferred: string | undefined, log: (msg: string) => void): Promise<BackendInfo> {
  const candidates: Array<{ name: BackendName; pkg: string }> = [];
  const wantTf = !preferred || preferred === 'tensorflow';
  if (wantTf) {
    // tfjs-node(-gpu) register the `tensorflow` backend on require; neither installs here, both are optional.
    for (const pkg of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) candidates.push({ name: 'tensorflow', pkg });
  }
  if (!preferred || preferred === 'wasm') candidates.push({ name: 'wasm', pkg: '@tensorflow/tfjs-backend-wasm' });
  if (!preferred || preferred === 'cpu') candidates.push({ name: 'cpu', pkg: '@tensorflow/tfjs-backend-cpu' });
  if (candidates.length === 0) throw new Error(`MUSEUM_BACKEND=${preferred} is not one of tensorflow, wasm, cpu`);

  for (const c of candidates) {
    if (!tryRequire(c.pkg)) continue;
    if (tf.findBackend(c.name) === null && tf.findBackendFactory(c.name) === null) continue;
    if (!(await tf.setBackend(c.name))) continue;
    await tf.ready();
    const simd = c.name === 'wasm' ? Boolean(await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT')) : false;
    const threads = c.name === 'wasm' ? Boolean(await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT')) : false;
    const chosen: BackendInfo = { name: c.name, package: c.pkg, simd, threads };
    if (!logged) {
      logged = true;
      log(`[museum] tensor backend: ${c.name} (${c.pkg}${c.name === 'wasm' ? `, simd=${simd}, threads=${threads}` : ''})`);
    }
    return chosen;
  }
  throw new Error(`no TensorFlow.js backend could be initialised${preferred ? ` (MUSEUM_BACKEND=${preferred})` : ''}`);
}

/**
 * Choose and initialise the backend once per process: `tensorflow` (tfjs-node-gpu, then tfjs-node) when
 * installed, else `wasm`, else `cpu`; `MUSEUM_BACKEND` overrides. Safe to call many times.
 */
export function initBackend(options: { backend?: string; log?: (msg: string) => void } = {}): Promise<BackendInfo> {
  if (!ready) {
    const preferred = options.backend ?? process.env.MUSEUM_BACKEND ?? undefined;
    const log = options.log ?? ((m: string) => process.stderr.write(m + '\n'));
    ready = select(preferred || undefined, log).then((i) => {
      info = i;
      // Gradients (absent from tfjs-core's CommonJS build) and the fast/missing wasm kernels.
      installKernels(i.name);
      for (const h of afterInitHooks) h(i.name);
      return i;
    });
  }
  return ready;
}

/** The chosen backend; throws before `initBackend()` has resolved. */
export function backendInfo(): BackendInfo {
  if (!info) throw new Error('initBackend() has not completed');
  return info;
}
