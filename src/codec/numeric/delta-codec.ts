/**
 * Numeric delta codecs (ids 11 and 12): a float chunk against one reference
 * (its parent) or two (parent and grandparent, "trajectory"), in any pairing
 * of BF16, F16 and F32. The reference is first converted to the chunk's
 * dtype (exact widening, or round-to-nearest-even narrowing), so a bf16
 * chunk that is the RNE rounding of its float32 parent codes as all-zero
 * deltas (~0 bytes), and a float32 chunk against its own bf16 rounding costs
 * only the low 16 bits.
 *
 * See delta-core.ts for the model and the measurements behind it.
 */
import { ByteReader, ByteWriter, corrupt } from '../entropy/bitio.js';
import { buildModel } from '../entropy/model.js';
import { nativeRansArgs, ransDecodeTokens, ransEncode, settleNativeRans } from '../entropy/rans.js';
import { nativeKernels } from '../kernels.js';
import type { ChunkContext, Codec } from '../types.js';
import { allocating, intoAligned } from '../decode-into.js';
import { EXTRA_MISMATCH, EXTRA_SHORT, TRAJ_CLASSES, contexts16, contexts32, rebuild16, rebuild32, tokenise16, tokenise32 } from './delta-core.js';
import { floatFormat, predictionBits, view16, view32, type FloatFormat } from './float.js';
import { alphabetFor, readFrame, writeFrame } from './frame.js';
import { diffPlanes16, diffPlanes32, undiffPlanes16, undiffPlanes32, zstdCompress, zstdDecompressInto } from './zplanes.js';

/** Context orders: exponent-major, sign-minor (so a merge first joins +/- of one exponent), then trajectory class. */
const orderCache = new Map<string, Int32Array>();
function contextOrder(fmt: FloatFormat, traj: boolean): Int32Array {
  const key = `${fmt.dtype}/${traj}`;
  let o = orderCache.get(key);
  if (!o) {
    const E = 1 << fmt.expBits;
    const R1 = 2 * E;
    const classes = traj ? TRAJ_CLASSES : 1;
    o = new Int32Array(classes * R1);
    let j = 0;
    for (let c = 0; c < classes; c++)
      for (let e = 0; e < E; e++)
        for (let s = 0; s < 2; s++) o[j++] = c * R1 + ((s << fmt.expBits) | e);
    orderCache.set(key, o);
  }
  return o;
}

const MODE_EXP = 0; // context: prediction sign+exponent
const MODE_TRAJ = 1; // context: prediction sign+exponent x trajectory class (needs refs[1])
const MODE_ZSTD = 2; // 'fast': zigzag difference byte planes, zstd -1 each (zplanes.ts)

function encodeFast(raw: Uint8Array, ctx: ChunkContext, fmt: FloatFormat): Uint8Array {
  const n = raw.length / (fmt.width >>> 3);
  const p = predictionBits(ctx.refs[0]!.bytes, ctx.refs[0]!.dtype, fmt, n);
  const planes = fmt.width === 16 ? diffPlanes16(view16(raw), p as Uint16Array) : diffPlanes32(view32(raw), p as Uint32Array);
  const z = planes.map((pl) => zstdCompress(pl));
  const w = new ByteWriter(z.reduce((a, b) => a + b.length + 5, 8));
  w.u8(MODE_ZSTD);
  w.varint(n);
  for (const b of z) w.block(b);
  return w.finish();
}

/**
 * Reused decompression buffer for the byte planes (one per thread: JS runs a
 * module instance per worker), sparing a fresh multi-megabyte allocation per
 * chunk (measured 449 -> 457 MB/s, within this machine's noise); the output
 * is still a fresh array, never this one.
 */
let scratchBuf = new Uint8Array(0);
function planeScratch(size: number): Uint8Array {
  if (scratchBuf.length < size) scratchBuf = new Uint8Array(size);
  return scratchBuf;
}

function decodeFast(payload: Uint8Array, n: number, ctx: ChunkContext, fmt: FloatFormat, out: Uint8Array, what: string): void {
  const r = new ByteReader(payload, 1);
  if (r.varint() !== n) corrupt(`${what}: element count does not match the chunk`);
  const planes: Uint8Array[] = [];
  const stride = (n + 3) & ~3; // planes 4-byte aligned for the SWAR loops
  const scratch = planeScratch(stride * (fmt.width >>> 3));
  for (let k = 0; k < fmt.width >>> 3; k++) {
    const pl = scratch.subarray(k * stride, k * stride + n);
    zstdDecompressInto(pl, r.block(), `${what} plane ${k}`);
    planes.push(pl);
  }
  if (r.remaining !== 0) corrupt(`${what}: trailing bytes`);
  const p = predictionBits(ctx.refs[0]!.bytes, ctx.refs[0]!.dtype, fmt, n);
  if (fmt.width === 16) undiffPlanes16(new Uint16Array(out.buffer, out.byteOffset, n), p as Uint16Array, planes[0]!, planes[1]!);
  else undiffPlanes32(new Uint32Array(out.buffer, out.byteOffset, n), p as Uint32Array, planes);
}

