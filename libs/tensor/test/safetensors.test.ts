import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import {
  initBackend,
  tf,
  SafetensorsReader,
  SafetensorsError,
  loadSafetensors,
  saveSafetensors,
  readSafetensorsHeader,
  float16ToFloat32,
  float32ToFloat16,
  bfloat16ToFloat32,
  float32ToBfloat16,
} from '@museum/tensor';

const FIXTURES = path.join(__dirname, 'fixtures');
let dir: string;

beforeAll(async () => {
  await initBackend({ log: () => {} });
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'museum-st-'));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

let counter = 0;
const tmpFile = () => path.join(dir, `t${counter++}.safetensors`);

/** The bit patterns of a float32 array, so NaN, -0 and payloads compare exactly. */
const bits = (a: ArrayLike<number>) => Array.from(new Uint32Array(Float32Array.from(a).buffer));

/** Reads a tensor's raw bytes straight from the file (independent of the reader under test). */
function rawTensorBytes(file: string, name: string): { header: any; bytes: Buffer; bufferStart: number } {
  const buf = fs.readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
  const [b, e] = header[name].data_offsets;
  return { header, bytes: buf.subarray(8 + n + b, 8 + n + e), bufferStart: 8 + n };
}

/** Builds a file by hand from a header (object or raw string) and a data buffer. */
function handMade(header: unknown, data: Uint8Array = new Uint8Array(0), headerLen?: bigint): string {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(headerLen ?? BigInt(json.length));
  const f = tmpFile();
  fs.writeFileSync(f, Buffer.concat([len, json, Buffer.from(data)]));
  return f;
}

function expectError(fn: () => unknown, code: string, message: RegExp): void {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(SafetensorsError);
  expect((caught as SafetensorsError).code).toBe(code);
  expect((caught as Error).message).toMatch(message);
}

