/**
 * Low-rank delta codec (id 13, one reference): for chunks whose difference
 * from the reference is a low-rank matrix plus rounding, e.g. a LoRA adapter
 * merged into the weights. The payload carries the row width, the rank and
 * the factors (bf16 for 16-bit chunks, f32 for f32 chunks, coded by
 * float-exp); the values are then predicted as round(ref + B·A) and the
 * residual coded exactly like float-delta (delta-codec.ts).
 *
 * Measured on the fixture's code-lora (rank-8 LoRA on q_proj/v_proj):
 * float-delta 41.6 KB for the four changed tensors, low-rank ~16 KB
 * (residual ~1 bit/value plus bf16 factors). Rank 4 or 12-16 cost much more
 * than 8 (8.6/6.1/8.3/10.3 KB for q_proj at ranks 4/8/12/16), so the rank is
 * chosen by estimated size (chooseRank), not by energy. Full fine-tunes have
 * rank 1-2 structure worth coding too: code-full 0.2873 -> 0.2527 of raw,
 * prose-step0025 0.2001 -> 0.1885, code-lastlayer 0.0903 -> 0.0811.
 *
 * Cost: detection is ~0.1 ms per candidate width; when structure is found,
 * factorising and choosing the rank make encoding ~5-10x slower than
 * float-delta and decoding ~2-3x slower (the prediction is n x rank
 * multiply-adds).
 *
 * When the chunk is not low-rank the encoder answers with a raw escape
 * (mode 0xfe + the raw bytes): valid, but never smaller than raw, so the
 * registry's smallest-payload rule discards it at no extra encoding cost.
 *
 * Payload: u8 mode (0x40) | varint cols | varint rank | block(factors as
 * float-exp payload) | float-delta frame against the prediction.
 */
import { ByteReader, ByteWriter, corrupt } from '../entropy/bitio.js';
import type { ChunkContext, Codec } from '../types.js';
import { decodePredicted, encodePredicted, refsUsable } from './delta-codec.js';
import { allocating, intoAligned } from '../decode-into.js';
import { floatExpCodec } from './exp-codec.js';
import { f32ToBf16, f32ToF16, predictionBits, view16, view32, type FloatFormat } from './float.js';
import { LOG_ONE, entropyCost } from '../entropy/ilog.js';
import { detectLowRank, factorise } from './lowrank.js';

const MODE_LOWRANK = 0x40;
const MODE_RAW = 0xfe;
/** Chunks below this are never coded low-rank; detection uses min(MAX_RANK, 16) components (lowrank-gate.ts reads both). */
export const MIN_ELEMENTS = 1024;
export const MAX_RANK = 64;

const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);

/** 2^(e-25) for f16 exponent fields e = 1..30 (index 0: 2^-24 for subnormals), built by exact halving. */
const POW2_F16 = new Float64Array(31);
{
  let v = 1;
  for (let k = 0; k < 25; k++) v /= 2; // 2^-25
  for (let e = 1; e <= 30; e++) POW2_F16[e] = v * (1 << (e - 1)); // exact: a power of two times an integer
  POW2_F16[0] = v * 2;
}

/** Values of float bit patterns as doubles (exact). */
function valuesOf(bits: Uint16Array | Uint32Array, fmt: FloatFormat, out = new Float64Array(bits.length)): Float64Array {
  const n = bits.length;
  if (fmt.dtype !== 'F16') {
    // batch: bit patterns into a float32 buffer, then widen (two simple loops V8 compiles well)
    const u = new Uint32Array(n);
    if (fmt.dtype === 'F32') u.set(bits);
    else for (let i = 0; i < n; i++) u[i] = bits[i]! << 16;
    out.set(new Float32Array(u.buffer));
    return out;
  }
  for (let i = 0; i < n; i++) {
    // F16: the exact widening
    const h = bits[i]!;
    const e = (h >>> 10) & 0x1f;
    const m = h & 0x3ff;
    const s = h & 0x8000 ? -1 : 1;
    out[i] = e === 0 ? s * m * POW2_F16[0]! : e === 31 ? (m ? NaN : s * Infinity) : s * (1024 + m) * POW2_F16[e]!;
  }
  return out;
}

/** Round a double to the chunk's format (via float32, deterministic; only a prediction, so double rounding is harmless). */
function roundTo(v: number, fmt: FloatFormat): number {
  f32buf[0] = v;
  const u = u32buf[0]!;
  return fmt.dtype === 'F32' ? u : fmt.dtype === 'BF16' ? f32ToBf16(u) : f32ToF16(u);
}

