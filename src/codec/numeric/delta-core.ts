/**
 * The hot loops of the numeric delta codecs: code each value as the
 * difference from its prediction in the ordered-integer domain, tokenised
 * and rANS-coded under a context made from the prediction's sign+exponent
 * and, optionally, the trajectory class of a second reference.
 *
 * Why each choice (figures: fixture family, bits per value / 16):
 *  - Difference of ordered integers, not XOR: XOR spreads a +1 step that
 *    crosses a mantissa carry over many bits. Order-0 entropy code-full vs
 *    base: XOR bytes 0.381, integer difference 0.334.
 *  - Context = the prediction's exponent: a fine-tune moves weights by
 *    roughly the same absolute amount (Adam normalises steps), so in units of
 *    the value's ulp the delta scales with 2^-exponent. 0.334 -> 0.283.
 *    Neighbouring deltas (left, above, windowed magnitude) added nothing
 *    measurable (0.200 -> 0.199..0.207 on prose-step0025), so they are not used.
 *  - Trajectory class (2 refs): the sign and bit length of parent minus
 *    grandparent. Adam's momentum keeps the direction of travel: prose-step0150
 *    vs prose-step0100 0.132 -> 0.106, prose-step0100 0.212 -> 0.187. A linear
 *    prediction p + (p - pp)/4 gained less (0.113) than the context.
 *  - Tokens 0..15 are the zigzag delta itself; larger deltas are coded as
 *    (bit length, next bit) with the rest raw: within 0.001 of the full
 *    16-bit alphabet's entropy, with a 40-symbol alphabet (72 for float32).
 *    Two modelled bits after the leading one (64 symbols) gained 0.5% on
 *    code-full but lost as much on trajectory contexts (more table cost).
 *  - The low-rank part of a delta (merged LoRA, and rank 1-2 structure even
 *    in full fine-tunes) is float-lowrank's job (lowrank-codec.ts); it feeds
 *    its own prediction through the same loops.
 */
import { ExtraBits } from './frame.js';
import { corrupt } from '../entropy/bitio.js';
import { nativeKernels } from '../kernels.js';

// Local copy of frame.DIRECT: under tsx, imported bindings are read through
// getter calls, which cost ~25% of a hot loop.
const DIRECT = 16;

// Token tables for 16-bit deltas: token of each zigzag value, and per token
// the extra-bit count, the value with its extra bits zero, and their mask.
const TOK16 = new Uint8Array(65536);
const NB = new Uint8Array(256);
const BASE = new Int32Array(256);
const MASK = new Int32Array(256);
for (let zz = 0; zz < 65536; zz++) {
  if (zz < DIRECT) TOK16[zz] = zz;
  else {
    const b = 32 - Math.clz32(zz);
    TOK16[zz] = DIRECT + ((b - 5) << 1) + ((zz >>> (b - 2)) & 1);
  }
}
for (let t = 0; t < DIRECT + 2 * 28; t++) {
  if (t < DIRECT) BASE[t] = t;
  else {
    const b = ((t - DIRECT) >> 1) + 5;
    const nb = b - 2;
    NB[t] = nb;
    BASE[t] = ((1 << (b - 1)) | ((t & 1) << nb)) >>> 0;
    MASK[t] = (1 << nb) - 1;
  }
}

/** The two ways an extra-bits section can fail; the compiled decoders report them by number (1, 2) and delta-codec.ts throws these same messages. */
export const EXTRA_SHORT = 'extra-bits section is shorter than the tokens need';
export const EXTRA_MISMATCH = 'extra-bits section length does not match the tokens';

/** Trajectory classes: 0 (no move), then sign x min(7, bit length of |p - pp|): 15 classes. */
export const TRAJ_CLASSES = 16;

export interface TokenStreams {
  tok: Uint8Array;
  /** Per-element raw context, or null when it is simply p >>> ctxShift (16-bit, one reference). */
  ctx: Uint16Array | null;
  hist: Uint32Array;
  extra: Uint8Array;
}

/**
 * Raw contexts of a chunk: sign+exponent of the prediction (p >>> ctxShift),
 * plus ctxStride x trajectory class when a second reference pp is given.
 * Encoder and decoder both call this (the decoder before decoding tokens).
 */
export function contexts16(p: Uint16Array, pp: Uint16Array, ctxShift: number, ctxStride: number): Uint16Array {
  const K = nativeKernels();
  if (!K) return contexts16Js(p, pp, ctxShift, ctxStride);
  const ctx = new Uint16Array(p.length);
  K.contexts16(p, pp, ctxShift, ctxStride, ctx);
  return ctx;
}

