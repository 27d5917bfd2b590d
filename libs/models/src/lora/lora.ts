import { tf } from '@museum/tensor';
import { Module, nextInitSeed } from '../nn/module';
import { Linear, LoraWeights } from '../nn/layers';
import { Attention } from '../blocks/attention';

/**
 * Which layers get adapters: the UNet's cross-attention (`attn2`, queries from the image, keys/values from the
 * text), its self-attention (`attn1`; also CLIP's `self_attn` and the VAE's mid-block attention), both, both plus
 * the transformer blocks' feed-forward (`attention-ff`: `ff.net.0.proj`, `ff.net.2`, the per-position MLP that
 * kohya-style LoRAs also adapt), or the attention modules whose dotted path matches a RegExp (e.g. /self_attn$/
 * for the text encoder).
 */
export const LORA_TARGET_KINDS = ['cross-attention', 'self-attention', 'all-attention', 'attention-ff'] as const;
export type LoraTargetKind = (typeof LORA_TARGET_KINDS)[number];
export type LoraTargets = LoraTargetKind | RegExp;

/** The UNet/VAE attention projections (diffusers names). */
export const ATTENTION_LORA_PROJECTIONS: readonly string[] = ['to_q', 'to_k', 'to_v', 'to_out.0'];
/** The feed-forward Linears of a diffusers BasicTransformerBlock (GEGLU's projection and the output). */
export const FEED_FORWARD_LORA_PROJECTIONS: readonly string[] = ['ff.net.0.proj', 'ff.net.2'];

/** The projections a target kind adapts by default. */
export function defaultLoraProjections(targets: LoraTargets): readonly string[] {
  return targets === 'attention-ff' ? [...ATTENTION_LORA_PROJECTIONS, ...FEED_FORWARD_LORA_PROJECTIONS] : ATTENTION_LORA_PROJECTIONS;
}
/** The CLIP text encoder's attention projections (transformers names). */
export const CLIP_LORA_PROJECTIONS: readonly string[] = ['q_proj', 'k_proj', 'v_proj', 'out_proj'];

export interface InjectLoraOptions {
  rank: number;
  /** LoRA alpha; the update is scaled by alpha / rank (default alpha = rank, i.e. scale 1). */
  alpha?: number;
  targets: LoraTargets;
  /** Names of the adapted Linears under each target module (default: `defaultLoraProjections(targets)`). */
  projections?: readonly string[];
  /** Name of the adapter set (a style, a task, …). */
  name?: string;
  /** `down` initialisation: peft's kaiming-uniform (a = √5, bound 1/√in) or diffusers' normal(0, 1/rank). */
  init?: 'kaiming-uniform' | 'gaussian';
  /** Attach the new adapters to the model's Linear layers at once (default true). */
  apply?: boolean;
}

/**
 * A named set of low-rank adapters keyed by the dotted path of the Linear they adapt
 * (e.g. `down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k`): down [in, r], up [r, out] variables,
 * update = scale · x · down · up. Owns its variables: `dispose()` when no longer needed.
 */
export class LoraAdapterSet {
  readonly adapters = new Map<string, LoraWeights>();
  constructor(
    readonly name: string,
    readonly rank: number,
    readonly alpha: number,
  ) {}

  get scale(): number {
    return this.alpha / this.rank;
  }
  get size(): number {
    return this.adapters.size;
  }
  /** Every down/up variable (what an optimiser trains). */
  variables(): tf.Variable[] {
    return [...this.adapters.values()].flatMap((w) => [w.down, w.up]);
  }
  parameterCount(): number {
    return this.variables().reduce((s, v) => s + v.size, 0);
  }
  dispose(): void {
    for (const v of this.variables()) v.dispose();
    this.adapters.clear();
  }
}

function moduleMap(model: Module): Map<string, Module> {
  return new Map(model.namedModules());
}

function matchesTarget(targets: LoraTargets, parentPath: string, parent: Module | undefined, projection: string): boolean {
  if (targets instanceof RegExp) return targets.test(parentPath);
  if (targets === 'attention-ff' && FEED_FORWARD_LORA_PROJECTIONS.includes(projection)) return true;
  const clipSelf = /(^|\.)self_attn$/.test(parentPath);
  const isAttn = parent instanceof Attention;
  const cross = isAttn && (parent as Attention).isCrossAttention;
  const self = (isAttn && !cross) || clipSelf;
  if (targets === 'cross-attention') return cross;
  if (targets === 'self-attention') return self;
  if (targets === 'all-attention' || targets === 'attention-ff') return cross || self;
  throw new Error(`unknown LoRA targets '${String(targets)}'`);
}

/** The dotted paths of the Linear layers `injectLora` would adapt, in model order. */
export function loraTargetPaths(model: Module, targets: LoraTargets, projections: readonly string[] = defaultLoraProjections(targets)): string[] {
  const modules = moduleMap(model);
  const out: string[] = [];
  for (const [path, m] of modules) {
    if (!(m instanceof Linear)) continue;
    const proj = projections.find((p) => path === p || path.endsWith(`.${p}`));
    if (!proj) continue;
    const parentPath = path === proj ? '' : path.slice(0, path.length - proj.length - 1);
    if (matchesTarget(targets, parentPath, modules.get(parentPath), proj)) out.push(path);
  }
  return out;
}

