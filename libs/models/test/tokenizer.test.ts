import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { ClipBpeTokenizer, WordTokenizer, loadTokenizer, splitWords } from '../src/index';

const FIXTURES = path.join(__dirname, 'fixtures', 'tokenizer');
const cases = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'cases.json'), 'utf8')) as Array<{ text: string; ids: number[] }>;

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'museum-tok-'));
}

describe('ClipBpeTokenizer', () => {
  let tok: ClipBpeTokenizer;
  beforeAll(() => {
    tok = ClipBpeTokenizer.fromFolder(FIXTURES);
  });

  it('has the CLIP vocabulary and special ids', () => {
    expect(tok.vocabSize).toBe(49408);
    expect(tok.bosId).toBe(49406);
    expect(tok.eosId).toBe(49407);
    expect(tok.padId).toBe(49407);
    expect(tok.modelMaxLength).toBe(77);
    expect(tok.tokenId('cat</w>')).toBe(2368);
    expect(tok.tokenId('<|startoftext|>')).toBe(49406);
  });

  it.each(cases.map((c) => [c.text, c.ids] as const))('reproduces openai ids for %j', (text, ids) => {
    expect(tok.encode(text)).toEqual(ids);
  });

  it('is stable across calls (cache) and decodes back to the cleaned text', () => {
    const text = 'An astronaut riding a horse on Mars, 4k';
    const a = tok.encode(text);
    expect(tok.encode(text)).toEqual(a);
    expect(tok.decode(a)).toBe('an astronaut riding a horse on mars , 4 k');
    expect(tok.decode(a, { skipSpecialTokens: false })).toBe('<|startoftext|>an astronaut riding a horse on mars , 4 k <|endoftext|>');
    expect(tok.decode(tok.encode('café naïve'))).toBe('café naïve');
  });

  it('applies CLIP text clean-up (HTML entities, curly quotes, whitespace)', () => {
    expect(tok.encode('rock &amp; roll')).toEqual(tok.encode('rock & roll'));
    expect(tok.encode('don\u2019t')).toEqual(tok.encode("don't"));
    expect(tok.encode('\n a \t cat \n')).toEqual(tok.encode('a cat'));
  });

  it('pads and truncates batches to max_length keeping the end token', () => {
    const long = Array.from({ length: 100 }, () => 'the').join(' ');
    const batch = tok.encodeBatch(['a photo of a cat', long, '']);
    expect(batch.length).toBe(77);
    expect(batch.flat.length).toBe(3 * 77);
    expect(batch.lengths).toEqual([7, 77, 2]);
    expect(Array.from(batch.ids[0].slice(0, 7))).toEqual(cases[0].ids);
    expect(Array.from(batch.ids[0].slice(7)).every((v) => v === 49407)).toBe(true);
    expect(batch.ids[1][0]).toBe(49406);
    expect(batch.ids[1][75]).toBe(518);
    expect(batch.ids[1][76]).toBe(49407);
    expect(Array.from(batch.ids[2].slice(0, 2))).toEqual([49406, 49407]);
    const short = tok.encodeBatch(['a', 'a photo'], { padding: 'longest' });
    expect(short.length).toBe(4);
    expect(Array.from(short.flat)).toEqual([49406, 320, 49407, 49407, 49406, 320, 1125, 49407]);
    expect(() => tok.encodeBatch([long], { truncation: false })).toThrow(/exceeds/);
  });

  it('matches added placeholder tokens before BPE as single new ids', () => {
    const t = ClipBpeTokenizer.fromFolder(FIXTURES);
    const ids = t.addTokens(['<watercolor>', '<watercolor-2>']);
    expect(ids).toEqual([49408, 49409]);
    expect(t.addTokens(['<watercolor>'])).toEqual([49408]);
    expect(t.vocabSize).toBe(49410);
    expect(t.tokenId('<watercolor-2>')).toBe(49409);
    const base = cases.find((c) => c.text.endsWith('<watercolor>'))!;
    // Same ids as upstream up to the placeholder, which becomes one id.
    expect(t.encode(base.text)).toEqual([...base.ids.slice(0, 8), 49408, 49407]);
    expect(t.encode('<watercolor-2>,<watercolor>cat')).toEqual([49406, 49409, 267, 49408, 2368, 49407]);
    expect(t.decode(t.encode('a <watercolor> cat'))).toBe('a <watercolor> cat');
    expect(() => t.addTokens(['cat</w>'])).toThrow(/already in the vocabulary/);
    expect(() => t.addTokens(['two words'])).toThrow();
    expect(() => t.decode([49410])).toThrow(/outside/);
  });

  it('saves and reloads a tokenizer folder with its added tokens', () => {
    const t = ClipBpeTokenizer.fromFolder(FIXTURES);
    t.addTokens(['<style-a>', '<style-b>']);
    const dir = tmpDir();
    try {
      t.save(dir);
      const back = loadTokenizer(dir);
      expect(back).toBeInstanceOf(ClipBpeTokenizer);
      expect(back.vocabSize).toBe(49410);
      expect(back.addedTokens).toEqual(['<style-a>', '<style-b>']);
      for (const c of cases) expect(back.encode(c.text)).toEqual(c.ids);
      expect(back.encode('<style-b> dog')).toEqual(t.encode('<style-b> dog'));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reads diffusers configs (AddedToken objects, custom pad token, added_tokens.json)', () => {
    const dir = tmpDir();
    try {
      fs.copyFileSync(path.join(FIXTURES, 'vocab.json'), path.join(dir, 'vocab.json'));
      fs.copyFileSync(path.join(FIXTURES, 'merges.txt'), path.join(dir, 'merges.txt'));
      fs.writeFileSync(
        path.join(dir, 'tokenizer_config.json'),
        JSON.stringify({
          tokenizer_class: 'CLIPTokenizer',
          model_max_length: 64,
          bos_token: { __type: 'AddedToken', content: '<|startoftext|>' },
          eos_token: { __type: 'AddedToken', content: '<|endoftext|>' },
          pad_token: '!',
        }),
      );
      fs.writeFileSync(path.join(dir, 'added_tokens.json'), JSON.stringify({ '<cat-toy>': 49408 }));
      const t = loadTokenizer(dir);
      expect(t.padId).toBe(0);
      expect(t.modelMaxLength).toBe(64);
      expect(t.encode('a <cat-toy>')).toEqual([49406, 320, 49408, 49407]);
      expect(Array.from(t.encodeBatch(['a']).ids[0].slice(0, 4))).toEqual([49406, 320, 49407, 0]);
      fs.writeFileSync(path.join(dir, 'added_tokens.json'), JSON.stringify({ '<cat-toy>': 49409 }));
      expect(() => loadTokenizer(dir)).toThrow(/without gaps/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('WordTokenizer', () => {
  const corpus = ['A cat, in the style of Monet.', 'a dog in the style of van gogh', 'the cat sat'];

  it('builds a deterministic vocabulary with special tokens first', () => {
    const t = WordTokenizer.fromCorpus(corpus);
    expect([t.tokenId('<|startoftext|>'), t.tokenId('<|endoftext|>'), t.tokenId('<|pad|>'), t.tokenId('<|unk|>')]).toEqual([0, 1, 2, 3]);
    expect([t.bosId, t.eosId, t.padId, t.unkId]).toEqual([0, 1, 2, 3]);
    // 'the' (3×) is the most frequent word, then 'a', 'cat', 'in', 'of', 'style' (2× each, alphabetical).
    expect(t.tokenId('the')).toBe(4);
    expect(t.tokenId('a')).toBe(5);
    expect(t.tokenId('cat')).toBe(6);
    expect(WordTokenizer.fromCorpus(corpus).encode('a cat')).toEqual(t.encode('a cat'));
    expect(WordTokenizer.fromCorpus(corpus, { maxVocab: 8 }).vocabSize).toBe(8);
    expect(WordTokenizer.fromCorpus(corpus, { minCount: 2 }).tokenId('monet')).toBeUndefined();
  });

  it('lower-cases, splits punctuation and maps unknown words to unk', () => {
    const t = WordTokenizer.fromCorpus(corpus);
    expect(splitWords('A Cat,in  the style-of')).toEqual(['a', 'cat', ',', 'in', 'the', 'style', '-', 'of']);
    const ids = t.encode('A CAT, in the style of Picasso');
    const id = (w: string) => t.tokenId(w)!;
    expect(ids).toEqual([0, id('a'), id('cat'), id(','), id('in'), id('the'), id('style'), id('of'), t.unkId, 1]);
    expect(t.decode(ids)).toBe('a cat, in the style of <|unk|>');
    const batch = t.encodeBatch(['a cat', 'the dog sat'], { maxLength: 6 });
    expect(Array.from(batch.flat)).toEqual([0, id('a'), id('cat'), 1, 2, 2, 0, id('the'), id('dog'), id('sat'), 1, 2]);
    expect(batch.lengths).toEqual([4, 5]);
  });

  it('adds placeholder tokens and round-trips through loadTokenizer', () => {
    const t = WordTokenizer.fromCorpus(corpus, { modelMaxLength: 16 });
    const [w] = t.addTokens(['<watercolor>']);
    expect(w).toBe(t.vocabSize - 1);
    expect(t.encode('a cat in <watercolor> style')).toEqual([0, t.tokenId('a'), t.tokenId('cat'), t.tokenId('in'), w, t.tokenId('style'), 1]);
    const dir = tmpDir();
    try {
      t.save(path.join(dir, 'tokenizer'));
      const cfg = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer', 'tokenizer_config.json'), 'utf8'));
      expect(cfg.tokenizer_class).toBe('WordTokenizer');
      // Accepts the model folder as well as the tokenizer folder.
      const back = loadTokenizer(dir);
      expect(back).toBeInstanceOf(WordTokenizer);
      expect(back.modelMaxLength).toBe(16);
      expect(back.vocabSize).toBe(t.vocabSize);
      expect(back.encode('the <watercolor> dog, sat')).toEqual(t.encode('the <watercolor> dog, sat'));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
