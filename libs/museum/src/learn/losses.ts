/**
 * The loss terms of continual style learning, as pure functions of tensors (each testable on its own).
 * Every function returns a new scalar and leaves its inputs alone.
 */
import { tf } from '@museum/tensor';

/** Mean squared error: the diffusion (ε-prediction) loss of Stable Diffusion. */
export function diffusionLoss(pred: tf.Tensor, target: tf.Tensor): tf.Scalar {
  return tf.tidy(() => tf.mean(tf.square(tf.sub(pred, target)))) as tf.Scalar;
}

/**
 * The clean latent implied by a prediction at timestep t: for ε-prediction x̂0 = (x_t − √(1−ᾱ) ε̂) / √ᾱ, for
 * v-prediction x̂0 = √ᾱ x_t − √(1−ᾱ) v̂. `alphaBar` holds ᾱ_t per sample.
 */
export function predictCleanLatent(pred: tf.Tensor, noisy: tf.Tensor, alphaBar: number[], predictionType: 'epsilon' | 'v_prediction' | 'sample' = 'epsilon'): tf.Tensor {
  return tf.tidy(() => {
    const shape = [alphaBar.length, 1, 1, 1];
    const a = tf.tensor(alphaBar.map(Math.sqrt), shape);
    const s = tf.tensor(alphaBar.map((x) => Math.sqrt(1 - x)), shape);
    if (predictionType === 'sample') return tf.clone(pred);
    if (predictionType === 'v_prediction') return tf.sub(tf.mul(noisy, a), tf.mul(pred, s));
    return tf.div(tf.sub(noisy, tf.mul(pred, s)), a);
  });
}

/**
 * The noise ε of a training step, [B, h, w, c]: N(0, I), plus (offset noise, `noiseOffset` > 0) one constant per
 * image and channel drawn from N(0, offset²), so the model learns that the channel means of a noisy latent are
 * noise too and can move an image's mean colour (see `LearnSettings.noiseOffset`). Deterministic in `seed`.
 */
export function trainingNoise([B, h, w, c]: number[], offset: number, seed: number): tf.Tensor4D {
  return tf.tidy(() => {
    const white = tf.randomNormal([B, h, w, c], 0, 1, 'float32', seed);
    // a seed of its own, so that offset 0 leaves the white noise (and a run) exactly as before
    return offset > 0 ? tf.add(white, tf.randomNormal([B, 1, 1, c], 0, offset, 'float32', seed + 0x9e3779b1)) : white;
  }) as tf.Tensor4D;
}

/**
 * MuseumMaker's style distillation loss, L_SDL = (1/B) Σ_i w_i · KL(ρ(F(x_i)/τ) ‖ ρ(z̄/τ)), with ρ a softmax
 * over each feature group, τ the temperature and z̄ the style set's mean feature: it pulls every sample's
 * style statistics toward the set's, not toward its own image (whose content would otherwise be learned).
 * The KL is averaged over groups. `weights` (default 1) lets noisy x̂0 estimates count less.
 *
 * features: per group [B, d_g] (already divided by the group's scale); target: per group [d_g].
 */
export function styleDistillationLoss(features: tf.Tensor[], target: tf.Tensor[], temperature: number, weights?: number[]): tf.Scalar {
  if (features.length !== target.length || features.length === 0) throw new Error(`styleDistillationLoss: ${features.length} feature groups for ${target.length} targets`);
  if (!(temperature > 0)) throw new Error(`styleDistillationLoss: temperature must be > 0, got ${temperature}`);
  return tf.tidy(() => {
    const b = features[0].shape[0];
    const perGroup = features.map((f, g) => {
      const logP = tf.logSoftmax(tf.div(f, temperature)); // [B, d]
      const logQ = tf.logSoftmax(tf.reshape(tf.div(target[g], temperature), [1, -1])); // [1, d]
      return tf.sum(tf.mul(tf.exp(logP), tf.sub(logP, logQ)), 1); // [B]
    });
    let kl = tf.div(tf.addN(perGroup), perGroup.length); // [B]
    // Rounding can leave tiny negative KLs: a divergence is never below zero.
    kl = tf.relu(kl);
    if (weights) {
      if (weights.length !== b) throw new Error(`styleDistillationLoss: ${weights.length} weights for a batch of ${b}`);
      kl = tf.mul(kl, tf.tensor1d(weights));
    }
    return tf.div(tf.sum(kl), b);
  }) as tf.Scalar;
}

