import { BASE_STYLES, autoencoderBatch, pretrainBatch, captionVariants } from '@museum/atelier';
import { BENCHMARK_STYLES } from '@museum/world';

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
});
