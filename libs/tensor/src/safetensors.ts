/**
 * Safetensors files (https://github.com/huggingface/safetensors), read and written from disk without holding
 * a whole model twice: the reader keeps a file descriptor and reads one tensor at a time at its offset; the
 * writer streams one tensor at a time into a temp file that is renamed over the target when complete.
 *
 * Layout: u64 little-endian header length N, N bytes of UTF-8 JSON
 * `{ name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {key: string} }` (space-padded),
 * then the data buffer; offsets are relative to the buffer start, data is little-endian and row-major.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';

export type SafetensorsDtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'U8' | 'BOOL';

/** Bytes per element of every dtype this module understands. */
export const SAFETENSORS_DTYPE_SIZE: Readonly<Record<SafetensorsDtype, number>> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  U8: 1,
  BOOL: 1,
};

/** Header larger than this is refused before it is allocated (upstream uses the same 100 MB cap). */
export const SAFETENSORS_MAX_HEADER_BYTES = 100_000_000;

export type SafetensorsErrorCode =
  | 'IO' // the file could not be opened / read / written
  | 'TRUNCATED' // the file ends before the header or a tensor's data
  | 'HEADER_TOO_LARGE' // header length > 100 MB
  | 'HEADER_NOT_JSON' // header is not valid UTF-8 JSON
  | 'HEADER_NOT_OBJECT' // header JSON (or an entry) is not an object
  | 'BAD_ENTRY' // an entry lacks dtype / shape / data_offsets
  | 'UNKNOWN_DTYPE'
  | 'BAD_SHAPE' // shape not an array of non-negative integers
  | 'BAD_OFFSETS' // data_offsets not two non-negative integers, or end < begin
  | 'OUT_OF_RANGE' // data_offsets reach past the end of the data buffer
  | 'SIZE_MISMATCH' // end - begin != product(shape) * dtype size
  | 'OVERLAP' // two tensors share bytes
  | 'BAD_METADATA' // __metadata__ is not an object of strings
  | 'NOT_FOUND' // read/info of a name that is not in the file
  | 'CLOSED' // reader used after close()
  | 'INT_RANGE' // an I64 value does not fit in int32
  | 'UNSUPPORTED'; // a tensor dtype / option that cannot be written

export class SafetensorsError extends Error {
  constructor(
    readonly code: SafetensorsErrorCode,
    message: string,
    readonly file?: string,
  ) {
    super(file ? `${file}: ${message}` : message);
    this.name = 'SafetensorsError';
  }
}

export interface SafetensorsTensorInfo {
  dtype: SafetensorsDtype;
  shape: number[];
  /** [begin, end) relative to the start of the data buffer. */
  dataOffsets: [number, number];
}

export interface SafetensorsHeader {
  metadata: Record<string, string>;
  /** Tensor entries in data-offset order. */
  tensors: Map<string, SafetensorsTensorInfo>;
  /** Absolute file offset of the data buffer (8 + header length). */
  bufferStart: number;
  /** Bytes in the data buffer (file size - bufferStart). */
  bufferLength: number;
}

if (os.endianness() !== 'LE') {
  // Typed-array views below assume the host order matches the file order.
  throw new Error('@museum/tensor safetensors: big-endian hosts are not supported');
}

// ---------------------------------------------------------------------------------------------------------
// float16 / bfloat16 conversion

let f16Table: Float32Array | null = null;

/** All 65536 half-precision values as float32 (256 KB, built once): decoding becomes a table lookup. */
function halfTable(): Float32Array {
  if (f16Table) return f16Table;
  const bits = new Uint32Array(65536);
  const asFloat = new Float32Array(bits.buffer);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16;
    const exp = (h >>> 10) & 0x1f;
    const mant = h & 0x3ff;
    if (exp === 0) {
      // zero or subnormal: mant * 2^-24, exact in float32
      asFloat[h] = (sign ? -1 : 1) * mant * 2 ** -24;
    } else if (exp === 31) {
      bits[h] = (sign | 0x7f800000 | (mant << 13)) >>> 0; // inf, or NaN with its payload
    } else {
      bits[h] = (sign | ((exp + 112) << 23) | (mant << 13)) >>> 0;
    }
  }
  f16Table = asFloat;
  return asFloat;
}

