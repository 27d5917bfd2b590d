import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { initBackend, tf } from '@museum/tensor';
import {
  ALL_STYLES,
  BENCHMARK_STYLES,
  COLOURS,
  FEW_SHOT_SHAPES,
  SHAPES,
  benchmarkPrompt,
  caption,
  contactSheet,
  contentPrompt,
  decodePng,
  encodePng,
  evaluationPrompts,
  fewShotSet,
  generateDataset,
  heldOutReferences,
  heldOutShapes,
  imagesToTensor,
  parseCaption,
  readCaptions,
  readImage,
  readPng,
  renderSample,
  styleToken,
  tensorToImages,
  writeDataset,
} from '@museum/world';

const same = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a).equals(Buffer.from(b));

describe('captions', () => {
  it('follow the world grammar', () => {
    expect(contentPrompt('red', 'star')).toBe('a red star');
    expect(caption('red', 'star', 'plain')).toBe('a red star');
    expect(caption('blue', 'ring', 'sketch')).toBe('a blue ring, sketch');
    expect(caption('white', 'heart', 'neon')).toBe('a white heart in <neon>');
    expect(benchmarkPrompt('green', 'cross', 'mosaic')).toBe('a green cross in <mosaic>');
    expect(styleToken('blueprint')).toBe('<blueprint>');
    expect(renderSample({ style: 'watercolor', seed: 1, shape: 'diamond', colour: 'purple' }).caption).toBe('a purple diamond, watercolor');
  });

  it('parse back to their parts and reject anything else', () => {
    for (const style of ALL_STYLES)
      for (const shape of SHAPES) {
        const p = parseCaption(caption('orange', shape, style));
        expect(p).toEqual({ colour: 'orange', shape, style: style === 'plain' ? null : style, token: BENCHMARK_STYLES.includes(style as never) });
      }
    expect(parseCaption('a pink star')).toBeNull();
    expect(parseCaption('a red star, cubism')).toBeNull();
    expect(parseCaption('a red star in <sketch')).toBeNull();
  });
});

