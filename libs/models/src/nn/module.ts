import { tf } from '@museum/tensor';

/**
 * How a parameter is laid out in PyTorch relative to our TF.js layout, so that files keep upstream
 * (diffusers / transformers) layouts while compute uses the fast layouts of TF.js:
 * - `same`: identical (biases, norms, embeddings);
 * - `linear`: torch [out, in] <-> ours [in, out] (pre-transposed so matMul never needs transposeB);
 * - `conv2d`: torch OIHW <-> ours HWIO (NHWC convolution filters).
 */
export type TorchLayout = 'same' | 'linear' | 'conv2d';

export function torchToTf(t: tf.Tensor, layout: TorchLayout): tf.Tensor {
  if (layout === 'linear') return tf.transpose(t, [1, 0]);
  if (layout === 'conv2d') return tf.transpose(t, [2, 3, 1, 0]);
  return t.clone();
}

export function tfToTorch(t: tf.Tensor, layout: TorchLayout): tf.Tensor {
  if (layout === 'linear') return tf.transpose(t, [1, 0]);
  if (layout === 'conv2d') return tf.transpose(t, [3, 2, 0, 1]);
  return t.clone();
}

export function torchShapeOf(shape: number[], layout: TorchLayout): number[] {
  if (layout === 'linear') return [shape[1], shape[0]];
  if (layout === 'conv2d') return [shape[3], shape[2], shape[0], shape[1]];
  return [...shape];
}

/** A named, trainable-or-frozen weight of a module. */
export class Parameter {
  readonly variable: tf.Variable;
  constructor(
    readonly shape: number[],
    readonly layout: TorchLayout,
    init: tf.Tensor,
    trainable = true,
  ) {
    if (init.shape.join(',') !== shape.join(',')) {
      throw new Error(`parameter init shape [${init.shape}] differs from [${shape}]`);
    }
    this.variable = tf.variable(init, trainable);
    init.dispose();
  }

  get value(): tf.Tensor {
    return this.variable;
  }

  get torchShape(): number[] {
    return torchShapeOf(this.shape, this.layout);
  }

  /** Replace the value from a tensor in PyTorch layout (the caller keeps ownership of `t`). */
  assignFromTorch(t: tf.Tensor): void {
    const expected = this.torchShape;
    if (t.shape.join(',') !== expected.join(',')) {
      throw new Error(`shape mismatch: file has [${t.shape}], model expects [${expected}]`);
    }
    const v = tf.tidy(() => torchToTf(t.dtype === 'float32' ? t : tf.cast(t, 'float32'), this.layout));
    this.variable.assign(v as tf.Tensor);
    v.dispose();
  }

  /** A new tensor holding the value in PyTorch layout. */
  toTorch(): tf.Tensor {
    return tf.tidy(() => tfToTorch(this.variable, this.layout));
  }
}

/** Deterministic initialisers: every random init draws its seed from one counter that `seedInit` resets. */
let initSeed = 1234;
export function seedInit(seed: number): void {
  initSeed = seed;
}
export function nextInitSeed(): number {
  initSeed = (initSeed * 1103515245 + 12345) % 2147483648;
  return initSeed;
}

/**
 * Seeded uniform [0, 1) values (sfc32) written straight into a Float32Array. tf.randomUniform /
 * tf.randomNormal draw through seedrandom one element at a time (~6 M/s: 20 s for a 123 M-parameter
 * text encoder). Only adds, xors and shifts: Math.* builtins are very slow in hot loops under jest.
 */
function fillUniform01(out: Float32Array, seed: number): void {
  let a = 0x9e3779b9 | 0;
  let b = seed | 0;
  let c = 0x6a09e667 | 0;
  let d = 1;
  for (let i = -12; i < out.length; i++) {
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    // 24 bits: exactly representable in float32, so the value stays below 1.
    if (i >= 0) out[i] = (t >>> 8) * 5.960464477539063e-8;
  }
}

export function uniformInit(shape: number[], bound: number): tf.Tensor {
  const out = new Float32Array(shape.reduce((a, b) => a * b, 1));
  fillUniform01(out, nextInitSeed());
  for (let i = 0; i < out.length; i++) out[i] = (2 * out[i] - 1) * bound;
  return tf.tensor(out, shape, 'float32');
}

