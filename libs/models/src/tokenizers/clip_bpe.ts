import * as fs from 'fs';
import * as path from 'path';
import { BaseTokenizer, specialTokenContent } from './tokenizer';

/**
 * GPT-2's reversible byte → printable-character table: the 188 printable Latin-1 bytes map to
 * themselves, the other 68 to code points from 256 on, so BPE can run on strings without
 * whitespace or control characters.
 */
function bytesToUnicode(): string[] {
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const table: string[] = new Array(256);
  const set = new Set(printable);
  let extra = 0;
  for (let b = 0; b < 256; b++) table[b] = String.fromCodePoint(set.has(b) ? b : 256 + extra++);
  return table;
}

const BYTE_ENCODER = bytesToUnicode();
const BYTE_DECODER = new Map(BYTE_ENCODER.map((c, b) => [c, b]));
const END_OF_WORD = '</w>';

/** CLIP's pre-tokenisation: special markers, English contractions, letter runs, single digits, symbol runs. */
const PRETOKENIZE = /<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+/giu;

export interface ClipTokenizerOptions {
  modelMaxLength?: number;
  bosToken?: string;
  eosToken?: string;
  /** SD 1.x pads with the end token; SD 2.x tokenizers say `!`. */
  padToken?: string;
  unkToken?: string;
}

const CACHE_LIMIT = 20000;

/**
 * openai/CLIP's byte-level BPE tokenizer (as diffusers' `CLIPTokenizer`): cleaned, lower-cased text
 * is cut by CLIP's regex, each piece is UTF-8 encoded through the byte table and merged by rank,
 * with `</w>` marking the last symbol of a word.
 */
export class ClipBpeTokenizer extends BaseTokenizer {
  readonly bosId: number;
  readonly eosId: number;
  readonly padId: number;
  readonly modelMaxLength: number;
  readonly baseVocabSize: number;
  private readonly decoder: string[];
  private readonly ranks = new Map<string, number>();
  private readonly cache = new Map<string, number[]>();
  private readonly specials: { bos: string; eos: string; pad: string; unk: string };

  constructor(
    private readonly encoder: Map<string, number>,
    private readonly merges: Array<[string, string]>,
    options: ClipTokenizerOptions = {},
  ) {
    super();
    merges.forEach(([a, b], i) => this.ranks.set(`${a} ${b}`, i));
    this.baseVocabSize = Math.max(-1, ...encoder.values()) + 1;
    this.decoder = new Array(this.baseVocabSize);
    for (const [tok, id] of encoder) this.decoder[id] = tok;
    this.specials = {
      bos: options.bosToken ?? '<|startoftext|>',
      eos: options.eosToken ?? '<|endoftext|>',
      pad: options.padToken ?? options.eosToken ?? '<|endoftext|>',
      unk: options.unkToken ?? '<|endoftext|>',
    };
    const need = (tok: string) => {
      const id = encoder.get(tok);
      if (id === undefined) throw new Error(`special token ${tok} is not in the vocabulary`);
      return id;
    };
    this.bosId = need(this.specials.bos);
    this.eosId = need(this.specials.eos);
    this.padId = need(this.specials.pad);
    this.modelMaxLength = options.modelMaxLength ?? 77;
  }

  /** Build from a `vocab.json` object and the text of `merges.txt` (first line `#version` skipped). */
  static fromStrings(vocab: Record<string, number>, mergesText: string, options: ClipTokenizerOptions = {}): ClipBpeTokenizer {
    const merges: Array<[string, string]> = [];
    for (const line of mergesText.split('\n')) {
      if (line.startsWith('#version') || line.trim() === '') continue;
      const parts = line.split(' ');
      if (parts.length !== 2) throw new Error(`malformed merges line: ${JSON.stringify(line)}`);
      merges.push([parts[0], parts[1]]);
    }
    return new ClipBpeTokenizer(new Map(Object.entries(vocab)), merges, options);
  }

  /**
   * Load a diffusers `tokenizer/` folder: `vocab.json` + `merges.txt`, with `tokenizer_config.json`,
   * `special_tokens_map.json` and `added_tokens.json` when present.
   */
  static fromFolder(dir: string): ClipBpeTokenizer {
    const readJson = (name: string): Record<string, unknown> | null => {
      const p = path.join(dir, name);
      return fs.existsSync(p) ? (JSON.parse(fs.readFileSync(p, 'utf8')) as Record<string, unknown>) : null;
    };
    const vocab = readJson('vocab.json') as Record<string, number> | null;
    if (!vocab) throw new Error(`no vocab.json in ${dir}`);
    const mergesText = fs.readFileSync(path.join(dir, 'merges.txt'), 'utf8');
    const config = readJson('tokenizer_config.json') ?? {};
    const specialMap = readJson('special_tokens_map.json') ?? {};
    const pick = (key: string) => specialTokenContent(specialMap[key]) ?? specialTokenContent(config[key]);
    const maxLen = config.model_max_length;
    const tok = ClipBpeTokenizer.fromStrings(vocab, mergesText, {
      // Very large values mean "unset" upstream (int(1e30)).
      modelMaxLength: typeof maxLen === 'number' && maxLen < 1e9 ? maxLen : 77,
      bosToken: pick('bos_token'),
      eosToken: pick('eos_token'),
      padToken: pick('pad_token'),
      unkToken: pick('unk_token'),
    });
    const added = new Map<string, number>();
    const decoderCfg = config.added_tokens_decoder as Record<string, { content?: string }> | undefined;
    for (const [id, v] of Object.entries(decoderCfg ?? {})) if (v.content !== undefined) added.set(v.content, Number(id));
    for (const [t, id] of Object.entries((readJson('added_tokens.json') ?? {}) as Record<string, number>)) added.set(t, id);
    tok.restoreAddedTokens([...added].filter(([t, id]) => tok.encoder.get(t) !== id));
    return tok;
  }

