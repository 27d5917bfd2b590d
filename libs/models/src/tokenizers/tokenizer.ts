/**
 * The common shape of the project's text tokenizers (CLIP's byte-level BPE and a small word-level
 * one for toy models), with the placeholder-token mechanism that textual inversion and continual
 * style learning rely on: `addTokens(['<watercolor>'])` appends new ids after the vocabulary, and
 * those strings are matched in the text before any other splitting, so each becomes one id.
 */
import * as fs from 'fs';
import * as path from 'path';
import { cleanText } from './text_clean';

export interface EncodeBatchOptions {
  /** Row length; defaults to `modelMaxLength`. */
  maxLength?: number;
  /** `max_length` pads every row to `maxLength`; `longest` to the longest row of the batch. */
  padding?: 'max_length' | 'longest';
  /** Cut over-long texts to `maxLength` keeping the end token (default true; false throws instead). */
  truncation?: boolean;
}

export interface EncodedBatch {
  /** One row per text, each a view into `flat`. */
  ids: Int32Array[];
  /** The rows back to back, [batch · length], ready for `tf.tensor2d(flat, [batch, length], 'int32')`. */
  flat: Int32Array;
  /** Tokens before padding in each row, start and end included. */
  lengths: number[];
  /** The common row length. */
  length: number;
}

export interface DecodeOptions {
  /** Drop start/end/pad tokens (default true). */
  skipSpecialTokens?: boolean;
}

export interface Tokenizer {
  /** Ids of one text with start and end tokens, no padding, no truncation. */
  encode(text: string): number[];
  encodeBatch(texts: string[], options?: EncodeBatchOptions): EncodedBatch;
  decode(ids: ArrayLike<number>, options?: DecodeOptions): string;
  /** Append placeholder tokens (one new id each, after the vocabulary); a token already added keeps its id. */
  addTokens(tokens: string[]): number[];
  /** The id of a vocabulary, special or added token, or undefined. */
  tokenId(token: string): number | undefined;
  /** The placeholder tokens added so far, in id order. */
  readonly addedTokens: string[];
  /** Vocabulary plus added tokens (the number of rows the text encoder's token table needs). */
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly padId: number;
  readonly modelMaxLength: number;
  /** Write the tokenizer as a diffusers-style `tokenizer/` folder (vocab, config, added tokens). */
  save(dir: string): void;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * What both tokenizers share: the added-token table, splitting a text around added tokens,
 * batching with padding/truncation, and decoding runs of ids.
 */
export abstract class BaseTokenizer implements Tokenizer {
  private readonly added: string[] = [];
  private readonly addedIds = new Map<string, number>();
  private addedPattern: RegExp | null = null;

  abstract readonly bosId: number;
  abstract readonly eosId: number;
  abstract readonly padId: number;
  abstract readonly modelMaxLength: number;
  /** Size of the underlying vocabulary (added tokens come after it). */
  abstract readonly baseVocabSize: number;

  /** Text clean-up applied before added tokens are matched (case kept). */
  /** Ids of a stretch of text that holds no added token (no start/end). */
  protected abstract encodeSegment(text: string): number[];
  /** Text of a run of vocabulary ids. */
  protected abstract decodeSegment(ids: number[]): string;
  /** The id of a vocabulary or special token. */
  protected abstract baseTokenId(token: string): number | undefined;
  abstract save(dir: string): void;

  get vocabSize(): number {
    return this.baseVocabSize + this.added.length;
  }

  get addedTokens(): string[] {
    return [...this.added];
  }

  tokenId(token: string): number | undefined {
    return this.addedIds.get(token) ?? this.baseTokenId(token);
  }

  addTokens(tokens: string[]): number[] {
    const ids = tokens.map((t) => {
      const existing = this.addedIds.get(t);
      if (existing !== undefined) return existing;
      if (t.trim() !== t || t.length === 0 || /\s/.test(t)) throw new Error(`added token ${JSON.stringify(t)} must be non-empty without whitespace`);
      if (this.baseTokenId(t) !== undefined) throw new Error(`token ${JSON.stringify(t)} is already in the vocabulary`);
      const id = this.baseVocabSize + this.added.length;
      this.added.push(t);
      this.addedIds.set(t, id);
      return id;
    });
    // Longest first so that `<style>` never shadows `<style-2>`.
    const sorted = [...this.added].sort((a, b) => b.length - a.length);
    this.addedPattern = sorted.length ? new RegExp(sorted.map(escapeRegExp).join('|'), 'g') : null;
    return ids;
  }

