import { tf, SafetensorsReader } from '@museum/tensor';
import { Module, Parameter } from '../nn/module';

/**
 * Where the tensors of a state dict come from: an in-memory map, or a safetensors file read one
 * tensor at a time (so a 3 GB UNet never sits in memory twice).
 */
export interface TensorSource {
  keys(): string[];
  /** Shape in the file's (PyTorch) layout. */
  shape(key: string): number[];
  /** A tensor the caller owns (disposed by the loader after assignment) — or borrowed, see `owned`. */
  read(key: string): tf.Tensor;
  /** Whether `read` returns a new tensor the loader must dispose. */
  readonly owned: boolean;
}

export function mapSource(tensors: Map<string, tf.Tensor>): TensorSource {
  return {
    keys: () => [...tensors.keys()],
    shape: (k) => tensors.get(k)!.shape,
    read: (k) => tensors.get(k)!,
    owned: false,
  };
}

export function safetensorsSource(reader: SafetensorsReader): TensorSource {
  return {
    keys: () => reader.keys(),
    shape: (k) => reader.info(k).shape,
    read: (k) => reader.read(k),
    owned: true,
  };
}

export interface LoadStateDictOptions {
  /** Throw when a parameter has no tensor or a tensor no parameter (default true). */
  strict?: boolean;
  /** File keys matching any of these are skipped (never "unexpected"). */
  ignore?: RegExp[];
  /** Map a file key to the module's name (applied before the built-in legacy renames); null drops the key. */
  rename?: (key: string) => string | null;
}

export interface ShapeMismatch {
  name: string;
  /** Shape the module expects, in PyTorch layout. */
  expected: number[];
  got: number[];
}

export interface LoadStateDictResult {
  /** Parameters with no tensor in the source (sorted). */
  missing: string[];
  /** Source keys that match no parameter (sorted, after renames). */
  unexpected: string[];
  /** Parameters assigned. */
  loaded: number;
}

/** A state dict that does not fit a module: every missing, unexpected and mis-shaped name, sorted. */
export class StateDictError extends Error {
  constructor(
    readonly missing: string[],
    readonly unexpected: string[],
    readonly mismatched: ShapeMismatch[],
    context = '',
  ) {
    const parts: string[] = [];
    if (missing.length) parts.push(`missing keys (${missing.length}): ${missing.join(', ')}`);
    if (unexpected.length) parts.push(`unexpected keys (${unexpected.length}): ${unexpected.join(', ')}`);
    if (mismatched.length) {
      parts.push(`shape mismatches (${mismatched.length}): ${mismatched.map((m) => `${m.name} (file [${m.got}], model [${m.expected}])`).join(', ')}`);
    }
    super(`state dict does not match the model${context ? ` ${context}` : ''}: ${parts.join('; ')}`);
    this.name = 'StateDictError';
  }
}

/** Keys that upstream files may carry but no model parameter stands for (buffers). */
export const DEFAULT_IGNORED_KEYS: RegExp[] = [/(^|\.)position_ids$/];

/**
 * diffusers < 0.14 named the VAE mid-block attention `query/key/value/proj_attn`; today's names are
 * `to_q/to_k/to_v/to_out.0`. Returns the new name, or the key unchanged.
 */
export function legacyVaeAttentionKey(key: string): string {
  return key.replace(/(\.attentions\.\d+\.)(query|key|value|proj_attn)\.(weight|bias)$/, (_m, pre: string, which: string, kind: string) => {
    const to = { query: 'to_q', key: 'to_k', value: 'to_v', proj_attn: 'to_out.0' }[which]!;
    return `${pre}${to}.${kind}`;
  });
}

/** Extra renames tried when a key matches no parameter as it stands. */
const LEGACY_RENAMES: Array<(key: string) => string> = [legacyVaeAttentionKey];

const sameShape = (a: number[], b: number[]) => a.length === b.length && a.every((d, i) => d === b[i]);

/**
 * A file tensor that fits a parameter up to trailing 1×1 axes: old VAE attention saved its
 * projections as 1×1 convolutions [C, C, 1, 1] where the model has linear layers [C, C].
 */
function squeezable(got: number[], expected: number[]): boolean {
  return got.length === expected.length + 2 && got[got.length - 1] === 1 && got[got.length - 2] === 1 && sameShape(got.slice(0, -2), expected);
}

/**
 * Load PyTorch-layout tensors into a module's parameters by upstream name, like torch's
 * `load_state_dict`: everything is checked before anything is assigned, so a failed load leaves
 * the module untouched. Shape mismatches always throw; missing/unexpected keys throw in strict mode
 * and are reported otherwise. F16/BF16 files arrive upcast to float32 from the safetensors reader.
 */
export function loadStateDict(module: Module, tensors: Map<string, tf.Tensor> | TensorSource, options: LoadStateDictOptions = {}): LoadStateDictResult {
  const source = tensors instanceof Map ? mapSource(tensors) : tensors;
  const strict = options.strict ?? true;
  const ignore = [...DEFAULT_IGNORED_KEYS, ...(options.ignore ?? [])];
  const params = new Map<string, Parameter>(module.namedParameters());

  const plan: Array<{ key: string; name: string; param: Parameter; squeeze: boolean }> = [];
  const unexpected: string[] = [];
  const mismatched: ShapeMismatch[] = [];
  const seen = new Set<string>();
  for (const key of source.keys()) {
    if (ignore.some((r) => r.test(key))) continue;
    let name: string | null = options.rename ? options.rename(key) : key;
    if (name === null) continue;
    if (!params.has(name)) {
      const legacy = LEGACY_RENAMES.map((f) => f(name!)).find((n) => n !== name && params.has(n));
      if (legacy) name = legacy;
    }
    const param = params.get(name);
    if (!param) {
      unexpected.push(name);
      continue;
    }
    if (seen.has(name)) throw new Error(`two keys of the state dict load into ${name}`);
    seen.add(name);
    const got = source.shape(key);
    const expected = param.torchShape;
    if (sameShape(got, expected)) plan.push({ key, name, param, squeeze: false });
    else if (squeezable(got, expected)) plan.push({ key, name, param, squeeze: true });
    else mismatched.push({ name, expected, got });
  }
  const missing = [...params.keys()].filter((n) => !seen.has(n)).sort();
  unexpected.sort();
  mismatched.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  if (mismatched.length || (strict && (missing.length || unexpected.length))) {
    throw new StateDictError(strict ? missing : [], strict ? unexpected : [], mismatched);
  }

  for (const { key, param, squeeze } of plan) {
    const t = source.read(key);
    try {
      if (squeeze) {
        const r = tf.reshape(t, param.torchShape);
        param.assignFromTorch(r);
        r.dispose();
      } else {
        param.assignFromTorch(t);
      }
    } finally {
      if (source.owned) t.dispose();
    }
  }
  return { missing, unexpected, loaded: plan.length };
}

/** Every parameter as a new tensor in PyTorch layout under its upstream name (the caller disposes them). */
export function stateDict(module: Module): Map<string, tf.Tensor> {
  const out = new Map<string, tf.Tensor>();
  for (const [name, p] of module.namedParameters()) out.set(name, p.toTorch());
  return out;
}

export function disposeStateDict(sd: Map<string, tf.Tensor>): void {
  for (const t of sd.values()) t.dispose();
  sd.clear();
}
