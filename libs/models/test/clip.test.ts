import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { tf, initBackend, loadSafetensors, saveSafetensors } from '@museum/tensor';
import {
  CLIPTextModel,
  CLIPTextConfig,
  ClipBpeTokenizer,
  WordTokenizer,
  clipTextConfigFromJson,
  loadStateDict,
  loadTextualInversion,
  readTextualInversion,
  saveTextualInversion,
  seedInit,
} from '../src/index';

const FIXTURES = path.join(__dirname, 'fixtures', 'text_encoder');

function maxAbs(t: tf.Tensor): number {
  const m = tf.tidy(() => tf.max(tf.abs(t)));
  const v = m.dataSync()[0];
  m.dispose();
  return v;
}

const tiny: CLIPTextConfig = clipTextConfigFromJson({ vocab_size: 50, hidden_size: 16, intermediate_size: 32, num_hidden_layers: 2, num_attention_heads: 2, max_position_embeddings: 8, eos_token_id: 49 });

beforeAll(async () => {
  await initBackend({ log: () => {} });
});

describe('CLIPTextModel parity with transformers', () => {
  let model: CLIPTextModel;
  let io: Map<string, tf.Tensor>;
  beforeAll(() => {
    const config = clipTextConfigFromJson(JSON.parse(fs.readFileSync(path.join(FIXTURES, 'config.json'), 'utf8')));
    model = new CLIPTextModel(config);
    const { tensors } = loadSafetensors(path.join(FIXTURES, 'model.safetensors'));
    // Older transformers files also carry the `position_ids` buffer: it must be accepted and ignored.
    if (!tensors.has('text_model.embeddings.position_ids')) tensors.set('text_model.embeddings.position_ids', tf.tidy(() => tf.reshape(tf.range(0, 16, 1, 'int32'), [1, 16])));
    const result = loadStateDict(model, tensors, { strict: true });
    expect(result.loaded).toBe(model.namedParameters().length);
    tensors.forEach((t) => t.dispose());
    io = loadSafetensors(path.join(FIXTURES, 'io.safetensors')).tensors;
  });
  afterAll(() => {
    model.dispose();
    io.forEach((t) => t.dispose());
  });

  it('reproduces last_hidden_state within 1e-4 relative', () => {
    const before = tf.memory().numTensors;
    const ids = io.get('input_ids')!;
    const ref = io.get('last_hidden_state')!;
    const out = model.forward(ids);
    expect(out.lastHiddenState.shape).toEqual([2, 16, 32]);
    const diff = tf.sub(out.lastHiddenState, ref);
    const rel = maxAbs(diff) / maxAbs(ref);
    diff.dispose();
    process.stdout.write(`[clip parity] max|ours-theirs|/max|theirs| = ${rel.toExponential(3)}\n`);
    expect(rel).toBeLessThan(1e-4);

    // The fixture rows hold no end token (id 99): upstream then pools position 0.
    const refArr = ref.arraySync() as number[][][];
    const pooled = out.pooledOutput.arraySync();
    const scale = maxAbs(ref);
    pooled.forEach((row, b) => row.forEach((v, i) => expect(Math.abs(v - refArr[b][0][i])).toBeLessThan(1e-4 * scale)));
    out.lastHiddenState.dispose();
    out.pooledOutput.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  it('is causal: changing a later token leaves earlier positions unchanged', () => {
    const ids = io.get('input_ids')!;
    const row = (ids.arraySync() as number[][])[0];
    const changed = [...row];
    changed[10] = (changed[10] + 7) % 98;
    const [a, b] = [row, changed].map((r) => model.lastHiddenState(tf.tensor2d([r], [1, 16], 'int32')));
    const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(a, b)), [0, 2]));
    const d = Array.from(diff.dataSync());
    expect(Math.max(...d.slice(0, 10))).toBe(0);
    expect(d[10]).toBeGreaterThan(1e-3);
    tf.dispose([a, b, diff]);
  });

  it('returns hidden states and honours an attention mask', () => {
    const ids = io.get('input_ids')!;
    const out = model.forward(ids, { outputHiddenStates: true });
    expect(out.hiddenStates!.length).toBe(3);
    // The last hidden state is the final norm of the last layer output.
    const renormed = model.text_model.final_layer_norm.forward(out.hiddenStates![2]);
    const renormDiff = tf.sub(renormed, out.lastHiddenState);
    expect(maxAbs(renormDiff)).toBeLessThan(1e-5);
    // With causal attention a padding mask only hides keys that are already hidden at earlier positions.
    const mask = tf.tensor2d([[...new Array(16).fill(1)], [...new Array(8).fill(1), ...new Array(8).fill(0)]], [2, 16], 'int32');
    const masked = model.lastHiddenState(ids, { attentionMask: mask });
    const same = tf.tidy(() => tf.max(tf.abs(tf.sub(tf.slice(masked, [0, 0, 0], [2, 8, 32]), tf.slice(out.lastHiddenState, [0, 0, 0], [2, 8, 32])))));
    const later = tf.tidy(() => tf.max(tf.abs(tf.sub(tf.slice(masked, [1, 8, 0], [1, 8, 32]), tf.slice(out.lastHiddenState, [1, 8, 0], [1, 8, 32])))));
    expect(same.dataSync()[0]).toBeLessThan(1e-5);
    expect(later.dataSync()[0]).toBeGreaterThan(1e-3);
    tf.dispose([out.lastHiddenState, out.pooledOutput, ...out.hiddenStates!, renormed, renormDiff, mask, masked, same, later]);
  });

  it('pools the state at the end token (first eos id, or the argmax with the legacy eos id 2)', () => {
    const ids = tf.tensor2d([[98, 5, 7, 99, 1, 1], [98, 99, 3, 99, 1, 1]], [2, 6], 'int32');
    const out = model.forward(ids);
    const last = out.lastHiddenState.arraySync();
    expect(out.pooledOutput.arraySync()).toEqual([last[0][3], last[1][1]]);
    const legacy = new CLIPTextModel({ ...model.config, eos_token_id: 2 });
    const ids2 = tf.tensor2d([[3, 97, 5, 7]], [1, 4], 'int32');
    const out2 = legacy.forward(ids2);
    expect(out2.pooledOutput.arraySync()[0]).toEqual(out2.lastHiddenState.arraySync()[0][1]);
    legacy.dispose();
    tf.dispose([ids, ids2, out.lastHiddenState, out.pooledOutput, out2.lastHiddenState, out2.pooledOutput]);
  });

  it('rejects ids outside the token table', () => {
    const bad = tf.tensor2d([[1, 2, 100]], [1, 3], 'int32');
    expect(() => model.forward(bad)).toThrow(/outside/);
    bad.dispose();
  });
});