/**
 * Create a LoRA adapter for every targeted projection: `down` random (kaiming-uniform by default), `up` zero,
 * so that the adapted model starts exactly equal to the base model. Applies the set unless `apply: false`.
 */
export function injectLora(model: Module, o: InjectLoraOptions): LoraAdapterSet {
  if (!Number.isInteger(o.rank) || o.rank < 1) throw new Error(`LoRA rank must be a positive integer, got ${o.rank}`);
  const projections = o.projections ?? defaultLoraProjections(o.targets);
  const paths = loraTargetPaths(model, o.targets, projections);
  if (paths.length === 0) throw new Error(`injectLora: no Linear layer matches targets ${String(o.targets)} with projections ${projections.join(', ')}`);
  const set = new LoraAdapterSet(o.name ?? 'lora', o.rank, o.alpha ?? o.rank);
  const modules = moduleMap(model);
  const r = o.rank;
  for (const path of paths) {
    const lin = modules.get(path) as Linear;
    const down = tf.tidy(() =>
      o.init === 'gaussian'
        ? tf.randomNormal([lin.inFeatures, r], 0, 1 / r, 'float32', nextInitSeed())
        : tf.randomUniform([lin.inFeatures, r], -1 / Math.sqrt(lin.inFeatures), 1 / Math.sqrt(lin.inFeatures), 'float32', nextInitSeed()),
    );
    const up = tf.zeros([r, lin.outFeatures]);
    set.adapters.set(path, { down: tf.variable(down, true), up: tf.variable(up, true), scale: set.scale });
    down.dispose();
    up.dispose();
  }
  if (o.apply ?? true) applyLora(model, set);
  return set;
}

function linearAt(modules: Map<string, Module>, path: string, w: LoraWeights): Linear {
  const lin = modules.get(path);
  if (!(lin instanceof Linear)) throw new Error(`LoRA target '${path}' is not a Linear layer of this model`);
  if (w.down.shape[0] !== lin.inFeatures || w.up.shape[1] !== lin.outFeatures || w.down.shape[1] !== w.up.shape[0]) {
    throw new Error(`LoRA '${path}': down [${w.down.shape}] / up [${w.up.shape}] do not fit a Linear ${lin.inFeatures}→${lin.outFeatures}`);
  }
  return lin;
}

/**
 * Attach `set` (unmerged) to the model's Linear layers, after detaching whatever adapters were attached;
 * `null` detaches all. Base weights are untouched, so adapter sets can be swapped per request.
 */
export function applyLora(model: Module, set: LoraAdapterSet | null): void {
  const modules = moduleMap(model);
  if (set) for (const [path, w] of set.adapters) linearAt(modules, path, w); // validate before changing anything
  for (const m of modules.values()) if (m instanceof Linear) m.lora = null;
  if (set) for (const [path, w] of set.adapters) linearAt(modules, path, w).lora = w;
}

/** The adapter set attached to the model's Linear layers, as path → weights (empty when none). */
export function attachedLora(model: Module): Map<string, LoraWeights> {
  const out = new Map<string, LoraWeights>();
  for (const [path, m] of model.namedModules()) if (m instanceof Linear && m.lora) out.set(path, m.lora);
  return out;
}

/** Original weights of merged Linear layers, per model, so that unmerging restores them bit for bit. */
const mergedOriginals = new WeakMap<Module, Map<string, tf.Tensor>>();

/**
 * Fold `set` into the base weights (W += scale · down · up) for adapter-free inference speed. The original
 * weights are kept so that `unmergeLora` restores them exactly. A merged set is detached from its layers
 * (it must not be applied twice); merging again on top of a merge stacks, and one unmerge undoes all.
 */
export function mergeLora(model: Module, set: LoraAdapterSet): void {
  const modules = moduleMap(model);
  let saved = mergedOriginals.get(model);
  if (!saved) {
    saved = new Map();
    mergedOriginals.set(model, saved);
  }
  for (const [path, w] of set.adapters) {
    const lin = linearAt(modules, path, w);
    if (!saved.has(path)) saved.set(path, tf.keep(tf.clone(lin.weight.variable)));
    const merged = tf.tidy(() => tf.add(lin.weight.variable, tf.mul(tf.matMul(w.down as tf.Tensor2D, w.up as tf.Tensor2D), w.scale)));
    lin.weight.variable.assign(merged);
    merged.dispose();
    if (lin.lora === w) lin.lora = null;
  }
}

/** Restore every weight changed by `mergeLora` on this model; returns how many layers were restored. */
export function unmergeLora(model: Module): number {
  const saved = mergedOriginals.get(model);
  if (!saved) return 0;
  const modules = moduleMap(model);
  for (const [path, original] of saved) {
    (modules.get(path) as Linear).weight.variable.assign(original);
    original.dispose();
  }
  mergedOriginals.delete(model);
  return saved.size;
}

/** Whether `mergeLora` has changed this model's weights (and `unmergeLora` has not yet restored them). */
export function isLoraMerged(model: Module): boolean {
  return mergedOriginals.has(model);
}
