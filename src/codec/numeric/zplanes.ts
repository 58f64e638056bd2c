/**
 * The 'fast' level of the delta codecs: the same ordered-integer difference
 * as the rANS path, zigzagged, split into byte planes (high/low for 16-bit
 * floats, four for float32) and compressed with zstd level 1.
 *
 * Why: the rANS coder is the compact path but runs at JS speed (~100-200
 * MB/s here); zstd runs in C. The integer difference alone is already better
 * than BitX's XOR with zstd: on the fixtures 0.82-0.91 of BitX's bytes
 * (prose-step0025 0.822, prose-step0150 0.830, code-full 0.865, code-lora
 * 0.913), and zstd level 1 beat level 3 on these planes (0.822 vs 0.884),
 * so 'fast' is both faster and smaller than BitX.
 *
 * zstd runs through the native binding with caller-sized output buffers, so
 * a hostile frame cannot make the decoder allocate more than the chunk size.
 */
import { zstdCompress as compressAt, zstdDecompressInto } from '../zstd.js';
import { nativeKernels } from '../kernels.js';

export { zstdDecompressInto };

export const FAST_ZSTD_LEVEL = 1;

export function zstdCompress(src: Uint8Array, level = FAST_ZSTD_LEVEL): Uint8Array {
  return compressAt(src, level);
}

/**
 * Zigzag ordered differences of 16-bit floats, as high and low byte planes.
 * Two elements per 32-bit word (SWAR): lane-wise ordered map, subtraction
 * without inter-lane borrow, zigzag, and byte-plane split, which halves the
 * JS work per element (this loop and its inverse were 3.6-3.7 ns/element,
 * more than zstd's 1.2 ns on both planes together).
 */
export function diffPlanes16(x: Uint16Array, p: Uint16Array): [Uint8Array, Uint8Array] {
  const K = nativeKernels();
  if (!K) return diffPlanes16Js(x, p);
  const hi = new Uint8Array(x.length);
  const lo = new Uint8Array(x.length);
  K.diffPlanes16(x, p, hi, lo);
  return [hi, lo];
}

/** The reference: diffPlanes16 in plain JS. */
export function diffPlanes16Js(x: Uint16Array, p: Uint16Array): [Uint8Array, Uint8Array] {
  const n = x.length;
  const m = n >>> 1;
  const hi = new Uint8Array(2 * m + 2);
  const lo = new Uint8Array(2 * m + 2);
  if ((x.byteOffset & 3) === 0 && (p.byteOffset & 3) === 0) {
    const x2 = new Uint32Array(x.buffer, x.byteOffset, m);
    const p2 = new Uint32Array(p.buffer, p.byteOffset, m);
    const h2 = new Uint16Array(hi.buffer, 0, m);
    const l2 = new Uint16Array(lo.buffer, 0, m);
    for (let k = 0; k < m; k++) {
      // (| 0 and Math.imul keep V8 on int32 paths: uint32 loads above 2^31 and
      // products above 2^31 would otherwise turn into doubles)
      const xv = x2[k]! | 0;
      const pv = p2[k]! | 0;
      // ordered map per lane (the 0x8000 flips cancel in the difference)
      const a = xv ^ Math.imul((xv >>> 15) & 0x10001, 0x7fff);
      const b = pv ^ Math.imul((pv >>> 15) & 0x10001, 0x7fff);
      // lane-wise a - b mod 2^16
      const d = ((a | 0x80008000) - (b & 0x7fff7fff)) ^ ((a ^ ~b) & 0x80008000);
      // lane-wise zigzag: (d << 1) ^ (sign ? 0xffff : 0)
      const z = ((d << 1) & 0xfffefffe) ^ Math.imul((d >>> 15) & 0x10001, 0xffff);
      l2[k] = (z & 0xff) | ((z >>> 8) & 0xff00);
      h2[k] = ((z >>> 8) & 0xff) | ((z >>> 16) & 0xff00);
    }
  } else diffScalar(x, p, hi, lo, 0, 2 * m);
  diffScalar(x, p, hi, lo, 2 * m, n);
  return [hi.subarray(0, n), lo.subarray(0, n)];
}

function diffScalar(x: Uint16Array, p: Uint16Array, hi: Uint8Array, lo: Uint8Array, from: number, to: number): void {
  for (let i = from; i < to; i++) {
    const xv = x[i]!;
    const pv = p[i]!;
    const d = (((xv ^ (((xv << 16) >> 31) & 0x7fff)) - (pv ^ (((pv << 16) >> 31) & 0x7fff))) << 16) >> 16;
    const zz = (d << 1) ^ (d >> 31);
    hi[i] = zz >>> 8;
    lo[i] = zz;
  }
}

export function undiffPlanes16(out: Uint16Array, p: Uint16Array, hi: Uint8Array, lo: Uint8Array): void {
  const K = nativeKernels();
  if (K) K.undiffPlanes16(out, p, hi, lo);
  else undiffPlanes16Js(out, p, hi, lo);
}