/** A low-rank matrix P·Q (P [in, k], Q [k, out]) in the layout of our Linear weights ([in, out]). */
export interface LowRank {
  P: tf.Tensor2D;
  Q: tf.Tensor2D;
}

/** <P Q, R S>_F = sum((Pᵀ R) ⊙ (Q Sᵀ)) without forming either product. */
export function lowRankInner(a: LowRank, b: LowRank): tf.Scalar {
  return tf.tidy(() => tf.sum(tf.mul(tf.matMul(a.P, b.P, true, false), tf.matMul(a.Q, b.Q, false, true)))) as tf.Scalar;
}

/**
 * The earlier styles' updates of one adapted layer, stacked for one pass of the cosine form: R = [R_1 … R_n]
 * [in, K], S = [S_1; …; S_n] [K, out], `segments` [K, n] one-hot (which style each of the K columns belongs to),
 * `norms2` [n] = ‖R_s S_s‖²_F.
 */
export interface EarlierUpdates {
  R: tf.Tensor2D;
  S: tf.Tensor2D;
  segments: tf.Tensor2D;
  norms2: tf.Tensor1D;
}

/**
 * The same updates as the input-subspace form reads them: `Rt` [in, K] = [R_1 L_1 … R_n L_n] with L_s a square
 * root of S_s S_sᵀ (L_s L_sᵀ = S_s S_sᵀ, [k_s, k_s]), `segments` as above, `gramNorms` [n] = ‖G_s‖_F with
 * G_s = ΔW_s ΔW_sᵀ the update's Gram over input dimensions, `outputs` the layer's output width.
 */
export interface EarlierInputSubspaces {
  Rt: tf.Tensor2D;
  segments: tf.Tensor2D;
  gramNorms: tf.Tensor1D;
  outputs: number;
}

export function disposeEarlierUpdates(e: EarlierUpdates | EarlierInputSubspaces): void {
  if ('R' in e) tf.dispose([e.R, e.S, e.segments, e.norms2]);
  else tf.dispose([e.Rt, e.segments, e.gramNorms]);
}

/**
 * ‖G‖_F for G = (P Q)(P Q)ᵀ, from B = Q Qᵀ ([k, k]): tr(G²) = tr(B A B A) with A = PᵀP. The 1e-30 under the root
 * keeps the gradient finite (0, not 0·∞ = NaN) at ΔW = 0, where every task's update starts.
 */
function inputGramNorm(u: LowRank): tf.Scalar {
  return tf.tidy(() => {
    const a = tf.matMul(u.P, u.P, true, false);
    const b = tf.matMul(u.Q, u.Q, false, true);
    return tf.sqrt(tf.add(tf.relu(tf.sum(tf.mul(tf.matMul(b, a), tf.matMul(a, b)))), 1e-30)) as tf.Scalar;
  });
}

/**
 * L with L Lᵀ = S Sᵀ ([k, k]) for S [k, out]: Lᵀ is the R of a Householder QR of Sᵀ (Sᵀ = QR, so S Sᵀ = Rᵀ R),
 * in float64. Backward-stable for a rank-deficient S too (an earlier update whose two adapters nearly agree on
 * a layer), where a Cholesky of S Sᵀ breaks down.
 */
function gramSquareRoot(S: tf.Tensor2D): tf.Tensor2D {
  const [k, m] = S.shape;
  const x = Float64Array.from(S.dataSync()); // S [k, m] row-major = Sᵀ [m, k] column-major: x[c * m + r] = Sᵀ[r][c]
  const at = (r: number, c: number) => c * m + r;
  for (let j = 0; j < Math.min(m, k); j++) {
    let norm = 0;
    for (let r = j; r < m; r++) norm += x[at(r, j)] ** 2;
    norm = Math.sqrt(norm);
    if (norm === 0) continue;
    const alpha = x[at(j, j)] > 0 ? -norm : norm;
    const v = new Float64Array(m - j);
    for (let r = j; r < m; r++) v[r - j] = x[at(r, j)];
    v[0] -= alpha;
    let vn = 0;
    for (const e of v) vn += e * e;
    if (vn === 0) continue;
    for (let c = j; c < k; c++) {
      let d = 0;
      for (let r = j; r < m; r++) d += v[r - j] * x[at(r, c)];
      const f = (2 * d) / vn;
      for (let r = j; r < m; r++) x[at(r, c)] -= f * v[r - j];
    }
  }
  // L = Rᵀ: L[i][j] = R[j][i] for j ≤ i, rows of R past min(m, k) are zero
  const L = new Float32Array(k * k);
  for (let i = 0; i < k; i++) for (let j = 0; j <= Math.min(i, m - 1); j++) L[i * k + j] = x[at(j, i)];
  return tf.tensor2d(L, [k, k]);
}

