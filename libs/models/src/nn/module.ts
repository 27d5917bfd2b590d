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
export function uniformInit(shape: number[], bound: number): tf.Tensor {
  return tf.randomUniform(shape, -bound, bound, 'float32', nextInitSeed());
}
export function normalInit(shape: number[], std: number): tf.Tensor {
  return tf.randomNormal(shape, 0, std, 'float32', nextInitSeed());
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