/** float16 bit patterns → float32 values (exact). */
export function float16ToFloat32(half: Uint16Array): Float32Array {
  const table = halfTable();
  const out = new Float32Array(half.length);
  for (let i = 0; i < half.length; i++) out[i] = table[half[i]];
  return out;
}

/** One float32 bit pattern → float16 bits, round-to-nearest-even, with subnormals, ±inf and NaN. */
function f32BitsToF16(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 | (mant >>> 13) : 0);
  if (exp >= 143) return sign | 0x7c00; // |x| >= 65536: overflow to inf
  if (exp >= 113) {
    // normal half: keep 10 mantissa bits, round the 13 dropped ones to nearest even (a carry may reach inf)
    let q = ((exp - 112) << 10) | (mant >>> 13);
    const r = mant & 0x1fff;
    if (r > 0x1000 || (r === 0x1000 && q & 1)) q++;
    return sign | q;
  }
  if (exp < 102) return sign; // below half of the smallest subnormal (2^-25): signed zero
  // subnormal half: value / 2^-24 = sig24 >> shift
  const sig = mant | 0x800000;
  const shift = 126 - exp; // 14..24
  let q = sig >>> shift;
  const r = sig & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  if (r > half || (r === half && q & 1)) q++;
  return sign | q; // q may round up to 0x400, the smallest normal, which is the right bit pattern
}

/** float32 values → float16 bit patterns (round to nearest even). */
export function float32ToFloat16(values: Float32Array): Uint16Array {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = f32BitsToF16(bits[i]);
  return out;
}

/** bfloat16 bit patterns → float32 values (exact: bf16 is the top half of a float32). */
export function bfloat16ToFloat32(half: Uint16Array): Float32Array {
  const bits = new Uint32Array(half.length);
  for (let i = 0; i < half.length; i++) bits[i] = half[i] << 16;
  return new Float32Array(bits.buffer);
}