/** [K, n] one-hot: which of the n updates each of the K = Σ k_s stacked columns belongs to. */
function segmentsOf(updates: LowRank[]): tf.Tensor2D {
  const ks = updates.map((u) => u.P.shape[1]);
  const K = ks.reduce((a, b) => a + b, 0);
  const seg = new Float32Array(K * updates.length);
  let row = 0;
  ks.forEach((k, s) => {
    for (let i = 0; i < k; i++) seg[(row + i) * updates.length + s] = 1;
    row += k;
  });
  return tf.tensor2d(seg, [K, updates.length]);
}

/** Stack a layer's earlier updates (each R_s S_s) for `weightRegularization`; the caller owns the result. */
export function stackEarlierUpdates(updates: LowRank[]): EarlierUpdates {
  return tf.tidy(() => ({
    R: tf.concat(updates.map((u) => u.P), 1) as tf.Tensor2D,
    S: tf.concat(updates.map((u) => u.Q), 0) as tf.Tensor2D,
    segments: segmentsOf(updates),
    norms2: tf.stack(updates.map((u) => lowRankInner(u, u))) as tf.Tensor1D,
  }));
}

/** Stack a layer's earlier updates for `inputSubspaceRegularization`; the caller owns the result. */
export function stackEarlierInputSubspaces(updates: LowRank[]): EarlierInputSubspaces {
  return {
    ...tf.tidy(() => ({
      Rt: tf.concat(updates.map((u) => tf.matMul(u.P, gramSquareRoot(u.Q))), 1) as tf.Tensor2D,
      segments: segmentsOf(updates),
      gramNorms: tf.stack(updates.map((u) => inputGramNorm(u))) as tf.Tensor1D,
    })),
    outputs: updates[0].Q.shape[1],
  };
}

/**
 * MuseumMaker's weight regularization: for every adapted layer, Σ_s cos²(ΔW_t, ΔW_s) between this style's
 * update ΔW_t and each earlier style's ΔW_s, averaged over layers. Squared so that opposite directions are
 * penalised as much as equal ones (both interfere); computed in low-rank form, never forming an [in, out]
 * matrix. Zero when the updates are orthogonal (or ΔW_t = 0), 1 per style when ΔW_t is parallel to ΔW_s.
 *
 * current: per layer ΔW_t = P Q; earlier: per layer (same keys) the stacked earlier updates. The denominator
 * ‖ΔW_s‖²(‖ΔW_t‖² + δ‖ΔW_s‖²) keeps the cosine from amplifying rounding noise while ΔW_t is still ~0 (at the
 * start of a task, where A_tB_t − A_{t−1}B_{t−1} is zero only up to rounding); δ = 1e-6 is far below any real
 * update (‖ΔW_t‖ ≥ 0.1% of ‖ΔW_s‖).
 */
export function weightRegularization(current: Map<string, LowRank>, earlier: Map<string, EarlierUpdates>, delta = 1e-6): tf.Scalar {
  return meanOverLayers(current, earlier, (cur, e) => {
    const m1 = tf.matMul(cur.P, e.R, true, false); // [k, K]
    const m2 = tf.matMul(cur.Q, e.S, false, true); // [k, K]
    const colSums = tf.sum(tf.mul(m1, m2), 0, true); // [1, K]
    const inner = tf.reshape(tf.matMul(colSums, e.segments), [-1]); // [n]: <ΔW_t, ΔW_s>
    const nt = lowRankInner(cur, cur);
    const denom = tf.add(tf.mul(e.norms2, tf.add(nt, tf.mul(e.norms2, delta))), 1e-30);
    return tf.sum(tf.div(tf.square(inner), denom)); // Σ_s cos²
  });
}

