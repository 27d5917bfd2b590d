/**
 * The continual benchmark's numbers (BENCHMARK.md, "What it reports"), computed from the measured matrices.
 *
 * Matrices are lower-triangular and jagged, 0-based: M[t][s] is style s (0 = the first learned) judged after
 * task t, defined for s ≤ t, so M[t] has t + 1 entries. With T tasks, "after task 5" is row T − 1.
 */

/** M[t][s] for s ≤ t (row t has t + 1 entries). */
export type TaskMatrix = number[][];

/** Correct / total prompted-shape counts of a cell, per shape. */
export type ShapeCounts = Record<string, [correct: number, total: number]>;

/** Throws unless `m` is a non-empty lower-triangular jagged matrix of finite numbers. */
export function checkTaskMatrix(m: TaskMatrix, name = 'matrix'): number {
  if (!Array.isArray(m) || m.length === 0) throw new Error(`${name}: needs at least one task`);
  m.forEach((row, t) => {
    if (!Array.isArray(row) || row.length !== t + 1) throw new Error(`${name}: row ${t} must hold ${t + 1} values (styles learned so far), has ${row?.length}`);
    row.forEach((v, s) => {
      if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`${name}[${t}][${s}] is not a finite number`);
    });
  });
  return m.length;
}

function mean(xs: number[]): number | null {
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null;
}

/** Style accuracy A: mean over s of S[T−1][s] (every style, judged after the last task). */
export function styleAccuracy(S: TaskMatrix): number {
  const T = checkTaskMatrix(S, 'S');
  return mean(S[T - 1])!;
}

/**
 * Forgetting F: mean over s < T−1 of max over t in [s, T−2] of (S[t][s] − S[T−1][s]) — the best a style ever
 * was before the last task, minus what is left of it. Negative when a style only improved. Null with one task
 * (nothing can have been forgotten yet).
 */
export function forgetting(S: TaskMatrix): number | null {
  const T = checkTaskMatrix(S, 'S');
  const drops: number[] = [];
  for (let s = 0; s < T - 1; s++) {
    let best = -Infinity;
    for (let t = s; t <= T - 2; t++) best = Math.max(best, S[t][s]);
    drops.push(best - S[T - 1][s]);
  }
  return mean(drops);
}

/** Plasticity P: mean over s of S[s][s] (each style right after it was learned). */
export function plasticity(S: TaskMatrix): number {
  const T = checkTaskMatrix(S, 'S');
  return mean(Array.from({ length: T }, (_, s) => S[s][s]))!;
}

/** Share correct over the given shapes of a cell's per-shape counts (null when none of them was prompted). */
export function shapeShare(counts: ShapeCounts, shapes: readonly string[]): number | null {
  let correct = 0;
  let total = 0;
  for (const sh of shapes) {
    const c = counts[sh];
    if (!c) continue;
    correct += c[0];
    total += c[1];
  }
  return total > 0 ? correct / total : null;
}

/**
 * Held-out content accuracy: for each style, the share of its final-row images (after the last task) whose
 * prompted shape is one of `heldOut[s]` (shapes absent from the style's training images) and is drawn; then
 * the mean over styles. Returns the mean and the per-style values.
 */
export function contentHeldout(finalRow: ShapeCounts[], heldOut: ReadonlyArray<readonly string[]>): { mean: number | null; byStyle: Array<number | null> } {
  if (finalRow.length !== heldOut.length) throw new Error(`contentHeldout: ${finalRow.length} cells for ${heldOut.length} styles`);
  const byStyle = finalRow.map((counts, s) => shapeShare(counts, heldOut[s]));
  return { mean: mean(byStyle.filter((v): v is number => v !== null)), byStyle };
}

/** Share of `pred[i] === truth[i]`. */
export function agreement(pred: readonly string[], truth: readonly string[]): number {
  if (pred.length !== truth.length) throw new Error(`agreement: ${pred.length} predictions for ${truth.length} labels`);
  return pred.length ? pred.filter((p, i) => p === truth[i]).length / pred.length : 0;
}

/** How often each label occurs, keys in order of first appearance. */
export function labelCounts(labels: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const l of labels) out[l] = (out[l] ?? 0) + 1;
  return out;
}

/** Per-shape correct/total counts of predicted vs prompted shapes. */
export function countByShape(pred: readonly string[], truth: readonly string[]): ShapeCounts {
  if (pred.length !== truth.length) throw new Error(`countByShape: ${pred.length} predictions for ${truth.length} labels`);
  const out: ShapeCounts = {};
  truth.forEach((sh, i) => {
    const c = (out[sh] ??= [0, 0]);
    if (pred[i] === sh) c[0]++;
    c[1]++;
  });
  return out;
}

/** The headline numbers of one method from its matrices (base retention is measured directly, not derived). */
export interface ContinualScores {
  A: number;
  F: number | null;
  P: number;
  content_heldout: number | null;
  content_heldout_by_style: Array<number | null>;
}

export function continualScores(S: TaskMatrix, C: TaskMatrix, finalShapeCounts: ShapeCounts[], heldOut: ReadonlyArray<readonly string[]>): ContinualScores {
  const T = checkTaskMatrix(S, 'S');
  if (checkTaskMatrix(C, 'C') !== T) throw new Error(`S has ${T} tasks but C has ${C.length}`);
  const ho = contentHeldout(finalShapeCounts, heldOut);
  return { A: styleAccuracy(S), F: forgetting(S), P: plasticity(S), content_heldout: ho.mean, content_heldout_by_style: ho.byStyle };
}
