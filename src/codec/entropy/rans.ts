/**
 * Static-table rANS with 4 interleaved states and 16-bit renormalisation.
 *
 * State interval [L, L*2^16) with L = 2^15, so a state always fits in a
 * positive int32 (V8 keeps it in an integer register; no uint32 boxing), and
 * one 16-bit refill always suffices after a decode step (precision <= 15;
 * the models use <= 12, see buildDecodeTables).
 * Element i uses state i&3: four independent dependency chains let the CPU
 * overlap the table lookups of consecutive elements.
 *
 * Stream layout: 4 final encoder states (uint32 LE), then 16-bit LE words in
 * the order the decoder reads them. The encoder runs backwards over the
 * elements and starts every state at L, so a decoder that ends with all four
 * states back at L and every word consumed has checked the stream's framing.
 *
 * Encoding divides by the frequency in doubles: for x < 2^31 and f < 2^16 the
 * double quotient's floor is the exact integer quotient (the gap to the next
 * integer, 1/f, is far above double rounding error), so this is deterministic
 * integer arithmetic done on the FPU, and faster than V8's integer modulo.
 */
import { corrupt } from './bitio.js';
import type { TokenModel } from './model.js';
import { nativeKernels } from '../kernels.js';

export const RANS_L = 1 << 15;

/**
 * Encode tok[i] (a token < alphabet) under table model.groupOf[src[i] >>> shift],
 * i = 0..n-1 (src = null: table 0 throughout). Returns the stream bytes
 * (states + words). Unrolled over the four states like the decoder.
 */
export function ransEncode(tok: Uint8Array, src: Uint16Array | null, shift: number, n: number, model: TokenModel): Uint8Array {
  const K = nativeKernels();
  if (!K) return ransEncodeJs(tok, src, shift, n, model);
  const { fc, rowOf } = encodeTables(model);
  const out = new Uint8Array(16 + 2 * (n + 8));
  const len = K.ransEncode(tok, src, shift, n, fc, rowOf, model.prec, out);
  if (len < 0) throw new Error('rANS encode: a token has no frequency in its table');
  return out.slice(0, len);
}

/** (group, token) -> frequency and start, interleaved; and per raw context its row offset in that array (a single table when the context source is null). */
function encodeTables(model: TokenModel): { fc: Int32Array; rowOf: Int32Array } {
  const { alphabet: S, freq, cum, groupOf } = model;
  const G = model.groups;
  const fc = new Int32Array(2 * G * S);
  for (let k = 0; k < G * S; k++) {
    fc[2 * k] = freq[k]!;
    fc[2 * k + 1] = cum[k]!;
  }
  const rowOf = new Int32Array(groupOf.length);
  for (let r = 0; r < groupOf.length; r++) rowOf[r] = groupOf[r]! * S * 2;
  return { fc, rowOf };
}

/** The reference: ransEncode in plain JS (the compiled kernel gives the same bytes). */
export function ransEncodeJs(tok: Uint8Array, src: Uint16Array | null, shift: number, n: number, model: TokenModel): Uint8Array {
  const { prec } = model;
  const { fc, rowOf } = encodeTables(model);
  const words = new Uint16Array(n + 8);
  let wp = words.length;
  let x0 = RANS_L;
  let x1 = RANS_L;
  let x2 = RANS_L;
  let x3 = RANS_L;
  const sh = 1 << (31 - prec); // x_max(f) = f * 2^(31 - prec)
  const M = 1 << prec;
  const c = src ?? new Uint16Array(0);
  const single = src === null;
  // Tail first: elements n4..n-1 use states 0..(n-n4-1); then blocks of 4 backwards.
  const n4 = n & ~3;
  for (let i = n - 1; i >= n4; i--) {
    const k = (single ? 0 : rowOf[c[i]! >>> shift]!) + 2 * tok[i]!;
    const f = fc[k]!;
    let x = i & 2 ? x2 : i & 1 ? x1 : x0;
    if (x >= f * sh) {
      words[--wp] = x & 0xffff;
      x >>>= 16;
    }
    const q = Math.floor(x / f);
    x = q * M + (x - q * f) + fc[k + 1]!;
    if (i & 2) x2 = x;
    else if (i & 1) x1 = x;
    else x0 = x;
  }
  for (let i = n4 - 1; i >= 3; i -= 4) {
    let k = (single ? 0 : rowOf[c[i]! >>> shift]!) + 2 * tok[i]!;
    let f = fc[k]!;
    if (x3 >= f * sh) {
      words[--wp] = x3 & 0xffff;
      x3 >>>= 16;
    }
    let q = Math.floor(x3 / f);
    x3 = q * M + (x3 - q * f) + fc[k + 1]!;
    k = (single ? 0 : rowOf[c[i - 1]! >>> shift]!) + 2 * tok[i - 1]!;
    f = fc[k]!;
    if (x2 >= f * sh) {
      words[--wp] = x2 & 0xffff;
      x2 >>>= 16;
    }
    q = Math.floor(x2 / f);
    x2 = q * M + (x2 - q * f) + fc[k + 1]!;
    k = (single ? 0 : rowOf[c[i - 2]! >>> shift]!) + 2 * tok[i - 2]!;
    f = fc[k]!;
    if (x1 >= f * sh) {
      words[--wp] = x1 & 0xffff;
      x1 >>>= 16;
    }
    q = Math.floor(x1 / f);
    x1 = q * M + (x1 - q * f) + fc[k + 1]!;
    k = (single ? 0 : rowOf[c[i - 3]! >>> shift]!) + 2 * tok[i - 3]!;
    f = fc[k]!;
    if (x0 >= f * sh) {
      words[--wp] = x0 & 0xffff;
      x0 >>>= 16;
    }
    q = Math.floor(x0 / f);
    x0 = q * M + (x0 - q * f) + fc[k + 1]!;
  }
  const nw = words.length - wp;
  const out = new Uint8Array(16 + 2 * nw);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, x0, true);
  dv.setUint32(4, x1, true);
  dv.setUint32(8, x2, true);
  dv.setUint32(12, x3, true);
  for (let j = 0; j < nw; j++) {
    const w = words[wp + j]!;
    out[16 + 2 * j] = w & 0xff;
    out[17 + 2 * j] = w >>> 8;
  }
  return out;
}