/** float32 values → bfloat16 bit patterns (round to nearest even; NaN stays NaN). */
export function float32ToBfloat16(values: Float32Array): Uint16Array {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const x = bits[i];
    if ((x & 0x7f800000) === 0x7f800000 && x & 0x7fffff) out[i] = (x >>> 16) | 0x40;
    else out[i] = (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// header parsing and validation

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isDtype(s: unknown): s is SafetensorsDtype {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(SAFETENSORS_DTYPE_SIZE, s);
}

/** Validate a parsed header against a data buffer of `bufferLength` bytes. */
function validateHeader(json: unknown, bufferLength: number, file?: string): Omit<SafetensorsHeader, 'bufferStart' | 'bufferLength'> {
  const fail = (code: SafetensorsErrorCode, msg: string): never => {
    throw new SafetensorsError(code, msg, file);
  };
  if (!isPlainObject(json)) return fail('HEADER_NOT_OBJECT', `header must be a JSON object, got ${Array.isArray(json) ? 'an array' : typeof json}`);

  const metadata: Record<string, string> = {};
  const entries: Array<[string, SafetensorsTensorInfo]> = [];
  for (const name of Object.keys(json)) {
    const raw = json[name];
    if (name === '__metadata__') {
      if (!isPlainObject(raw)) fail('BAD_METADATA', '__metadata__ must be an object of strings');
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== 'string') fail('BAD_METADATA', `__metadata__["${k}"] must be a string, got ${v === null ? 'null' : typeof v}`);
        // defineProperty: a key named __proto__ must stay data, not reach the prototype
        Object.defineProperty(metadata, k, { value: v, enumerable: true, writable: true, configurable: true });
      }
      continue;
    }
    if (!isPlainObject(raw)) fail('HEADER_NOT_OBJECT', `entry "${name}" must be an object`);
    const e = raw as Record<string, unknown>;
    for (const field of ['dtype', 'shape', 'data_offsets']) {
      if (!(field in e)) fail('BAD_ENTRY', `tensor "${name}" has no ${field}`);
    }
    if (!isDtype(e.dtype)) {
      return fail('UNKNOWN_DTYPE', `tensor "${name}" has unsupported dtype ${JSON.stringify(e.dtype)} (supported: ${Object.keys(SAFETENSORS_DTYPE_SIZE).join(', ')})`);
    }
    const shape = e.shape;
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      return fail('BAD_SHAPE', `tensor "${name}" has invalid shape ${JSON.stringify(shape)} (need non-negative integers)`);
    }
    const offs = e.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isSafeInteger(o) && o >= 0)) {
      return fail('BAD_OFFSETS', `tensor "${name}" has invalid data_offsets ${JSON.stringify(offs)} (need [begin, end], non-negative integers)`);
    }
    const [begin, end] = offs as [number, number];
    if (end < begin) fail('BAD_OFFSETS', `tensor "${name}" has data_offsets end ${end} < begin ${begin}`);
    let count = 1;
    for (const d of shape as number[]) count *= d;
    const want = count * SAFETENSORS_DTYPE_SIZE[e.dtype];
    if (end - begin !== want) {
      fail('SIZE_MISMATCH', `tensor "${name}" (${e.dtype} [${(shape as number[]).join(',')}]) needs ${want} bytes but data_offsets span ${end - begin}`);
    }
    entries.push([name, { dtype: e.dtype, shape: (shape as number[]).slice(), dataOffsets: [begin, end] }]);
  }

  entries.sort((a, b) => a[1].dataOffsets[0] - b[1].dataOffsets[0] || a[1].dataOffsets[1] - b[1].dataOffsets[1]);
  let prevEnd = 0;
  let prevName = '';
  let contiguous = true;
  for (const [name, info] of entries) {
    const [begin, end] = info.dataOffsets;
    if (begin === end) continue; // empty tensors occupy no bytes
    if (begin < prevEnd) fail('OVERLAP', `tensors "${prevName}" and "${name}" overlap in the data buffer`);
    if (begin !== prevEnd) contiguous = false;
    prevEnd = end;
    prevName = name;
  }
  // Past the buffer's end: a gap-free layout that simply stops early is a truncated file; anything else has bad offsets.
  for (const [name, info] of entries) {
    const [begin, end] = info.dataOffsets;
    if (end > bufferLength) {
      fail(
        contiguous ? 'TRUNCATED' : 'OUT_OF_RANGE',
        contiguous
          ? `file truncated: tensor "${name}" needs bytes up to ${end} of the data buffer but only ${bufferLength} are present`
          : `tensor "${name}" data_offsets [${begin}, ${end}] reach past the ${bufferLength}-byte data buffer`,
      );
    }
  }
  return { metadata, tensors: new Map(entries) };
}

function readFully(fd: number, buf: Uint8Array, position: number, file: string): void {
  let done = 0;
  while (done < buf.length) {
    const chunk = Math.min(buf.length - done, 1 << 30);
    let n: number;
    try {
      n = fs.readSync(fd, buf, done, chunk, position + done);
    } catch (err) {
      throw new SafetensorsError('IO', `read failed: ${(err as Error).message}`, file);
    }
    if (n === 0) throw new SafetensorsError('TRUNCATED', `unexpected end of file at byte ${position + done}`, file);
    done += n;
  }
}

