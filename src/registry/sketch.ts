/**
 * A version's sketch: 64 values of each of its sampled tensors,
 * recorded in its manifest when it is added (FORMAT.md §6, `sketch`), so a
 * later add ranks every existing version as a reference by comparing
 * sketches, without decoding or encoding anything against it. Only the best
 * few are then tried with the real codecs (reference.ts).
 *
 * The distance is what a delta codec pays, roughly: per sampled element the
 * bit length of |x - y| in units of the new value's ulp. It is computed with
 * IEEE basic operations and integer bit lengths only (no Math.log2), so the
 * ranking, and the choice, are the same on every machine.
 */
import { toFloat32 } from '../format/dtype-convert.js';
import { dtypeBits } from './geometry.js';

/** Values kept per tensor: 64 ranks as well as 256 on the fixture family and keeps a manifest ~1.4 KB larger, not 5.5 KB. */
export const SKETCH_VALUES = 64;

/** Mantissa bits of the dtypes a sketch is kept for. */
const MANTISSA: Readonly<Record<string, number>> = { F32: 23, F16: 10, BF16: 7 };

export interface TensorSketch {
  name: string;
  dtype: string;
  /** Element index of the first value, and the stride between values (both within chunk 0). */
  start: number;
  step: number;
  /** The values' bytes as stored (little-endian, the tensor's dtype), base64. */
  values: string;
}

export interface VersionSketch {
  tensors: TensorSketch[];
}

export function sketchable(dtype: string): boolean {
  return MANTISSA[dtype] !== undefined;
}

/** Every `step`-th element of a sample slice [start, start + count) of a tensor, at most SKETCH_VALUES of them. */
export function sketchOfSlice(name: string, dtype: string, start: number, count: number, bytes: Uint8Array): TensorSketch | undefined {
  if (!sketchable(dtype) || count === 0) return undefined;
  const w = dtypeBits(dtype) / 8;
  const step = Math.max(1, Math.floor(count / SKETCH_VALUES));
  const n = Math.min(SKETCH_VALUES, Math.floor(count / step));
  const out = new Uint8Array(n * w);
  for (let i = 0; i < n; i++) out.set(bytes.subarray(i * step * w, i * step * w + w), i * w);
  return { name, dtype, start, step, values: Buffer.from(out).toString('base64') };
}

const f64 = new Float64Array(1);
const u32of64 = new Uint32Array(f64.buffer);
const f32 = new Float32Array(1);
const u32of32 = new Uint32Array(f32.buffer);

/** 2^k as a float64, built from its bits (exact; k within the normal range). */
function pow2(k: number): number {
  u32of64[0] = 0;
  u32of64[1] = (Math.max(-1022, Math.min(1023, k)) + 1023) << 20;
  return f64[0]!;
}

/** Bit length of how many ulps (of `x`, with `mantissa` bits) lie between x and y: 0 when equal, 32 for NaN or huge. */
function ulpBits(x: number, y: number, mantissa: number): number {
  if (x === y) return 0;
  if (Number.isNaN(x) || Number.isNaN(y)) return 32;
  f32[0] = x;
  const e = Math.max(1, (u32of32[0]! >>> 23) & 0xff);
  const q = Math.floor(Math.abs(x - y) / pow2(e - 127 - mantissa));
  return q >= 0x7fffffff ? 32 : 32 - Math.clz32(q);
}

const decoded = new WeakMap<TensorSketch, Float32Array>();

function valuesOf(s: TensorSketch): Float32Array {
  let v = decoded.get(s);
  if (!v) {
    v = toFloat32(s.dtype, new Uint8Array(Buffer.from(s.values, 'base64')));
    decoded.set(s, v);
  }
  return v;
}

/** The distance from `candidate` to the new tensor's sketch `mine` (an integer), or undefined when they do not sample the same elements. */
export function sketchDistance(mine: TensorSketch, candidate: TensorSketch): number | undefined {
  if (mine.start !== candidate.start || mine.step !== candidate.step || !sketchable(candidate.dtype)) return undefined;
  const x = valuesOf(mine);
  const y = valuesOf(candidate);
  if (x.length !== y.length) return undefined;
  const m = MANTISSA[mine.dtype]!;
  let total = 0;
  for (let i = 0; i < x.length; i++) total += ulpBits(x[i]!, y[i]!, m);
  return total;
}