export interface DecodeTables {
  readonly prec: number;
  /**
   * Per (group << prec | slot): ((f-1) << 20) | ((slot - start) << 8) | token.
   * One packed 32-bit entry (precision <= 12) means one load per token and
   * 16 KiB per table, small enough that the few hot tables stay in L1.
   */
  readonly tab: Int32Array;
}

export function buildDecodeTables(model: TokenModel): DecodeTables {
  const { prec, groups, alphabet: S, freq, cum } = model;
  if (prec > 12 || S > 256) throw new Error('decode tables need precision <= 12 and <= 256 tokens');
  const tab = new Int32Array(groups << prec);
  for (let g = 0; g < groups; g++) {
    const base = g << prec;
    for (let s = 0; s < S; s++) {
      const f = freq[g * S + s]!;
      if (f === 0) continue;
      const c = cum[g * S + s]!;
      const hi = ((f - 1) << 20) | s;
      for (let j = 0; j < f; j++) tab[base + c + j] = hi | (j << 8);
    }
  }
  return { prec, tab };
}

/**
 * Reader state for an interleaved stream: the four states, the word
 * position, and the end-of-stream check.
 */
export class RansStream {
  x0: number;
  x1: number;
  x2: number;
  x3: number;
  /** Next word's byte position, and the end of the word area. */
  pos: number;
  readonly end: number;
  constructor(
    readonly buf: Uint8Array,
    start: number,
    end: number,
  ) {
    if (end - start < 16 || ((end - start) & 1) !== 0) corrupt('rANS stream truncated');
    const dv = new DataView(buf.buffer, buf.byteOffset + start, 16);
    this.x0 = dv.getUint32(0, true);
    this.x1 = dv.getUint32(4, true);
    this.x2 = dv.getUint32(8, true);
    this.x3 = dv.getUint32(12, true);
    for (const x of [this.x0, this.x1, this.x2, this.x3]) if (x < RANS_L || x >= 0x80000000) corrupt('rANS state out of range');
    this.pos = start + 16;
    this.end = end;
  }
  /** After decoding: every state back at L and every word consumed. */
  finish(what: string): void {
    if (this.pos !== this.end || this.x0 !== RANS_L || this.x1 !== RANS_L || this.x2 !== RANS_L || this.x3 !== RANS_L)
      corrupt(`${what}: rANS stream does not decode cleanly`);
  }
}

/**
 * What the compiled decoders take besides the stream: the four states (and
 * a fifth slot for a fused kernel's status) and each raw context's row base.
 */
export function nativeRansArgs(rs: RansStream, tables: DecodeTables, groupOf: Uint16Array): { states: Int32Array; base: Int32Array } {
  const base = new Int32Array(groupOf.length);
  for (let r = 0; r < groupOf.length; r++) base[r] = groupOf[r]! << tables.prec;
  return { states: new Int32Array([rs.x0, rs.x1, rs.x2, rs.x3, 0]), base };
}

