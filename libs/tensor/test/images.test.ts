import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import sharp from 'sharp';
import {
  initBackend,
  tf,
  decodeImage,
  decodeImageFile,
  encodePng,
  imageToBytes,
  pngFromRgbBytes,
  centerCropResize,
  loadImageAsModelInput,
  imageGrid,
  ImageDecodeError,
} from '@museum/tensor';

let dir: string;
let tensorsBefore: number;
beforeAll(async () => {
  await initBackend({ log: () => {} });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'museum-img-'));
  tensorsBefore = tf.memory().numTensors;
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
  expect(tf.memory().numTensors).toBe(tensorsBefore);
});

/** Deterministic pseudo-random bytes (xorshift), so failures reproduce. */
function randomBytes(n: number, seed = 7): Uint8Array {
  const out = new Uint8Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = s & 0xff;
  }
  return out;
}

/** Pixels of a decoded [0,1] tensor back as 0..255 integers. */
function toBytes(t: tf.Tensor): number[] {
  return Array.from(t.dataSync(), (v) => Math.round(v * 255));
}

const raw = (data: Uint8Array, width: number, height: number, channels: 1 | 2 | 3 | 4) => sharp(data, { raw: { width, height, channels } });

async function expectDecodeError(bytes: Uint8Array, message: RegExp): Promise<void> {
  const err = await decodeImage(bytes).then(
    (t) => {
      t.dispose();
      return null;
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ImageDecodeError);
  expect((err as Error).message).toMatch(message);
}

describe('decode / encode', () => {
  test('PNG encode → decode is exact on uint8 data, for [H,W,3], [1,H,W,3] and the -1,1 range', async () => {
    const w = 17;
    const h = 13;
    const bytes = randomBytes(w * h * 3);
    const img = tf.tidy(() => tf.div(tf.tensor3d(Array.from(bytes), [h, w, 3], 'float32'), 255) as tf.Tensor3D);

    const png = await encodePng(img);
    expect(png.subarray(1, 4).toString('latin1')).toBe('PNG');
    const back = await decodeImage(png);
    expect(back.shape).toEqual([h, w, 3]);
    expect(back.dtype).toBe('float32');
    expect(toBytes(back)).toEqual(Array.from(bytes));

    const batched = tf.tidy(() => tf.sub(tf.mul(tf.expandDims(img, 0), 2), 1) as tf.Tensor4D);
    const back2 = await decodeImage(await encodePng(batched, { range: '-1,1' }));
    expect(toBytes(back2)).toEqual(Array.from(bytes));

    const back3 = await decodeImage(await pngFromRgbBytes(bytes, w, h));
    expect(toBytes(back3)).toEqual(Array.from(bytes));
    [img, back, batched, back2, back3].forEach((t) => t.dispose());
  });

  test('encoding clips to the range and rounds; 1- and 4-channel tensors are kept as such', async () => {
    const t = tf.tensor3d([-3, -1, 0.5, 1, 7, NaN], [1, 2, 3]);
    const { data } = await imageToBytes(t, { range: '-1,1' });
    expect(Array.from(data)).toEqual([0, 0, 191, 255, 255, 0]);
    const grey = tf.tensor3d([0, 0.25, 1, 0.5], [2, 2, 1]);
    const greyPng = await encodePng(grey);
    const meta = await sharp(greyPng).metadata();
    expect([meta.channels, meta.width, meta.height]).toEqual([1, 2, 2]);
    const greyBack = await decodeImage(greyPng);
    expect(toBytes(greyBack)).toEqual([0, 0, 0, 64, 64, 64, 255, 255, 255, 128, 128, 128]);
    greyBack.dispose();
    const rgba = tf.tensor3d([1, 0, 0, 1, 0, 0, 1, 0], [1, 2, 4]);
    const back = await decodeImage(await encodePng(rgba)); // the transparent pixel lands on white
    expect(toBytes(back)).toEqual([255, 0, 0, 255, 255, 255]);
    [rgba, back].forEach((x) => x.dispose());
    const batch = tf.zeros([2, 4, 4, 3]) as tf.Tensor4D;
    await expect(encodePng(batch)).rejects.toThrow(/batch of 2/);
    const twoCh = tf.zeros([4, 4, 2]) as tf.Tensor3D;
    await expect(encodePng(twoCh)).rejects.toThrow(/1, 3 or 4 channels/);
    [t, grey, batch, twoCh].forEach((x) => x.dispose());
    await expect(pngFromRgbBytes(new Uint8Array(10), 2, 2)).rejects.toThrow(/expected 12 bytes/);
  });

  test('alpha is composited on white and greyscale becomes RGB', async () => {
    const rgba = new Uint8Array([255, 0, 0, 0, 0, 0, 0, 128, 0, 0, 255, 255, 10, 20, 30, 255]);
    const img = await decodeImage(await raw(rgba, 2, 2, 4).png().toBuffer());
    expect(img.shape).toEqual([2, 2, 3]);
    const px = toBytes(img);
    expect(px.slice(0, 3)).toEqual([255, 255, 255]); // fully transparent red → white
    for (const v of px.slice(3, 6)) expect(Math.abs(v - 127)).toBeLessThanOrEqual(1); // half-transparent black → mid grey
    expect(px.slice(6, 12)).toEqual([0, 0, 255, 10, 20, 30]);

    const grey = await decodeImage(await raw(new Uint8Array([0, 64, 200, 255]), 2, 2, 1).png().toBuffer());
    expect(toBytes(grey)).toEqual([0, 0, 0, 64, 64, 64, 200, 200, 200, 255, 255, 255]);
    img.dispose();
    grey.dispose();
  });

  test('JPEG and WebP decode (lossy close, lossless exact)', async () => {
    const w = 40;
    const h = 24;
    const px = new Uint8Array(w * h * 3);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) px.set([x * 6, y * 10, 128], (y * w + x) * 3);
    const cases: Array<[string, Buffer, number]> = [
      ['jpeg', await raw(px, w, h, 3).jpeg({ quality: 95 }).toBuffer(), 0.04],
      ['webp', await raw(px, w, h, 3).webp({ quality: 95 }).toBuffer(), 0.06],
      ['webp-lossless', await raw(px, w, h, 3).webp({ lossless: true }).toBuffer(), 0],
    ];
    for (const [name, bytes, tol] of cases) {
      const img = await decodeImage(bytes);
      expect([name, img.shape]).toEqual([name, [h, w, 3]]);
      const got = img.dataSync();
      let maxErr = 0;
      for (let i = 0; i < got.length; i++) maxErr = Math.max(maxErr, Math.abs(got[i] - px[i] / 255));
      expect([name, maxErr <= tol + 1e-6]).toEqual([name, true]);
      img.dispose();
    }
  });

  test('EXIF orientation is honoured', async () => {
    // 8×4, left half red, right half blue; orientation 6 = "rotate 90° clockwise to display"
    const w = 8;
    const h = 4;
    const px = new Uint8Array(w * h * 3);
    for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) px.set(x < w / 2 ? [255, 0, 0] : [0, 0, 255], (y * w + x) * 3);
    const jpeg = await raw(px, w, h, 3).jpeg({ quality: 100 }).withMetadata({ orientation: 6 }).toBuffer();
    expect((await sharp(jpeg).metadata()).orientation).toBe(6);
    const img = await decodeImage(jpeg);
    expect(img.shape).toEqual([8, 4, 3]);
    const top = tf.tidy(() => tf.mean(tf.slice(img, [0, 0, 0], [3, 4, 3]), [0, 1]));
    const bottom = tf.tidy(() => tf.mean(tf.slice(img, [5, 0, 0], [3, 4, 3]), [0, 1]));
    expect(Array.from(top.dataSync(), (v) => Math.round(v))).toEqual([1, 0, 0]); // red went to the top
    expect(Array.from(bottom.dataSync(), (v) => Math.round(v))).toEqual([0, 0, 1]);
    [img, top, bottom].forEach((t) => t.dispose());
  });

  test('undecodable bytes are rejected with ImageDecodeError', async () => {
    const png = await raw(randomBytes(64 * 64 * 3), 64, 64, 3).png().toBuffer();
    await expectDecodeError(new Uint8Array(0), /empty/);
    await expectDecodeError(randomBytes(500, 3), /cannot decode image \(500 bytes\)/);
    await expectDecodeError(png.subarray(0, Math.floor(png.length / 2)), /cannot decode image/);
    await expectDecodeError(Buffer.from('<html>not an image</html>'), /cannot decode image/);

    const good = path.join(dir, 'ok.png');
    const bad = path.join(dir, 'bad.png');
    fs.writeFileSync(good, png);
    fs.writeFileSync(bad, randomBytes(100));
    const t = await decodeImageFile(good);
    expect(t.shape).toEqual([64, 64, 3]);
    t.dispose();
    await expect(decodeImageFile(bad)).rejects.toThrow(ImageDecodeError);
    await expect(decodeImageFile(bad)).rejects.toThrow(/bad\.png: cannot decode/);
  });
});