const NORMAL_CHUNK = 1 << 22;

export function normalInit(shape: number[], std: number): tf.Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  const seed = nextInitSeed();
  // Box-Muller on pairs of uniforms, in chunks; the transcendental part runs as tensor ops.
  for (let start = 0, k = 0; start < n; start += 2 * NORMAL_CHUNK, k++) {
    const pairs = Math.min(NORMAL_CHUNK, Math.ceil((n - start) / 2));
    const u = new Float32Array(2 * pairs);
    fillUniform01(u, (seed + 7919 * k) | 0);
    const chunk = tf.tidy(() => {
      const uu = tf.tensor2d(u, [2, pairs]);
      const [u1, u2] = tf.unstack(uu);
      // 1 - u1 lies in (0, 1], so the logarithm stays finite.
      const r = tf.mul(tf.sqrt(tf.mul(tf.log(tf.sub(1, u1)), -2)), std);
      const theta = tf.mul(u2, 2 * Math.PI);
      return tf.concat([tf.mul(r, tf.cos(theta)), tf.mul(r, tf.sin(theta))]);
    });
    const values = chunk.dataSync() as Float32Array;
    out.set(values.subarray(0, Math.min(2 * pairs, n - start)), start);
    chunk.dispose();
  }
  return tf.tensor(out, shape, 'float32');
}

/**
 * Base of every model part, in the manner of torch.nn.Module: children and parameters are
 * registered under their upstream names so that `namedParameters()` yields exactly the keys of
 * upstream weight files (e.g. `down_blocks.0.attentions.0.proj_in.weight`).
 */
export abstract class Module {
  private readonly children = new Map<string, Module>();
  private readonly params = new Map<string, Parameter>();

  protected addModule<T extends Module>(name: string, m: T): T {
    if (this.children.has(name) || this.params.has(name)) throw new Error(`duplicate member ${name}`);
    this.children.set(name, m);
    return m;
  }

  protected addParam(name: string, shape: number[], layout: TorchLayout, init: () => tf.Tensor): Parameter {
    if (this.children.has(name) || this.params.has(name)) throw new Error(`duplicate member ${name}`);
    const p = new Parameter(shape, layout, tf.tidy(init));
    this.params.set(name, p);
    return p;
  }

  /** Every parameter under this module with its dotted upstream name, in registration order. */
  namedParameters(prefix = ''): Array<[string, Parameter]> {
    const out: Array<[string, Parameter]> = [];
    for (const [n, p] of this.params) out.push([prefix + n, p]);
    for (const [n, m] of this.children) out.push(...m.namedParameters(`${prefix}${n}.`));
    return out;
  }

  /** Every module under (and including) this one with its dotted name ('' for this one). */
  namedModules(prefix = ''): Array<[string, Module]> {
    const out: Array<[string, Module]> = [[prefix.replace(/\.$/, ''), this]];
    for (const [n, m] of this.children) out.push(...m.namedModules(`${prefix}${n}.`));
    return out;
  }

  parameters(): Parameter[] {
    return this.namedParameters().map(([, p]) => p);
  }

  /** Freeze or unfreeze every parameter of this module (frozen variables get no gradient). */
  setTrainable(trainable: boolean): void {
    for (const p of this.parameters()) p.variable.trainable = trainable;
  }

  trainableVariables(): tf.Variable[] {
    return this.parameters()
      .map((p) => p.variable)
      .filter((v) => v.trainable);
  }

  parameterCount(): number {
    return this.parameters().reduce((s, p) => s + p.variable.size, 0);
  }

  dispose(): void {
    for (const p of this.parameters()) p.variable.dispose();
  }
}

/** An indexed list of modules, named `0`, `1`, … as torch.nn.ModuleList. */
export class ModuleList<T extends Module = Module> extends Module {
  readonly items: T[] = [];
  push(m: T): T {
    this.addModule(String(this.items.length), m);
    this.items.push(m);
    return m;
  }
  get length(): number {
    return this.items.length;
  }
  at(i: number): T {
    return this.items[i];
  }
}