describe('growable token table', () => {
  it('adds rows initialised as given, copied or random, with ids after the vocabulary', () => {
    seedInit(7);
    const m = new CLIPTextModel(tiny);
    try {
      expect(m.addTokenEmbeddings(2, { copyFrom: [3, 4] })).toEqual([50, 51]);
      const rows = m.tokenEmbeddingRows([3, 4, 50, 51]).arraySync();
      expect(rows[2]).toEqual(rows[0]);
      expect(rows[3]).toEqual(rows[1]);
      const given = tf.fill([1, 16], 0.5);
      expect(m.addTokenEmbeddings(1, given)).toEqual([52]);
      given.dispose();
      expect(m.addTokenEmbeddings(1)).toEqual([53]);
      expect(m.numTokens).toBe(54);
      expect(m.extraTokenRows!.shape).toEqual([4, 16]);
      const e52 = m.getTokenEmbedding(52);
      expect(Array.from(e52.dataSync()).every((v) => v === 0.5)).toBe(true);
      const e53 = m.getTokenEmbedding(53);
      const norm = Math.hypot(...Array.from(e53.dataSync()));
      expect(norm).toBeGreaterThan(0.01);
      expect(norm).toBeLessThan(1);
      // Copies of the first added rows survived the growth.
      expect(m.tokenEmbeddingRows([50]).arraySync()[0]).toEqual(rows[0]);
      m.setTokenEmbeddings(new Map<number, number[]>([[53, new Array(16).fill(-1)], [2, new Array(16).fill(2)]]));
      expect(Array.from(m.getTokenEmbedding(53).dataSync()).every((v) => v === -1)).toBe(true);
      expect(Array.from(m.getTokenEmbedding(2).dataSync()).every((v) => v === 2)).toBe(true);
      expect(() => m.setTokenEmbeddings(new Map([[54, new Array(16).fill(0)]]))).toThrow(/outside/);
      tf.dispose([e52, e53]);
    } finally {
      m.dispose();
    }
  });

  it('keeps upstream ids exact and makes a copied token behave as its source', () => {
    seedInit(9);
    const m = new CLIPTextModel(tiny);
    try {
      const ids = tf.tensor2d([[49, 5, 6, 7, 49]], [1, 5], 'int32');
      const before = m.lastHiddenState(ids);
      const [id] = m.addTokenEmbeddings(2, { copyFrom: [6] });
      const after = m.lastHiddenState(ids);
      const copied = tf.tensor2d([[49, 5, id, 7, 49]], [1, 5], 'int32');
      const viaCopy = m.lastHiddenState(copied);
      expect(after.arraySync()).toEqual(before.arraySync());
      expect(viaCopy.arraySync()).toEqual(before.arraySync());
      tf.dispose([ids, before, after, copied, viaCopy]);
    } finally {
      m.dispose();
    }
  });

  it('trains only the added rows, and only those used in the batch', () => {
    seedInit(11);
    const m = new CLIPTextModel(tiny);
    try {
      m.setTrainable(false);
      m.addTokenEmbeddings(3, 'random');
      const extra = m.extraTokenRows!;
      expect(m.trainableVariables()).toEqual([extra]);
      const params = m.namedParameters();
      const before = params.map(([, p]) => p.variable.dataSync().slice());
      const extraBefore = extra.arraySync() as number[][];
      // Row 51 is used, rows 50 and 52 are not.
      const ids = tf.tensor2d([[49, 5, 51, 7, 49], [49, 51, 6, 49, 49]], [2, 5], 'int32');
      const target = tf.randomNormal([2, 5, 16], 0, 1, 'float32', 3);
      const { value, grads } = tf.variableGrads(() => tf.tidy(() => tf.mean(tf.square(tf.sub(m.lastHiddenState(ids), target))) as tf.Scalar));
      expect(Object.keys(grads)).toEqual([extra.name]);
      const g = grads[extra.name].arraySync() as number[][];
      expect(g[0].every((v) => v === 0)).toBe(true);
      expect(g[2].every((v) => v === 0)).toBe(true);
      expect(Math.max(...g[1].map(Math.abs))).toBeGreaterThan(0);
      const opt = tf.train.sgd(0.5);
      opt.applyGradients(grads);
      const extraAfter = extra.arraySync() as number[][];
      expect(extraAfter[0]).toEqual(extraBefore[0]);
      expect(extraAfter[2]).toEqual(extraBefore[2]);
      expect(extraAfter[1]).not.toEqual(extraBefore[1]);
      params.forEach(([name, p], i) => expect([name, Array.from(p.variable.dataSync())]).toEqual([name, Array.from(before[i])]));
      opt.dispose();
      tf.dispose([ids, target, value, ...Object.values(grads)]);
    } finally {
      m.dispose();
    }
  });
});

