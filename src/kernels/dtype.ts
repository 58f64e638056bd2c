/**
 * Stored weight dtypes and their exact conversion to float32.
 *
 * Weights stay in their stored bytes; a kernel converts one row at a time into
 * a float32 scratch row (`decodeRow`). Every conversion here is exact: BF16 is
 * the top half of a float32 (shift the Uint16 into a Uint32 view), F16 is
 * looked up in a 65536-entry table built once from the IEEE 754 rules.
 *
 * Byte order: little-endian, as safetensors stores it. `assertLittleEndian`
 * refuses a big-endian host rather than computing garbage.
 */
import { endianness } from 'node:os';
import { At1Error } from '../errors.js';

export type WeightDType = 'F32' | 'F16' | 'BF16';

export const WEIGHT_DTYPES: readonly WeightDType[] = ['F32', 'F16', 'BF16'];

export function isWeightDType(s: string): s is WeightDType {
  return s === 'F32' || s === 'F16' || s === 'BF16';
}

export function dtypeBytes(d: WeightDType): number {
  return d === 'F32' ? 4 : 2;
}

export function assertLittleEndian(): void {
  if (endianness() !== 'LE') {
    throw new At1Error('E_UNSUPPORTED', 'the runtime reads little-endian weights in place and needs a little-endian host');
  }
}

/** A matrix (or a block of its rows) in its stored bytes: `rows` × `cols`, row-major, W[out, in] as PyTorch stores Linear weights. */
export interface WeightMatrix {
  readonly dtype: WeightDType;
  readonly rows: number;
  readonly cols: number;
  /** rows × cols × dtypeBytes bytes; byteOffset must be a multiple of the element size (the runtime allocates its own buffers, so it is). */
  readonly bytes: Uint8Array;
}

let f16Table: Float32Array | undefined;

/** float32 value of every binary16 bit pattern (exact: every f16 is representable in f32). */
export function f16ToF32Table(): Float32Array {
  if (f16Table !== undefined) return f16Table;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const mant = h & 0x3ff;
    let v: number;
    if (exp === 0) v = mant * 2 ** -24; // subnormal (and zero)
    else if (exp === 31) v = mant === 0 ? Infinity : NaN;
    else v = (1024 + mant) * 2 ** (exp - 25);
    t[h] = sign * v;
  }
  f16Table = t;
  return t;
}

/** Typed views of a weight's bytes, made once per matrix, not per row. */
export interface RowDecoder {
  readonly dtype: WeightDType;
  readonly cols: number;
  readonly u16: Uint16Array | undefined;
  readonly f32: Float32Array | undefined;
}

export function rowDecoder(w: WeightMatrix): RowDecoder {
  const b = w.bytes;
  const n = w.rows * w.cols;
  if (b.byteLength < n * dtypeBytes(w.dtype)) {
    throw new At1Error('E_INPUT', `weight buffer of ${b.byteLength} bytes is too small for ${w.rows}×${w.cols} ${w.dtype}`);
  }
  if (w.dtype === 'F32') {
    if (b.byteOffset % 4 !== 0) throw new At1Error('E_INPUT', 'F32 weight bytes must be 4-byte aligned');
    return { dtype: w.dtype, cols: w.cols, u16: undefined, f32: new Float32Array(b.buffer, b.byteOffset, n) };
  }
  if (b.byteOffset % 2 !== 0) throw new At1Error('E_INPUT', `${w.dtype} weight bytes must be 2-byte aligned`);
  return { dtype: w.dtype, cols: w.cols, u16: new Uint16Array(b.buffer, b.byteOffset, n), f32: undefined };
}

/**
 * Writes row `r` of the matrix into `out[0..cols)` as float32.
 * `outU32` must be a Uint32Array over the same memory as `out` (used for BF16).
 */
export function decodeRow(d: RowDecoder, r: number, out: Float32Array, outU32: Uint32Array): void {
  const cols = d.cols;
  const base = r * cols;
  if (d.dtype === 'BF16') {
    const u16 = d.u16!;
    for (let i = 0; i < cols; i++) outU32[i] = u16[base + i]! << 16;
  } else if (d.dtype === 'F16') {
    const u16 = d.u16!;
    const t = f16ToF32Table();
    for (let i = 0; i < cols; i++) out[i] = t[u16[base + i]!]!;
  } else {
    out.set(d.f32!.subarray(base, base + cols));
  }
}

/** A float32 scratch row with its Uint32 alias. */
export class ScratchRow {
  readonly f32: Float32Array;
  readonly u32: Uint32Array;
  constructor(n: number) {
    const buf = new ArrayBuffer(Math.max(1, n) * 4);
    this.f32 = new Float32Array(buf);
    this.u32 = new Uint32Array(buf);
  }
}
