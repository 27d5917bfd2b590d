import { tf } from '@museum/tensor';
import { Module, ModuleList, nextInitSeed } from '../nn/module';
import { Embedding, LayerNorm, Linear, gelu, quickGelu } from '../nn/layers';
import { multiHeadAttention } from '../nn/attention';
import { CLIPTextConfig, validateClipTextConfig } from './config';

/** Added to masked attention logits: large and finite, so masks can be summed without -inf − -inf. */
const MASK_VALUE = -1e9;

/** Initial values of new token rows: given rows, random rows, or copies of existing tokens' rows. */
export type TokenEmbeddingInit = tf.Tensor | 'random' | { copyFrom: number[] };

/**
 * Token + position embeddings. The token table can grow: rows added for placeholder tokens live
 * in their own trainable variable (`extraTokenRows`) after the frozen upstream table, so textual
 * inversion trains only them and the upstream `token_embedding.weight` keeps its published shape.
 */
export class CLIPEmbeddings extends Module {
  readonly token_embedding: Embedding;
  readonly position_embedding: Embedding;
  private extra: tf.Variable | null = null;

  constructor(readonly config: CLIPTextConfig) {
    super();
    this.token_embedding = this.addModule('token_embedding', new Embedding(config.vocab_size, config.hidden_size, 0.02));
    this.position_embedding = this.addModule('position_embedding', new Embedding(config.max_position_embeddings, config.hidden_size, 0.02));
  }

  get baseTokens(): number {
    return this.config.vocab_size;
  }

  /** Rows of the whole token table: upstream vocabulary plus added tokens. */
  get numTokens(): number {
    return this.baseTokens + (this.extra ? this.extra.shape[0] : 0);
  }

  /** The added rows [n, D] (trainable), or null before any `addTokenEmbeddings`. */
  get extraTokenRows(): tf.Variable | null {
    return this.extra;
  }

  /**
   * Append `n` rows (ids `numTokens … numTokens+n-1`) and freeze the upstream table. A second call
   * replaces `extraTokenRows` by a longer variable: optimisers must pick up the new one.
   */
  addTokenEmbeddings(n: number, init: TokenEmbeddingInit = 'random'): number[] {
    if (!Number.isInteger(n) || n <= 0) throw new Error(`addTokenEmbeddings: n must be a positive integer, got ${n}`);
    const d = this.config.hidden_size;
    const first = this.numTokens;
    const rows = tf.tidy(() => {
      if (init === 'random') {
        // Same scale as the existing table so a new token starts as an ordinary-looking word.
        const std = Math.sqrt(tf.moments(this.token_embedding.weight.value).variance.dataSync()[0]);
        return tf.randomNormal([n, d], 0, std, 'float32', nextInitSeed());
      }
      if (init instanceof tf.Tensor) {
        if (init.shape.join(',') !== `${n},${d}`) throw new Error(`addTokenEmbeddings: init has shape [${init.shape}], expected [${n},${d}]`);
        return tf.cast(init, 'float32').clone();
      }
      const src = init.copyFrom;
      if (src.length !== n && src.length !== 1) throw new Error(`addTokenEmbeddings: copyFrom needs 1 or ${n} ids, got ${src.length}`);
      const ids = src.length === n ? src : new Array<number>(n).fill(src[0]);
      return this.lookup(tf.tensor1d(ids, 'int32'));
    });
    const grown = this.extra ? tf.concat([this.extra, rows]) : rows.clone();
    rows.dispose();
    this.extra?.dispose();
    this.extra = tf.variable(grown, true);
    grown.dispose();
    this.token_embedding.weight.variable.trainable = false;
    return Array.from({ length: n }, (_, i) => first + i);
  }