function readHeaderFromFd(fd: number, file: string): SafetensorsHeader {
  const size = fs.fstatSync(fd).size;
  if (size < 8) throw new SafetensorsError('TRUNCATED', `file has ${size} bytes, too short for the 8-byte header length`, file);
  const lenBuf = new Uint8Array(8);
  readFully(fd, lenBuf, 0, file);
  const n64 = new DataView(lenBuf.buffer).getBigUint64(0, true);
  if (n64 > BigInt(SAFETENSORS_MAX_HEADER_BYTES)) {
    throw new SafetensorsError('HEADER_TOO_LARGE', `header length ${n64} exceeds the ${SAFETENSORS_MAX_HEADER_BYTES}-byte limit`, file);
  }
  const n = Number(n64);
  if (8 + n > size) throw new SafetensorsError('TRUNCATED', `header length ${n} exceeds the file size (${size} bytes)`, file);
  const headerBytes = new Uint8Array(n);
  readFully(fd, headerBytes, 8, file);
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(headerBytes));
  } catch (err) {
    throw new SafetensorsError('HEADER_NOT_JSON', `header is not valid UTF-8 JSON (${(err as Error).message})`, file);
  }
  const bufferStart = 8 + n;
  const bufferLength = size - bufferStart;
  return { ...validateHeader(json, bufferLength, file), bufferStart, bufferLength };
}

/** Read and validate only the header of a safetensors file. */
export function readSafetensorsHeader(file: string): SafetensorsHeader {
  const reader = SafetensorsReader.open(file);
  try {
    return { metadata: reader.metadata, tensors: new Map(reader.header.tensors), bufferStart: reader.header.bufferStart, bufferLength: reader.header.bufferLength };
  } finally {
    reader.close();
  }
}

// ---------------------------------------------------------------------------------------------------------
// reading

export type SafetensorsTypedArray = Float32Array | Int32Array | Uint8Array;

/**
 * An open safetensors file. The header is read and validated by `open`; tensor data is read from disk
 * only when `read(name)` asks for it. Call `close()` when done (reads after close throw).
 */
export class SafetensorsReader {
  private fd: number | null;

  private constructor(
    readonly path: string,
    fd: number,
    readonly header: SafetensorsHeader,
  ) {
    this.fd = fd;
  }