/** Back into the stream after a compiled decoder: its final states and word position. */
export function settleNativeRans(rs: RansStream, states: Int32Array, pos: number): void {
  rs.x0 = states[0]!;
  rs.x1 = states[1]!;
  rs.x2 = states[2]!;
  rs.x3 = states[3]!;
  rs.pos = pos;
}

/**
 * Decode n tokens into tok. The table of element i is groupOf[src[i] >>> shift]
 * (src: the context source, e.g. the reference's bf16 bits with shift = 7 to
 * keep sign+exponent, or a precomputed context array with shift = 0); with
 * src = null every element uses table 0. Unrolled over the four states: the
 * lanes' table lookups then overlap (measured 7.6 -> 3.1..5.5 ns/token
 * against a state array indexed by i&3). When the compiled kernels are
 * loaded the codecs decode with their fused decoders instead (the same
 * tokens, states and position: test/codec-kernels-native.test.ts).
 */
export function ransDecodeTokens(
  rs: RansStream,
  tables: DecodeTables,
  groupOf: Uint16Array,
  src: Uint16Array | null,
  shift: number,
  n: number,
  tok: Uint8Array,
): void {
  const { prec, tab } = tables;
  const mask = (1 << prec) - 1;
  const buf = rs.buf;
  const end = rs.end;
  let pos = rs.pos;
  let x0 = rs.x0;
  let x1 = rs.x1;
  let x2 = rs.x2;
  let x3 = rs.x3;
  // Row base per context, precomputed so the loop does one lookup.
  const base = new Int32Array(groupOf.length);
  for (let r = 0; r < groupOf.length; r++) base[r] = groupOf[r]! << prec;
  const c = src ?? new Uint16Array(0);
  const single = src === null;
  const n4 = n & ~3;
  let i = 0;
  for (; i < n4; i += 4) {
    let e = (single ? 0 : base[c[i]! >>> shift]!) | (x0 & mask);
    let d = tab[e]!;
    tok[i] = d & 0xff;
    x0 = ((d >>> 20) + 1) * (x0 >>> prec) + ((d >>> 8) & 0xfff);
    if (x0 < RANS_L) {
      x0 = (x0 << 16) | (pos < end ? buf[pos]! | (buf[pos + 1]! << 8) : 0);
      pos += 2;
    }
    e = (single ? 0 : base[c[i + 1]! >>> shift]!) | (x1 & mask);
    d = tab[e]!;
    tok[i + 1] = d & 0xff;
    x1 = ((d >>> 20) + 1) * (x1 >>> prec) + ((d >>> 8) & 0xfff);
    if (x1 < RANS_L) {
      x1 = (x1 << 16) | (pos < end ? buf[pos]! | (buf[pos + 1]! << 8) : 0);
      pos += 2;
    }
    e = (single ? 0 : base[c[i + 2]! >>> shift]!) | (x2 & mask);
    d = tab[e]!;
    tok[i + 2] = d & 0xff;
    x2 = ((d >>> 20) + 1) * (x2 >>> prec) + ((d >>> 8) & 0xfff);
    if (x2 < RANS_L) {
      x2 = (x2 << 16) | (pos < end ? buf[pos]! | (buf[pos + 1]! << 8) : 0);
      pos += 2;
    }
    e = (single ? 0 : base[c[i + 3]! >>> shift]!) | (x3 & mask);
    d = tab[e]!;
    tok[i + 3] = d & 0xff;
    x3 = ((d >>> 20) + 1) * (x3 >>> prec) + ((d >>> 8) & 0xfff);
    if (x3 < RANS_L) {
      x3 = (x3 << 16) | (pos < end ? buf[pos]! | (buf[pos + 1]! << 8) : 0);
      pos += 2;
    }
  }
  for (; i < n; i++) {
    let x = i & 2 ? x2 : i & 1 ? x1 : x0;
    const e = (single ? 0 : base[c[i]! >>> shift]!) | (x & mask);
    const d = tab[e]!;
    tok[i] = d & 0xff;
    x = ((d >>> 20) + 1) * (x >>> prec) + ((d >>> 8) & 0xfff);
    if (x < RANS_L) {
      x = (x << 16) | (pos < end ? buf[pos]! | (buf[pos + 1]! << 8) : 0);
      pos += 2;
    }
    if (i & 2) x2 = x;
    else if (i & 1) x1 = x;
    else x0 = x;
  }
  rs.x0 = x0;
  rs.x1 = x1;
  rs.x2 = x2;
  rs.x3 = x3;
  rs.pos = pos;
}