describe('round trip', () => {
  test('F32, I32 and BOOL tensors of any rank come back bit-exact, with metadata', () => {
    const before = tf.memory().numTensors;
    const f32 = new Float32Array([0, -0, 1.5, -3.25e-7, 1e-45, 3.4028234e38, Infinity, -Infinity, NaN, Math.PI, 1 / 3, -1e20]);
    const rand = Float32Array.from({ length: 2 * 3 * 5 * 7 }, (_, i) => Math.sin(i * 12.9898) * 43758.5453);
    const i32 = new Int32Array([0, 1, -1, 2147483647, -2147483648, 123456, -7]);
    const tensors = {
      special: tf.tensor1d(f32),
      'block.0.weight': tf.tensor4d(rand, [2, 3, 5, 7]),
      ids: tf.tensor2d(i32.slice(0, 6), [2, 3], 'int32'),
      idsOdd: tf.tensor1d(i32, 'int32'),
      mask: tf.tensor2d([true, false, false, true, true, false], [3, 2], 'bool'),
      scalar: tf.scalar(-2.5),
      empty: tf.zeros([0, 4]),
    };
    const f = tmpFile();
    const metadata = { format: 'pt', note: 'üñí ✓ "quoted" \\ back' };
    saveSafetensors(f, tensors, { metadata });

    const loaded = loadSafetensors(f);
    expect(loaded.metadata).toEqual(metadata);
    expect([...loaded.tensors.keys()].sort()).toEqual(Object.keys(tensors).sort());
    for (const [name, t] of Object.entries(tensors)) {
      const back = loaded.tensors.get(name)!;
      expect(back.shape).toEqual(t.shape);
      expect(back.dtype).toBe(t.dtype);
      if (t.dtype === 'float32') expect(bits(back.dataSync())).toEqual(bits(t.dataSync()));
      else expect(Array.from(back.dataSync())).toEqual(Array.from(t.dataSync()));
    }
    for (const t of [...Object.values(tensors), ...loaded.tensors.values()]) t.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  test('header layout: metadata first, keys by element size then name, 8-byte aligned, contiguous', () => {
    const t = {
      b: tf.zeros([3]),
      a: tf.zeros([5]),
      m: tf.tensor1d([true, false, true], 'bool'),
      c: tf.zeros([2], 'int32'),
      z: tf.zeros([1, 1]),
    };
    const f = tmpFile();
    saveSafetensors(f, new Map(Object.entries(t)), { metadata: { k: 'v' } });
    const buf = fs.readFileSync(f);
    const n = Number(buf.readBigUInt64LE(0));
    expect((8 + n) % 8).toBe(0);
    const text = buf.subarray(8, 8 + n).toString('utf8');
    expect(text).toMatch(/^\{.*\} *$/);
    const header = JSON.parse(text);
    expect(Object.keys(header)).toEqual(['__metadata__', 'a', 'b', 'c', 'z', 'm']);
    let off = 0;
    for (const k of ['a', 'b', 'c', 'z', 'm']) {
      expect(header[k].data_offsets[0]).toBe(off);
      off = header[k].data_offsets[1];
    }
    expect(buf.length).toBe(8 + n + off);
    expect(header.m).toEqual({ dtype: 'BOOL', shape: [3], data_offsets: [44, 47] });
    expect(readSafetensorsHeader(f).tensors.get('c')).toEqual({ dtype: 'I32', shape: [2], dataOffsets: [32, 40] });
    Object.values(t).forEach((x) => x.dispose());
  });

  test('F16 and BF16 storage of exactly representable values is lossless', () => {
    const r = SafetensorsReader.open(path.join(FIXTURES, 'dtypes.safetensors'));
    const halfExact = r.read('f16_as_f32');
    const bfExact = r.read('bf16_as_f32');
    r.close();
    for (const [dtype, t] of [['F16', halfExact], ['BF16', bfExact]] as const) {
      const f = tmpFile();
      saveSafetensors(f, { x: t }, { dtype });
      const reader = SafetensorsReader.open(f);
      expect(reader.info('x')).toEqual({ dtype, shape: t.shape, dataOffsets: [0, t.size * 2] });
      const back = reader.read('x');
      reader.close();
      expect(back.dtype).toBe('float32');
      expect(bits(back.dataSync())).toEqual(bits(t.dataSync()));
      back.dispose();
    }
    halfExact.dispose();
    bfExact.dispose();
  });

  test('F16 writing matches numpy astype(float16) bit for bit (fixture written by numpy)', () => {
    const fixture = path.join(FIXTURES, 'dtypes.safetensors');
    const r = SafetensorsReader.open(fixture);
    const src = r.read('f16_src');
    r.close();
    const f = tmpFile();
    saveSafetensors(f, { f16: src }, { dtype: 'F16' });
    expect(rawTensorBytes(f, 'f16').bytes.equals(rawTensorBytes(fixture, 'f16').bytes)).toBe(true);
    src.dispose();
  });

  test('saving replaces the file atomically; a failure mid-write leaves the old file and no temp file', () => {
    const f = tmpFile();
    const a = tf.tensor1d([1, 2, 3]);
    saveSafetensors(f, { a });
    const original = fs.readFileSync(f);

    const b = tf.tensor1d([4, 5]);
    const c = tf.tensor1d([6, 7]);
    const spy = jest.spyOn(c, 'dataSync').mockImplementation(() => {
      throw new Error('disk on fire');
    });
    expectError(() => saveSafetensors(f, { b, c }), 'IO', /disk on fire/);
    spy.mockRestore();
    expect(fs.readFileSync(f).equals(original)).toBe(true);
    expect(fs.readdirSync(dir).filter((n) => n.endsWith('.tmp'))).toEqual([]);

    saveSafetensors(f, { b, c });
    const loaded = loadSafetensors(f);
    expect([...loaded.tensors.keys()]).toEqual(['b', 'c']);
    expect(Array.from(loaded.tensors.get('c')!.dataSync())).toEqual([6, 7]);
    for (const t of [a, b, c, ...loaded.tensors.values()]) t.dispose();
  });

  test('write rejects what it cannot store', () => {
    const s = tf.tensor1d(['x'], 'string');
    expectError(() => saveSafetensors(tmpFile(), { s }), 'UNSUPPORTED', /dtype string/);
    s.dispose();
    const d = tf.zeros([2]);
    d.dispose();
    expectError(() => saveSafetensors(tmpFile(), { d }), 'UNSUPPORTED', /disposed/);
    const t = tf.zeros([2]);
    expectError(() => saveSafetensors(tmpFile(), { t }, { metadata: { n: 3 as unknown as string } }), 'BAD_METADATA', /metadata\["n"\]/);
    expectError(() => saveSafetensors(tmpFile(), { t }, { dtype: 'F8' as 'F16' }), 'UNSUPPORTED', /options.dtype/);
    t.dispose();
  });
});

describe('reading', () => {
  test('every dtype of a numpy-written file decodes to numpy\'s own conversion', () => {
    const r = SafetensorsReader.open(path.join(FIXTURES, 'dtypes.safetensors'));
    expect(r.metadata).toEqual({ format: 'pt', note: 'üñí ✓' });
    const pairs: Array<[string, string, 'float32' | 'int32']> = [
      ['f16', 'f16_as_f32', 'float32'],
      ['bf16', 'bf16_as_f32', 'float32'],
      ['f64', 'f64_as_f32', 'float32'],
      ['i64', 'i64_as_i32', 'int32'],
    ];
    for (const [name, ref, dtype] of pairs) {
      expect(r.info(name).dtype).toBe(name.toUpperCase());
      const a = r.read(name);
      const b = r.read(ref);
      expect(a.dtype).toBe(dtype);
      expect(a.shape).toEqual(b.shape);
      if (dtype === 'float32') expect(bits(a.dataSync())).toEqual(bits(b.dataSync()));
      else expect(Array.from(a.dataSync())).toEqual(Array.from(b.dataSync()));
      a.dispose();
      b.dispose();
    }
    const u8 = r.read('u8');
    expect(u8.dtype).toBe('int32');
    expect(Array.from(u8.dataSync())).toEqual(Array.from({ length: 256 }, (_, i) => i));
    const b = r.read('bool');
    expect(b.dtype).toBe('bool');
    expect(b.shape).toEqual([2, 3]);
    expect(Array.from(b.dataSync())).toEqual([1, 0, 1, 0, 0, 1]);
    const s = r.read('scalar');
    expect(s.shape).toEqual([]);
    expect(s.dataSync()[0]).toBe(2.5);
    const e = r.read('empty');
    expect(e.shape).toEqual([0, 3]);
    [u8, b, s, e].forEach((t) => t.dispose());
    r.close();
  });

  test('reads an upstream parity file (VAE io) with values matching an independent reader', () => {
    const { tensors, metadata } = loadSafetensors(path.join(FIXTURES, 'vae-io.safetensors'));
    expect(metadata.layout).toMatch(/PyTorch NCHW/);
    // [shape, sum, first, last] computed with numpy from the same bytes
    const expected: Record<string, [number[], number, number, number]> = {
      image: [[1, 3, 32, 32], 27.323438610546873, 0.6923859715461731, -0.8991843461990356],
      posterior_mean: [[1, 4, 16, 16], -85.0137425204739, 0.13837215304374695, -0.0632268637418747],
      posterior_logvar: [[1, 4, 16, 16], 100.61532040219754, 0.704474151134491, 0.27968913316726685],
      latents: [[1, 4, 16, 16], -27.44759303983301, 0.37040257453918457, 0.7381609082221985],
      decoded: [[1, 3, 32, 32], 484.3170888926834, -0.10612285137176514, 0.35878700017929077],
    };
    expect([...tensors.keys()]).toEqual(Object.keys(expected));
    for (const [name, [shape, sum, first, last]] of Object.entries(expected)) {
      const t = tensors.get(name)!;
      expect(t.shape).toEqual(shape);
      const d = t.dataSync();
      expect(d[0]).toBe(first);
      expect(d[d.length - 1]).toBe(last);
      expect(Array.from(d).reduce((a, b) => a + b, 0)).toBeCloseTo(sum, 6);
      t.dispose();
    }
  });

  test('the reader reads tensor data from disk only when asked', () => {
    const f = tmpFile();
    const a = tf.tensor1d([1, 2]);
    const b = tf.tensor1d([3, 4]);
    saveSafetensors(f, { a, b });
    const r = SafetensorsReader.open(f);
    // rewrite b's bytes in place after open: a lazy reader must see the new values
    const { header, bufferStart } = rawTensorBytes(f, 'b');
    const fd = fs.openSync(f, 'r+');
    fs.writeSync(fd, Buffer.from(new Float32Array([30, 40]).buffer), 0, 8, bufferStart + header.b.data_offsets[0]);
    fs.closeSync(fd);
    const bb = r.read('b');
    expect(Array.from(bb.dataSync())).toEqual([30, 40]);
    expect(r.readBytes('a').length).toBe(8);
    r.close();
    r.close(); // idempotent
    expectError(() => r.read('a'), 'CLOSED', /closed/);
    [a, b, bb].forEach((t) => t.dispose());
  });
});

describe('F16 / BF16 conversion', () => {
  test('every float16 value survives decode → encode, and decode is exact', () => {
    const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
    const f = float16ToFloat32(all);
    const again = float32ToFloat16(f);
    for (let h = 0; h < 65536; h++) {
      const isNaN16 = (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
      if (isNaN16) {
        expect(Number.isNaN(f[h])).toBe(true);
        expect((again[h] & 0x7c00) === 0x7c00 && (again[h] & 0x3ff) !== 0).toBe(true);
      } else if (again[h] !== h) {
        throw new Error(`half 0x${h.toString(16)} → ${f[h]} → 0x${again[h].toString(16)}`);
      }
    }
    // decode against the textbook formula
    expect(f[0x3c00]).toBe(1);
    expect(f[0xc000]).toBe(-2);
    expect(f[0x7bff]).toBe(65504);
    expect(f[0x0001]).toBe(2 ** -24);
    expect(f[0x03ff]).toBe(1023 * 2 ** -24);
    expect(f[0x0400]).toBe(2 ** -14);
    expect(f[0x7c00]).toBe(Infinity);
    expect(f[0xfc00]).toBe(-Infinity);
    expect(Object.is(f[0x8000], -0)).toBe(true);
  });

  test('float16 encoding rounds every midpoint to even and everything else to nearest', () => {
    const f = float16ToFloat32(Uint16Array.from({ length: 0x7c00 }, (_, i) => i));
    const mids: number[] = [];
    const want: number[] = [];
    const below: number[] = [];
    const above: number[] = [];
    for (let h = 0; h < 0x7bff; h++) {
      const mid = (f[h] + f[h + 1]) / 2; // exact in float32: 12 significant bits
      mids.push(mid, -mid);
      want.push(h & 1 ? h + 1 : h, (h & 1 ? h + 1 : h) | 0x8000);
      below.push(h, h | 0x8000);
      above.push(h + 1, (h + 1) | 0x8000);
    }
    const m32 = Float32Array.from(mids);
    expect(Array.from(float32ToFloat16(m32))).toEqual(want);
    // one float32 ulp either side of a midpoint breaks the tie
    const down = new Float32Array(m32.length);
    const up = new Float32Array(m32.length);
    const mb = new Uint32Array(m32.buffer);
    const db = new Uint32Array(down.buffer);
    const ub = new Uint32Array(up.buffer);
    for (let i = 0; i < m32.length; i++) {
      db[i] = mb[i] - 1; // magnitude one ulp smaller (same sign)
      ub[i] = mb[i] + 1;
    }
    expect(Array.from(float32ToFloat16(down))).toEqual(below);
    expect(Array.from(float32ToFloat16(up))).toEqual(above);
  });

  test('float16 encoding of overflow, underflow, inf and NaN', () => {
    const enc = (x: number) => float32ToFloat16(new Float32Array([x]))[0];
    expect(enc(65504)).toBe(0x7bff);
    expect(enc(65519.99)).toBe(0x7bff);
    expect(enc(65520)).toBe(0x7c00); // the tie above the largest half rounds to even = inf
    expect(enc(1e10)).toBe(0x7c00);
    expect(enc(-1e10)).toBe(0xfc00);
    expect(enc(Infinity)).toBe(0x7c00);
    expect(enc(-Infinity)).toBe(0xfc00);
    expect(enc(2 ** -25)).toBe(0); // tie between 0 and the smallest subnormal → 0
    expect(enc(2 ** -25 * 1.001)).toBe(1);
    expect(enc(-(2 ** -26))).toBe(0x8000);
    expect(enc(1e-30)).toBe(0);
    expect(enc(2 ** -14 - 2 ** -25)).toBe(0x0400); // rounds up from the subnormal range into the first normal
    const nan = enc(NaN);
    expect(nan & 0x7c00).toBe(0x7c00);
    expect(nan & 0x3ff).not.toBe(0);
  });

  test('bfloat16 decode is exact and encode rounds to nearest even', () => {
    const hs = Uint16Array.from({ length: 0x7f7f }, (_, i) => i); // positive finite, excluding the largest
    const f = bfloat16ToFloat32(hs);
    expect(f[0x3f80]).toBe(1);
    expect(f[0x4049]).toBeCloseTo(3.140625, 6);
    expect(Array.from(float32ToBfloat16(f))).toEqual(Array.from(hs));
    const mid = new Float32Array(hs.length);
    for (let h = 0; h + 1 < hs.length; h++) mid[h] = (f[h] + f[h + 1]) / 2;
    const enc = float32ToBfloat16(mid);
    for (let h = 0; h + 1 < hs.length; h++) {
      if (enc[h] !== (h & 1 ? h + 1 : h)) throw new Error(`bf16 midpoint after 0x${h.toString(16)} → 0x${enc[h].toString(16)}`);
    }
    const special = float32ToBfloat16(new Float32Array([Infinity, -Infinity, NaN, 3.4028234e38, -0]));
    expect(special[0]).toBe(0x7f80);
    expect(special[1]).toBe(0xff80);
    expect(Number.isNaN(bfloat16ToFloat32(special.subarray(2, 3))[0])).toBe(true);
    expect(special[3]).toBe(0x7f80); // float32 max is above bf16 max's rounding boundary
    expect(special[4]).toBe(0x8000);
  });
});

describe('malformed files are rejected with a clear error', () => {
  const f32 = (n: number) => new Uint8Array(new Float32Array(n).buffer);
  const ok = { dtype: 'F32', shape: [2], data_offsets: [0, 8] };
  const cases: Array<[string, () => string, string, RegExp]> = [
    ['shorter than 8 bytes', () => { const f = tmpFile(); fs.writeFileSync(f, Buffer.from([1, 2, 3])); return f; }, 'TRUNCATED', /too short/],
    ['header length beyond the file', () => handMade({ a: ok }, f32(2), 10_000n), 'TRUNCATED', /exceeds the file size/],
    ['header length > 100 MB', () => handMade({ a: ok }, f32(2), 1n << 62n), 'HEADER_TOO_LARGE', /exceeds the 100000000-byte limit/],
    ['header not JSON', () => handMade('{"a": {"dtype": "F32", ', f32(2)), 'HEADER_NOT_JSON', /not valid UTF-8 JSON/],
    ['header not UTF-8', () => handMade(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]).toString('latin1'), f32(2)), 'HEADER_NOT_JSON', /UTF-8/],
    ['header is an array', () => handMade([ok], f32(2)), 'HEADER_NOT_OBJECT', /must be a JSON object, got an array/],
    ['entry is not an object', () => handMade({ a: 5 }, f32(2)), 'HEADER_NOT_OBJECT', /entry "a"/],
    ['entry without data_offsets', () => handMade({ a: { dtype: 'F32', shape: [2] } }, f32(2)), 'BAD_ENTRY', /"a" has no data_offsets/],
    ['entry without dtype', () => handMade({ a: { shape: [2], data_offsets: [0, 8] } }, f32(2)), 'BAD_ENTRY', /"a" has no dtype/],
    ['unknown dtype', () => handMade({ a: { ...ok, dtype: 'F8_E4M3' } }, f32(2)), 'UNKNOWN_DTYPE', /unsupported dtype "F8_E4M3"/],
    ['negative dimension', () => handMade({ a: { ...ok, shape: [-2] } }, f32(2)), 'BAD_SHAPE', /invalid shape \[-2\]/],
    ['fractional dimension', () => handMade({ a: { ...ok, shape: [1.5, 2] } }, f32(2)), 'BAD_SHAPE', /invalid shape/],
    ['shape not an array', () => handMade({ a: { ...ok, shape: '2' } }, f32(2)), 'BAD_SHAPE', /invalid shape/],
    ['end before begin', () => handMade({ a: { ...ok, data_offsets: [8, 0] } }, f32(2)), 'BAD_OFFSETS', /end 0 < begin 8/],
    ['negative offset', () => handMade({ a: { ...ok, data_offsets: [-8, 0] } }, f32(2)), 'BAD_OFFSETS', /invalid data_offsets/],
    ['three offsets', () => handMade({ a: { ...ok, data_offsets: [0, 4, 8] } }, f32(2)), 'BAD_OFFSETS', /invalid data_offsets/],
    ['offsets past the buffer', () => handMade({ a: ok, b: { ...ok, data_offsets: [4000, 4008] } }, f32(2)), 'OUT_OF_RANGE', /"b" data_offsets \[4000, 4008\] reach past the 8-byte/],
    ['byte length != shape × dtype size', () => handMade({ a: { ...ok, shape: [3] } }, f32(2)), 'SIZE_MISMATCH', /needs 12 bytes but data_offsets span 8/],
    ['I64 byte length mismatch', () => handMade({ a: { dtype: 'I64', shape: [2], data_offsets: [0, 8] } }, f32(2)), 'SIZE_MISMATCH', /needs 16 bytes/],
    ['overlapping tensors', () => handMade({ a: ok, b: { ...ok, data_offsets: [4, 12] } }, f32(3)), 'OVERLAP', /"a" and "b" overlap/],
    ['metadata with a number', () => handMade({ __metadata__: { step: 3 }, a: ok }, f32(2)), 'BAD_METADATA', /__metadata__\["step"\] must be a string, got number/],
    ['metadata not an object', () => handMade({ __metadata__: ['x'], a: ok }, f32(2)), 'BAD_METADATA', /__metadata__ must be an object/],
    [
      'valid file cut short',
      () => {
        const f = tmpFile();
        const a = tf.zeros([64]);
        const b = tf.zeros([64]);
        saveSafetensors(f, { a, b });
        a.dispose();
        b.dispose();
        fs.truncateSync(f, fs.statSync(f).size - 100);
        return f;
      },
      'TRUNCATED',
      /file truncated: tensor "b" needs bytes up to 512 .* only 412/,
    ],
    ['missing file', () => path.join(dir, 'nope.safetensors'), 'IO', /cannot open/],
  ];

  test.each(cases)('%s', (_label, make, code, message) => {
    const f = make();
    expectError(() => SafetensorsReader.open(f), code, message);
    expectError(() => loadSafetensors(f), code, message);
    expect(() => SafetensorsReader.open(f)).toThrow(path.basename(f)) // messages name the file;
  });

  test('failed opens do not leak file descriptors', () => {
    if (!fs.existsSync('/proc/self/fd')) return;
    const f = handMade({ a: { ...ok, shape: [3] } }, f32(2));
    const before = fs.readdirSync('/proc/self/fd').length;
    for (let i = 0; i < 50; i++) expect(() => SafetensorsReader.open(f)).toThrow(SafetensorsError);
    expect(fs.readdirSync('/proc/self/fd').length).toBe(before);
  });

  test('I64 values outside int32 are refused on read; unknown names and closed readers too', () => {
    const vals = new BigInt64Array([1n, -(2n ** 31n), 2n ** 31n]);
    const g = handMade({ big: { dtype: 'I64', shape: [3], data_offsets: [0, 24] } }, new Uint8Array(vals.buffer));
    const r = SafetensorsReader.open(g);
    expectError(() => r.read('big'), 'INT_RANGE', /I64 value 2147483648 at index 2/);
    expectError(() => r.read('missing'), 'NOT_FOUND', /no tensor named "missing"/);
    expectError(() => r.info('missing'), 'NOT_FOUND', /missing/);
    r.close();
    expectError(() => r.readBytes('big'), 'CLOSED', /closed/);
  });

  test('empty tensors may share an offset; gaps and trailing bytes are tolerated', () => {
    const data = new Uint8Array(new Float32Array([1, 2, 0, 7, 8]).buffer);
    const f = handMade({ e1: { dtype: 'F32', shape: [0], data_offsets: [8, 8] }, e2: { dtype: 'F32', shape: [2, 0], data_offsets: [8, 8] }, a: ok, b: { ...ok, data_offsets: [12, 20] } }, data);
    const { tensors } = loadSafetensors(f);
    expect(Array.from(tensors.get('a')!.dataSync())).toEqual([1, 2]);
    expect(Array.from(tensors.get('b')!.dataSync())).toEqual([7, 8]);
    expect(tensors.get('e2')!.shape).toEqual([2, 0]);
    for (const t of tensors.values()) t.dispose();
  });
});