describe('textual inversion files', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'museum-ti-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('round-trips learned embeddings as {token: [dim]} safetensors', () => {
    seedInit(5);
    const tok = WordTokenizer.fromCorpus(['a cat in the style of monet'], { modelMaxLength: 8 });
    const cfg = { ...tiny, vocab_size: tok.vocabSize };
    const m = new CLIPTextModel(cfg);
    const m2 = new CLIPTextModel(cfg);
    const tok2 = WordTokenizer.fromCorpus(['a cat in the style of monet'], { modelMaxLength: 8 });
    try {
      const ids = tok.addTokens(['<watercolor>', '<ink>']);
      expect(m.addTokenEmbeddings(2, 'random')).toEqual(ids);
      const file = path.join(dir, 'learned_embeds.safetensors');
      saveTextualInversion(file, tok, m, ['<watercolor>', '<ink>']);
      const { tensors } = loadSafetensors(file);
      expect([...tensors.keys()].sort()).toEqual(['<ink>', '<watercolor>']);
      expect(tensors.get('<ink>')!.shape).toEqual([16]);
      tensors.forEach((t) => t.dispose());

      const loaded = loadTextualInversion(file, tok2, m2);
      expect(loaded.tokens.sort()).toEqual(['<ink>', '<watercolor>']);
      for (const t of ['<watercolor>', '<ink>']) {
        const a = m.getTokenEmbedding(tok.tokenId(t)!);
        const b = m2.getTokenEmbedding(tok2.tokenId(t)!);
        expect(Array.from(b.dataSync())).toEqual(Array.from(a.dataSync()));
        tf.dispose([a, b]);
      }
      expect(() => loadTextualInversion(file, tok2, m2)).toThrow(/already exists/);
    } finally {
      m.dispose();
      m2.dispose();
    }
  });

  it('reads multi-vector and renamed single-token files as diffusers does', () => {
    const file = path.join(dir, 'multi.safetensors');
    const t = tf.tensor2d([[1, 2, 3], [4, 5, 6]]);
    saveSafetensors(file, { '<obj>': t });
    t.dispose();
    const learned = readTextualInversion(file);
    expect(learned.map((e) => e.token)).toEqual(['<obj>', '<obj>_1']);
    expect(Array.from(learned[1].vector.dataSync())).toEqual([4, 5, 6]);
    learned.forEach((e) => e.vector.dispose());
    const renamed = readTextualInversion(file, { token: '<thing>' });
    expect(renamed.map((e) => e.token)).toEqual(['<thing>', '<thing>_1']);
    renamed.forEach((e) => e.vector.dispose());
  });

  it('puts a loaded placeholder into the CLIP tokenizer as one id', () => {
    const tok = ClipBpeTokenizer.fromFolder(path.join(__dirname, 'fixtures', 'tokenizer'));
    const [id] = tok.addTokens(['<watercolor>']);
    expect(tok.encode('a <watercolor> cat')).toEqual([49406, 320, id, 2368, 49407]);
  });
});
