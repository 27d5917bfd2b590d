import * as fs from 'fs';
import * as path from 'path';
import { BaseTokenizer, specialTokenContent } from './tokenizer';
import { cleanText } from './text_clean';

export const WORD_TOKENIZER_CLASS = 'WordTokenizer';

export interface WordTokenizerOptions {
  modelMaxLength?: number;
  bosToken?: string;
  eosToken?: string;
  /** Falls back to the end token when the vocabulary has no pad token. */
  padToken?: string;
  unkToken?: string;
}

export interface WordVocabOptions {
  /** Cap on the vocabulary size, special tokens included. */
  maxVocab?: number;
  /** Words seen fewer times are left out (mapped to the unknown token). */
  minCount?: number;
}

const SPECIALS = { bos: '<|startoftext|>', eos: '<|endoftext|>', pad: '<|pad|>', unk: '<|unk|>' };

/** Special markers, runs of letters/digits, or one punctuation character (so ',' is its own token). */
const SPLIT = /<\|[a-z]+\|>|[\p{L}\p{N}]+|[^\s\p{L}\p{N}]/gu;

/** Lower-cased word pieces of a text, as the word tokenizer sees them. */
export function splitWords(text: string): string[] {
  return Array.from(cleanText(text).toLowerCase().matchAll(SPLIT), (m) => m[0]);
}

/**
 * A word-level tokenizer for small models trained from scratch: one id per lower-cased word or
 * punctuation mark, unknown words to `<|unk|>`, with the same interface (start/end tokens, padding,
 * placeholder tokens) as the CLIP tokenizer.
 */
export class WordTokenizer extends BaseTokenizer {
  readonly bosId: number;
  readonly eosId: number;
  readonly padId: number;
  readonly unkId: number;
  readonly modelMaxLength: number;
  readonly baseVocabSize: number;
  private readonly words: string[];
  private readonly specials: { bos: string; eos: string; pad: string; unk: string };

  constructor(
    private readonly vocab: Map<string, number>,
    options: WordTokenizerOptions = {},
  ) {
    super();
    this.baseVocabSize = Math.max(-1, ...vocab.values()) + 1;
    this.words = new Array(this.baseVocabSize).fill('');
    for (const [w, id] of vocab) this.words[id] = w;
    const pad = options.padToken ?? (vocab.has(SPECIALS.pad) ? SPECIALS.pad : (options.eosToken ?? SPECIALS.eos));
    this.specials = { bos: options.bosToken ?? SPECIALS.bos, eos: options.eosToken ?? SPECIALS.eos, pad, unk: options.unkToken ?? SPECIALS.unk };
    const need = (tok: string) => {
      const id = vocab.get(tok);
      if (id === undefined) throw new Error(`special token ${tok} is not in the word vocabulary`);
      return id;
    };
    this.bosId = need(this.specials.bos);
    this.eosId = need(this.specials.eos);
    this.padId = need(this.specials.pad);
    this.unkId = need(this.specials.unk);
    this.modelMaxLength = options.modelMaxLength ?? 77;
  }

  /**
   * A vocabulary from a corpus: the four special tokens (ids 0-3), then words by descending
   * frequency (ties alphabetical, so the result is deterministic).
   */
  static fromCorpus(texts: string[], options: WordVocabOptions & WordTokenizerOptions = {}): WordTokenizer {
    const counts = new Map<string, number>();
    for (const t of texts) for (const w of splitWords(t)) counts.set(w, (counts.get(w) ?? 0) + 1);
    const specials = [SPECIALS.bos, SPECIALS.eos, SPECIALS.pad, SPECIALS.unk];
    const words = [...counts]
      .filter(([w, c]) => c >= (options.minCount ?? 1) && !specials.includes(w))
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
      .map(([w]) => w)
      .slice(0, Math.max(0, (options.maxVocab ?? Infinity) - specials.length));
    return new WordTokenizer(new Map([...specials, ...words].map((w, i) => [w, i])), { modelMaxLength: options.modelMaxLength });
  }

  /** Load a folder written by `save` (`vocab.json`, `tokenizer_config.json`, optional `added_tokens.json`). */
  static fromFolder(dir: string): WordTokenizer {
    const readJson = (name: string): Record<string, unknown> | null => {
      const p = path.join(dir, name);
      return fs.existsSync(p) ? (JSON.parse(fs.readFileSync(p, 'utf8')) as Record<string, unknown>) : null;
    };
    const vocab = readJson('vocab.json') as Record<string, number> | null;
    if (!vocab) throw new Error(`no vocab.json in ${dir}`);
    const config = readJson('tokenizer_config.json') ?? {};
    const tok = new WordTokenizer(new Map(Object.entries(vocab)), {
      modelMaxLength: typeof config.model_max_length === 'number' ? config.model_max_length : undefined,
      bosToken: specialTokenContent(config.bos_token),
      eosToken: specialTokenContent(config.eos_token),
      padToken: specialTokenContent(config.pad_token),
      unkToken: specialTokenContent(config.unk_token),
    });
    tok.restoreAddedTokens(Object.entries((readJson('added_tokens.json') ?? {}) as Record<string, number>));
    return tok;
  }

  save(dir: string): void {
    fs.mkdirSync(dir, { recursive: true });
    const vocab: Record<string, number> = {};
    this.words.forEach((w, id) => {
      if (this.vocab.get(w) === id) vocab[w] = id;
    });
    fs.writeFileSync(path.join(dir, 'vocab.json'), JSON.stringify(vocab, null, 1));
    const { bos, eos, pad, unk } = this.specials;
    fs.writeFileSync(
      path.join(dir, 'tokenizer_config.json'),
      JSON.stringify({ tokenizer_class: WORD_TOKENIZER_CLASS, model_max_length: this.modelMaxLength, do_lower_case: true, bos_token: bos, eos_token: eos, pad_token: pad, unk_token: unk }, null, 2),
    );
    this.writeAddedTokensFile(dir);
  }

  protected baseTokenId(token: string): number | undefined {
    return this.vocab.get(token);
  }

  protected encodeSegment(text: string): number[] {
    return Array.from(text.toLowerCase().matchAll(SPLIT), (m) => this.vocab.get(m[0]) ?? this.unkId);
  }

  protected decodeSegment(ids: number[]): string {
    // Punctuation sticks to the word before it ("a cat, a dog").
    return ids
      .map((id) => this.words[id])
      .join(' ')
      .replace(/ ([,.;:!?)\]])/g, '$1');
  }
}
