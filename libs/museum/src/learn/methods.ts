/**
 * The continual-learning methods, all run by the same training loop (`learnStyle`), which differ only in
 * what they train and which loss terms they add:
 *
 * - `museummaker` (MuseumMaker, Liu et al. 2024): a new task token per style trained jointly with ONE shared
 *   LoRA (continued from the previous version), with the style distillation loss (SDL), the weight
 *   regularization (update directions of the shared LoRA kept apart) and the feature regularization
 *   (features for earlier styles kept close to the previous version's).
 * - `museummaker-distill`, `-weightreg`, `-featreg`: the same without that one component.
 * - `museummaker-token`: the same without task tokens: every style is prompted through the fixed word `style`
 *   (`a red star in <stripes>` is read as `a red star in style`) and only the shared LoRA learns.
 * - `finetune`: task token + shared LoRA trained sequentially with the diffusion loss only (the naive baseline).
 * - `clora`: C-LoRA's self-regularization (Smith et al., "Continual Diffusion", TMLR 2024) on the shared LoRA:
 *   loss += λ‖(Σ_{s<t} |ΔW_s|) ⊙ ΔW_t‖² per adapted layer, which discourages changing the weights earlier
 *   styles changed. Smith et al. keep one LoRA per task summed into the weights; with a shared LoRA the
 *   per-task update is the difference of consecutive adapters, ΔW_t = A_tB_t − A_{t−1}B_{t−1}, which is the
 *   same quantity (their per-task product), so the penalty is theirs. Task tokens as in their paper.
 * - `textual-inversion` (Gal et al. 2022): only the new token's embedding is learned; no LoRA. Cannot forget
 *   (nothing shared changes), but its plasticity is limited to what a word embedding can express.
 * - `ewc` (Kirkpatrick et al. 2017, online form of Schwarz et al. 2018): task token + shared LoRA with a
 *   quadratic penalty (λ/2) Σ F_i (θ_i − θ*_i)² pulling the LoRA parameters toward the previous version,
 *   weighted by a diagonal Fisher estimated at the end of each task from that task's own diffusion loss
 *   (normalised to mean 1 per task, accumulated over tasks, stored with the version).
 * - `separate`: one fresh LoRA per style (plus its token), chosen at inference by the style token in the prompt.
 *   Nothing is shared, so nothing is forgotten, but memory grows with every style. A non-continual reference.
 * - `joint`: all styles seen so far trained at once from their images (kept in the museum for this purpose),
 *   from the base model: a fresh shared LoRA and fresh tokens each time. The non-continual upper reference.
 */
import { MuseumError } from '../errors';

export const METHOD_NAMES = [
  'museummaker',
  'museummaker-distill',
  'museummaker-weightreg',
  'museummaker-featreg',
  'museummaker-token',
  'finetune',
  'clora',
  'textual-inversion',
  'ewc',
  'separate',
  'joint',
] as const;

export type MethodName = (typeof METHOD_NAMES)[number];

/** The loss terms beside the diffusion loss. */
export interface LossComponents {
  /** Style distillation loss on the predicted clean latents. */
  sdl: boolean;
  /** Squared cosine between this style's shared-LoRA update and each earlier style's. */
  weightReg: boolean;
  /** Feature distillation against the previous version on earlier styles' prompts. */
  featReg: boolean;
  /** C-LoRA's elementwise penalty. */
  clora: boolean;
  /** EWC's Fisher-weighted quadratic penalty. */
  ewc: boolean;
  /**
   * Task tokens kept apart: the new style's token is projected onto the orthogonal complement of the earlier
   * styles' tokens (at its start and after every step; a constraint, not a loss term, so it has no weight).
   * Off by default: it kept later prompts' content (blueprint C 0.81 vs 0.38 in a one-task probe) but the
   * shared LoRA then carried more of each style and forgot more: stripes kept 14/32 instead of 24/32 when
   * mosaic was learned (bench/results/mosaic-from-t3-r32/README.md), and the full benchmark with it on forgot
   * more than the run without (bench/results/continual-lr.md).
   */
  tokenOrthogonal: boolean;
}

