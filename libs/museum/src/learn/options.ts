/** Options of `learnStyle`, their defaults (the "full settings") and progress events. */
import type { LoraTargetKind } from '@museum/models';
import type { CommitHooks } from '../store/museum';
import type { StyleModels } from '../models';
import type { LossComponents, MethodName } from './methods';

/** Weights of the loss terms (each term also has an on/off switch, see `LossComponents`). */
export interface LossWeights {
  diffusion: number;
  sdl: number;
  weightReg: number;
  featReg: number;
  clora: number;
  ewc: number;
}

/**
 * Default weights. The diffusion loss is the reference (1). The SDL is a KL per feature group of O(0.01–0.1)
 * once the set's statistics are matched; 0.5 makes it a steady pull without dominating. The weight
 * regularization (input-subspace form) is Σ_s of a cosine in [0, 1], ~0.01 a few dozen steps into a task and
 * ~3e-4 at its end; 5 makes keeping off earlier styles' input directions a real constraint (at 0.5 with the
 * plain cosine, F was 0.24; with this form at 5, 0.02: bench/results/continual-isub.md). The feature
 * regularization is a relative MSE (≈ 0 at the start of a task); 1 holds earlier styles' features while leaving
 * room. C-LoRA and EWC use normalised masks/Fishers (mean 1), so λ = 1 gives penalties on the scale of ‖ΔW_t‖².
 */
export const DEFAULT_LOSS_WEIGHTS: Readonly<LossWeights> = Object.freeze({ diffusion: 1, sdl: 0.5, weightReg: 5, featReg: 1, clora: 1, ewc: 1 });

