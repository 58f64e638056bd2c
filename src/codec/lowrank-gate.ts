/**
 * Whether float-lowrank (numeric/lowrank-codec.ts) can find structure in a
 * chunk, answered without building its whole delta.
 *
 * The codec computes the delta D = value(chunk) - value(prediction) for all
 * n elements (a 16 MB Float64Array per 2M-element chunk, ~40 ms) and then
 * runs detectLowRank, which reads only a few thousand entries of it: for
 * every candidate row width, a 24x48 and a 48x64 grid of (row, column)
 * pairs (lowrank.ts heldOutGain). When detection finds nothing the codec
 * answers with a raw escape that can never win, so on chunks without
 * structure (every full fine-tune chunk of the synthetic bench) its whole
 * cost is the delta it built for nothing.
 *
 * This gate fills exactly the entries those grids read, in the same
 * arithmetic, grid by grid as detectLowRank asks for them (its `prepare`
 * hook: stage 2's grids only for the widths stage 1 picked), and calls the
 * same detectLowRank: the answer is the codec's own, at ~1% of the cost. Should lowrank.ts ever read other entries, they
 * read as 0 here and the gate only errs in what it lets through or holds
 * back (ratio, never correctness: the codec still runs its own detection
 * on every chunk it is given); test/codec-search.test.ts checks the gate
 * against the codec on the fixture family.
 */
import { detectLowRank } from './numeric/lowrank.js';
import { MAX_RANK, MIN_ELEMENTS, ulpByExponent } from './numeric/lowrank-codec.js';
import { f16ToF32, floatFormat, predictionBits, view16, view32, type FloatFormat } from './numeric/float.js';
import type { ChunkContext } from './types.js';


/**
 * The delta array handed to detectLowRank, reused between chunks (one per
 * thread; a fresh 16 MB array per 2M-element chunk is pages to fault in
 * for a few thousand entries). All zeros between calls: the entries a call
 * fills are cleared before it returns.
 */
let scratch = new Float64Array(0);

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** An element's value as a double (exact), from its bits in format fmt. */
function valueOf(bits: number, fmt: FloatFormat): number {
  u32[0] = fmt.dtype === 'BF16' ? bits << 16 : fmt.dtype === 'F16' ? f16ToF32(bits) : bits;
  return f32[0]!;
}


/**
 * True when float-lowrank's detection finds a low-rank shape in this chunk
 * (it may still code it as a raw escape if no rank pays once quantised);
 * false when the codec would certainly answer with a raw escape.
 */
export function lowRankPossible(raw: Uint8Array, ctx: ChunkContext): boolean {
  const fmt = floatFormat(ctx.dtype);
  const ref = ctx.refs[0];
  if (!fmt || !ref) return false;
  const n = raw.length / (fmt.width >>> 3);
  if (!Number.isInteger(n) || n < MIN_ELEMENTS) return false;
  const x = fmt.width === 16 ? view16(raw) : view32(raw);
  const p = predictionBits(ref.bytes, ref.dtype, fmt, n);
  if (scratch.length < n) scratch = new Float64Array(n);
  const D = scratch;
  const fill = (k: number): void => {
    const d = valueOf(x[k]!, fmt) - valueOf(p[k]!, fmt);
    D[k] = d - d === 0 ? d : 0; // as the codec: non-finite deltas carry no structure
  };
  const clear = (k: number): void => {
    D[k] = 0;
  };
  const table = ulpByExponent(fmt);
  const emask = (1 << fmt.expBits) - 1;
  // Only the grids detection asks for are filled, when it asks: stage 2 runs for at most two widths, and
  // on a chunk without structure for none (filling every grid of both stages up front was ~40% of the gate).
  const filled: [number, number, number][] = [];
  try {
    return (
      detectLowRank(D, (i) => table[(p[i]! >>> fmt.mantBits) & emask]!, n, MAX_RANK, (cols, rsMax, csMax) => {
        filled.push([cols, rsMax, csMax]);
        visitGrid(n, cols, rsMax, csMax, fill);
      }) !== null
    );
  } finally {
    // Back to all zeros, so the answer never depends on the chunks before this one (were detection to read an entry not visited).
    for (const [cols, rsMax, csMax] of filled) visitGrid(n, cols, rsMax, csMax, clear);
  }
}

/** Call `at` for every delta entry heldOutGain reads for width `cols` on an rsMax x csMax grid (fit rows and the held-out row after each). */
function visitGrid(n: number, cols: number, rsMax: number, csMax: number, at: (k: number) => void): void {
  const rows = n / cols;
  const half = rows >> 1;
  const rs = Math.min(half, rsMax);
  const cs = Math.min(cols, csMax);
  for (let a = 0; a < rs; a++) {
    const i = 2 * Math.floor((a * half) / rs);
    for (let b = 0; b < cs; b++) {
      const j = Math.floor((b * cols) / cs);
      at(i * cols + j);
      at((i + 1) * cols + j);
    }
  }
}