/** A per-layer penalty against the earlier updates, averaged over the layers that have earlier updates. */
function meanOverLayers(current: Map<string, LowRank>, earlier: Map<string, EarlierUpdates>, perLayer: (cur: LowRank, e: EarlierUpdates) => tf.Tensor): tf.Scalar {
  return tf.tidy(() => {
    const terms: tf.Tensor[] = [];
    for (const [key, cur] of current) {
      const e = earlier.get(key);
      if (e) terms.push(perLayer(cur, e));
    }
    return terms.length === 0 ? tf.scalar(0) : tf.div(tf.addN(terms), terms.length);
  }) as tf.Scalar;
}

/**
 * The input-subspace form of MuseumMaker's weight regularization: for every adapted layer,
 * Σ_s ⟨G_t, G_s⟩_F / (‖G_t‖_F ‖G_s‖_F), the cosine between the Grams G = ΔW ΔWᵀ of this style's update and each
 * earlier style's over the layer's INPUT dimensions, averaged over layers. A layer's update answers an input x
 * through x·ΔW, so it disturbs an earlier style only on the input directions that style's update reads; this
 * penalises sharing those directions (as O-LoRA keeps the LoRA down-projections of tasks orthogonal), where the
 * plain cosine of the two [in, out] matrices is ~0 for almost any pair of low-rank updates and constrains
 * nothing. Zero when the input subspaces are orthogonal; 1 per style when ΔW_t reads exactly the earlier
 * update's directions with its weighting (for rank 1: cos² of the two input directions). Low-rank throughout:
 * ⟨G_t, G_s⟩ = ‖ΔW_sᵀ ΔW_t‖² = ‖L_sᵀ R_sᵀ ΔW_t‖² (L_s L_sᵀ = S_s S_sᵀ). δ as in `weightRegularization`.
 */
export function inputSubspaceRegularization(current: Map<string, LowRank>, earlier: Map<string, EarlierInputSubspaces>, delta = 1e-6): tf.Scalar {
  const keys = [...current.keys()].filter((k) => earlier.has(k));
  const groups = groupEarlierUpdates(new Map(keys.map((k) => [k, earlier.get(k)!])));
  try {
    return tf.tidy(() => {
      const stacked = groups.map((g) => ({ P: tf.stack(g.keys.map((k) => current.get(k)!.P)) as tf.Tensor3D, Q: tf.stack(g.keys.map((k) => current.get(k)!.Q)) as tf.Tensor3D }));
      return stackedInputSubspaceRegularization(stacked, groups, delta);
    });
  } finally {
    groups.forEach(disposeEarlierUpdateGroup);
  }
}

/**
 * The input-subspace constants of the layers whose updates have the same shapes, stacked along a leading
 * layer axis, so that a step costs a dozen batched ops per group instead of a dozen ops per layer (the Atelier
 * UNet adapts 56 layers of 3 shapes: per layer, the term and its gradient were ~1,300 tiny matmuls a step).
 */
export interface EarlierUpdateGroup {
  keys: string[];
  /** [G, in, K], [K, n] (the same for every layer of the group), [G, n]: as in EarlierInputSubspaces. */
  Rt: tf.Tensor3D;
  segments: tf.Tensor2D;
  gramNorms: tf.Tensor2D;
}

export function disposeEarlierUpdateGroup(g: EarlierUpdateGroup): void {
  tf.dispose([g.Rt, g.segments, g.gramNorms]);
}

/** Group layers by [in, K, out] and by which earlier style each of the K columns belongs to; new tensors. */
export function groupEarlierUpdates(earlier: Map<string, EarlierInputSubspaces>): EarlierUpdateGroup[] {
  const byKey = new Map<string, string[]>();
  for (const [key, e] of earlier) {
    const sig = `${e.Rt.shape.join('x')}:${e.outputs}:${Array.from(e.segments.dataSync()).join('')}`;
    byKey.set(sig, [...(byKey.get(sig) ?? []), key]);
  }
  return [...byKey.values()].map((keys) =>
    tf.tidy(() => {
      const es = keys.map((k) => earlier.get(k)!);
      return {
        keys,
        Rt: tf.stack(es.map((e) => e.Rt)) as tf.Tensor3D,
        segments: tf.clone(es[0].segments),
        gramNorms: tf.stack(es.map((e) => e.gramNorms)) as tf.Tensor2D,
      };
    }),
  );
}

/**
 * `inputSubspaceRegularization` on stacked layers: current[i] holds the current updates (P [G, in, k],
 * Q [G, k, out]) of groups[i]'s layers in its key order. The mean over every layer of every group.
 */