  /** Token rows for any-shaped int ids (upstream and added ids alike). */
  lookup(ids: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const idx = tf.cast(ids, 'int32');
      const base = this.token_embedding.weight.value;
      if (!this.extra) return tf.gather(base, idx);
      // Not one gather from concat(base, extra): that copies the 150 MB table every step. Upstream
      // ids gather from the frozen table (clamped, then zeroed where the id is an added one); added
      // ids take a one-hot product with the few extra rows, whose gradient is a plain matMul that is
      // exactly zero on rows the batch does not use (upstream ids give all-zero one-hot rows).
      const nBase = this.baseTokens;
      const flat = tf.reshape(idx, [-1]);
      const isBase = tf.expandDims(tf.cast(tf.less(flat, tf.scalar(nBase, 'int32')), 'float32'), -1);
      const fromBase = tf.mul(tf.gather(base, tf.minimum(flat, tf.scalar(nBase - 1, 'int32'))), isBase);
      // int32 then cast: the wasm OneHot kernel writes int bits when asked for float32.
      // tf.oneHot wants depth ≥ 2: with a single added row, take two columns and keep the first.
      const nExtra = this.extra.shape[0];
      let oneHot = tf.cast(tf.oneHot(tf.sub(flat, tf.scalar(nBase, 'int32')), Math.max(nExtra, 2)), 'float32');
      if (nExtra < 2) oneHot = tf.slice(oneHot, [0, 0], [-1, nExtra]);
      const fromExtra = tf.matMul(oneHot, this.extra);
      return tf.reshape(tf.add(fromBase, fromExtra), [...idx.shape, this.config.hidden_size]);
    });
  }

  /** Overwrite token rows (upstream or added) with the given vectors of length hidden_size. */
  setTokenEmbeddings(rows: Map<number, tf.Tensor | ArrayLike<number>>): void {
    const d = this.config.hidden_size;
    const baseIds: number[] = [];
    const baseVals: number[] = [];
    const extraIds: number[] = [];
    const extraVals: number[] = [];
    for (const [id, v] of rows) {
      if (!Number.isInteger(id) || id < 0 || id >= this.numTokens) throw new Error(`setTokenEmbeddings: id ${id} outside the table of ${this.numTokens} rows`);
      const values = v instanceof tf.Tensor ? Array.from(v.dataSync()) : Array.from(v);
      if (values.length !== d) throw new Error(`setTokenEmbeddings: row for id ${id} has ${values.length} values, expected ${d}`);
      if (id < this.baseTokens) {
        baseIds.push(id);
        baseVals.push(...values);
      } else {
        extraIds.push(id - this.baseTokens);
        extraVals.push(...values);
      }
    }
    const scatter = (target: tf.Variable, ids: number[], vals: number[]) => {
      if (!ids.length) return;
      const next = tf.tidy(() => tf.tensorScatterUpdate(target, tf.tensor2d(ids, [ids.length, 1], 'int32'), tf.tensor2d(vals, [ids.length, d])));
      target.assign(next);
      next.dispose();
    };
    scatter(this.token_embedding.weight.variable, baseIds, baseVals);
    if (this.extra) scatter(this.extra, extraIds, extraVals);
  }

  /** The whole table [numTokens, D] as one tensor, e.g. to save a resized upstream `token_embedding.weight`. */
  mergedTokenTable(): tf.Tensor2D {
    return tf.tidy(() => (this.extra ? tf.concat([this.token_embedding.weight.value, this.extra]) : this.token_embedding.weight.value.clone())) as tf.Tensor2D;
  }

  forward(inputIds: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const len = inputIds.shape[1]!;
      if (len > this.config.max_position_embeddings) throw new Error(`sequence of ${len} tokens exceeds max_position_embeddings ${this.config.max_position_embeddings}`);
      const positions = tf.slice(this.position_embedding.weight.value, [0, 0], [len, this.config.hidden_size]);
      return tf.add(this.lookup(inputIds), positions);
    });
  }

  /** Drop the added rows (their ids become invalid). */
  disposeExtraRows(): void {
    this.extra?.dispose();
    this.extra = null;
  }

  override dispose(): void {
    super.dispose();
    this.disposeExtraRows();
  }
}

/** Multi-head self-attention with separate q/k/v/out projections (as upstream names them). */
export class CLIPAttention extends Module {
  readonly k_proj: Linear;
  readonly v_proj: Linear;
  readonly q_proj: Linear;
  readonly out_proj: Linear;
  constructor(readonly config: CLIPTextConfig) {
    super();
    const d = config.hidden_size;
    this.k_proj = this.addModule('k_proj', new Linear(d, d));
    this.v_proj = this.addModule('v_proj', new Linear(d, d));
    this.q_proj = this.addModule('q_proj', new Linear(d, d));
    this.out_proj = this.addModule('out_proj', new Linear(d, d));
  }
  forward(x: tf.Tensor, mask?: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const attended = multiHeadAttention(this.q_proj.forward(x), this.k_proj.forward(x), this.v_proj.forward(x), this.config.num_attention_heads, mask);
      return this.out_proj.forward(attended);
    });
  }
}

/** The position-wise feed-forward block: fc1 → activation → fc2. */
export class CLIPMLP extends Module {
  readonly fc1: Linear;
  readonly fc2: Linear;
  constructor(readonly config: CLIPTextConfig) {
    super();
    this.fc1 = this.addModule('fc1', new Linear(config.hidden_size, config.intermediate_size));
    this.fc2 = this.addModule('fc2', new Linear(config.intermediate_size, config.hidden_size));
  }
  forward(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const h = this.fc1.forward(x);
      return this.fc2.forward(this.config.hidden_act === 'gelu' ? gelu(h) : quickGelu(h));
    });
  }
}

