import { tf } from '@museum/tensor';

/** Exponential moving average of weights, the usual trick that makes small diffusion models sample cleanly. */
export class Ema {
  readonly shadow: tf.Variable[];
  constructor(
    readonly variables: tf.Variable[],
    readonly decay = 0.999,
  ) {
    this.shadow = variables.map((v) => tf.variable(v.clone(), false));
  }

  /** Warm-up as in common practice: decay ramps with the step so early weights don't dominate. */
  update(step: number): void {
    const d = Math.min(this.decay, (1 + step) / (10 + step));
    tf.tidy(() => {
      this.variables.forEach((v, i) => this.shadow[i].assign(tf.add(tf.mul(this.shadow[i], d), tf.mul(v, 1 - d))));
    });
  }

  /** Copy the averaged weights into the live variables (e.g. before export). */
  copyTo(targets: tf.Variable[] = this.variables): void {
    targets.forEach((t, i) => t.assign(this.shadow[i]));
  }

  dispose(): void {
    for (const s of this.shadow) s.dispose();
  }
}