export function stackedInputSubspaceRegularization(current: Array<{ P: tf.Tensor3D; Q: tf.Tensor3D }>, groups: EarlierUpdateGroup[], delta = 1e-6): tf.Scalar {
  if (current.length !== groups.length) throw new Error(`stackedInputSubspaceRegularization: ${current.length} stacks for ${groups.length} groups`);
  return tf.tidy(() => {
    const layers = groups.reduce((n, g) => n + g.keys.length, 0);
    if (layers === 0) return tf.scalar(0);
    const terms = groups.map((g, i) => {
      const { P, Q } = current[i];
      // ⟨G_t, G_s⟩ = ‖ΔW_sᵀ ΔW_t‖² = ‖L_sᵀ R_sᵀ P Q‖² = tr(Z_s QQᵀ Z_sᵀ) with Z_s = (R_s L_s)ᵀ P: no [K, K] product
      const z = tf.matMul(g.Rt, P, true, false); // [G, K, k]
      const qqT = tf.matMul(Q, Q, false, true); // [G, k, k], shared with ‖G_t‖
      const inner = tf.matMul(tf.sum(tf.mul(z, tf.matMul(z, qqT)), 2), g.segments); // [G, n]: ⟨G_t, G_s⟩
      // ‖G_t‖ = √tr(B A B A) with A = PᵀP, B = Q Qᵀ; the 1e-30 keeps the gradient finite at ΔW_t = 0
      const a = tf.matMul(P, P, true, false);
      const nt = tf.sqrt(tf.add(tf.relu(tf.sum(tf.mul(tf.matMul(qqT, a), tf.matMul(a, qqT)), [1, 2])), 1e-30)); // [G]
      const denom = tf.add(tf.mul(g.gramNorms, tf.add(tf.reshape(nt, [-1, 1]), tf.mul(g.gramNorms, delta))), 1e-30);
      return tf.sum(tf.div(inner, denom));
    });
    return tf.div(tf.addN(terms), layers);
  }) as tf.Scalar;
}

/**
 * MuseumMaker's feature regularization: the mean over feature maps of the squared error between the current
 * model's features and the previous version's (teacher, computed without gradient), each normalised by the
 * teacher's mean square so that every layer counts alike whatever its activation scale. Exactly zero when the
 * two models compute the same features.
 */
export function featureRegularization(student: tf.Tensor[], teacher: tf.Tensor[]): tf.Scalar {
  if (student.length !== teacher.length || student.length === 0) throw new Error(`featureRegularization: ${student.length} student maps for ${teacher.length} teacher maps`);
  return tf.tidy(() => {
    const terms = student.map((s, i) => tf.div(tf.mean(tf.square(tf.sub(s, teacher[i]))), tf.add(tf.mean(tf.square(teacher[i])), 1e-6)));
    return tf.div(tf.addN(terms), terms.length);
  }) as tf.Scalar;
}

/**
 * C-LoRA's self-regularization (Smith et al. 2024): Σ_layers ‖M ⊙ ΔW_t‖²_F with M = Σ_{s<t} |ΔW_s| (dense,
 * constant). Here M is divided by its mean per layer, so the weight λ does not depend on the scale of the
 * earlier updates.
 */
export function cloraPenalty(current: Map<string, tf.Tensor2D>, masks: Map<string, tf.Tensor2D>): tf.Scalar {
  return tf.tidy(() => {
    const terms: tf.Tensor[] = [];
    for (const [key, dw] of current) {
      const m = masks.get(key);
      if (m) terms.push(tf.sum(tf.square(tf.mul(m, dw))));
    }
    return terms.length ? tf.addN(terms) : tf.scalar(0);
  }) as tf.Scalar;
}

/** EWC's penalty ½ Σ_i F_i (θ_i − θ*_i)² over parameter tensors (the ½ is λ's usual convention). */
export function ewcPenalty(params: tf.Tensor[], anchors: tf.Tensor[], fisher: tf.Tensor[]): tf.Scalar {
  if (params.length !== anchors.length || params.length !== fisher.length) throw new Error('ewcPenalty: params, anchors and fisher differ in length');
  return tf.tidy(() => {
    if (params.length === 0) return tf.scalar(0);
    const terms = params.map((p, i) => tf.sum(tf.mul(fisher[i], tf.square(tf.sub(p, anchors[i])))));
    return tf.mul(tf.addN(terms), 0.5);
  }) as tf.Scalar;
}