/** One pre-LayerNorm transformer block: x + attn(ln1(x)), then x + mlp(ln2(x)). */
export class CLIPEncoderLayer extends Module {
  readonly self_attn: CLIPAttention;
  readonly layer_norm1: LayerNorm;
  readonly mlp: CLIPMLP;
  readonly layer_norm2: LayerNorm;
  constructor(readonly config: CLIPTextConfig) {
    super();
    this.self_attn = this.addModule('self_attn', new CLIPAttention(config));
    this.layer_norm1 = this.addModule('layer_norm1', new LayerNorm(config.hidden_size, config.layer_norm_eps));
    this.mlp = this.addModule('mlp', new CLIPMLP(config));
    this.layer_norm2 = this.addModule('layer_norm2', new LayerNorm(config.hidden_size, config.layer_norm_eps));
  }
  forward(x: tf.Tensor, mask?: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const h = tf.add(x, this.self_attn.forward(this.layer_norm1.forward(x), mask));
      return tf.add(h, this.mlp.forward(this.layer_norm2.forward(h)));
    });
  }
}

/** The stack of encoder layers. */
export class CLIPEncoder extends Module {
  readonly layers: ModuleList<CLIPEncoderLayer>;
  constructor(readonly config: CLIPTextConfig) {
    super();
    this.layers = this.addModule('layers', new ModuleList<CLIPEncoderLayer>());
    for (let i = 0; i < config.num_hidden_layers; i++) this.layers.push(new CLIPEncoderLayer(config));
  }
  /** The final hidden state, plus every layer's input/output in `states` when given (upstream `hidden_states`). */
  forward(x: tf.Tensor, mask?: tf.Tensor, states?: tf.Tensor[]): tf.Tensor {
    let h = x;
    for (const layer of this.layers.items) {
      if (states) states.push(h.clone());
      const next = layer.forward(h, mask);
      if (h !== x) h.dispose();
      h = next;
    }
    if (states) states.push(h.clone());
    return h === x ? h.clone() : h;
  }
}

export interface CLIPTextModelOutput {
  /** [B, L, D], after the final LayerNorm. */
  lastHiddenState: tf.Tensor3D;
  /** [B, D]: the final state at each row's end token. */
  pooledOutput: tf.Tensor2D;
  /** The embeddings and every layer's output (num_hidden_layers + 1 tensors, before the final norm), when asked for. */
  hiddenStates?: tf.Tensor3D[];
}

export interface CLIPTextForwardOptions {
  /** [B, L] with 1 for real tokens and 0 for padding to hide (Stable Diffusion passes none). */
  attentionMask?: tf.Tensor;
  outputHiddenStates?: boolean;
}

/** Embeddings → causal transformer encoder → final LayerNorm. */
export class CLIPTextTransformer extends Module {
  readonly embeddings: CLIPEmbeddings;
  readonly encoder: CLIPEncoder;
  readonly final_layer_norm: LayerNorm;
  constructor(readonly config: CLIPTextConfig) {
    super();
    this.embeddings = this.addModule('embeddings', new CLIPEmbeddings(config));
    this.encoder = this.addModule('encoder', new CLIPEncoder(config));
    this.final_layer_norm = this.addModule('final_layer_norm', new LayerNorm(config.hidden_size, config.layer_norm_eps));
  }

  /** Causal mask [L, L] (or [B·heads, L, L] with padding hidden) added to the attention logits. */
  private attentionBias(b: number, len: number, attentionMask?: tf.Tensor): tf.Tensor {
    return tf.tidy(() => {
      const upper = new Float32Array(len * len);
      for (let i = 0; i < len; i++) for (let j = i + 1; j < len; j++) upper[i * len + j] = MASK_VALUE;
      const causal = tf.tensor2d(upper, [len, len]);
      if (!attentionMask) return causal;
      const heads = this.config.num_attention_heads;
      const pad = tf.reshape(tf.mul(tf.sub(1, tf.cast(attentionMask, 'float32')), MASK_VALUE), [b, 1, 1, len]);
      return tf.add(tf.reshape(tf.tile(pad, [1, heads, 1, 1]), [b * heads, 1, len]), causal);
    });
  }

