/**
 * The tokenizer + CLIP text encoder of a pipeline folder, with museum task tokens: a version's
 * tokens are added to the tokenizer and the token table once (ids never change afterwards), and
 * their rows are set to that version's vectors before a batch of that version is encoded.
 */
import { tf } from '@museum/tensor';
import { CLIPTextModel, type Tokenizer } from '@museum/models';
import { loadPipelinePart, loadPipelineTokenizer } from '@museum/rpc';

export class TextEncoderModel {
  /** Added tokens the folder itself had (pre-training styles); valid in every version. */
  readonly baseTokens: Set<string>;
  readonly maxLength: number;
  /** The version whose rows are in the token table now. */
  private rowsOf: number | null = null;

  constructor(
    readonly tokenizer: Tokenizer,
    readonly encoder: CLIPTextModel,
  ) {
    this.baseTokens = new Set(tokenizer.addedTokens);
    this.maxLength = Math.min(tokenizer.modelMaxLength, encoder.config.max_position_embeddings);
    if (tokenizer.vocabSize !== encoder.numTokens) {
      throw new Error(`tokenizer (${tokenizer.vocabSize} ids) and text encoder (${encoder.numTokens} rows) are out of step`);
    }
  }

  static load(dir: string): TextEncoderModel {
    const tokenizer = loadPipelineTokenizer(dir);
    const { model } = loadPipelinePart<CLIPTextModel>(dir, 'text_encoder');
    try {
      return new TextEncoderModel(tokenizer, model);
    } catch (err) {
      model.dispose();
      throw err;
    }
  }

  get hiddenSize(): number {
    return this.encoder.config.hidden_size;
  }

  /** Tokens of one prompt (start and end included), before truncation. */
  tokenCount(prompt: string): number {
    return this.tokenizer.encode(prompt).length;
  }

  /** Give every token of a version an id (new tokens get new rows). */
  install(tokens: Map<string, Float32Array>): void {
    const missing = [...tokens.keys()].filter((t) => this.tokenizer.tokenId(t) === undefined);
    for (const [t, v] of tokens) {
      if (v.length !== this.hiddenSize) throw new Error(`task token ${t} has ${v.length} values, the text encoder's hidden size is ${this.hiddenSize}`);
    }
    if (missing.length === 0) return;
    this.tokenizer.addTokens(missing);
    this.encoder.addTokenEmbeddings(missing.length, 'random');
    this.rowsOf = null;
  }

  /** [B, L, D] embeddings of prompts under `version`'s token rows (tokens must be installed). */
  encode(prompts: string[], version: number, tokens: Map<string, Float32Array>): tf.Tensor3D {
    if (this.rowsOf !== version && tokens.size > 0) {
      const rows = new Map<number, Float32Array>();
      for (const [t, v] of tokens) rows.set(this.tokenizer.tokenId(t)!, v);
      this.encoder.setTokenEmbeddings(rows);
      this.rowsOf = version;
    }
    const batch = this.tokenizer.encodeBatch(prompts, { maxLength: this.maxLength, padding: 'max_length', truncation: true });
    return tf.tidy(() => this.encoder.lastHiddenState(tf.tensor2d(batch.flat, [prompts.length, batch.length], 'int32')));
  }

  dispose(): void {
    this.encoder.dispose();
  }
}