/** The reference: contexts16 in plain JS. */
export function contexts16Js(p: Uint16Array, pp: Uint16Array, ctxShift: number, ctxStride: number): Uint16Array {
  const n = p.length;
  const ctx = new Uint16Array(n);
  for (let i = 0; i < n; i++) {
    const pv = p[i]!;
    const qv = pp[i]!;
    const tr = (((pv ^ (-(pv >>> 15) & 0x7fff)) - (qv ^ (-(qv >>> 15) & 0x7fff))) << 16) >> 16;
    let rc = pv >>> ctxShift;
    if (tr !== 0) {
      const bl = 32 - Math.clz32(tr < 0 ? -tr : tr);
      rc += ((bl > 7 ? 7 : bl) + (tr < 0 ? 7 : 0)) * ctxStride;
    }
    ctx[i] = rc;
  }
  return ctx;
}

export function contexts32(p: Uint32Array, pp: Uint32Array | null, ctxShift: number, ctxStride: number): Uint16Array {
  const K = nativeKernels();
  if (!K) return contexts32Js(p, pp, ctxShift, ctxStride);
  const ctx = new Uint16Array(p.length);
  K.contexts32(p, pp, ctxShift, ctxStride, ctx);
  return ctx;
}

/** The reference: contexts32 in plain JS. */
export function contexts32Js(p: Uint32Array, pp: Uint32Array | null, ctxShift: number, ctxStride: number): Uint16Array {
  const n = p.length;
  const ctx = new Uint16Array(n);
  for (let i = 0; i < n; i++) {
    const pv = p[i]!;
    let rc = pv >>> ctxShift;
    if (pp !== null) {
      const qv = pp[i]!;
      const tr = ((pv ^ ((pv >> 31) & 0x7fffffff)) - (qv ^ ((qv >> 31) & 0x7fffffff))) | 0;
      if (tr !== 0) {
        const bl = 32 - Math.clz32(tr < 0 ? -tr : tr); // -(-2^31) is 2^31: clz32 0, bl 32
        rc += ((bl > 7 ? 7 : bl) + (tr < 0 ? 7 : 0)) * ctxStride;
      }
    }
    ctx[i] = rc;
  }
  return ctx;
}

/**
 * Tokenise a 16-bit float chunk x against its prediction p. With ctx = null
 * the raw context is p >>> ctxShift; otherwise ctx[i]. R*S = hist size.
 */
export function tokenise16(x: Uint16Array, p: Uint16Array, ctx: Uint16Array | null, ctxShift: number, R: number, S: number): TokenStreams {
  const K = nativeKernels();
  if (!K) return tokenise16Js(x, p, ctx, ctxShift, R, S);
  const n = x.length;
  const tok = new Uint8Array(n);
  const hist = new Uint32Array(R * S);
  const buf = new Uint8Array(((n * 14) >>> 3) + 8);
  const len = K.tokenise16(x, p, ctx, ctxShift, S, tok, hist, buf);
  return { tok, ctx, hist, extra: buf.subarray(0, len) };
}

/** The reference: tokenise16 in plain JS. */
export function tokenise16Js(x: Uint16Array, p: Uint16Array, ctx: Uint16Array | null, ctxShift: number, R: number, S: number): TokenStreams {
  const n = x.length;
  const tok = new Uint8Array(n);
  const hist = new Uint32Array(R * S);
  const buf = new Uint8Array(((n * 14) >>> 3) + 8);
  const c = ctx ?? p;
  const sh = ctx ? 0 : ctxShift;
  let bpos = 0;
  let acc = 0;
  let nacc = 0;
  for (let i = 0; i < n; i++) {
    const pv = p[i]!;
    const xv = x[i]!;
    // ordered-integer difference (the 0x8000 offsets cancel mod 2^16)
    const d = (((xv ^ (((xv << 16) >> 31) & 0x7fff)) - (pv ^ (((pv << 16) >> 31) & 0x7fff))) << 16) >> 16;
    const zz = ((d << 1) ^ (d >> 31)) & 0xffff;
    const t = TOK16[zz]!;
    // Branch-free bit packing: store two bytes every time, advance by the whole bytes filled.
    acc |= (zz & MASK[t]!) << nacc;
    nacc += NB[t]!;
    buf[bpos] = acc;
    buf[bpos + 1] = acc >>> 8;
    const k = nacc >>> 3;
    bpos += k;
    acc >>>= k << 3;
    nacc &= 7;
    tok[i] = t;
    hist[(c[i]! >>> sh) * S + t]!++;
  }
  if (nacc > 0) buf[bpos++] = acc;
  return { tok, ctx, hist, extra: buf.subarray(0, bpos) };
}

/**
 * Rebuild 16-bit values from decoded tokens, the extra bits and the
 * prediction. Branch-free: tokens below DIRECT read 0 extra bits; the bit
 * window is a 32-bit little-endian load at the current byte (from a copy of
 * the section padded by 4 bytes). Measured 4.7 vs 7.6 ns/element for the
 * branchy bit reader (27% of tokens carry extra bits on a fine-tune).
 */