  forward(inputIds: tf.Tensor, options: CLIPTextForwardOptions = {}): CLIPTextModelOutput {
    if (inputIds.rank !== 2) throw new Error(`CLIPTextTransformer: input_ids must be [batch, length], got [${inputIds.shape}]`);
    const [b, len] = inputIds.shape as [number, number];
    const ids = inputIds.dataSync();
    const numTokens = this.embeddings.numTokens;
    for (let i = 0; i < ids.length; i++) {
      if (!Number.isInteger(ids[i]) || ids[i] < 0 || ids[i] >= numTokens) throw new Error(`token id ${ids[i]} outside the table of ${numTokens} rows`);
    }
    const eosRows = this.eosPositions(ids, b, len).map((p, i) => i * len + p);
    const states: tf.Tensor[] | undefined = options.outputHiddenStates ? [] : undefined;
    const [lastHiddenState, pooledOutput] = tf.tidy(() => {
      const mask = this.attentionBias(b, len, options.attentionMask);
      const h = this.encoder.forward(this.embeddings.forward(inputIds), mask, states);
      states?.forEach((s) => tf.keep(s));
      const last = this.final_layer_norm.forward(h) as tf.Tensor3D;
      const pooled = tf.gather(tf.reshape(last, [b * len, this.config.hidden_size]), tf.tensor1d(eosRows, 'int32')) as tf.Tensor2D;
      return [last, pooled];
    });
    return { lastHiddenState, pooledOutput, ...(states ? { hiddenStates: states as tf.Tensor3D[] } : {}) };
  }

  /**
   * Where each row's end token is. Upstream: the argmax of the ids when the config carries the legacy
   * eos id 2 (the end token is the largest vocabulary id), else the first `eos_token_id`. Added
   * placeholder ids (beyond the vocabulary) are ignored by the argmax so they are never taken for the end.
   */
  private eosPositions(ids: ArrayLike<number>, b: number, len: number): number[] {
    const legacy = this.config.eos_token_id === 2;
    const out: number[] = [];
    for (let r = 0; r < b; r++) {
      let pos = 0;
      let best = -1;
      for (let i = 0; i < len; i++) {
        const id = ids[r * len + i];
        if (legacy) {
          if (id < this.config.vocab_size && id > best) {
            best = id;
            pos = i;
          }
        } else if (id === this.config.eos_token_id) {
          pos = i;
          break;
        }
      }
      out.push(pos);
    }
    return out;
  }
}

/** transformers' CLIPTextModel: parameters named `text_model.…` exactly as upstream weight files. */
export class CLIPTextModel extends Module {
  readonly text_model: CLIPTextTransformer;
  constructor(readonly config: CLIPTextConfig) {
    super();
    validateClipTextConfig(config);
    this.text_model = this.addModule('text_model', new CLIPTextTransformer(config));
  }

  forward(inputIds: tf.Tensor, options: CLIPTextForwardOptions = {}): CLIPTextModelOutput {
    return this.text_model.forward(inputIds, options);
  }

  /** Just the conditioning tensor [B, L, D] that Stable Diffusion feeds its UNet. */
  lastHiddenState(inputIds: tf.Tensor, options: CLIPTextForwardOptions = {}): tf.Tensor3D {
    const out = this.forward(inputIds, options);
    out.pooledOutput.dispose();
    out.hiddenStates?.forEach((t) => t.dispose());
    return out.lastHiddenState;
  }

  get embeddings(): CLIPEmbeddings {
    return this.text_model.embeddings;
  }

  /** Rows in the token table (vocabulary + added tokens); equals the tokenizer's `vocabSize` when in step. */
  get numTokens(): number {
    return this.embeddings.numTokens;
  }

  /** See `CLIPEmbeddings.addTokenEmbeddings`: new trainable rows after the frozen vocabulary; returns their ids. */
  addTokenEmbeddings(n: number, init: TokenEmbeddingInit = 'random'): number[] {
    return this.embeddings.addTokenEmbeddings(n, init);
  }

  /** The added rows' variable (what textual inversion trains), or null. */
  get extraTokenRows(): tf.Variable | null {
    return this.embeddings.extraTokenRows;
  }

  /** Rows [n, D] of the token table for the given ids. */
  tokenEmbeddingRows(ids: number[]): tf.Tensor2D {
    return tf.tidy(() => this.embeddings.lookup(tf.tensor1d(ids, 'int32'))) as tf.Tensor2D;
  }

  getTokenEmbedding(id: number): tf.Tensor1D {
    return tf.tidy(() => tf.reshape(this.tokenEmbeddingRows([id]), [this.config.hidden_size])) as tf.Tensor1D;
  }

  setTokenEmbeddings(rows: Map<number, tf.Tensor | ArrayLike<number>>): void {
    this.embeddings.setTokenEmbeddings(rows);
  }

  /** Trainable parameters plus the added token rows when they are trainable. */
  override trainableVariables(): tf.Variable[] {
    const vars = super.trainableVariables();
    const extra = this.extraTokenRows;
    return extra && extra.trainable ? [...vars, extra] : vars;
  }

  override dispose(): void {
    super.dispose();
    this.embeddings.disposeExtraRows();
  }
}
