/**
 * Conversions between dtypes and JS views of tensor bytes: typed-array
 * views of safetensors data and exact widening of 16-bit floats to float32.
 * The numeric codecs (predicting a chunk from a relative of another dtype)
 * and readers of tensor values share these, so each conversion is written
 * once. Everything works on bit patterns: -0, subnormals, infinities and
 * NaN payloads pass through unchanged.
 */
import { endianness } from 'node:os';
import { At1Error } from '../errors.js';
import { dtypeInfo } from './dtype.js';

// safetensors data is little-endian; these views read it in host order.
if (endianness() !== 'LE') throw new Error('at1 assumes a little-endian host (safetensors data is little-endian)');

/** Exact float16 -> float32, as bit patterns. */
export function f16ToF32(h: number): number {
  const s = (h & 0x8000) << 16;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) {
    if (m === 0) return s >>> 0;
    const k = 31 - Math.clz32(m); // leading bit of the subnormal mantissa, 0..9
    return (s | ((k + 103) << 23) | ((m - (1 << k)) << (23 - k))) >>> 0;
  }
  if (e === 31) return (s | 0x7f800000 | (m << 13)) >>> 0;
  return (s | ((e + 112) << 23) | (m << 13)) >>> 0;
}

/** Exact bfloat16 -> float32, as bit patterns. */
export function bf16ToF32(h: number): number {
  return (h << 16) >>> 0;
}

export type TypedView = Float32Array | Float64Array | Int8Array | Uint8Array | Int16Array | Uint16Array | Int32Array | Uint32Array | BigInt64Array | BigUint64Array;

/**
 * Tensor bytes as the natural typed array: F32 -> Float32Array, F64, the
 * integer types, BOOL/U8 -> Uint8Array. F16 and BF16 have no JS float type:
 * they come back as their Uint16Array bit patterns (see toFloat32).
 * Copies only when the bytes are not aligned for the type.
 */
export function typedView(dtype: string, bytes: Uint8Array): TypedView {
  const info = dtypeInfo(dtype);
  if (!info || info.bits % 8 !== 0) throw new At1Error('E_INPUT', `no typed view for dtype ${dtype}`);
  const w = info.bits / 8;
  const b = bytes.byteOffset % w === 0 ? bytes : bytes.slice();
  const n = b.length / w;
  switch (dtype) {
    case 'F32':
      return new Float32Array(b.buffer, b.byteOffset, n);
    case 'F64':
      return new Float64Array(b.buffer, b.byteOffset, n);
    case 'I8':
      return new Int8Array(b.buffer, b.byteOffset, n);
    case 'I16':
      return new Int16Array(b.buffer, b.byteOffset, n);
    case 'I32':
      return new Int32Array(b.buffer, b.byteOffset, n);
    case 'U32':
      return new Uint32Array(b.buffer, b.byteOffset, n);
    case 'I64':
      return new BigInt64Array(b.buffer, b.byteOffset, n);
    case 'U64':
      return new BigUint64Array(b.buffer, b.byteOffset, n);
    case 'U16':
    case 'F16':
    case 'BF16':
      return new Uint16Array(b.buffer, b.byteOffset, n);
    default:
      return b;
  }
}

/** F32, F16 or BF16 values as a Float32Array (exact: every F16 and BF16 value is a float32). */
export function toFloat32(dtype: string, bytes: Uint8Array): Float32Array {
  const v = typedView(dtype, bytes);
  if (dtype === 'F32') return v as Float32Array;
  if (dtype !== 'BF16' && dtype !== 'F16') throw new At1Error('E_INPUT', `toFloat32 takes F32, F16 or BF16, not ${dtype}`);
  const src = v as Uint16Array;
  const out = new Float32Array(src.length);
  const o32 = new Uint32Array(out.buffer);
  const widen = dtype === 'BF16' ? bf16ToF32 : f16ToF32;
  for (let i = 0; i < src.length; i++) o32[i] = widen(src[i]!);
  return out;
}
