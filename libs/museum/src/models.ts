/**
 * The base model parts the museum works on, and the token bookkeeping the learner and the runtime share:
 * placeholder tokens are append-only in a tokenizer, so every museum token that was ever added keeps its id,
 * and a version is applied by writing its rows (and rewriting word-styled placeholders) before encoding.
 */
import { tf } from '@museum/tensor';
import {
  AutoencoderKL,
  CLIPTextModel,
  SD_SCHEDULER_CONFIG,
  StableDiffusionPipeline,
  UNet2DConditionModel,
  type SamplingDefaults,
  type SchedulerConfigInput,
  type Tokenizer,
} from '@museum/models';
import { MuseumError, STYLE_NAME_PATTERN } from './errors';
import type { StyleRecord } from './store/manifest';

export interface StyleModels {
  tokenizer: Tokenizer;
  textEncoder: CLIPTextModel;
  unet: UNet2DConditionModel;
  vae: AutoencoderKL;
  /** The training noise schedule (default: Stable Diffusion's). */
  schedulerConfig?: SchedulerConfigInput;
  /** The folder's guidance shaping defaults for generation (sampling_config.json). */
  samplingDefaults?: SamplingDefaults;
}

/** The parts of a pipeline, checked to be the project's model classes (the learner needs their internals). */
export function modelsFromPipeline(p: StableDiffusionPipeline): StyleModels {
  if (!(p.textEncoder instanceof CLIPTextModel) || !(p.unet instanceof UNet2DConditionModel) || !(p.vae instanceof AutoencoderKL)) {
    throw new MuseumError('FAILED_PRECONDITION', 'the pipeline must be made of CLIPTextModel, UNet2DConditionModel and AutoencoderKL');
  }
  return { tokenizer: p.tokenizer, textEncoder: p.textEncoder, unet: p.unet, vae: p.vae, schedulerConfig: p.schedulerConfig, samplingDefaults: p.samplingDefaults };
}

export function pipelineFromModels(m: StyleModels): StableDiffusionPipeline {
  return new StableDiffusionPipeline({ tokenizer: m.tokenizer, textEncoder: m.textEncoder, unet: m.unet, vae: m.vae, schedulerConfig: m.schedulerConfig ?? SD_SCHEDULER_CONFIG, samplingDefaults: m.samplingDefaults });
}

export function disposeModels(m: StyleModels): void {
  m.unet.dispose();
  m.vae.dispose();
  m.textEncoder.dispose();
}

/** Pixels per latent cell and the model's default image side. */
export function modelResolution(m: StyleModels): { vaeFactor: number; size: number } {
  const vaeFactor = 2 ** (m.vae.config.block_out_channels.length - 1);
  return { vaeFactor, size: (m.unet.config.sample_size ?? 64) * vaeFactor };
}

/** The maximum prompt length the text encoder takes (tokenizer limit and position table). */
export function promptLength(m: StyleModels): number {
  return Math.min(m.tokenizer.modelMaxLength, m.textEncoder.config.max_position_embeddings);
}

/**
 * Make sure every token has an id and a row: missing ones are appended to the tokenizer and the text
 * encoder together (ids must stay in step). Returns token → id.
 */
export function ensureTokens(m: StyleModels, tokens: string[]): Map<string, number> {
  if (m.tokenizer.vocabSize !== m.textEncoder.numTokens) {
    throw new MuseumError('FAILED_PRECONDITION', `tokenizer (${m.tokenizer.vocabSize} ids) and text encoder (${m.textEncoder.numTokens} rows) are out of step`);
  }
  const out = new Map<string, number>();
  for (const t of tokens) {
    let id = m.tokenizer.tokenId(t);
    if (id === undefined) {
      const [row] = m.textEncoder.addTokenEmbeddings(1, 'random');
      [id] = m.tokenizer.addTokens([t]);
      if (id !== row) throw new MuseumError('FAILED_PRECONDITION', `token ${t}: tokenizer id ${id} differs from embedding row ${row}`);
    } else if (id < m.textEncoder.embeddings.baseTokens && /^<[a-z0-9-]+>$/.test(t)) {
      throw new MuseumError('FAILED_PRECONDITION', `${t} is a vocabulary token of the base model, it cannot name a style`);
    }
    out.set(t, id);
  }
  return out;
}

/** The id of a single-token word (for initialising a new token); INVALID_ARGUMENT when it is several tokens. */
export function singleTokenId(tokenizer: Tokenizer, word: string): number {
  const direct = tokenizer.tokenId(word);
  if (direct !== undefined) return direct;
  const ids = tokenizer.encode(word).filter((id) => id !== tokenizer.bosId && id !== tokenizer.eosId);
  if (ids.length !== 1) throw new MuseumError('INVALID_ARGUMENT', `initWord ${JSON.stringify(word)} is ${ids.length} tokens, not one`);
  return ids[0];
}

/** Write rows (token → values) into the text encoder's table. */
export function setTokenRows(m: StyleModels, rows: ReadonlyMap<string, ArrayLike<number> | tf.Tensor>): void {
  if (rows.size === 0) return;
  const byId = new Map<number, ArrayLike<number> | tf.Tensor>();
  for (const [token, v] of rows) {
    const id = m.tokenizer.tokenId(token);
    if (id === undefined) throw new MuseumError('FAILED_PRECONDITION', `token ${token} is not in the tokenizer`);
    byId.set(id, v);
  }
  m.textEncoder.setTokenEmbeddings(byId);
}

const PLACEHOLDER = /<([a-z0-9-]{1,48})>/g;

/**
 * A prompt as the text encoder must see it under a set of styles: placeholders of word-embedded styles
 * become their word; placeholders of token-embedded styles stay. Returns the styles mentioned. A placeholder
 * `<x>` that the tokenizer would read as an added token but that is no style of this set is NOT_FOUND (its
 * row would hold another museum's or version's embedding).
 */
export function rewritePrompt(prompt: string, styles: readonly StyleRecord[], tokenizer: Tokenizer): { text: string; styles: string[] } {
  const byToken = new Map(styles.map((s) => [s.token, s]));
  const mentioned: string[] = [];
  const text = prompt.replace(PLACEHOLDER, (whole, name: string) => {
    const s = byToken.get(whole);
    if (s) {
      if (!mentioned.includes(s.name)) mentioned.push(s.name);
      return s.embedding.kind === 'word' ? s.embedding.word : whole;
    }
    if (STYLE_NAME_PATTERN.test(name) && tokenizer.addedTokens.includes(whole)) {
      throw new MuseumError('NOT_FOUND', `style ${whole} is not in this museum version`);
    }
    return whole;
  });
  return { text, styles: mentioned };
}
