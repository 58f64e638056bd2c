/**
 * Float bit-pattern transforms shared by the numeric codecs: format table,
 * exact widening to float32, round-to-nearest-even narrowing, and typed-array
 * views that tolerate unaligned input.
 *
 * All functions work on bit patterns (integers), never on JS numbers as
 * floats, so NaN payloads, -0 and subnormals pass through unchanged where the
 * conversion is exact. Conversions are used only to *predict* a chunk from a
 * reference of another dtype; the residual is coded losslessly, so a
 * conversion that is not exact (NaN quieting, overflow) costs bits, never
 * correctness.
 */
import { endianness } from 'node:os';
import { f16ToF32 } from '../../format/dtype-convert.js';
import { nativeKernels } from '../kernels.js';

if (endianness() !== 'LE') throw new Error('at1 numeric codecs assume a little-endian host (safetensors data is little-endian)');

export interface FloatFormat {
  readonly dtype: 'BF16' | 'F16' | 'F32';
  /** Element width in bits: 16 or 32. */
  readonly width: 16 | 32;
  readonly expBits: number;
  readonly mantBits: number;
}

const FORMATS: Record<string, FloatFormat> = {
  BF16: { dtype: 'BF16', width: 16, expBits: 8, mantBits: 7 },
  F16: { dtype: 'F16', width: 16, expBits: 5, mantBits: 10 },
  F32: { dtype: 'F32', width: 32, expBits: 8, mantBits: 23 },
};

export function floatFormat(dtype: string): FloatFormat | undefined {
  return FORMATS[dtype];
}

/** A Uint16Array over the bytes, copying only when the offset is misaligned. */
export function view16(b: Uint8Array): Uint16Array {
  const n = b.length >>> 1;
  if ((b.byteOffset & 1) === 0) return new Uint16Array(b.buffer, b.byteOffset, n);
  const c = new Uint8Array(n * 2);
  c.set(b.subarray(0, n * 2));
  return new Uint16Array(c.buffer);
}

export function view32(b: Uint8Array): Uint32Array {
  const n = b.length >>> 2;
  if ((b.byteOffset & 3) === 0) return new Uint32Array(b.buffer, b.byteOffset, n);
  const c = new Uint8Array(n * 4);
  c.set(b.subarray(0, n * 4));
  return new Uint32Array(c.buffer);
}

// Widening lives with the other dtype conversions (one f16ToF32 in the codebase); re-exported for the codecs.
export { f16ToF32 } from '../../format/dtype-convert.js';

/** float32 -> bfloat16 bits, round to nearest even (NaN stays NaN, quiet). */
export function f32ToBf16(u: number): number {
  if ((u & 0x7f800000) === 0x7f800000 && (u & 0x7fffff) !== 0) return ((u >>> 16) | 0x40) & 0xffff;
  return ((u >>> 0) + 0x7fff + ((u >>> 16) & 1)) / 65536 >>> 0 & 0xffff;
}

/** float32 -> float16 bits, round to nearest even, with subnormals and overflow to infinity. */
export function f32ToF16(u: number): number {
  const s = (u >>> 16) & 0x8000;
  const e = (u >>> 23) & 0xff;
  const m = u & 0x7fffff;
  if (e === 0xff) return m === 0 ? s | 0x7c00 : s | 0x7e00 | (m >>> 13);
  if (e >= 113) {
    // normal range of float16 (before rounding)
    if (e >= 143) return s | 0x7c00;
    let h = ((e - 112) << 10) | (m >>> 13);
    const rem = m & 0x1fff;
    if (rem > 0x1000 || (rem === 0x1000 && (h & 1) !== 0)) h++; // a carry may reach infinity: correct
    return s | h;
  }
  if (e < 102) return s;
  const M = m | 0x800000;
  const shift = 126 - e; // 14..24
  let h = M >>> shift;
  const rem = M & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  if (rem > half || (rem === half && (h & 1) !== 0)) h++;
  return s | h;
}

/**
 * Reference chunk converted to the target format's bit patterns: a view when
 * the dtypes match, an exact widening or an RNE narrowing otherwise.
 */
export function predictionBits(refBytes: Uint8Array, refDtype: string, target: FloatFormat, n: number): Uint16Array | Uint32Array {
  if (refDtype === target.dtype) return target.width === 16 ? view16(refBytes).subarray(0, n) : view32(refBytes).subarray(0, n);
  const src = floatFormat(refDtype);
  if (!src) throw new Error(`no float conversion from ${refDtype}`);
  const K = nativeKernels();
  if (K) {
    const kind = (d: string): number => (d === 'BF16' ? 0 : d === 'F16' ? 1 : 2);
    const out = target.width === 16 ? new Uint16Array(n) : new Uint32Array(n);
    K.convertFloats(src.width === 16 ? view16(refBytes).subarray(0, n) : view32(refBytes).subarray(0, n), kind(src.dtype), out, kind(target.dtype));
    return out;
  }
  return predictionBitsJs(refBytes, src, target, n);
}

/** The reference: predictionBits' conversion in plain JS. */
export function predictionBitsJs(refBytes: Uint8Array, src: FloatFormat, target: FloatFormat, n: number): Uint16Array | Uint32Array {
  // to float32 first (exact), then narrow
  let f32: Uint32Array;
  if (src.dtype === 'F32') f32 = view32(refBytes).subarray(0, n);
  else {
    const r = view16(refBytes);
    f32 = new Uint32Array(n);
    if (src.dtype === 'BF16') for (let i = 0; i < n; i++) f32[i] = r[i]! << 16;
    else for (let i = 0; i < n; i++) f32[i] = f16ToF32(r[i]!);
  }
  if (target.dtype === 'F32') return f32;
  const out = new Uint16Array(n);
  if (target.dtype === 'BF16') for (let i = 0; i < n; i++) out[i] = f32ToBf16(f32[i]!);
  else for (let i = 0; i < n; i++) out[i] = f32ToF16(f32[i]!);
  return out;
}

/**
 * Ordered-integer map for 16-bit floats: monotonic in the value, -0 just
 * below +0, bijective on bit patterns. The hot loops inline these (as
 * v ^ (negative ? 0x7fff : 0), the 0x8000 offset cancelling in differences);
 * these reference forms are what the tests check the invariants on.
 */
export function ord16(v: number): number {
  return v ^ 0x8000 ^ (-(v >>> 15) & 0x7fff);
}
export function unord16(o: number): number {
  return o ^ 0x8000 ^ (((o >>> 15) - 1) & 0x7fff);
}
/** Same for 32-bit floats (result as int32). */
export function ord32(v: number): number {
  return v ^ 0x80000000 ^ ((v >> 31) & 0x7fffffff);
}
export function unord32(o: number): number {
  return o ^ 0x80000000 ^ ((~o >> 31) & 0x7fffffff);
}
