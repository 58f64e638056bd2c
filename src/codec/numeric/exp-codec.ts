/**
 * Standalone float codec (id 10): exponent (plus 0-2 top mantissa bits)
 * rANS-coded, sign and remaining mantissa bits stored raw, for BF16, F16 and
 * F32 chunks with no reference.
 *
 * Why: in a trained bf16 tensor only the exponent carries real redundancy.
 * Fixture `base`: exponent 2.56 bits of 8; the mantissa's top bit given the
 * exponent saves 0.054 bit, the top two 0.067 bit (a Gaussian's density
 * falls across a binade); the previous element's exponent as a context saves
 * nothing. So the token is (exponent - emin, top k mantissa bits), k chosen
 * per chunk by estimated size (k = 2 needs the exponent span x 4 <= 256
 * tokens; small chunks prefer k = 0 for its smaller table): 0.656 of raw.
 *
 * Mantissa bits that are zero in every element of the chunk are dropped (the
 * mode byte holds how many): base-fp32 was trained in bf16 and stored as
 * float32 with all-zero low 16 bits, so it codes like a bf16 tensor, at half
 * its raw ratio.
 *
 * Payload: frame (frame.ts) with mode = t | k << 5, one param: emin.
 */
import { corrupt } from '../entropy/bitio.js';
import { buildModel, type ModelChoice } from '../entropy/model.js';
import { nativeRansArgs, ransDecodeTokens, ransEncode, settleNativeRans } from '../entropy/rans.js';
import type { Codec } from '../types.js';
import { floatFormat, view16, view32, type FloatFormat } from './float.js';
import { readFrame, writeFrame } from './frame.js';
import { allocating, intoAligned } from '../decode-into.js';
import { nativeKernels } from '../kernels.js';

const ORDER1 = new Int32Array([0]);
/** Thrown by the JS unpack and, from its status, by the compiled decoder's caller alike. */
const RAW_BITS_MISMATCH = 'float-exp payload: raw-bits section length does not match';
const GROUP0 = new Uint16Array(1);

function usable(rawLength: number, dtype: string): FloatFormat | undefined {
  const fmt = floatFormat(dtype);
  if (!fmt || rawLength % (fmt.width >>> 3) !== 0) return undefined;
  return fmt;
}

function encodeExp(raw: Uint8Array, fmt: FloatFormat): Uint8Array {
  const W = fmt.width;
  const n = raw.length / (W >>> 3);
  const mant = fmt.mantBits;
  const mmask = (1 << mant) - 1;
  const v: Uint16Array | Uint32Array = W === 16 ? view16(raw) : view32(raw);
  const emask = (1 << fmt.expBits) - 1;
  const K = nativeKernels();
  let orm = 0;
  let emin = emask;
  let emax = 0;
  if (K) {
    const r = new Int32Array(3);
    K.expScan(v, mant, emask, r);
    [orm, emin, emax] = [r[0]!, r[1]!, r[2]!];
  } else {
    for (let i = 0; i < n; i++) {
      const u = v[i]!;
      orm |= u & mmask;
      const e = (u >>> mant) & emask;
      if (e < emin) emin = e;
      if (e > emax) emax = e;
    }
  }
  // common trailing zero bits of the mantissa field
  const t = orm === 0 ? mant : 31 - Math.clz32(orm & -orm);
  const kept = mant - t;
  const span = emax - emin + 1;
  // Candidate k: histogram each, keep the cheapest estimate (entropy + table + raw bits).
  let best: { k: number; model: ModelChoice; bits: number } | undefined;
  // Compiled: one pass for the largest k; a smaller k's histogram is its sums of 2^(kmax-k) neighbours.
  let kmax = 0;
  while (kmax < 2 && kmax < kept && span << (kmax + 1) <= 256) kmax++;
  const histMax = K ? new Uint32Array(span << kmax) : undefined;
  if (K && histMax) K.expHist(v, mant, emask, emin, t, kmax, kept - kmax, histMax);
  for (let k = 0; k <= 2 && k <= kept && span << k <= 256; k++) {
    const S = span << k;
    const hist = new Uint32Array(S);
    const low = kept - k;
    if (histMax) for (let j = 0; j < histMax.length; j++) hist[j >>> (kmax - k)]! += histMax[j]!;
    else
      for (let i = 0; i < n; i++) {
        const u = v[i]!;
        hist[((((u >>> mant) & emask) - emin) << k) | (((u & mmask) >>> t) >>> low)]!++;
      }
    const model = buildModel(hist, 1, S, ORDER1, 1);
    const bits = model.costBits + n * (1 + low);
    if (!best || bits < best.bits) best = { k, model, bits };
  }
  const { k, model } = best!;
  const low = kept - k;
  const lowMask = (1 << low) - 1;
  const rawBits = 1 + low; // <= 24
  const tok = new Uint8Array(n);
  const buf = new Uint8Array(((n * rawBits) >>> 3) + 8);
  let bpos = 0;
  const signShift = W - 1;
  if (K) bpos = K.expPack(v, mant, emask, emin, t, k, low, signShift, tok, buf);
  else {
    let acc = 0;
    let nacc = 0;
    for (let i = 0; i < n; i++) {
      const u = v[i]!;
      const m = (u & mmask) >>> t;
      tok[i] = ((((u >>> mant) & emask) - emin) << k) | (m >>> low);
      // sign in bit 0, then the low mantissa bits
      acc |= ((u >>> signShift) | ((m & lowMask) << 1)) << nacc;
      nacc += rawBits;
      while (nacc >= 8) {
        buf[bpos++] = acc & 0xff;
        acc >>>= 8;
        nacc -= 8;
      }
    }
    if (nacc > 0) buf[bpos++] = acc;
  }
  const rans = ransEncode(tok, null, 0, n, model.model);
  return writeFrame(t | (k << 5), n, model, rans, buf.subarray(0, bpos), [emin]);
}