  static open(file: string): SafetensorsReader {
    let fd: number;
    try {
      fd = fs.openSync(file, 'r');
    } catch (err) {
      throw new SafetensorsError('IO', `cannot open: ${(err as Error).message}`, file);
    }
    try {
      return new SafetensorsReader(file, fd, readHeaderFromFd(fd, file));
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
  }

  get metadata(): Record<string, string> {
    return this.header.metadata;
  }

  /** Tensor names in data-offset order. */
  keys(): string[] {
    return [...this.header.tensors.keys()];
  }

  has(name: string): boolean {
    return this.header.tensors.has(name);
  }

  info(name: string): SafetensorsTensorInfo {
    const info = this.header.tensors.get(name);
    if (!info) throw new SafetensorsError('NOT_FOUND', `no tensor named "${name}"`, this.path);
    return { dtype: info.dtype, shape: info.shape.slice(), dataOffsets: [info.dataOffsets[0], info.dataOffsets[1]] };
  }

  /** The raw little-endian bytes of one tensor (a fresh, 8-byte-aligned buffer). */
  readBytes(name: string): Uint8Array {
    if (this.fd === null) throw new SafetensorsError('CLOSED', 'reader is closed', this.path);
    const info = this.info(name);
    const [begin, end] = info.dataOffsets;
    const bytes = new Uint8Array(end - begin);
    readFully(this.fd, bytes, this.header.bufferStart + begin, this.path);
    return bytes;
  }

  /**
   * One tensor's values as the typed array TF.js would hold: float32 for F64/F32/F16/BF16, int32 for
   * I64/I32/U8 (I64 values outside int32 throw INT_RANGE), and 0/1 bytes for BOOL.
   */
  readTypedArray(name: string): { dtype: 'float32' | 'int32' | 'bool'; shape: number[]; values: SafetensorsTypedArray } {
    const info = this.info(name);
    const bytes = this.readBytes(name);
    const buf = bytes.buffer;
    const count = info.shape.reduce((a, b) => a * b, 1);
    switch (info.dtype) {
      case 'F32':
        return { dtype: 'float32', shape: info.shape, values: new Float32Array(buf, 0, count) };
      case 'F64':
        return { dtype: 'float32', shape: info.shape, values: Float32Array.from(new Float64Array(buf, 0, count)) };
      case 'F16':
        return { dtype: 'float32', shape: info.shape, values: float16ToFloat32(new Uint16Array(buf, 0, count)) };
      case 'BF16':
        return { dtype: 'float32', shape: info.shape, values: bfloat16ToFloat32(new Uint16Array(buf, 0, count)) };
      case 'I32':
        return { dtype: 'int32', shape: info.shape, values: new Int32Array(buf, 0, count) };
      case 'I64': {
        const words = new Int32Array(buf, 0, count * 2);
        const out = new Int32Array(count);
        for (let i = 0; i < count; i++) {
          const lo = words[2 * i];
          if (words[2 * i + 1] !== lo >> 31) {
            const v = new BigInt64Array(buf, 8 * i, 1)[0];
            throw new SafetensorsError('INT_RANGE', `tensor "${name}" holds I64 value ${v} at index ${i}, outside the int32 range`, this.path);
          }
          out[i] = lo;
        }
        return { dtype: 'int32', shape: info.shape, values: out };
      }
      case 'U8':
        return { dtype: 'int32', shape: info.shape, values: Int32Array.from(bytes) };
      case 'BOOL': {
        for (let i = 0; i < count; i++) if (bytes[i] > 1) bytes[i] = 1;
        return { dtype: 'bool', shape: info.shape, values: bytes };
      }
    }
  }

  /** One tensor as a new tf.Tensor (the caller owns and disposes it). */
  read(name: string): tf.Tensor {
    const { dtype, shape, values } = this.readTypedArray(name);
    return tf.tensor(values, shape, dtype);
  }

  close(): void {
    if (this.fd === null) return;
    const fd = this.fd;
    this.fd = null;
    fs.closeSync(fd);
  }
}

/** Every tensor of a file (read one at a time) plus its metadata. */
export function loadSafetensors(file: string): { tensors: Map<string, tf.Tensor>; metadata: Record<string, string> } {
  const reader = SafetensorsReader.open(file);
  const tensors = new Map<string, tf.Tensor>();
  try {
    for (const name of reader.keys()) tensors.set(name, reader.read(name));
    return { tensors, metadata: { ...reader.metadata } };
  } catch (err) {
    for (const t of tensors.values()) t.dispose();
    throw err;
  } finally {
    reader.close();
  }
}

// ---------------------------------------------------------------------------------------------------------
// writing

export interface SaveSafetensorsOptions {
  metadata?: Record<string, string>;
  /** Storage type for float32 tensors (default F32). int32 tensors are stored as I32, bool as BOOL. */
  dtype?: 'F32' | 'F16' | 'BF16';
}

function storageDtype(t: tf.Tensor, name: string, floatAs: 'F32' | 'F16' | 'BF16'): SafetensorsDtype {
  switch (t.dtype) {
    case 'float32':
      return floatAs;
    case 'int32':
      return 'I32';
    case 'bool':
      return 'BOOL';
    default:
      throw new SafetensorsError('UNSUPPORTED', `tensor "${name}" has dtype ${t.dtype}, which safetensors files cannot hold here`);
  }
}

function encodeTensor(t: tf.Tensor, dtype: SafetensorsDtype): Uint8Array {
  const data = t.dataSync();
  let out: ArrayBufferView;
  switch (dtype) {
    case 'F32':
      out = data instanceof Float32Array ? data : Float32Array.from(data as ArrayLike<number>);
      break;
    case 'F16':
      out = float32ToFloat16(data instanceof Float32Array ? data : Float32Array.from(data as ArrayLike<number>));
      break;
    case 'BF16':
      out = float32ToBfloat16(data instanceof Float32Array ? data : Float32Array.from(data as ArrayLike<number>));
      break;
    case 'I32':
      out = data instanceof Int32Array ? data : Int32Array.from(data as ArrayLike<number>);
      break;
    case 'BOOL':
      out = Uint8Array.from(data as ArrayLike<number>, (v) => (v ? 1 : 0));
      break;
    default:
      throw new SafetensorsError('UNSUPPORTED', `cannot write dtype ${dtype}`);
  }
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

function writeFully(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.length) done += fs.writeSync(fd, bytes, done, Math.min(bytes.length - done, 1 << 30));
}

/**
 * Write tensors (and string metadata) to `file` atomically: data goes to a temp file in the same directory,
 * which is fsynced and renamed over `file`, so a crash mid-write leaves any previous file intact.
 * Tensors are laid out by element size (largest first) then name, so every tensor is aligned to its element
 * size; the header is space-padded so the data buffer starts on an 8-byte boundary.
 */
export function saveSafetensors(
  file: string,
  tensors: Map<string, tf.Tensor> | Record<string, tf.Tensor>,
  options: SaveSafetensorsOptions = {},
): void {
  const floatAs = options.dtype ?? 'F32';
  if (floatAs !== 'F32' && floatAs !== 'F16' && floatAs !== 'BF16') {
    throw new SafetensorsError('UNSUPPORTED', `options.dtype must be F32, F16 or BF16, got ${String(floatAs)}`, file);
  }
  const list = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
  const metadata = options.metadata;
  if (metadata !== undefined) {
    if (!isPlainObject(metadata)) throw new SafetensorsError('BAD_METADATA', 'metadata must be an object of strings', file);
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new SafetensorsError('BAD_METADATA', `metadata["${k}"] must be a string, got ${typeof v}`, file);
    }
  }

