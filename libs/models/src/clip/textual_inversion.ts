import { tf, SafetensorsReader, saveSafetensors } from '@museum/tensor';
import type { Tokenizer } from '../tokenizers/tokenizer';
import type { CLIPTextModel } from './modeling_clip';

/**
 * Learned token embeddings in the upstream textual-inversion file format (diffusers'
 * `learned_embeds.safetensors`): one tensor per placeholder token, `{ "<token>": [hidden_size] }`.
 */

export interface LearnedEmbedding {
  token: string;
  /** [hidden_size] */
  vector: tf.Tensor1D;
}

/** Write the current rows of `tokens` (as the tokenizer maps them) to a safetensors file. */
export function saveTextualInversion(file: string, tokenizer: Tokenizer, textEncoder: CLIPTextModel, tokens: string[], options: { dtype?: 'F32' | 'F16' } = {}): void {
  const tensors = new Map<string, tf.Tensor>();
  try {
    for (const token of tokens) {
      const id = tokenizer.tokenId(token);
      if (id === undefined) throw new Error(`saveTextualInversion: ${token} is not a token of the tokenizer`);
      tensors.set(token, textEncoder.getTokenEmbedding(id));
    }
    saveSafetensors(file, tensors, { dtype: options.dtype, metadata: { format: 'pt' } });
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
}

/**
 * Read learned embeddings. A [n, D] tensor (multi-vector embedding) becomes tokens `tok`, `tok_1`, …
 * as diffusers names them; A1111-style files with a single `emb_params` tensor need `token`.
 */
export function readTextualInversion(file: string, options: { token?: string } = {}): LearnedEmbedding[] {
  const reader = SafetensorsReader.open(file);
  const out: LearnedEmbedding[] = [];
  try {
    const keys = reader.keys();
    for (const key of keys) {
      const shape = reader.info(key).shape;
      if (shape.length !== 1 && shape.length !== 2) throw new Error(`textual inversion file ${file}: tensor ${key} has shape [${shape}], expected [D] or [n, D]`);
      const t = reader.read(key);
      const rows = tf.reshape(t, [shape.length === 1 ? 1 : shape[0], shape[shape.length - 1]]);
      t.dispose();
      let name = key;
      if (key === 'emb_params' || key === 'string_to_param.*' || keys.length === 1) name = options.token ?? key;
      if (name === 'emb_params' || name === 'string_to_param.*') {
        rows.dispose();
        throw new Error(`textual inversion file ${file} does not name its token: pass options.token`);
      }
      const vectors = tf.unstack(rows) as tf.Tensor1D[];
      rows.dispose();
      vectors.forEach((vector, i) => out.push({ token: i === 0 ? name : `${name}_${i}`, vector }));
    }
    return out;
  } catch (err) {
    out.forEach((e) => e.vector.dispose());
    throw err;
  } finally {
    reader.close();
  }
}

/**
 * Add the tokens of a textual-inversion file to the tokenizer and their rows to the text encoder
 * (as new, trainable rows after the vocabulary). `token` renames a single-token file.
 */
export function loadTextualInversion(file: string, tokenizer: Tokenizer, textEncoder: CLIPTextModel, options: { token?: string } = {}): { tokens: string[]; ids: number[] } {
  const learned = readTextualInversion(file, options);
  try {
    const d = textEncoder.config.hidden_size;
    for (const e of learned) {
      if (e.vector.shape[0] !== d) throw new Error(`textual inversion ${e.token}: vector of ${e.vector.shape[0]} values, the text encoder has hidden_size ${d}`);
      if (tokenizer.tokenId(e.token) !== undefined) throw new Error(`textual inversion: token ${e.token} already exists in the tokenizer`);
    }
    if (tokenizer.vocabSize !== textEncoder.numTokens) {
      throw new Error(`tokenizer (${tokenizer.vocabSize} ids) and text encoder (${textEncoder.numTokens} rows) are out of step`);
    }
    const tokens = learned.map((e) => e.token);
    const rows = tf.stack(learned.map((e) => e.vector));
    let ids: number[];
    try {
      ids = textEncoder.addTokenEmbeddings(tokens.length, rows);
    } finally {
      rows.dispose();
    }
    const tokIds = tokenizer.addTokens(tokens);
    if (tokIds.join(',') !== ids.join(',')) throw new Error(`textual inversion: tokenizer ids [${tokIds}] differ from embedding rows [${ids}]`);
    return { tokens, ids };
  } finally {
    learned.forEach((e) => e.vector.dispose());
  }
}