export function refsUsable(rawLength: number, ctx: ChunkContext, count: number): FloatFormat | undefined {
  const fmt = floatFormat(ctx.dtype);
  if (!fmt) return undefined;
  const eb = fmt.width >>> 3;
  if (rawLength % eb !== 0 || ctx.refs.length < count) return undefined;
  const n = rawLength / eb;
  for (let k = 0; k < count; k++) {
    const r = ctx.refs[k]!;
    const rf = floatFormat(r.dtype);
    if (!rf || r.bytes.length !== n * (rf.width >>> 3)) return undefined;
  }
  return fmt;
}

/**
 * rANS frame of a chunk against a prediction p (bits in the chunk's format)
 * and, for trajectory contexts, a second reference pp. Exported for codecs
 * that build their own prediction (low-rank).
 */
export function encodePredicted(
  raw: Uint8Array,
  fmt: FloatFormat,
  p: Uint16Array | Uint32Array,
  pp: Uint16Array | Uint32Array | null,
): Uint8Array {
  const n = raw.length / (fmt.width >>> 3);
  const traj = pp !== null;
  const R1 = 2 << fmt.expBits;
  const S = alphabetFor(fmt.width);
  const order = contextOrder(fmt, traj);
  const R = order.length;
  let ts;
  if (fmt.width === 16) {
    const c = pp ? contexts16(p as Uint16Array, pp as Uint16Array, fmt.mantBits, R1) : null;
    ts = tokenise16(view16(raw), p as Uint16Array, c, fmt.mantBits, R, S);
  } else {
    const c = contexts32(p as Uint32Array, pp as Uint32Array | null, fmt.mantBits, R1);
    ts = tokenise32(view32(raw), p as Uint32Array, c, R, S);
  }
  const model = buildModel(ts.hist, R, S, order);
  const rans = ts.ctx ? ransEncode(ts.tok, ts.ctx, 0, n, model.model) : ransEncode(ts.tok, p as Uint16Array, fmt.mantBits, n, model.model);
  return writeFrame(traj ? MODE_TRAJ : MODE_EXP, n, model, rans, ts.extra);
}

/** Decode a frame from encodePredicted into out (rawLength bytes); pp is needed only for trajectory frames. */
export function decodePredicted(
  payload: Uint8Array,
  fmt: FloatFormat,
  n: number,
  p: Uint16Array | Uint32Array,
  ppOf: (() => Uint16Array | Uint32Array) | null,
  out: Uint8Array,
  what: string,
): void {
  const S = alphabetFor(fmt.width);
  const R1 = 2 << fmt.expBits;
  const f = readFrame(payload, n, what, (mode) => {
    if (mode === MODE_EXP) return { R: R1, S, order: contextOrder(fmt, false) };
    if (mode === MODE_TRAJ && ppOf) return { R: R1 * TRAJ_CLASSES, S, order: contextOrder(fmt, true) };
    return undefined;
  });
  const pp = f.mode === MODE_TRAJ ? ppOf!() : null;
  if (fmt.width === 16) {
    const c = pp ? contexts16(p as Uint16Array, pp as Uint16Array, fmt.mantBits, R1) : null;
    const K = nativeKernels();
    if (K) {
      // tokens and rebuild in one compiled pass; the same checks, in the same order, as below
      const a = nativeRansArgs(f.rans, f.tables, f.model.groupOf);
      const o = new Uint16Array(out.buffer, out.byteOffset, n);
      const pos = K.delta16Decode(f.rans.buf, f.rans.pos, f.rans.end, a.states, f.tables.tab, f.tables.prec, a.base, c ?? (p as Uint16Array), c ? 0 : fmt.mantBits, n, f.extra, p as Uint16Array, o);
      settleNativeRans(f.rans, a.states, pos);
      f.rans.finish(what);
      if (a.states[4] === 1) corrupt(EXTRA_SHORT);
      if (a.states[4] === 2) corrupt(EXTRA_MISMATCH);
      return;
    }
    const tok = new Uint8Array(n);
    ransDecodeTokens(f.rans, f.tables, f.model.groupOf, c ?? (p as Uint16Array), c ? 0 : fmt.mantBits, n, tok);
    f.rans.finish(what);
    rebuild16(new Uint16Array(out.buffer, out.byteOffset, n), tok, p as Uint16Array, f.extra);
  } else {
    const c = contexts32(p as Uint32Array, pp as Uint32Array | null, fmt.mantBits, R1);
    const K = nativeKernels();
    if (K) {
      const a = nativeRansArgs(f.rans, f.tables, f.model.groupOf);
      const o = new Uint32Array(out.buffer, out.byteOffset, n);
      settleNativeRans(f.rans, a.states, K.delta32Decode(f.rans.buf, f.rans.pos, f.rans.end, a.states, f.tables.tab, f.tables.prec, a.base, c, 0, n, f.extra, p as Uint32Array, o));
      f.rans.finish(what);
      if (a.states[4] !== 0) corrupt(EXTRA_MISMATCH);
      return;
    }
    const tok = new Uint8Array(n);
    ransDecodeTokens(f.rans, f.tables, f.model.groupOf, c, 0, n, tok);
    f.rans.finish(what);
    rebuild32(new Uint32Array(out.buffer, out.byteOffset, n), tok, p as Uint32Array, f.extra);
  }
}