export interface MethodSpec {
  name: MethodName;
  /** `token`: a new learned token per style; `word`: the fixed word `style` stands for every style. */
  embedding: 'token' | 'word';
  /**
   * `shared`: one LoRA, continued from the previous version; `separate`: a fresh LoRA per style, kept per style;
   * `joint`: a fresh shared LoRA trained on every style so far; `none`: no LoRA.
   */
  lora: 'shared' | 'separate' | 'joint' | 'none';
  components: LossComponents;
  summary: string;
}

const NONE: LossComponents = { sdl: false, weightReg: false, featReg: false, clora: false, ewc: false, tokenOrthogonal: false };
const FULL: LossComponents = { ...NONE, sdl: true, weightReg: true, featReg: true };

export const METHODS: Readonly<Record<MethodName, MethodSpec>> = Object.freeze({
  museummaker: { name: 'museummaker', embedding: 'token', lora: 'shared', components: FULL, summary: 'task token + shared LoRA + SDL + weight and feature regularization' },
  'museummaker-distill': {
    name: 'museummaker-distill',
    embedding: 'token',
    lora: 'shared',
    components: { ...FULL, sdl: false },
    summary: 'museummaker without the style distillation loss',
  },
  'museummaker-weightreg': {
    name: 'museummaker-weightreg',
    embedding: 'token',
    lora: 'shared',
    components: { ...FULL, weightReg: false },
    summary: 'museummaker without the weight regularization',
  },
  'museummaker-featreg': {
    name: 'museummaker-featreg',
    embedding: 'token',
    lora: 'shared',
    components: { ...FULL, featReg: false },
    summary: 'museummaker without the feature regularization',
  },
  'museummaker-token': {
    name: 'museummaker-token',
    embedding: 'word',
    lora: 'shared',
    components: FULL,
    summary: 'museummaker without task tokens (the word "style" for every style)',
  },
  finetune: { name: 'finetune', embedding: 'token', lora: 'shared', components: NONE, summary: 'task token + shared LoRA, sequential, no regularization' },
  clora: { name: 'clora', embedding: 'token', lora: 'shared', components: { ...NONE, clora: true }, summary: "task token + shared LoRA with C-LoRA's self-regularization" },
  'textual-inversion': { name: 'textual-inversion', embedding: 'token', lora: 'none', components: NONE, summary: 'task token only' },
  ewc: { name: 'ewc', embedding: 'token', lora: 'shared', components: { ...NONE, ewc: true }, summary: 'task token + shared LoRA with an EWC penalty' },
  separate: { name: 'separate', embedding: 'token', lora: 'separate', components: NONE, summary: 'one LoRA per style (memory grows), chosen by the style token' },
  joint: { name: 'joint', embedding: 'token', lora: 'joint', components: NONE, summary: 'all styles so far trained at once (non-continual reference)' },
});

export function isMethodName(name: unknown): name is MethodName {
  return typeof name === 'string' && (METHOD_NAMES as readonly string[]).includes(name);
}

export function methodSpec(name: string): MethodSpec {
  if (!isMethodName(name)) throw new MuseumError('INVALID_ARGUMENT', `unknown method ${JSON.stringify(name)}; one of ${METHOD_NAMES.join(', ')}`);
  return METHODS[name];
}

/** The word every style is prompted through in the `museummaker-token` ablation. */
export const SHARED_STYLE_WORD = 'style';

/**
 * The method's components with the caller's switches applied. The regularizers of the shared LoRA (weight,
 * feature, C-LoRA, EWC) only mean something for a shared LoRA; asking for them elsewhere is an error.
 */
export function resolveComponents(spec: MethodSpec, overrides: Partial<LossComponents> = {}): LossComponents {
  const out = { ...spec.components, ...overrides };
  if (out.tokenOrthogonal && (spec.embedding !== 'token' || spec.lora === 'joint')) {
    throw new MuseumError('INVALID_ARGUMENT', `method '${spec.name}' learns no new token against earlier ones: tokenOrthogonal does not apply`);
  }
  if (spec.lora !== 'shared') {
    for (const k of ['weightReg', 'featReg', 'clora', 'ewc'] as const) {
      if (out[k]) throw new MuseumError('INVALID_ARGUMENT', `method '${spec.name}' has no shared LoRA: the ${k} term does not apply`);
    }
  }
  return out;
}