/** Prediction p + B·A in the chunk's format; non-finite reference values are kept as they are. */
function predict(p: Uint16Array | Uint32Array, fmt: FloatFormat, cols: number, rank: number, B: Float64Array, A: Float64Array): Uint16Array | Uint32Array {
  const n = p.length;
  const rows = n / cols;
  const out = fmt.width === 16 ? new Uint16Array(n) : new Uint32Array(n);
  const acc = new Float64Array(cols);
  const r32 = new Float32Array(cols); // rounding to float32 happens on the store
  const u32 = new Uint32Array(r32.buffer);
  for (let i = 0; i < rows; i++) {
    acc.fill(0);
    for (let l = 0; l < rank; l++) {
      const b = B[i * rank + l]!;
      if (b === 0) continue;
      const ao = l * cols;
      for (let j = 0; j < cols; j++) acc[j]! += b * A[ao + j]!;
    }
    const o = i * cols;
    roundRow(p.subarray(o, o + cols), fmt, acc, r32, u32, out.subarray(o, o + cols));
  }
  return out;
}

/**
 * out[j] = p[j] + acc[j] rounded to the format (non-finite p kept as is),
 * in batch: values to doubles, add, store to float32 (IEEE rounding), then
 * the integer RNE narrowing; ~3x faster than a per-element helper.
 */
function roundRow(p: Uint16Array | Uint32Array, fmt: FloatFormat, acc: Float64Array, r32: Float32Array, u32: Uint32Array, out: Uint16Array | Uint32Array): void {
  const m = p.length;
  if (fmt.dtype === 'BF16') {
    for (let j = 0; j < m; j++) u32[j] = p[j]! << 16;
    for (let j = 0; j < m; j++) {
      const v = r32[j]!;
      r32[j] = v - v === 0 ? v + acc[j]! : v; // v - v is NaN for Inf and NaN
    }
    for (let j = 0; j < m; j++) {
      const u = u32[j]!;
      out[j] = (u & 0x7f800000) === 0x7f800000 && (u & 0x7fffff) !== 0 ? ((u >>> 16) | 0x40) & 0xffff : ((u + 0x7fff + ((u >>> 16) & 1)) / 65536) & 0xffff;
    }
    return;
  }
  const pv = valuesOf(p, fmt);
  for (let j = 0; j < m; j++) {
    const v = pv[j]!;
    out[j] = v - v === 0 ? roundTo(v + acc[j]!, fmt) : p[j]!;
  }
}

/** Factors quantised to the storage format and back to doubles; also the raw factor bytes. */
function quantise(vals: Float64Array, f32: boolean): { bytes: Uint8Array; q: Float64Array } {
  const n = vals.length;
  const q = new Float64Array(n);
  if (f32) {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) ((a[i] = vals[i]!), (q[i] = a[i]!));
    return { bytes: new Uint8Array(a.buffer), q };
  }
  const a = new Uint16Array(n);
  for (let i = 0; i < n; i++) {
    f32buf[0] = vals[i]!;
    a[i] = f32ToBf16(u32buf[0]!);
    u32buf[0] = a[i]! << 16;
    q[i] = f32buf[0]!;
  }
  return { bytes: new Uint8Array(a.buffer), q };
}

function dequantise(bytes: Uint8Array, f32: boolean): Float64Array {
  if (f32) return Float64Array.from(new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length >>> 2));
  const a = new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.length >>> 1);
  const q = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) {
    u32buf[0] = a[i]! << 16;
    q[i] = f32buf[0]!;
  }
  return q;
}

/** The ulp of a value per exponent field (0 for Inf/NaN), exact powers of two built by halving/doubling. */
export function ulpByExponent(fmt: FloatFormat): Float64Array {
  const E = 1 << fmt.expBits;
  const bias = (E >>> 1) - 1;
  const t = new Float64Array(E);
  for (let e = 0; e < E - 1; e++) {
    let ulp = 1;
    const k = Math.max(e, 1) - bias - fmt.mantBits; // ulp = 2^k
    for (let j = 0; j < -k; j++) ulp /= 2;
    for (let j = 0; j < k; j++) ulp *= 2;
    t[e] = ulp;
  }
  return t;
}

function rawEscape(raw: Uint8Array): Uint8Array {
  const out = new Uint8Array(raw.length + 1);
  out[0] = MODE_RAW;
  out.set(raw, 1);
  return out;
}