export interface LearnSettings {
  /** Optimiser steps (default 400). */
  steps: number;
  /** Training images per step (default 4). */
  batchSize: number;
  /**
   * Peak learning rate of the LoRA parameters (default 1e-3). 2e-3 learned a later style faster in a one-task probe
   * (mosaic onto version 3: S 0.28 → 0.72) but over the full benchmark it forgot more and learned no better
   * (A 0.49, F 0.22, P 0.66 vs A 0.61, F 0.07, P 0.66: bench/results/continual-lr.md).
   */
  lr: number;
  /** Peak learning rate of the new token's row (default 5e-3; its norm is bounded by `tokenNormCap`). */
  tokenLr: number;
  /**
   * Largest norm a learned token row may take, as a multiple of the vocabulary's largest row norm (default 1;
   * 0 = unbounded). Rows are projected back onto that ball after every step, so a new word stays in the range
   * of the words the text encoder was trained on: a free row drifted to 2× that range and broke content, and a
   * slow row (lr 1e-4) stayed the init word, so styles could not be told apart (bench/results/learn-sweep.md).
   */
  tokenNormCap: number;
  /** Linear warm-up steps before the cosine decay (default 20). */
  warmup: number;
  /** Decoupled weight decay of the LoRA (default 0: any decay would erase earlier styles from a shared LoRA). */
  weightDecay: number;
  /** Gradient-norm clipping, per parameter group (default 1). */
  maxGradNorm: number;
  /**
   * Shared LoRA rank and alpha (default 32 / 32); fixed by a museum's first style. Every style's update must find
   * input directions the earlier ones do not read (the weight regularization): on the benchmark rank 32 reached
   * A 0.61 / P 0.66 where rank 8 ran out of room at A 0.48 / P 0.49 (bench/results/continual-rank.md).
   */
  rank: number;
  alpha: number;
  /**
   * LoRA on every attention projection of the UNet (default `all-attention`: a style is a texture, which
   * self-attention shapes; cross-attention alone learned stripes at S 0.22–0.31 vs 0.44–0.50), or only the
   * cross- or self-attention ones, or every attention projection and the transformer blocks' feed-forward
   * (`attention-ff`).
   */
  loraTargets: LoraTargetKind;
  /**
   * Rank of each style's own block of the shared LoRA (default 0: every style trains the whole rank). With b > 0,
   * style k (0-based) trains only ranks [k·b, (k+1)·b) (columns of every down-projection, rows of every
   * up-projection, starting from an update of zero) and every earlier block stays bit-identical, as O-LoRA
   * (Wang et al. 2023) keeps a frozen adapter per task: a new style cannot rewrite an earlier style's weights,
   * only add to their sum. The museum then holds rank / b styles; b must stay the same for all of them.
   */
  loraStyleBlock: number;
  /** The word whose embedding initialises a new token (default 'style'), or 'random'. */
  initWord: string;
  /** Softmax temperature τ of the SDL (default 1, on per-group standardised statistics). */
  sdlTemperature: number;
  /** Decoder up blocks the SDL features go through after the mid block (default 1). */
  sdlUpBlocks: number;
  /**
   * What the weight regularization compares (default `input-subspace`): `input-subspace` = the cosine of the
   * updates' Grams over input dimensions (the directions each update reads, as O-LoRA keeps tasks'
   * down-projections apart; see `inputSubspaceRegularization`); `cosine` = cos² between this style's LoRA update
   * and each earlier one as [in, out] matrices, nearly 0 for any two low-rank updates (1.7e-6 at the end of a
   * second task, bench/results/weightreg-ab.md), so it constrained nothing and F was 0.24 on the benchmark.
   */
  weightRegForm: 'cosine' | 'input-subspace';
  /**
   * Latents (earlier styles' prompts) per step for the feature regularization (default 1). Each adds a sample to
   * the trained pass and one to the teacher pass: 2 made a later style's step ~20% slower than 1
   * (2.03 vs 1.66 s/step, bench/results/step-cost.json) for the same expected penalty (one latent is an unbiased estimate of it).
   */
  featRegBatch: number;
  /**
   * Where the feature regularization's latents come from (default `noise`): `noise` = N(0, I) at a random
   * timestep (off the data manifold except near t = T, so it constrains the model where sampling never goes);
   * `replay` = latents the previous version generates for earlier styles' prompts at the start of the task
   * (no stored training images), noised to a random timestep each step: the inputs sampling actually visits.
   */
  featRegInputs: 'noise' | 'replay';
  /**
   * Share of the feature regularization's samples taken on the empty prompt, the unconditional branch of every
   * guided generation (default `uniform`: the base model counts as one earlier "style" drawn uniformly with the
   * others and uses the empty prompt half the time, a share of 1/(2(n+1)) with n earlier styles, which fades as
   * the museum grows). A number p in [0, 1] holds it at p whatever the museum's size; the rest are drawn
   * uniformly over base prompts and earlier styles' prompts. With `replay` inputs it is the share judged under
   * the empty prompt (`uniform` = 0.5 there).
   */
  featRegEmptyShare: number | 'uniform';
  /** `replay`: latents generated by the previous version per task (default 16). */
  featRegReplay: number;
  /** `replay`: DDIM steps of each replay generation (default 10; guidance 7.5). */
  featRegReplaySteps: number;
  /**
   * Offset noise (default 0): the training noise gets a per-image, per-channel constant drawn from
   * N(0, noiseOffset²) on top of N(0, I) (Guttenberg 2023; diffusers' `--noise_offset`). Meant for styles whose
   * whole background is one dark or saturated colour: with ᾱ_T = 0.0047 the start of sampling still carries the
   * noise's channel means as "signal" (spread 1/16 on a 16×16 latent), which a model trained on zero-mean noise
   * follows. On the benchmark's styles it did not help reliably (blueprint 9 → 13 of 16, mosaic 6 → 5 of 16;
   * bench/results/plasticity/README.md), hence off.
   */
  noiseOffset: number;
  /** Samples of the task's own loss for the EWC Fisher (default 16). */
  ewcFisherSamples: number;
  /** `joint`: train steps × (number of styles), so every style gets the budget it would get alone (default true). */
  jointScaleSteps: boolean;
  seed: number;
}

export const DEFAULT_LEARN_SETTINGS: Readonly<LearnSettings> = Object.freeze({
  steps: 400,
  batchSize: 4,
  lr: 1e-3,
  tokenLr: 5e-3,
  tokenNormCap: 1,
  warmup: 20,
  weightDecay: 0,
  maxGradNorm: 1,
  rank: 32,
  alpha: 32,
  loraTargets: 'all-attention',
  loraStyleBlock: 0,
  initWord: 'style',
  sdlTemperature: 1,
  sdlUpBlocks: 1,
  weightRegForm: 'input-subspace',
  featRegBatch: 1,
  featRegInputs: 'noise',
  featRegEmptyShare: 'uniform',
  featRegReplay: 16,
  featRegReplaySteps: 10,
  noiseOffset: 0,
  ewcFisherSamples: 16,
  jointScaleSteps: true,
  seed: 0,
});