describe('centerCropResize', () => {
  // value(y, x, c) = (x + 100 y + 1000 c) / 10000: linear, so any symmetric resampling returns the value
  // at the centre of the output pixel's footprint.
  const H = 12;
  const W = 20;
  const value = (y: number, x: number, c: number) => (x + 100 * y + 1000 * c) / 10000;
  let ramp: tf.Tensor3D;
  beforeAll(() => {
    const v = new Float32Array(H * W * 3);
    for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) for (let c = 0; c < 3; c++) v[(y * W + x) * 3 + c] = value(y, x, c);
    ramp = tf.tensor3d(v, [H, W, 3]);
  });
  afterAll(() => ramp.dispose());

  /** Expected output at (i, j): the ramp at the centre of the footprint inside the centred square. */
  function expectRamp(out: tf.Tensor3D, size: number, left: number, top: number, side: number, interiorOnly: boolean) {
    expect(out.shape).toEqual([size, size, 3]);
    const d = out.dataSync();
    const scale = side / size;
    for (let i = 0; i < size; i++) {
      for (let j = 0; j < size; j++) {
        const edge = i === 0 || j === 0 || i === size - 1 || j === size - 1;
        if (interiorOnly && edge) continue;
        for (let c = 0; c < 3; c++) {
          const want = value(top + (i + 0.5) * scale - 0.5, left + (j + 0.5) * scale - 0.5, c);
          const got = d[(i * size + j) * 3 + c];
          if (Math.abs(got - want) > 1e-5) throw new Error(`size ${size} at (${i},${j},${c}): got ${got}, want ${want}`);
        }
      }
    }
  }

  test('crops the centred square (landscape and portrait) and keeps it at its own size', () => {
    const same = centerCropResize(ramp, 12);
    const direct = tf.slice(ramp, [0, 4, 0], [12, 12, 3]);
    expect(Array.from(same.dataSync())).toEqual(Array.from(direct.dataSync()));
    const portrait = tf.transpose(ramp, [1, 0, 2]) as tf.Tensor3D; // 20 × 12
    const p = centerCropResize(portrait, 12);
    const pDirect = tf.slice(portrait, [4, 0, 0], [12, 12, 3]);
    expect(Array.from(p.dataSync())).toEqual(Array.from(pDirect.dataSync()));
    [same, direct, portrait, p, pDirect].forEach((t) => t.dispose());
  });

  test('shrinking by an integer factor is an exact box average', () => {
    for (const size of [6, 4, 3, 1]) {
      const out = centerCropResize(ramp, size);
      expectRamp(out, size, 4, 0, 12, false);
      out.dispose();
    }
  });

  test('non-integer shrink and enlarge keep the ramp (interior exact, edges clamped but close)', () => {
    for (const size of [5, 7, 9, 24, 17]) {
      const out = centerCropResize(ramp, size);
      expectRamp(out, size, 4, 0, 12, true);
      const d = out.dataSync();
      const lo = value(0, 4, 0);
      const hi = value(11, 15, 2);
      for (const v of d) {
        expect(v).toBeGreaterThanOrEqual(lo - 1e-6);
        expect(v).toBeLessThanOrEqual(hi + 1e-6);
      }
      out.dispose();
    }
  });

  test('shrinking averages away fine detail instead of aliasing', () => {
    const n = 64;
    const check = tf.tidy(() => {
      const i = tf.range(0, n, 1, 'int32');
      const parity = tf.mod(tf.add(tf.expandDims(i, 1), tf.expandDims(i, 0)), 2);
      return tf.tile(tf.expandDims(tf.cast(parity, 'float32'), 2), [1, 1, 3]) as tf.Tensor3D;
    });
    for (const size of [16, 10]) {
      const out = centerCropResize(check, size);
      const d = out.dataSync();
      for (const v of d) expect(Math.abs(v - 0.5)).toBeLessThan(size === 16 ? 1e-6 : 0.1);
      out.dispose();
    }
    check.dispose();
    expect(() => centerCropResize(ramp, 0)).toThrow(/positive integer/);
  });

  test('loadImageAsModelInput gives a [1,size,size,3] batch in [-1,1]', async () => {
    const w = 30;
    const h = 20;
    const px = new Uint8Array(w * h * 3).fill(255);
    for (let y = 0; y < h; y++) for (let x = 0; x < 5; x++) px.fill(0, (y * w + x) * 3, (y * w + x) * 3 + 3); // black strip, cropped away
    const x = await loadImageAsModelInput(await raw(px, w, h, 3).png().toBuffer(), 8);
    expect(x.shape).toEqual([1, 8, 8, 3]);
    const lo = tf.min(x);
    const hi = tf.max(x);
    expect([lo.dataSync()[0], hi.dataSync()[0]]).toEqual([1, 1]);
    [x, lo, hi].forEach((t) => t.dispose());
  });
});