function encodeDelta(raw: Uint8Array, ctx: ChunkContext, fmt: FloatFormat, traj: boolean): Uint8Array {
  const n = raw.length / (fmt.width >>> 3);
  const p = predictionBits(ctx.refs[0]!.bytes, ctx.refs[0]!.dtype, fmt, n);
  const pp = traj ? predictionBits(ctx.refs[1]!.bytes, ctx.refs[1]!.dtype, fmt, n) : null;
  return encodePredicted(raw, fmt, p, pp);
}

/** Decode into `out` (the raw length); the rebuild loops write through 16/32-bit views, so `out` is used in place when 4-byte aligned. */
function decodeDeltaInto(payload: Uint8Array, ctx: ChunkContext, out: Uint8Array, refCount: number, what: string): void {
  const rawLength = out.length;
  const fmt = refsUsable(rawLength, ctx, refCount);
  if (!fmt) corrupt(`${what}: chunk and references do not fit this codec`);
  const n = rawLength / (fmt.width >>> 3);
  if (n === 0) {
    if (payload.length !== 1 || payload[0] !== 0xff) corrupt(`${what}: bad empty-chunk payload`);
    return;
  }
  intoAligned(out, 4, (o) => {
    if (payload[0] === MODE_ZSTD) {
      decodeFast(payload, n, ctx, fmt, o, what);
      return;
    }
    const p = predictionBits(ctx.refs[0]!.bytes, ctx.refs[0]!.dtype, fmt, n);
    const ppOf = refCount >= 2 ? () => predictionBits(ctx.refs[1]!.bytes, ctx.refs[1]!.dtype, fmt, n) : null;
    decodePredicted(payload, fmt, n, p, ppOf, o, what);
  });
}

const EMPTY = new Uint8Array([0xff]);

export const floatDeltaCodec: Codec = {
  id: 11,
  name: 'float-delta',
  refCount: 1,
  accepts: (rawLength, ctx) => refsUsable(rawLength, ctx, 1) !== undefined,
  encode(raw, ctx, level) {
    const fmt = refsUsable(raw.length, ctx, 1);
    if (!fmt) throw new Error('float-delta: chunk not accepted');
    if (raw.length === 0) return EMPTY;
    return level === 'fast' ? encodeFast(raw, ctx, fmt) : encodeDelta(raw, ctx, fmt, false);
  },
  decodeInto: (payload, ctx, out) => decodeDeltaInto(payload, ctx, out, 1, 'float-delta payload'),
  decode: (payload, rawLength, ctx) => allocating(floatDeltaCodec.decodeInto)(payload, rawLength, ctx),
};

/**
 * Two references: refs[0] the parent (the prediction), refs[1] an earlier
 * checkpoint on the same trajectory, whose difference to the parent selects
 * the context. Trajectory helps along a training chain, not for early, noisy
 * steps; the registry tries float-delta on the same chunk and keeps the
 * smaller, so this codec codes the trajectory model only ('fast': the same
 * zstd planes as float-delta). Its decoder also reads parent-only frames.
 */
export const floatTrajCodec: Codec = {
  id: 12,
  name: 'float-traj',
  refCount: 2,
  accepts: (rawLength, ctx) => refsUsable(rawLength, ctx, 2) !== undefined,
  encode(raw, ctx, level) {
    const fmt = refsUsable(raw.length, ctx, 2);
    if (!fmt) throw new Error('float-traj: chunk not accepted');
    if (raw.length === 0) return EMPTY;
    if (level === 'fast') return encodeFast(raw, ctx, fmt);
    return encodeDelta(raw, ctx, fmt, true);
  },
  decodeInto: (payload, ctx, out) => decodeDeltaInto(payload, ctx, out, 2, 'float-traj payload'),
  decode: (payload, rawLength, ctx) => allocating(floatTrajCodec.decodeInto)(payload, rawLength, ctx),
};