/**
 * How each setting is written as text (`--set key=value`): a number, `true`/`false`, a word, or either a number or
 * a word (`featRegEmptyShare=0.5` or `=uniform`). Typed over every key, so a new setting cannot be added without
 * saying how it is read; ranges and word lists stay with `learnStyle`'s checks.
 */
export type LearnSettingKind = 'number' | 'boolean' | 'word' | 'number-or-word';

export const LEARN_SETTING_KINDS: Readonly<Record<keyof LearnSettings, LearnSettingKind>> = Object.freeze({
  steps: 'number',
  batchSize: 'number',
  lr: 'number',
  tokenLr: 'number',
  tokenNormCap: 'number',
  warmup: 'number',
  weightDecay: 'number',
  maxGradNorm: 'number',
  rank: 'number',
  alpha: 'number',
  loraTargets: 'word',
  loraStyleBlock: 'number',
  initWord: 'word',
  sdlTemperature: 'number',
  sdlUpBlocks: 'number',
  weightRegForm: 'word',
  featRegBatch: 'number',
  featRegInputs: 'word',
  featRegEmptyShare: 'number-or-word',
  featRegReplay: 'number',
  featRegReplaySteps: 'number',
  noiseOffset: 'number',
  ewcFisherSamples: 'number',
  jointScaleSteps: 'boolean',
  seed: 'number',
});

/** Whether `key` names a learn setting. */
export function isLearnSettingName(key: string): key is keyof LearnSettings {
  return Object.prototype.hasOwnProperty.call(LEARN_SETTING_KINDS, key);
}

/**
 * The value of setting `key` written as `raw`, by its kind; a value of the wrong kind throws an Error that says
 * what was expected (`must be a number, got 'fast'`).
 */
export function parseLearnSetting<K extends keyof LearnSettings>(key: K, raw: string): LearnSettings[K] {
  const text = raw.trim();
  const asNumber = text === '' ? NaN : Number(text);
  switch (LEARN_SETTING_KINDS[key]) {
    case 'number':
      if (!Number.isFinite(asNumber)) throw new Error(`must be a number, got '${raw}'`);
      return asNumber as LearnSettings[K];
    case 'boolean':
      if (text !== 'true' && text !== 'false') throw new Error(`must be true or false, got '${raw}'`);
      return (text === 'true') as LearnSettings[K];
    case 'number-or-word':
      return (Number.isFinite(asNumber) ? asNumber : text) as LearnSettings[K];
    case 'word':
      return text as LearnSettings[K];
  }
}

export type LossName = keyof LossWeights | 'total';

export interface LearnProgress {
  phase: 'prepare' | 'train' | 'fisher' | 'commit';
  /** Steps done (1-based during 'train'). */
  step: number;
  total: number;
  /** The terms of the step just done (unweighted) and the weighted total. */
  losses: Partial<Record<LossName, number>>;
  lr: number;
  elapsedSeconds: number;
  etaSeconds: number;
  secondsPerStep: number;
}

export interface LearnStyleOptions extends Partial<LearnSettings> {
  /** Default: the museum's method, or 'museummaker' for its first style. */
  method?: MethodName;
  /** One caption per image (content captions, with the style as `in <name>`); default `a picture in <name>`. */
  captions?: string[];
  /** Switch loss terms on or off against the method's defaults. */
  components?: Partial<LossComponents>;
  weights?: Partial<LossWeights>;
  /** Models to train on (they are left with the new token added and no LoRA attached); default: loaded from the museum's base folder. */
  models?: StyleModels;
  onProgress?: (p: LearnProgress) => void;
  /** Cancels between steps: nothing is committed, the error has code CANCELLED (name 'AbortError'). */
  signal?: AbortSignal;
  /** Test seams of the commit. */
  commitHooks?: CommitHooks;
}