/** The reference: undiffPlanes16 in plain JS. */
export function undiffPlanes16Js(out: Uint16Array, p: Uint16Array, hi: Uint8Array, lo: Uint8Array): void {
  const n = out.length;
  const m = n >>> 2; // groups of four elements: one 32-bit load per plane, two 32-bit stores (12% faster than pairs)
  if ((out.byteOffset & 3) === 0 && (p.byteOffset & 3) === 0 && (hi.byteOffset & 3) === 0 && (lo.byteOffset & 3) === 0) {
    const o2 = new Uint32Array(out.buffer, out.byteOffset, 2 * m);
    const p2 = new Uint32Array(p.buffer, p.byteOffset, 2 * m);
    const h4 = new Uint32Array(hi.buffer, hi.byteOffset, m);
    const l4 = new Uint32Array(lo.buffer, lo.byteOffset, m);
    for (let k = 0; k < m; k++) {
      const hv = h4[k]! | 0;
      const lv = l4[k]! | 0;
      // elements 4k, 4k+1: zigzag values as two 16-bit lanes
      let z = (lv & 0xff) | ((hv & 0xff) << 8) | ((lv & 0xff00) << 8) | ((hv & 0xff00) << 16);
      // lane-wise un-zigzag
      let d = ((z >>> 1) & 0x7fff7fff) ^ Math.imul(z & 0x10001, 0xffff);
      // ordered map as a signed 16-bit lane: v ^ (negative ? 0x7fff : 0), its own inverse
      let pv = p2[2 * k]! | 0;
      let b = pv ^ Math.imul((pv >>> 15) & 0x10001, 0x7fff);
      // lane-wise b + d mod 2^16, then back from the ordered map
      let o = ((b & 0x7fff7fff) + (d & 0x7fff7fff)) ^ ((b ^ d) & 0x80008000);
      o2[2 * k] = o ^ Math.imul((o >>> 15) & 0x10001, 0x7fff);
      // elements 4k+2, 4k+3
      z = ((lv >>> 16) & 0xff) | ((hv >>> 8) & 0xff00) | ((lv >>> 8) & 0xff0000) | (hv & 0xff000000);
      d = ((z >>> 1) & 0x7fff7fff) ^ Math.imul(z & 0x10001, 0xffff);
      pv = p2[2 * k + 1]! | 0;
      b = pv ^ Math.imul((pv >>> 15) & 0x10001, 0x7fff);
      o = ((b & 0x7fff7fff) + (d & 0x7fff7fff)) ^ ((b ^ d) & 0x80008000);
      o2[2 * k + 1] = o ^ Math.imul((o >>> 15) & 0x10001, 0x7fff);
    }
    undiffScalar(out, p, hi, lo, 4 * m, n);
  } else undiffScalar(out, p, hi, lo, 0, n);
}

function undiffScalar(out: Uint16Array, p: Uint16Array, hi: Uint8Array, lo: Uint8Array, from: number, to: number): void {
  for (let i = from; i < to; i++) {
    const zz = (hi[i]! << 8) | lo[i]!;
    const pv = p[i]!;
    const o = ((pv ^ 0x8000 ^ (((pv << 16) >> 31) & 0x7fff)) + ((zz >>> 1) ^ ((zz << 31) >> 31))) & 0xffff;
    out[i] = o ^ 0x8000 ^ (((o >>> 15) - 1) & 0x7fff);
  }
}

/** Four byte planes (least significant first) of the zigzag ordered differences of float32 values. */
export function diffPlanes32(x: Uint32Array, p: Uint32Array): Uint8Array[] {
  const K = nativeKernels();
  if (!K) return diffPlanes32Js(x, p);
  const n = x.length;
  const pl = [new Uint8Array(n), new Uint8Array(n), new Uint8Array(n), new Uint8Array(n)] as const;
  K.diffPlanes32(x, p, ...pl);
  return [...pl];
}

/** The reference: diffPlanes32 in plain JS. */
export function diffPlanes32Js(x: Uint32Array, p: Uint32Array): Uint8Array[] {
  const n = x.length;
  const pl = [new Uint8Array(n), new Uint8Array(n), new Uint8Array(n), new Uint8Array(n)] as const;
  const [b0, b1, b2, b3] = pl;
  for (let i = 0; i < n; i++) {
    const xv = x[i]!;
    const pv = p[i]!;
    const d = ((xv ^ ((xv >> 31) & 0x7fffffff)) - (pv ^ ((pv >> 31) & 0x7fffffff))) | 0;
    const zz = (d << 1) ^ (d >> 31);
    b0[i] = zz;
    b1[i] = zz >>> 8;
    b2[i] = zz >>> 16;
    b3[i] = zz >>> 24;
  }
  return [...pl];
}

export function undiffPlanes32(out: Uint32Array, p: Uint32Array, pl: readonly Uint8Array[]): void {
  const K = nativeKernels();
  if (K) K.undiffPlanes32(out, p, pl[0]!, pl[1]!, pl[2]!, pl[3]!);
  else undiffPlanes32Js(out, p, pl);
}

/** The reference: undiffPlanes32 in plain JS. */
export function undiffPlanes32Js(out: Uint32Array, p: Uint32Array, pl: readonly Uint8Array[]): void {
  const n = out.length;
  const b0 = pl[0]!;
  const b1 = pl[1]!;
  const b2 = pl[2]!;
  const b3 = pl[3]!;
  for (let i = 0; i < n; i++) {
    const zz = b0[i]! | (b1[i]! << 8) | (b2[i]! << 16) | (b3[i]! << 24);
    const pv = p[i]!;
    const op = pv ^ 0x80000000 ^ ((pv >> 31) & 0x7fffffff);
    const o = (op + ((zz >>> 1) ^ ((zz << 31) >> 31))) | 0;
    out[i] = o ^ 0x80000000 ^ ((~o >> 31) & 0x7fffffff);
  }
}