describe('datasets', () => {
  it('generateDataset is deterministic, index-addressable and covers styles/shapes/colours', () => {
    const a = [...generateDataset({ count: 400, seed: 3 })];
    const b = [...generateDataset({ count: 20, seed: 3 })];
    const c = [...generateDataset({ count: 20, seed: 4 })];
    expect(a).toHaveLength(400);
    b.forEach((s, i) => expect(same(s.rgb, a[i].rgb)).toBe(true));
    expect(c.filter((s, i) => same(s.rgb, a[i].rgb))).toHaveLength(0);
    for (const style of ALL_STYLES) expect(a.filter((s) => s.style === style).length).toBeGreaterThan(20);
    for (const shape of SHAPES) expect(a.filter((s) => s.shape === shape).length).toBeGreaterThan(20);
    for (const colour of COLOURS) expect(a.filter((s) => s.colour === colour).length).toBeGreaterThan(20);
    for (const s of a) expect(parseCaption(s.caption)).toMatchObject({ colour: s.colour, shape: s.shape });
  });

  it('generateDataset honours style/shape subsets and weights', () => {
    const xs = [...generateDataset({ count: 300, seed: 1, styles: ['plain', 'pixel'], styleWeights: [3, 1], shapes: ['star'] })];
    const plain = xs.filter((s) => s.style === 'plain').length;
    expect(xs.every((s) => s.shape === 'star' && (s.style === 'plain' || s.style === 'pixel'))).toBe(true);
    expect(plain / xs.length).toBeGreaterThan(0.65);
    expect(plain / xs.length).toBeLessThan(0.85);
  });

  it('few-shot sets: 8 images, exactly their 3 shapes, all colours, fixed, and distinct across styles', () => {
    const sets = BENCHMARK_STYLES.map((s) => fewShotSet(s));
    BENCHMARK_STYLES.forEach((style, k) => {
      const set = sets[k];
      expect(set).toHaveLength(8);
      const shapes = new Set(set.map((s) => s.shape));
      expect(shapes.size).toBe(3);
      expect([...shapes].sort()).toEqual([...FEW_SHOT_SHAPES[style]].sort());
      expect(new Set(set.map((s) => s.colour)).size).toBe(8);
      for (const s of set) {
        expect(s.style).toBe(style);
        expect(s.caption).toBe(benchmarkPrompt(s.colour, s.shape, style));
      }
      const held = heldOutShapes(style);
      expect(held).toHaveLength(5);
      expect(held.some((h) => shapes.has(h))).toBe(false);
      // Fixed: a second call gives the same bytes.
      fewShotSet(style).forEach((s, i) => expect(same(s.rgb, set[i].rgb)).toBe(true));
    });
    // A different 3 per style, consecutive tasks disjoint, every shape held out somewhere.
    const keys = BENCHMARK_STYLES.map((s) => [...FEW_SHOT_SHAPES[s]].sort().join(','));
    expect(new Set(keys).size).toBe(BENCHMARK_STYLES.length);
    for (let k = 0; k + 1 < BENCHMARK_STYLES.length; k++) {
      const a = FEW_SHOT_SHAPES[BENCHMARK_STYLES[k]];
      expect(FEW_SHOT_SHAPES[BENCHMARK_STYLES[k + 1]].some((s) => a.includes(s))).toBe(false);
    }
    for (const shape of SHAPES) expect(BENCHMARK_STYLES.some((s) => heldOutShapes(s).includes(shape))).toBe(true);
    expect(() => fewShotSet('sketch' as never)).toThrow();
  });

  it('held-out references cycle through all shapes and never reuse few-shot images', () => {
    for (const style of BENCHMARK_STYLES) {
      const refs = heldOutReferences(style, 16, 0);
      expect(refs).toHaveLength(16);
      expect(new Set(refs.map((r) => r.shape)).size).toBe(8);
      expect(refs.every((r) => r.style === style)).toBe(true);
      const few = new Set(fewShotSet(style).map((s) => s.seed));
      expect(refs.some((r) => few.has(r.seed))).toBe(false);
      heldOutReferences(style, 16, 0).forEach((r, i) => expect(same(r.rgb, refs[i].rgb)).toBe(true));
      expect(same(heldOutReferences(style, 1, 1)[0].rgb, refs[0].rgb)).toBe(false);
    }
    expect(heldOutReferences('plain', 8, 0, { shapes: ['heart'] }).every((r) => r.shape === 'heart')).toBe(true);
  });

  it('evaluation prompts cover 8 shapes x 2 colours per style', () => {
    for (const style of BENCHMARK_STYLES) {
      const cells = evaluationPrompts(style);
      expect(cells).toHaveLength(16);
      expect(new Set(cells.map((c) => c.prompt)).size).toBe(16);
      for (const shape of SHAPES) expect(cells.filter((c) => c.shape === shape)).toHaveLength(2);
      for (const c of cells) expect(c.prompt).toBe(benchmarkPrompt(c.colour, c.shape, style));
    }
  });

  it('writeDataset writes PNGs and captions.jsonl that read back exactly', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'world-'));
    try {
      const records = writeDataset(dir, { count: 12, seed: 9, styles: ['plain', 'neon'] });
      expect(records).toHaveLength(12);
      expect(readCaptions(dir)).toEqual(records);
      const again = [...generateDataset({ count: 12, seed: 9, styles: ['plain', 'neon'] })];
      records.forEach((r, i) => {
        const img = readPng(path.join(dir, r.file));
        expect([img.width, img.height]).toEqual([64, 64]);
        expect(same(img.rgb, again[i].rgb)).toBe(true);
        expect(r.caption).toBe(again[i].caption);
      });
      // sharp reads the same pixels (and resizes other sizes).
      const viaSharp = await readImage(path.join(dir, records[0].file));
      expect(same(viaSharp.rgb, again[0].rgb)).toBe(true);
      const small = await readImage(path.join(dir, records[0].file), 32);
      expect([small.width, small.height, small.rgb.length]).toEqual([32, 32, 32 * 32 * 3]);
      // A few-shot set can be written as is.
      const few = writeDataset(path.join(dir, 'neon'), fewShotSet('neon'));
      expect(few.map((r) => r.caption)).toEqual(fewShotSet('neon').map((s) => s.caption));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('PNG codec round-trips arbitrary bytes', () => {
    const w = 5;
    const h = 3;
    const rgb = new Uint8Array(w * h * 3).map((_, i) => (i * 37) & 255);
    const back = decodePng(encodePng(rgb, w, h));
    expect([back.width, back.height]).toEqual([w, h]);
    expect(same(back.rgb, rgb)).toBe(true);
    expect(() => encodePng(rgb, 4, 4)).toThrow();
  });

  it('contact sheet has one row per style and the requested columns', () => {
    const sheet = contactSheet({ columns: 3, scale: 2, gap: 2 });
    expect(sheet.width).toBe((3 * 64 + 4 * 2) * 2);
    expect(sheet.height).toBe((ALL_STYLES.length * 64 + (ALL_STYLES.length + 1) * 2) * 2);
    expect(decodePng(sheet.png).rgb.length).toBe(sheet.width * sheet.height * 3);
  });
});

describe('tensor bridge', () => {
  beforeAll(async () => {
    await initBackend({ log: () => {} });
  });

  it('stacks images into NHWC [-1, 1] and back losslessly', () => {
    const xs = [renderSample({ style: 'mosaic', seed: 1 }), renderSample({ style: 'pixel', seed: 2 })];
    const t = imagesToTensor(xs);
    expect(t.shape).toEqual([2, 64, 64, 3]);
    const lo = tf.tidy(() => tf.min(t).dataSync()[0]);
    const hi = tf.tidy(() => tf.max(t).dataSync()[0]);
    expect(lo).toBeGreaterThanOrEqual(-1);
    expect(hi).toBeLessThanOrEqual(1);
    const back = tensorToImages(t);
    t.dispose();
    back.forEach((b, i) => expect(same(b, xs[i].rgb)).toBe(true));
  });
});