  const planned = list.map(([name, t]) => {
    if (name === '__metadata__') throw new SafetensorsError('UNSUPPORTED', 'a tensor cannot be named __metadata__', file);
    if (!(t instanceof tf.Tensor)) throw new SafetensorsError('UNSUPPORTED', `"${name}" is not a tf.Tensor`, file);
    if (t.isDisposed) throw new SafetensorsError('UNSUPPORTED', `tensor "${name}" is disposed`, file);
    const dtype = storageDtype(t, name, floatAs);
    return { name, t, dtype, bytes: t.size * SAFETENSORS_DTYPE_SIZE[dtype] };
  });
  planned.sort((a, b) => SAFETENSORS_DTYPE_SIZE[b.dtype] - SAFETENSORS_DTYPE_SIZE[a.dtype] || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));

  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  for (const p of planned) {
    header[p.name] = { dtype: p.dtype, shape: p.t.shape, data_offsets: [offset, offset + p.bytes] };
    offset += p.bytes;
  }
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const padded = Math.ceil((8 + json.length) / 8) * 8 - 8;
  const head = Buffer.alloc(8 + padded, 0x20);
  head.writeBigUInt64LE(BigInt(padded), 0);
  json.copy(head, 8);

  const dir = path.dirname(path.resolve(file));
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}.tmp`);
  let fd: number | null = null;
  try {
    fd = fs.openSync(tmp, 'wx');
    writeFully(fd, head);
    for (const p of planned) writeFully(fd, encodeTensor(p.t, p.dtype));
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = null;
    fs.renameSync(tmp, file);
  } catch (err) {
    if (fd !== null) fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    if (err instanceof SafetensorsError) throw err;
    throw new SafetensorsError('IO', `write failed: ${(err as Error).message}`, file);
  }
  // Persist the rename itself; not every platform lets a directory be opened, so this is best effort.
  try {
    const dfd = fs.openSync(dir, 'r');
    try {
      fs.fsyncSync(dfd);
    } finally {
      fs.closeSync(dfd);
    }
  } catch {
    /* best effort */
  }
}
