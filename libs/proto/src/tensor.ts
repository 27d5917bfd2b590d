/**
 * tf.Tensor <-> museum.v1.Tensor. Bytes on the wire are always little-endian; shapes and byte
 * lengths are checked on the way in, because a tensor that arrives over gRPC is untrusted input.
 */
import { tf } from '@museum/tensor';
import { DType, Tensor } from './gen/museum/v1/tensor';
import { float32ArrayToHalf, halfArrayToFloat32 } from './half';

/** Highest rank accepted from the wire (NHWC images are rank 4; attention maps rank 5 at most). */
export const MAX_RANK = 8;
/** Most elements accepted in one tensor (typed-array and tf.js limits). */
export const MAX_ELEMENTS = 2 ** 31 - 1;

const HOST_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** Bytes per element of a wire dtype; throws for UNSPECIFIED and unknown values. */
export function dtypeItemSize(dtype: DType): number {
  switch (dtype) {
    case DType.DTYPE_FLOAT32:
    case DType.DTYPE_INT32:
      return 4;
    case DType.DTYPE_FLOAT16:
      return 2;
    case DType.DTYPE_UINT8:
    case DType.DTYPE_BOOL:
      return 1;
    default:
      throw new Error(`tensor dtype ${dtypeName(dtype)} is not supported (expected FLOAT32, FLOAT16, INT32, UINT8 or BOOL)`);
  }
}

function dtypeName(dtype: DType): string {
  return DType[dtype] ?? `DType(${dtype})`;
}

type Typed = Float32Array | Int32Array | Uint16Array | Uint8Array;

/**
 * Little-endian bytes of a typed array as a Buffer (ts-proto's `bytes` type with env=node):
 * a fresh copy, never a view of tf.js memory.
 */
function toLeBytes(arr: Typed): Buffer {
  const src = new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength);
  const n = arr.BYTES_PER_ELEMENT;
  return Buffer.from(n === 1 || HOST_LITTLE_ENDIAN ? src : swapped(src, n));
}

function swapped(src: Uint8Array, n: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(src.length);
  for (let i = 0; i < src.length; i += n) for (let j = 0; j < n; j++) out[i + j] = src[i + n - 1 - j];
  return out;
}

/**
 * Copy little-endian bytes into a fresh, aligned buffer in host order: wire bytes may sit at any
 * offset of a shared buffer (decoded protobuf bytes are often a Node Buffer, whose slice() is a view).
 */
function fromLeBytes(data: Uint8Array, itemSize: number): ArrayBuffer {
  if (itemSize > 1 && !HOST_LITTLE_ENDIAN) return swapped(data, itemSize).buffer;
  const out = new Uint8Array(data.length);
  out.set(data);
  return out.buffer;
}

export interface TensorToProtoOptions {
  /**
   * Wire dtype. Default: FLOAT32 for float32 tensors, INT32 for int32, BOOL for bool.
   * FLOAT16 is allowed for float32 tensors (halves the bytes, ~3 significant digits);
   * UINT8 for int32 tensors whose values are all in 0..255 (pixels).
   */
  dtype?: DType;
}