  save(dir: string): void {
    fs.mkdirSync(dir, { recursive: true });
    const vocab: Record<string, number> = {};
    for (const [t, id] of this.encoder) vocab[t] = id;
    fs.writeFileSync(path.join(dir, 'vocab.json'), JSON.stringify(vocab));
    fs.writeFileSync(path.join(dir, 'merges.txt'), ['#version: 0.2', ...this.merges.map(([a, b]) => `${a} ${b}`)].join('\n') + '\n');
    const { bos, eos, pad, unk } = this.specials;
    fs.writeFileSync(
      path.join(dir, 'tokenizer_config.json'),
      JSON.stringify(
        { tokenizer_class: 'CLIPTokenizer', model_max_length: this.modelMaxLength, do_lower_case: true, bos_token: bos, eos_token: eos, pad_token: pad, unk_token: unk, errors: 'replace' },
        null,
        2,
      ),
    );
    fs.writeFileSync(path.join(dir, 'special_tokens_map.json'), JSON.stringify({ bos_token: bos, eos_token: eos, pad_token: pad, unk_token: unk }, null, 2));
    this.writeAddedTokensFile(dir);
  }

  protected baseTokenId(token: string): number | undefined {
    return this.encoder.get(token);
  }

  protected encodeSegment(text: string): number[] {
    const out: number[] = [];
    for (const m of text.toLowerCase().matchAll(PRETOKENIZE)) out.push(...this.wordIds(m[0]));
    return out;
  }

  protected decodeSegment(ids: number[]): string {
    const chars = ids.map((id) => this.decoder[id]).join('');
    const bytes: number[] = [];
    for (const c of chars) {
      const b = BYTE_DECODER.get(c);
      // Characters outside the byte table only occur in hand-made vocabularies: keep them as UTF-8.
      if (b === undefined) bytes.push(...Buffer.from(c, 'utf8'));
      else bytes.push(b);
    }
    return new TextDecoder('utf-8').decode(new Uint8Array(bytes)).split(END_OF_WORD).join(' ');
  }

  /** The ids of one pre-token, memoised (prompts repeat the same words a lot). */
  private wordIds(word: string): number[] {
    const hit = this.cache.get(word);
    if (hit) return hit;
    const special = word === '<|startoftext|>' || word === '<|endoftext|>' ? this.encoder.get(word) : undefined;
    const ids = special !== undefined ? [special] : this.bpe(Array.from(Buffer.from(word, 'utf8'), (b) => BYTE_ENCODER[b]).join(''));
    if (this.cache.size >= CACHE_LIMIT) this.cache.clear();
    this.cache.set(word, ids);
    return ids;
  }

  /** Merge the lowest-ranked adjacent pair everywhere it occurs until no ranked pair is left. */
  private bpe(token: string): number[] {
    const chars = Array.from(token);
    let word = [...chars.slice(0, -1), chars[chars.length - 1] + END_OF_WORD];
    while (word.length > 1) {
      let best = -1;
      let bestRank = Infinity;
      for (let i = 0; i < word.length - 1; i++) {
        const r = this.ranks.get(`${word[i]} ${word[i + 1]}`);
        if (r !== undefined && r < bestRank) {
          bestRank = r;
          best = i;
        }
      }
      if (best < 0) break;
      const first = word[best];
      const second = word[best + 1];
      const next: string[] = [];
      for (let i = 0; i < word.length; ) {
        if (i < word.length - 1 && word[i] === first && word[i + 1] === second) {
          next.push(first + second);
          i += 2;
        } else {
          next.push(word[i]);
          i += 1;
        }
      }
      word = next;
    }
    return word.map((sym) => {
      const id = this.encoder.get(sym);
      if (id === undefined) {
        // Only reachable with a vocabulary that lacks some byte symbols.
        const unk = this.encoder.get(this.specials.unk);
        if (unk === undefined) throw new Error(`symbol ${JSON.stringify(sym)} is not in the vocabulary`);
        return unk;
      }
      return id;
    });
  }
}