describe('imageGrid', () => {
  test('places tiles row by row with padding and background around and between them', () => {
    const tiles = [0.1, 0.2, 0.3].map((v) => tf.fill([2, 3, 3], v) as tf.Tensor3D);
    const grid = imageGrid(tiles, 2, { pad: 1, background: 0.9 });
    expect(grid.shape).toEqual([2 * 2 + 3, 2 * 3 + 3, 3]);
    const d = grid.dataSync();
    const at = (y: number, x: number) => d[(y * 9 + x) * 3];
    const expectBlock = (y0: number, x0: number, hh: number, ww: number, v: number) => {
      for (let y = y0; y < y0 + hh; y++) for (let x = x0; x < x0 + ww; x++) expect(at(y, x)).toBeCloseTo(v, 6);
    };
    expectBlock(1, 1, 2, 3, 0.1);
    expectBlock(1, 5, 2, 3, 0.2);
    expectBlock(4, 1, 2, 3, 0.3);
    expectBlock(4, 5, 2, 3, 0.9); // missing fourth tile
    for (let x = 0; x < 9; x++) for (const y of [0, 3, 6]) expect(at(y, x)).toBeCloseTo(0.9, 6);
    for (let y = 0; y < 7; y++) for (const x of [0, 4, 8]) expect(at(y, x)).toBeCloseTo(0.9, 6);
    grid.dispose();
    tiles.forEach((t) => t.dispose());
  });

  test('per-channel background, no padding, tiles of different sizes centred in their cells', () => {
    const a = tf.zeros([4, 4, 3]) as tf.Tensor3D;
    const b = tf.zeros([2, 2, 3]) as tf.Tensor3D;
    const grid = imageGrid([a, b], 2, { background: [1, 0.5, 0.25] });
    expect(grid.shape).toEqual([4, 8, 3]);
    const d = grid.dataSync();
    const px = (y: number, x: number) => Array.from(d.slice((y * 8 + x) * 3, (y * 8 + x) * 3 + 3));
    expect(px(0, 4)).toEqual([1, 0.5, 0.25]); // around the small tile
    expect(px(1, 5)).toEqual([0, 0, 0]); // the small tile sits at rows 1-2, cols 5-6
    expect(px(2, 6)).toEqual([0, 0, 0]);
    expect(px(3, 7)).toEqual([1, 0.5, 0.25]);
    expect(px(3, 3)).toEqual([0, 0, 0]);
    const grey = tf.zeros([4, 4, 1]) as tf.Tensor3D;
    expect(() => imageGrid([a, grey], 2)).toThrow(/all tiles must be/);
    expect(() => imageGrid([], 2)).toThrow(/at least one tile/);
    expect(() => imageGrid([a], 1, { background: [1, 1] })).toThrow(/background has 2 values/);
    [a, b, grey, grid].forEach((t) => t.dispose());
  });
});