  /** Restore added tokens with their saved ids (they must continue the vocabulary in order). */
  protected restoreAddedTokens(entries: Array<[string, number]>): void {
    const sorted = [...entries].sort((a, b) => a[1] - b[1]);
    for (const [tok, id] of sorted) {
      if (this.tokenId(tok) === id) continue;
      const [got] = this.addTokens([tok]);
      if (got !== id) throw new Error(`added token ${tok} has id ${id} but would get ${got}: ids must follow the vocabulary without gaps`);
    }
  }

  /** Added tokens as saved in upstream `added_tokens.json`. */
  protected addedTokensJson(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const t of this.added) out[t] = this.addedIds.get(t)!;
    return out;
  }

  /** Write (or remove a stale) `added_tokens.json` in a tokenizer folder. */
  protected writeAddedTokensFile(dir: string): void {
    const added = this.addedTokensJson();
    const addedPath = path.join(dir, 'added_tokens.json');
    if (Object.keys(added).length) fs.writeFileSync(addedPath, JSON.stringify(added, null, 2));
    else if (fs.existsSync(addedPath)) fs.unlinkSync(addedPath);
  }

  /** Both tokenizers clean text the same way (whitespace, entities, quotes) before splitting. */
  protected normalize(text: string): string {
    return cleanText(text);
  }

  encode(text: string): number[] {
    const clean = this.normalize(text);
    const out: number[] = [this.bosId];
    if (this.addedPattern) {
      let last = 0;
      for (const m of clean.matchAll(this.addedPattern)) {
        out.push(...this.encodeSegment(clean.slice(last, m.index)));
        out.push(this.addedIds.get(m[0])!);
        last = m.index! + m[0].length;
      }
      out.push(...this.encodeSegment(clean.slice(last)));
    } else {
      out.push(...this.encodeSegment(clean));
    }
    out.push(this.eosId);
    return out;
  }

  encodeBatch(texts: string[], options: EncodeBatchOptions = {}): EncodedBatch {
    const maxLength = options.maxLength ?? this.modelMaxLength;
    if (maxLength < 2) throw new Error(`maxLength ${maxLength} leaves no room for start and end tokens`);
    const truncation = options.truncation ?? true;
    const rows = texts.map((t) => {
      const ids = this.encode(t);
      if (ids.length <= maxLength) return ids;
      if (!truncation) throw new Error(`text of ${ids.length} tokens exceeds maxLength ${maxLength}: ${JSON.stringify(t.slice(0, 60))}`);
      // As upstream truncation: keep the first tokens, end with the end token.
      return [...ids.slice(0, maxLength - 1), this.eosId];
    });
    const length = (options.padding ?? 'max_length') === 'max_length' ? maxLength : Math.max(0, ...rows.map((r) => r.length));
    const flat = new Int32Array(rows.length * length).fill(this.padId);
    rows.forEach((r, i) => flat.set(r, i * length));
    return {
      ids: rows.map((_, i) => flat.subarray(i * length, (i + 1) * length)),
      flat,
      lengths: rows.map((r) => r.length),
      length,
    };
  }

  decode(ids: ArrayLike<number>, options: DecodeOptions = {}): string {
    const skip = options.skipSpecialTokens ?? true;
    const special = new Set([this.bosId, this.eosId, this.padId]);
    const parts: string[] = [];
    let run: number[] = [];
    const flush = () => {
      if (run.length) parts.push(this.decodeSegment(run));
      run = [];
    };
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) throw new Error(`token id ${id} is outside the vocabulary (size ${this.vocabSize})`);
      if (skip && special.has(id)) continue;
      if (id >= this.baseVocabSize) {
        flush();
        parts.push(this.added[id - this.baseVocabSize]);
      } else {
        run.push(id);
      }
    }
    flush();
    return parts
      .map((p) => p.trim())
      .filter((p) => p.length > 0)
      .join(' ');
  }
}

/** Upstream configs store special tokens either as strings or as `{content: ...}` AddedToken objects. */
export function specialTokenContent(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return undefined;
}