/** Serialise a tf.Tensor (reads its data synchronously; the tensor is not disposed). */
export function tensorToProto(t: tf.Tensor, options: TensorToProtoOptions = {}): Tensor {
  if (t.isDisposed) throw new Error('tensorToProto: the tensor is disposed');
  const shape = t.shape.slice();
  switch (t.dtype) {
    case 'float32': {
      const dtype = options.dtype ?? DType.DTYPE_FLOAT32;
      const values = t.dataSync() as Float32Array;
      if (dtype === DType.DTYPE_FLOAT32) return { dtype, shape, data: toLeBytes(values) };
      if (dtype === DType.DTYPE_FLOAT16) return { dtype, shape, data: toLeBytes(float32ArrayToHalf(values)) };
      break;
    }
    case 'int32': {
      const dtype = options.dtype ?? DType.DTYPE_INT32;
      const values = t.dataSync() as Int32Array;
      if (dtype === DType.DTYPE_INT32) return { dtype, shape, data: toLeBytes(values) };
      if (dtype === DType.DTYPE_UINT8) {
        const bytes = Buffer.alloc(values.length);
        for (let i = 0; i < values.length; i++) {
          const v = values[i];
          if (v < 0 || v > 255) throw new Error(`tensorToProto: value ${v} at flat index ${i} does not fit DTYPE_UINT8 (0..255)`);
          bytes[i] = v;
        }
        return { dtype, shape, data: bytes };
      }
      break;
    }
    case 'bool': {
      const dtype = options.dtype ?? DType.DTYPE_BOOL;
      if (dtype === DType.DTYPE_BOOL) return { dtype, shape, data: toLeBytes(t.dataSync() as Uint8Array) };
      break;
    }
    default:
      throw new Error(`tensorToProto: tf dtype '${t.dtype}' has no wire form (float32, int32 and bool do)`);
  }
  throw new Error(`tensorToProto: a ${t.dtype} tensor cannot be sent as ${dtypeName(options.dtype!)}`);
}

/** Validate a wire shape and return its element count. */
export function checkShape(shape: readonly number[]): number {
  if (!Array.isArray(shape)) throw new Error('tensor shape is missing');
  if (shape.length > MAX_RANK) throw new Error(`tensor shape has rank ${shape.length}, more than the maximum ${MAX_RANK}`);
  let count = 1;
  shape.forEach((d, i) => {
    if (!Number.isSafeInteger(d) || d < 0) throw new Error(`tensor shape [${shape.join(', ')}] has an invalid dimension ${d} at index ${i}`);
    count *= d;
  });
  if (count > MAX_ELEMENTS) throw new Error(`tensor shape [${shape.join(', ')}] has ${count} elements, more than the maximum ${MAX_ELEMENTS}`);
  return count;
}

/**
 * Deserialise a wire tensor into a new tf.Tensor. FLOAT16 is widened to float32, UINT8 becomes
 * int32 (tf.js has no uint8 dtype). Throws, naming the problem, when the dtype is unknown, the shape
 * is invalid or the byte length does not equal product(shape) * itemsize.
 */
export function tensorFromProto(msg: { dtype: DType; shape: readonly number[]; data: Uint8Array }): tf.Tensor {
  const itemSize = dtypeItemSize(msg.dtype);
  const count = checkShape(msg.shape);
  const data = msg.data ?? new Uint8Array(0);
  if (!(data instanceof Uint8Array)) throw new Error('tensor data must be bytes (Uint8Array)');
  const want = count * itemSize;
  if (data.length !== want) {
    throw new Error(
      `tensor data has ${data.length} bytes but shape [${msg.shape.join(', ')}] of ${dtypeName(msg.dtype)} ` +
        `needs ${want} (${count} elements x ${itemSize} bytes)`,
    );
  }
  const shape = msg.shape.slice();
  switch (msg.dtype) {
    case DType.DTYPE_FLOAT32:
      return tf.tensor(new Float32Array(fromLeBytes(data, 4)), shape, 'float32');
    case DType.DTYPE_FLOAT16:
      return tf.tensor(halfArrayToFloat32(new Uint16Array(fromLeBytes(data, 2))), shape, 'float32');
    case DType.DTYPE_INT32:
      return tf.tensor(new Int32Array(fromLeBytes(data, 4)), shape, 'int32');
    case DType.DTYPE_UINT8:
      return tf.tensor(Int32Array.from(data), shape, 'int32');
    case DType.DTYPE_BOOL:
      return tf.tensor(Uint8Array.from(data, (v) => (v !== 0 ? 1 : 0)), shape, 'bool');
    default:
      throw new Error(`tensor dtype ${dtypeName(msg.dtype)} is not supported`);
  }
}
