/**
 * Byte grouping ("byte planes"): plane k holds byte k of every element.
 * In float weights the byte holding sign and exponent is highly skewed and
 * compresses; mantissa bytes are near-random. Splitting them lets zstd (or
 * any coder) model each on its own. Width 1 is the identity.
 *
 * Widths 2 and 4 go through 16/32-bit views (little-endian, as safetensors
 * data is): one load or store per element instead of one per byte, which
 * made this the hottest loop of a restore before.
 */
import { nativeKernels } from './kernels.js';

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function aligned(b: Uint8Array, width: number): boolean {
  return LITTLE_ENDIAN && b.byteOffset % width === 0;
}

export function splitPlanes(src: Uint8Array, width: number): Uint8Array[] {
  const K = nativeKernels();
  if (K && (width === 2 || width === 4)) {
    const n = Math.floor(src.length / width);
    const planes = Array.from({ length: width }, () => new Uint8Array(n));
    K.splitPlanes(src, ...planes);
    return planes;
  }
  return splitPlanesJs(src, width);
}

/** The reference: splitPlanes in plain JS. */
export function splitPlanesJs(src: Uint8Array, width: number): Uint8Array[] {
  const n = Math.floor(src.length / width);
  const planes = Array.from({ length: width }, () => new Uint8Array(n));
  if (width === 2 && aligned(src, 4)) {
    // Two elements per 32-bit load, two plane bytes per 16-bit store (SWAR): half the iterations.
    const [lo, hi] = planes as [Uint8Array, Uint8Array];
    const m = n >>> 1;
    const s32 = new Uint32Array(src.buffer, src.byteOffset, m);
    const lo16 = new Uint16Array(lo.buffer, 0, m);
    const hi16 = new Uint16Array(hi.buffer, 0, m);
    for (let i = 0; i < m; i++) {
      const v = s32[i]!;
      lo16[i] = (v & 0xff) | ((v >>> 8) & 0xff00);
      hi16[i] = ((v >>> 8) & 0xff) | ((v >>> 16) & 0xff00);
    }
    if (n & 1) {
      lo[n - 1] = src[2 * n - 2]!;
      hi[n - 1] = src[2 * n - 1]!;
    }
    return planes;
  }
  if (width === 4 && aligned(src, 4)) {
    const s = new Uint32Array(src.buffer, src.byteOffset, n);
    const [p0, p1, p2, p3] = planes as [Uint8Array, Uint8Array, Uint8Array, Uint8Array];
    for (let i = 0; i < n; i++) {
      const v = s[i]!;
      p0[i] = v;
      p1[i] = v >>> 8;
      p2[i] = v >>> 16;
      p3[i] = v >>> 24;
    }
    return planes;
  }
  for (let k = 0; k < width; k++) {
    const plane = planes[k]!;
    for (let i = 0, j = k; i < n; i++, j += width) plane[i] = src[j]!;
  }
  return planes;
}

export function joinPlanes(planes: readonly Uint8Array[], out: Uint8Array): void {
  const K = nativeKernels();
  if (K && (planes.length === 2 || planes.length === 4) && planes.every((p) => p.length === planes[0]!.length)) K.joinPlanes(out, ...planes);
  else joinPlanesJs(planes, out);
}

/** The reference: joinPlanes in plain JS. */
export function joinPlanesJs(planes: readonly Uint8Array[], out: Uint8Array): void {
  const width = planes.length;
  const n = planes[0]?.length ?? 0;
  const [lo, hi] = planes as [Uint8Array, Uint8Array];
  if (width === 2 && aligned(out, 4) && lo.byteOffset % 4 === 0 && hi.byteOffset % 4 === 0) {
    // Four elements per iteration: one 32-bit load per plane, two 32-bit stores (2x the per-byte loop).
    const m = n >>> 2;
    const l32 = new Uint32Array(lo.buffer, lo.byteOffset, m);
    const h32 = new Uint32Array(hi.buffer, hi.byteOffset, m);
    const o = new Uint32Array(out.buffer, out.byteOffset, 2 * m);
    for (let i = 0, j = 0; i < m; i++, j += 2) {
      const a = l32[i]!;
      const b = h32[i]!;
      o[j] = (a & 0xff) | ((b & 0xff) << 8) | ((a & 0xff00) << 8) | ((b & 0xff00) << 16);
      o[j + 1] = ((a >>> 16) & 0xff) | (((b >>> 16) & 0xff) << 8) | ((a >>> 8) & 0xff0000) | (b & 0xff000000);
    }
    for (let i = 4 * m; i < n; i++) {
      out[2 * i] = lo[i]!;
      out[2 * i + 1] = hi[i]!;
    }
    return;
  }
  if (width === 4 && aligned(out, 4)) {
    const o = new Uint32Array(out.buffer, out.byteOffset, n);
    const [p0, p1, p2, p3] = planes as [Uint8Array, Uint8Array, Uint8Array, Uint8Array];
    for (let i = 0; i < n; i++) o[i] = (p0[i]! | (p1[i]! << 8) | (p2[i]! << 16) | (p3[i]! << 24)) >>> 0;
    return;
  }
  for (let k = 0; k < width; k++) {
    const plane = planes[k]!;
    for (let i = 0, j = k; i < plane.length; i++, j += width) out[j] = plane[i]!;
  }
}

/** Element width used for grouping a chunk: the dtype's byte width when the length allows it, else 1. */
export function groupingWidth(dtypeBytes: number | undefined, length: number): number {
  return dtypeBytes !== undefined && dtypeBytes > 1 && length % dtypeBytes === 0 ? dtypeBytes : 1;
}
