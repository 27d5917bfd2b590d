import { tf } from '@museum/tensor';

export interface AdamWOptions {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** Decoupled weight decay (Loshchilov & Hutter), applied to every variable given. */
  weightDecay?: number;
}

/** The hyper-parameters with their defaults (β1 0.9, β2 0.999, ε 1e-8, no decay). */
export function adamHyperParameters(o: AdamWOptions): Required<AdamWOptions> {
  return { lr: o.lr, beta1: o.beta1 ?? 0.9, beta2: o.beta2 ?? 0.999, eps: o.eps ?? 1e-8, weightDecay: o.weightDecay ?? 0 };
}

/**
 * AdamW over an explicit list of variables. TF.js's own optimizers key their state by variable
 * name and cannot save it portably; this one keeps its moments in order with the variable list,
 * so a checkpoint is just [m_i, v_i] tensors plus the step count, and two data-parallel replicas
 * applying the same averaged gradients stay bit-identical.
 */
export class AdamW {
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  lr: number;
  step = 0;
  private readonly m: tf.Variable[];
  private readonly v: tf.Variable[];

  constructor(
    readonly variables: tf.Variable[],
    options: AdamWOptions,
  ) {
    ({ lr: this.lr, beta1: this.beta1, beta2: this.beta2, eps: this.eps, weightDecay: this.weightDecay } = adamHyperParameters(options));
    // tf.variable shares the initial tensor's data: free the initial tensor object, or it leaks.
    const zeros = (x: tf.Variable) => {
      const z = tf.zerosLike(x);
      const v = tf.variable(z, false);
      z.dispose();
      return v;
    };
    this.m = variables.map(zeros);
    this.v = variables.map(zeros);
  }

  /** One update with `grads[i]` for `variables[i]` (null: no gradient this step). Does not dispose grads. */
  apply(grads: Array<tf.Tensor | null>, lr = this.lr): void {
    if (grads.length !== this.variables.length) throw new Error(`AdamW: ${grads.length} grads for ${this.variables.length} variables`);
    this.step += 1;
    const b1 = this.beta1;
    const b2 = this.beta2;
    const bc1 = 1 - Math.pow(b1, this.step);
    const bc2 = 1 - Math.pow(b2, this.step);
    const stepSize = lr / bc1;
    tf.tidy(() => {
      this.variables.forEach((x, i) => {
        const g = grads[i];
        if (!g) return;
        const m = tf.add(tf.mul(this.m[i], b1), tf.mul(g, 1 - b1));
        const v = tf.add(tf.mul(this.v[i], b2), tf.mul(tf.square(g), 1 - b2));
        this.m[i].assign(m);
        this.v[i].assign(v);
        const denom = tf.add(tf.sqrt(tf.div(v, bc2)), this.eps);
        let next = tf.sub(x, tf.mul(tf.div(m, denom), stepSize));
        if (this.weightDecay > 0) next = tf.sub(next, tf.mul(x, lr * this.weightDecay));
        x.assign(next);
      });
    });
  }

  /** Optimizer state as named tensors (`adam.m.{i}`, `adam.v.{i}`) for a checkpoint; caller disposes. */
  stateTensors(): Map<string, tf.Tensor> {
    const out = new Map<string, tf.Tensor>();
    this.m.forEach((t, i) => out.set(`adam.m.${i}`, t.clone()));
    this.v.forEach((t, i) => out.set(`adam.v.${i}`, t.clone()));
    return out;
  }

  loadState(state: Map<string, tf.Tensor>, step: number): void {
    this.m.forEach((t, i) => {
      const s = state.get(`adam.m.${i}`);
      if (!s || s.shape.join() !== t.shape.join()) throw new Error(`AdamW checkpoint: adam.m.${i} missing or of the wrong shape`);
      t.assign(s);
    });
    this.v.forEach((t, i) => {
      const s = state.get(`adam.v.${i}`);
      if (!s || s.shape.join() !== t.shape.join()) throw new Error(`AdamW checkpoint: adam.v.${i} missing or of the wrong shape`);
      t.assign(s);
    });
    this.step = step;
  }

  dispose(): void {
    for (const t of [...this.m, ...this.v]) t.dispose();
  }
}

/** Scale gradients so that their global L2 norm is at most `maxNorm`; returns the new list and the norm. */
export function clipGradNorm(grads: Array<tf.Tensor | null>, maxNorm: number): { grads: Array<tf.Tensor | null>; norm: number } {
  const present = grads.filter((g): g is tf.Tensor => g !== null);
  if (present.length === 0) return { grads, norm: 0 };
  const sq = tf.tidy(() => tf.addN(present.map((g) => tf.sum(tf.square(g)))));
  const norm = Math.sqrt(sq.dataSync()[0]);
  sq.dispose();
  if (!(norm > maxNorm)) return { grads: grads.map((g) => (g ? g.clone() : null)), norm };
  const s = maxNorm / (norm + 1e-6);
  return { grads: grads.map((g) => (g ? tf.mul(g, s) : null)), norm };
}
