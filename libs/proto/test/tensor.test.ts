import { initBackend, tf } from '@museum/tensor';
import {
  DType,
  TensorProto,
  checkShape,
  float32ToHalfBits,
  halfBitsToFloat32,
  museum,
  tensorFromProto,
  tensorToProto,
} from '@museum/proto';

beforeAll(async () => {
  await initBackend({ log: () => {} });
});

/** Encode to protobuf bytes and back, as a gRPC hop would. */
function overTheWire(msg: TensorProto): TensorProto {
  const bytes = TensorProto.encode(msg).finish();
  // Decode from an odd offset inside a bigger buffer: the helper must not assume aligned bytes.
  const padded = new Uint8Array(bytes.length + 3);
  padded.set(bytes, 3);
  return TensorProto.decode(padded.subarray(3));
}

describe('tensorToProto / tensorFromProto', () => {
  test('float32 round trip is exact, little-endian, shape kept', () => {
    const values = [1, -2.5, 3.25e-7, 1e30, -0, 7, 8, 9, 10, 11, 12, 13];
    const t = tf.tensor(values, [1, 2, 3, 2]);
    const msg = tensorToProto(t);
    expect(msg.dtype).toBe(DType.DTYPE_FLOAT32);
    expect(msg.shape).toEqual([1, 2, 3, 2]);
    expect(msg.data.length).toBe(12 * 4);
    // 1.0f is 0x3f800000: little-endian bytes 00 00 80 3f.
    expect(Array.from(msg.data.subarray(0, 4))).toEqual([0x00, 0x00, 0x80, 0x3f]);
    const back = tensorFromProto(overTheWire(msg));
    expect(back.dtype).toBe('float32');
    expect(back.shape).toEqual([1, 2, 3, 2]);
    expect(Array.from(back.dataSync())).toEqual(Array.from(new Float32Array(values)));
    tf.dispose([t, back]);
  });

  test('int32 round trip, including negatives and extremes', () => {
    const values = [0, -1, 2147483647, -2147483648, 42, 7];
    const t = tf.tensor(values, [3, 2], 'int32');
    const msg = tensorToProto(t);
    expect(msg.dtype).toBe(DType.DTYPE_INT32);
    // -1 is ff ff ff ff; 2147483647 is ff ff ff 7f.
    expect(Array.from(msg.data.subarray(4, 12))).toEqual([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
    const back = tensorFromProto(overTheWire(msg));
    expect(back.dtype).toBe('int32');
    expect(Array.from(back.dataSync())).toEqual(values);
    tf.dispose([t, back]);
  });

  test('uint8 pixels: one byte each, decoded as int32; out-of-range values refused', () => {
    const t = tf.tensor([0, 17, 128, 255], [1, 2, 2, 1], 'int32');
    const msg = tensorToProto(t, { dtype: DType.DTYPE_UINT8 });
    expect(Array.from(msg.data)).toEqual([0, 17, 128, 255]);
    const back = tensorFromProto(overTheWire(msg));
    expect(back.dtype).toBe('int32');
    expect(back.shape).toEqual([1, 2, 2, 1]);
    expect(Array.from(back.dataSync())).toEqual([0, 17, 128, 255]);
    const bad = tf.tensor([3, 256], [2], 'int32');
    expect(() => tensorToProto(bad, { dtype: DType.DTYPE_UINT8 })).toThrow(/256 .*DTYPE_UINT8/);
    const float = tf.tensor([1, 2]);
    expect(() => tensorToProto(float, { dtype: DType.DTYPE_UINT8 })).toThrow(/float32 tensor cannot be sent as DTYPE_UINT8/);
    tf.dispose([t, back, bad, float]);
  });

  test('float16: halves the bytes, rounds to nearest half, widens back to float32', () => {
    const values = [1, -2, 0.1, 65504, 1e-5, 3.14159];
    const t = tf.tensor(values, [2, 3]);
    const msg = tensorToProto(t, { dtype: DType.DTYPE_FLOAT16 });
    expect(msg.dtype).toBe(DType.DTYPE_FLOAT16);
    expect(msg.data.length).toBe(values.length * 2);
    // 1.0 in binary16 is 0x3c00: bytes 00 3c.
    expect(Array.from(msg.data.subarray(0, 2))).toEqual([0x00, 0x3c]);
    const back = tensorFromProto(overTheWire(msg));
    expect(back.dtype).toBe('float32');
    const got = back.dataSync();
    values.forEach((v, i) => {
      // binary16 keeps 11 significant bits: relative error <= 2^-11 for normal values.
      expect(Math.abs(got[i] - v)).toBeLessThanOrEqual(Math.abs(v) * 2 ** -11 + 2 ** -25);
    });
    expect(got[0]).toBe(1);
    expect(got[3]).toBe(65504);
    tf.dispose([t, back]);
  });

  test('bool round trip', () => {
    const t = tf.tensor([true, false, true], [3], 'bool');
    const msg = tensorToProto(t);
    expect(msg.dtype).toBe(DType.DTYPE_BOOL);
    expect(Array.from(msg.data)).toEqual([1, 0, 1]);
    const back = tensorFromProto(overTheWire(msg));
    expect(back.dtype).toBe('bool');
    expect(Array.from(back.dataSync())).toEqual([1, 0, 1]);
    tf.dispose([t, back]);
  });

  test('scalars and empty tensors', () => {
    const s = tf.scalar(5.5);
    const e = tf.zeros([0, 3]);
    const s2 = tensorFromProto(overTheWire(tensorToProto(s)));
    const e2 = tensorFromProto(overTheWire(tensorToProto(e)));
    expect(s2.shape).toEqual([]);
    expect(s2.dataSync()[0]).toBe(5.5);
    expect(e2.shape).toEqual([0, 3]);
    expect(e2.size).toBe(0);
    tf.dispose([s, e, s2, e2]);
  });

  test('the helpers leak no tensors and do not alias tf memory', () => {
    const t = tf.tensor([1, 2, 3, 4], [4]);
    const before = tf.memory().numTensors;
    const msg = tensorToProto(t);
    expect(tf.memory().numTensors).toBe(before);
    msg.data.fill(0);
    expect(Array.from(t.dataSync())).toEqual([1, 2, 3, 4]);
    const back = tensorFromProto(msg);
    expect(tf.memory().numTensors).toBe(before + 1);
    tf.dispose([t, back]);
  });
});

describe('validation of wire tensors', () => {
  const ok = { dtype: DType.DTYPE_FLOAT32, shape: [2, 3], data: new Uint8Array(24) };

  test('byte length must equal product(shape) * itemsize', () => {
    expect(() => tensorFromProto({ ...ok, data: new Uint8Array(20) })).toThrow(
      'tensor data has 20 bytes but shape [2, 3] of DTYPE_FLOAT32 needs 24 (6 elements x 4 bytes)',
    );
    expect(() => tensorFromProto({ ...ok, dtype: DType.DTYPE_FLOAT16 })).toThrow(/24 bytes .* needs 12/);
  });

  test('shape must be sane', () => {
    expect(() => tensorFromProto({ ...ok, shape: [2, -3] })).toThrow(/invalid dimension -3 at index 1/);
    expect(() => tensorFromProto({ ...ok, shape: [2, 1.5] })).toThrow(/invalid dimension 1.5/);
    expect(() => tensorFromProto({ ...ok, shape: [1, 1, 1, 1, 1, 1, 1, 1, 1] })).toThrow(/rank 9/);
    expect(() => checkShape([65536, 65536])).toThrow(/4294967296 elements/);
    expect(checkShape([])).toBe(1);
    expect(checkShape([4, 0, 2])).toBe(0);
  });

  test('dtype must be known', () => {
    expect(() => tensorFromProto({ ...ok, dtype: DType.DTYPE_UNSPECIFIED })).toThrow(/DTYPE_UNSPECIFIED is not supported/);
    expect(() => tensorFromProto({ ...ok, dtype: 42 as DType })).toThrow(/DType\(42\) is not supported/);
  });

  test('nothing is allocated when validation fails', () => {
    const before = tf.memory().numTensors;
    expect(() => tensorFromProto({ ...ok, data: new Uint8Array(1) })).toThrow();
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('binary16 conversion', () => {
  test('known bit patterns', () => {
    expect(float32ToHalfBits(1)).toBe(0x3c00);
    expect(float32ToHalfBits(-2)).toBe(0xc000);
    expect(float32ToHalfBits(65504)).toBe(0x7bff); // largest finite half
    expect(float32ToHalfBits(65520)).toBe(0x7c00); // rounds up to +inf
    expect(float32ToHalfBits(-Infinity)).toBe(0xfc00);
    expect(float32ToHalfBits(2 ** -24)).toBe(0x0001); // smallest subnormal
    expect(float32ToHalfBits(2 ** -14)).toBe(0x0400); // smallest normal
    expect(float32ToHalfBits(2 ** -26)).toBe(0x0000); // underflows to zero
    expect(float32ToHalfBits(-0)).toBe(0x8000);
    expect(float32ToHalfBits(1 + 2 ** -11)).toBe(0x3c00); // tie rounds to even (down)
    expect(float32ToHalfBits(1 + 3 * 2 ** -11)).toBe(0x3c02); // tie rounds to even (up)
    const nan = float32ToHalfBits(NaN);
    expect(nan & 0x7c00).toBe(0x7c00);
    expect(nan & 0x3ff).not.toBe(0);
  });

  test('every finite half survives half -> float32 -> half', () => {
    const wrong: number[] = [];
    for (let h = 0; h < 65536; h++) {
      if ((h & 0x7c00) === 0x7c00) continue; // inf / NaN
      if (float32ToHalfBits(halfBitsToFloat32(h)) !== h) wrong.push(h);
    }
    expect(wrong).toEqual([]);
    expect(halfBitsToFloat32(0x3555)).toBeCloseTo(1 / 3, 3);
    expect(Object.is(halfBitsToFloat32(0x8000), -0)).toBe(true);
  });
});

test('generated code is namespaced by protobuf package', () => {
  expect(museum.v1.DType.DTYPE_FLOAT16).toBe(DType.DTYPE_FLOAT16);
  expect(museum.v1.Tensor).toBe(TensorProto);
});
