import * as fs from 'fs';
import * as path from 'path';
import type { Tokenizer } from './tokenizer';
import { ClipBpeTokenizer } from './clip_bpe';
import { WordTokenizer, WORD_TOKENIZER_CLASS } from './word';

/** Upstream class names that mean CLIP's BPE tokenizer. */
const CLIP_CLASSES = new Set(['CLIPTokenizer', 'CLIPTokenizerFast']);

/**
 * Load the tokenizer saved in `dir`, which is either a `tokenizer/` folder or a model folder that
 * holds one. The class comes from `tokenizer_config.json`'s `tokenizer_class`; without it a
 * `merges.txt` means CLIP BPE and a lone `vocab.json` the word tokenizer.
 */
export function loadTokenizer(dir: string): Tokenizer {
  let folder = dir;
  if (!fs.existsSync(path.join(folder, 'vocab.json')) && fs.existsSync(path.join(dir, 'tokenizer', 'vocab.json'))) folder = path.join(dir, 'tokenizer');
  if (!fs.existsSync(path.join(folder, 'vocab.json'))) throw new Error(`no tokenizer (vocab.json) in ${dir}`);
  const configPath = path.join(folder, 'tokenizer_config.json');
  const cls = fs.existsSync(configPath) ? (JSON.parse(fs.readFileSync(configPath, 'utf8')) as { tokenizer_class?: unknown }).tokenizer_class : undefined;
  if (typeof cls === 'string') {
    if (CLIP_CLASSES.has(cls)) return ClipBpeTokenizer.fromFolder(folder);
    if (cls === WORD_TOKENIZER_CLASS) return WordTokenizer.fromFolder(folder);
    throw new Error(`unsupported tokenizer_class ${cls} in ${configPath}`);
  }
  return fs.existsSync(path.join(folder, 'merges.txt')) ? ClipBpeTokenizer.fromFolder(folder) : WordTokenizer.fromFolder(folder);
}