function encodeLowRank(raw: Uint8Array, ctx: ChunkContext, fmt: FloatFormat): Uint8Array {
  const n = raw.length / (fmt.width >>> 3);
  if (n < MIN_ELEMENTS) return rawEscape(raw);
  const x = fmt.width === 16 ? view16(raw) : view32(raw);
  const p = predictionBits(ctx.refs[0]!.bytes, ctx.refs[0]!.dtype, fmt, n);
  const D = valuesOf(x, fmt);
  {
    const pv = valuesOf(p, fmt);
    for (let i = 0; i < n; i++) {
      const d = D[i]! - pv[i]!;
      D[i] = d - d === 0 ? d : 0; // non-finite deltas (NaN, Inf) carry no structure
    }
  }
  const table = ulpByExponent(fmt);
  const emask = (1 << fmt.expBits) - 1;
  const shift = fmt.mantBits;
  const shape = detectLowRank(D, (i) => table[(p[i]! >>> shift) & emask]!, n, MAX_RANK);
  if (!shape) return rawEscape(raw);
  const { cols } = shape;
  const rows = n / cols;
  const f32 = fmt.dtype === 'F32';
  // A few components beyond the detected rank, so the size-based choice below can go higher.
  // (the held-out detection tends to under-count: 5-7 for code-lora's rank 8)
  const k = Math.min(MAX_RANK, Math.ceil(1.5 * shape.rank) + 3, rows - 1, cols - 1);
  const F = factorise(D, rows, cols, k);
  // Balance each component between B and A by a power of two, then quantise to the storage format.
  for (let c = 0; c < k; c++) {
    let mu = 0;
    let mv = 0;
    for (let i = 0; i < rows; i++) mu = Math.max(mu, Math.abs(F.B[i * k + c]!));
    for (let j = 0; j < cols; j++) mv = Math.max(mv, Math.abs(F.A[c * cols + j]!));
    if (mu === 0 || mv === 0) continue;
    let s = 1;
    while (mu * s * s < mv) s *= 2;
    while (mu * s * s > 4 * mv) s *= 0.5;
    for (let i = 0; i < rows; i++) F.B[i * k + c]! *= s;
    for (let j = 0; j < cols; j++) F.A[c * cols + j]! /= s;
  }
  const Bq = quantise(F.B, f32).q;
  const Aq = quantise(F.A, f32).q;
  const rank = chooseRank(x, p, fmt, rows, cols, k, Bq, Aq);
  if (rank === 0) return rawEscape(raw);
  // The first `rank` components: B as rows x rank, A as rank x cols.
  const fac = new Float64Array((rows + cols) * rank);
  for (let i = 0; i < rows; i++) for (let l = 0; l < rank; l++) fac[i * rank + l] = Bq[i * k + l]!;
  fac.set(Aq.subarray(0, rank * cols), rows * rank);
  const { bytes, q } = quantise(fac, f32); // exact: already representable
  const pred = predict(p, fmt, cols, rank, q.subarray(0, rows * rank), q.subarray(rows * rank));
  const w = new ByteWriter();
  w.u8(MODE_LOWRANK);
  w.varint(cols);
  w.varint(rank);
  w.block(floatExpCodec.encode(bytes, { dtype: f32 ? 'F32' : 'BF16', refs: [] }, 'max'));
  w.bytes(encodePredicted(raw, fmt, pred, null));
  return w.finish();
}

/**
 * The rank (0..k) with the smallest estimated size: on a sample of rows
 * (every step-th, ~32K values), the residual tokens' entropy under the
 * codec's exponent contexts plus their raw bits, scaled to the chunk, plus
 * ~10.5 bits per factor value (bf16 factors code at ~0.66 of raw). Rank 0
 * means plain float-delta is at least as good.
 */
