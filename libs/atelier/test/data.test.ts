import { BASE_STYLES, autoencoderBatch, extendStreamRecord, parseRenderingEmphasis, resumedEmphasis, pretrainBatch, captionVariants } from '@museum/atelier';
import { BENCHMARK_STYLES, WORLD_REVISION } from '@museum/world';

const IMAGE = 64 * 64 * 3;

/** Rough test for "a world image": world backgrounds fill the corners with one flat-ish colour. */
function spread(images: Float32Array, k: number): number {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = k * IMAGE; i < (k + 1) * IMAGE; i++) {
    lo = Math.min(lo, images[i]);
    hi = Math.max(hi, images[i]);
  }
  return hi - lo;
}

describe('Atelier pre-training data', () => {
  test('autoencoder batches are deterministic, in [-1, 1], and mix textures at the asked share', () => {
    const a = autoencoderBatch({ seed: 3, index: 5, rank: 0, size: 6, textureShare: 0.5 });
    const b = autoencoderBatch({ seed: 3, index: 5, rank: 0, size: 6, textureShare: 0.5 });
    expect(Buffer.from(a.images.buffer).equals(Buffer.from(b.images.buffer))).toBe(true);
    expect(a.images.length).toBe(6 * IMAGE);
    for (const v of a.images) expect(Math.abs(v)).toBeLessThanOrEqual(1);
    const other = autoencoderBatch({ seed: 3, index: 5, rank: 1, size: 6, textureShare: 0.5 });
    expect(Buffer.from(other.images.buffer).equals(Buffer.from(a.images.buffer))).toBe(false);
    for (let k = 0; k < 6; k++) expect(spread(a.images, k)).toBeGreaterThan(0.05);
  });

  test('texture share 0 gives only base renderings, 1 only textures, 0.5 about half', () => {
    const sources = (share: number) => autoencoderBatch({ seed: 9, index: 0, rank: 0, size: 64, textureShare: share }).sources ?? [];
    expect(sources(0).every((s) => BASE_STYLES.includes(s as never))).toBe(true);
    expect(sources(1).every((s) => s.startsWith('texture:'))).toBe(true);
    const half = sources(0.5).filter((s) => s.startsWith('texture:')).length;
    expect(half).toBeGreaterThan(16);
    expect(half).toBeLessThan(48);
  });

  test('captions of the diffusion stage never name a benchmark style', () => {
    for (let index = 0; index < 20; index++) {
      const batch = pretrainBatch({ seed: 1, index, rank: 0, size: 16, dropCaption: 0.1 });
      for (const c of batch.captions) for (const s of BENCHMARK_STYLES) expect(c).not.toContain(s);
    }
    expect(captionVariants('red', 'star', 'plain')).toEqual(['a red star']);
  });

  test('an emphasis draws its mode at about its share; without one the stream is the uniform one it always was', () => {
    const plain = pretrainBatch({ seed: 4, index: 7, rank: 1, size: 32 });
    const empty = pretrainBatch({ seed: 4, index: 7, rank: 1, size: 32, emphasis: [] });
    expect(empty.captions).toEqual(plain.captions);
    expect(Buffer.from(empty.images.buffer).equals(Buffer.from(plain.images.buffer))).toBe(true);
    const isWhiteWatercolor = (c: string) => c.startsWith('a white ') && c.includes('watercolor');
    const count = (emphasis?: ReturnType<typeof parseRenderingEmphasis>) => {
      let n = 0;
      for (let index = 0; index < 8; index++) n += pretrainBatch({ seed: 4, index, rank: 0, size: 32, emphasis }).captions.filter(isWhiteWatercolor).length;
      return n;
    };
    // 256 images: uniform gives ~1/32 white watercolor (~8), a 0.5 emphasis about half plus that (~132).
    expect(count()).toBeLessThan(20);
    const emphasised = count(parseRenderingEmphasis('watercolor:white=0.5'));
    expect(emphasised).toBeGreaterThan(100);
    expect(emphasised).toBeLessThan(165);
  });

  test('emphasis text is read strictly: base styles only, known colours, shares that leave room for the uniform stream', () => {
    expect(parseRenderingEmphasis('watercolor:white=0.125, sketch:black=0.05')).toEqual([
      { style: 'watercolor', colour: 'white', share: 0.125 },
      { style: 'sketch', colour: 'black', share: 0.05 },
    ]);
    expect(() => parseRenderingEmphasis('neon:white=0.1')).toThrow(/pre-training never sees benchmark styles/);
    expect(() => parseRenderingEmphasis('watercolor:grey=0.1')).toThrow(/colour must be one of/);
    expect(() => parseRenderingEmphasis('watercolor:white')).toThrow(/style:colour=share/);
    expect(() => parseRenderingEmphasis('watercolor:white=0')).toThrow(/share must be in/);
    expect(() => parseRenderingEmphasis('watercolor:white=0.6,pixel:red=0.5')).toThrow(/sum to 1\.1/);
    expect(parseRenderingEmphasis('none')).toEqual([]);
    expect(() => parseRenderingEmphasis('none,watercolor:white=0.1')).toThrow(/style:colour=share/);
  });

  test('a run resumed without an emphasis continues the stream its checkpoint was on; one asked for wins', () => {
    const white = parseRenderingEmphasis('watercolor:white=0.125');
    const record = extendStreamRecord([], 5000, white);
    expect(resumedEmphasis(record, undefined)).toEqual(white);
    expect(resumedEmphasis(record, [])).toEqual([]);
    expect(resumedEmphasis(record, parseRenderingEmphasis('pixel:red=0.1'))).toEqual([{ style: 'pixel', colour: 'red', share: 0.1 }]);
    expect(resumedEmphasis([], undefined)).toEqual([]);
    // Back to uniform at 5300: a later resume stays uniform.
    expect(resumedEmphasis(extendStreamRecord(record, 5300, []), undefined)).toEqual([]);
  });

  test('the stream record gains a segment only when the emphasis or the world revision changes', () => {
    const white = parseRenderingEmphasis('watercolor:white=0.125');
    expect(extendStreamRecord([], 0, [])).toEqual([{ fromStep: 0, emphasis: [], world: WORLD_REVISION }]);
    // A checkpoint from before the record: its steps saw the uniform stream of revision 1.
    const fromShipped = extendStreamRecord([], 5000, white, 2);
    expect(fromShipped).toEqual([{ fromStep: 0, emphasis: [], world: 1 }, { fromStep: 5000, emphasis: white, world: 2 }]);
    expect(extendStreamRecord(fromShipped, 5300, white, 2)).toEqual(fromShipped);
    expect(extendStreamRecord(fromShipped, 5300, [], 2)).toEqual([...fromShipped, { fromStep: 5300, emphasis: [], world: 2 }]);
    expect(extendStreamRecord(fromShipped, 5300, white, 3)).toEqual([...fromShipped, { fromStep: 5300, emphasis: white, world: 3 }]);
    // Same emphasis, new world: a new segment too; records without `world` are revision 1.
    expect(extendStreamRecord([], 5000, [], 2)).toEqual([{ fromStep: 0, emphasis: [], world: 1 }, { fromStep: 5000, emphasis: [], world: 2 }]);
    expect(extendStreamRecord([{ fromStep: 0, emphasis: [] }], 5000, [], 1)).toEqual([{ fromStep: 0, emphasis: [] }]);
    expect(extendStreamRecord([], 0, white, 2)).toEqual([{ fromStep: 0, emphasis: white, world: 2 }]);
  });
});