export function rebuild16(out: Uint16Array, tok: Uint8Array, p: Uint16Array, extra: Uint8Array): void {
  const n = out.length;
  const padded = new Uint8Array(extra.length + 4);
  padded.set(extra);
  const dv = new DataView(padded.buffer);
  const elen = extra.length;
  let bp = 0;
  for (let i = 0; i < n; i++) {
    // A damaged payload may ask for more extra bits than the section holds: stop before the window leaves the padding.
    if (bp >>> 3 > elen) corrupt(EXTRA_SHORT);
    const t = tok[i]!;
    const zz = BASE[t]! | ((dv.getUint32(bp >>> 3, true) >>> (bp & 7)) & MASK[t]!);
    bp += NB[t]!;
    const pv = p[i]!;
    const o = ((pv ^ 0x8000 ^ (((pv << 16) >> 31) & 0x7fff)) + ((zz >>> 1) ^ ((zz << 31) >> 31))) & 0xffff;
    out[i] = o ^ 0x8000 ^ (((o >>> 15) - 1) & 0x7fff);
  }
  // Every extra byte consumed, none invented (only the last byte is padded).
  if ((bp + 7) >>> 3 !== extra.length) corrupt(EXTRA_MISMATCH);
}

/** 32-bit counterpart of tokenise16 (float32 values; deltas up to 32 bits); ctx always given. */
export function tokenise32(x: Uint32Array, p: Uint32Array, ctx: Uint16Array, R: number, S: number): TokenStreams {
  const K = nativeKernels();
  if (!K) return tokenise32Js(x, p, ctx, R, S);
  const n = x.length;
  const tok = new Uint8Array(n);
  const hist = new Uint32Array(R * S);
  const eb = new ExtraBits(n * 30);
  const st = new Float64Array(3);
  K.tokenise32(x, p, ctx, S, tok, hist, eb.buf, st);
  eb.pos = st[0]!;
  eb.acc = st[1]!;
  eb.n = st[2]!;
  return { tok, ctx, hist, extra: eb.finish() };
}

/** The reference: tokenise32 in plain JS. */
export function tokenise32Js(x: Uint32Array, p: Uint32Array, ctx: Uint16Array, R: number, S: number): TokenStreams {
  const n = x.length;
  const tok = new Uint8Array(n);
  const hist = new Uint32Array(R * S);
  const eb = new ExtraBits(n * 30);
  const buf = eb.buf;
  let bpos = 0;
  let acc = 0;
  let nacc = 0;
  for (let i = 0; i < n; i++) {
    const pv = p[i]!;
    const xv = x[i]!;
    const d = ((xv ^ ((xv >> 31) & 0x7fffffff)) - (pv ^ ((pv >> 31) & 0x7fffffff))) | 0;
    const zz = ((d << 1) ^ (d >> 31)) >>> 0;
    let t: number;
    if (zz < DIRECT) t = zz;
    else {
      const b = 32 - Math.clz32(zz);
      const nb = b - 2;
      t = DIRECT + ((b - 5) << 1) + ((zz >>> nb) & 1);
      let rest = zz & ((1 << nb) - 1);
      let left = nb;
      while (left > 0) {
        const k = left > 16 ? 16 : left;
        acc |= (rest & ((1 << k) - 1)) << nacc;
        rest >>>= k;
        left -= k;
        nacc += k;
        while (nacc >= 8) {
          buf[bpos++] = acc & 0xff;
          acc >>>= 8;
          nacc -= 8;
        }
      }
    }
    tok[i] = t;
    hist[ctx[i]! * S + t]!++;
  }
  eb.pos = bpos;
  eb.acc = acc;
  eb.n = nacc;
  return { tok, ctx, hist, extra: eb.finish() };
}

export function rebuild32(out: Uint32Array, tok: Uint8Array, p: Uint32Array, extra: Uint8Array): void {
  const n = out.length;
  const elen = extra.length;
  let epos = 0;
  let acc = 0;
  let nacc = 0;
  for (let i = 0; i < n; i++) {
    const t = tok[i]!;
    let zz = t;
    if (t >= DIRECT) {
      const b = ((t - DIRECT) >> 1) + 5;
      const nb = b - 2;
      let got = 0;
      let sh = 0;
      let left = nb;
      while (left > 0) {
        const k = left > 16 ? 16 : left;
        while (nacc < k) {
          acc |= (epos < elen ? extra[epos]! : 0) << nacc;
          epos++;
          nacc += 8;
        }
        got |= (acc & ((1 << k) - 1)) << sh;
        acc >>>= k;
        nacc -= k;
        sh += k;
        left -= k;
      }
      zz = ((1 << (b - 1)) | ((t & 1) << nb) | got) >>> 0;
    }
    const pv = p[i]!;
    const op = pv ^ 0x80000000 ^ ((pv >> 31) & 0x7fffffff);
    const o = (op + ((zz >>> 1) ^ -(zz & 1))) | 0;
    out[i] = o ^ 0x80000000 ^ ((~o >> 31) & 0x7fffffff);
  }
  if (epos !== elen) corrupt(EXTRA_MISMATCH);
}