/** Decode into `out` (the raw length, aligned for the element width: see floatExpCodec.decodeInto). */
function decodeExp(payload: Uint8Array, out: Uint8Array, fmt: FloatFormat): void {
  const W = fmt.width;
  const n = out.length / (W >>> 3);
  if (n === 0) {
    if (payload.length !== 1 || payload[0] !== 0xff) corrupt('float-exp payload: bad empty-chunk payload');
    return;
  }
  const mant = fmt.mantBits;
  const emask = (1 << fmt.expBits) - 1;
  const f = readFrame(payload, n, 'float-exp payload', (mode) => {
    const t = mode & 31;
    const k = mode >>> 5;
    if (t > mant || k > 2 || k > mant - t) return undefined;
    return { R: 1, S: 256, order: ORDER1, params: 1, paramMax: emask };
  });
  const t = f.mode & 31;
  const k = f.mode >>> 5;
  const emin = f.params[0]!;
  const low = mant - t - k;
  const rawBits = 1 + low;
  const rbMask = (1 << rawBits) - 1;
  const kMask = (1 << k) - 1;
  // Tokens whose exponent would overflow the field mean a damaged payload.
  const S = f.model.alphabet;
  for (let s = ((emask - emin + 1) << k); s < S; s++) if (f.model.freq[s]! > 0) corrupt('float-exp payload: exponent out of range');
  const extra = f.extra;
  const o: Uint16Array | Uint32Array = W === 16 ? new Uint16Array(out.buffer, out.byteOffset, n) : new Uint32Array(out.buffer, out.byteOffset, n);
  const K = nativeKernels();
  if (K) {
    // tokens and unpack in one compiled pass; the same checks, in the same order, as below
    const a = nativeRansArgs(f.rans, f.tables, GROUP0);
    settleNativeRans(f.rans, a.states, K.expDecode(f.rans.buf, f.rans.pos, f.rans.end, a.states, f.tables.tab, f.tables.prec, a.base, null, 0, n, extra, o, mant, emin, t, k, low));
    f.rans.finish('float-exp payload');
    if (a.states[4] !== 0) corrupt(RAW_BITS_MISMATCH);
    return;
  }
  const tok = new Uint8Array(n);
  ransDecodeTokens(f.rans, f.tables, GROUP0, null, 0, n, tok);
  f.rans.finish('float-exp payload');
  const elen = extra.length;
  let epos = 0;
  let acc = 0;
  let nacc = 0;
  const signShift = W - 1;
  for (let i = 0; i < n; i++) {
    while (nacc < rawBits) {
      acc |= (epos < elen ? extra[epos]! : 0) << nacc;
      epos++;
      nacc += 8;
    }
    const r = acc & rbMask;
    acc >>>= rawBits;
    nacc -= rawBits;
    const tk = tok[i]!;
    o[i] = ((r & 1) << signShift) | (((tk >>> k) + emin) << mant) | ((((tk & kMask) << low) | (r >>> 1)) << t);
  }
  if (epos !== elen) corrupt(RAW_BITS_MISMATCH);
}

export const floatExpCodec: Codec = {
  id: 10,
  name: 'float-exp',
  refCount: 0,
  accepts: (rawLength, ctx) => usable(rawLength, ctx.dtype) !== undefined,
  encode(raw, ctx) {
    const fmt = usable(raw.length, ctx.dtype);
    if (!fmt) throw new Error('float-exp: chunk not accepted');
    if (raw.length === 0) return new Uint8Array([0xff]);
    return encodeExp(raw, fmt);
  },
  decodeInto(payload, ctx, out) {
    const fmt = usable(out.length, ctx.dtype);
    if (!fmt) corrupt('float-exp payload: chunk does not fit this codec');
    intoAligned(out, 4, (o) => decodeExp(payload, o, fmt));
  },
  decode: (payload, rawLength, ctx) => allocating(floatExpCodec.decodeInto)(payload, rawLength, ctx),
};