function chooseRank(x: Uint16Array | Uint32Array, p: Uint16Array | Uint32Array, fmt: FloatFormat, rows: number, cols: number, k: number, Bq: Float64Array, Aq: Float64Array): number {
  // ~32K sampled values (at least 16 rows): enough for the entropy estimate
  const step = Math.max(1, Math.floor(rows / Math.max(16, Math.ceil(32768 / cols))));
  const S = 72;
  const R1 = 2 << fmt.expBits;
  const hist = Array.from({ length: k + 1 }, () => new Uint32Array(R1 * S));
  const extra = new Float64Array(k + 1);
  const pv = new Float64Array(cols);
  const acc = new Float64Array(cols);
  let sampled = 0;
  const W = fmt.width;
  for (let i = 0; i < rows; i += step) {
    const o = i * cols;
    valuesOf(p.subarray(o, o + cols), fmt, pv);
    acc.fill(0);
    for (let r = 0; r <= k; r++) {
      if (r > 0) {
        const b = Bq[i * k + r - 1]!;
        const ao = (r - 1) * cols;
        if (b !== 0) for (let j = 0; j < cols; j++) acc[j]! += b * Aq[ao + j]!;
      }
      const h = hist[r]!;
      for (let j = 0; j < cols; j++) {
        const v = pv[j]!;
        const pb = Number.isFinite(v) ? roundTo(v + acc[j]!, fmt) : p[o + j]!;
        const xb = x[o + j]!;
        let zz: number;
        if (W === 16) {
          const d = (((xb ^ (((xb << 16) >> 31) & 0x7fff)) - (pb ^ (((pb << 16) >> 31) & 0x7fff))) << 16) >> 16;
          zz = ((d << 1) ^ (d >> 31)) & 0xffff;
        } else {
          const d = ((xb ^ ((xb >> 31) & 0x7fffffff)) - (pb ^ ((pb >> 31) & 0x7fffffff))) | 0;
          zz = ((d << 1) ^ (d >> 31)) >>> 0;
        }
        let t = zz;
        if (zz >= 16) {
          const bl = 32 - Math.clz32(zz);
          t = 16 + ((bl - 5) << 1) + ((zz >>> (bl - 2)) & 1);
          extra[r]! += bl - 2;
        }
        h[(pb >>> fmt.mantBits) * S + t]!++;
      }
    }
    sampled += cols;
  }
  let best = 0;
  let bestBits = Infinity;
  for (let r = 0; r <= k; r++) {
    let bits = 0;
    for (let c = 0; c < R1; c++) bits += entropyCost(hist[r]!, c * S, S);
    const est = ((bits / LOG_ONE + extra[r]!) * (rows * cols)) / sampled + (rows + cols) * r * (W === 16 ? 10.5 : 21);
    if (est < bestBits) {
      bestBits = est;
      best = r;
    }
  }
  return best;
}

/** Decode into `out` (the raw length, 4-byte aligned: see floatLowRankCodec.decodeInto). */
function decodeLowRank(payload: Uint8Array, ctx: ChunkContext, out: Uint8Array): void {
  const what = 'float-lowrank payload';
  const rawLength = out.length;
  const fmt = refsUsable(rawLength, ctx, 1);
  if (!fmt) corrupt(`${what}: chunk and reference do not fit this codec`);
  const n = rawLength / (fmt.width >>> 3);
  if (payload[0] === MODE_RAW) {
    if (payload.length !== rawLength + 1) corrupt(`${what}: raw escape of the wrong length`);
    out.set(payload.subarray(1));
    return;
  }
  const r = new ByteReader(payload);
  if (r.u8() !== MODE_LOWRANK) corrupt(`${what}: unknown mode`);
  const cols = r.varint(n);
  const rank = r.varint(MAX_RANK);
  if (cols === 0 || rank === 0 || n % cols !== 0) corrupt(`${what}: bad shape`);
  const rows = n / cols;
  const f32 = fmt.dtype === 'F32';
  const fbytes = (rows + cols) * rank * (f32 ? 4 : 2);
  // the factors are at most a quarter of the chunk (encoder rule), which bounds this allocation
  if (fbytes > rawLength) corrupt(`${what}: factors larger than the chunk`);
  const fac = dequantise(floatExpCodec.decode(r.block(), fbytes, { dtype: f32 ? 'F32' : 'BF16', refs: [] }), f32);
  const p = predictionBits(ctx.refs[0]!.bytes, ctx.refs[0]!.dtype, fmt, n);
  const pred = predict(p, fmt, cols, rank, fac.subarray(0, rows * rank), fac.subarray(rows * rank));
  decodePredicted(payload.subarray(r.pos), fmt, n, pred, null, out, what);
}

export const floatLowRankCodec: Codec = {
  id: 13,
  name: 'float-lowrank',
  refCount: 1,
  accepts: (rawLength, ctx) => refsUsable(rawLength, ctx, 1) !== undefined,
  encode(raw, ctx, level) {
    const fmt = refsUsable(raw.length, ctx, 1);
    if (!fmt) throw new Error('float-lowrank: chunk not accepted');
    // 'fast' skips the factorisation: the raw escape is discarded by the registry
    return level === 'fast' ? rawEscape(raw) : encodeLowRank(raw, ctx, fmt);
  },
  decodeInto(payload, ctx, out) {
    if (payload.length === 0) corrupt('float-lowrank payload: empty');
    intoAligned(out, 4, (o) => decodeLowRank(payload, ctx, o));
  },
  decode: (payload, rawLength, ctx) => allocating(floatLowRankCodec.decodeInto)(payload, rawLength, ctx),
};
