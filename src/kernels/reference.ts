/**
 * The numeric kernels of the forward pass, as plain deterministic JavaScript.
 *
 * This file defines the arithmetic, not only an implementation of it: a
 * compiled kernel dropped in later (WASM, native) must give the same bits.
 * The rules, per output element:
 *
 * - Inputs are float32 (activations in Float32Array; weights converted exactly
 *   from F32/F16/BF16, see dtype.ts). Products of two float32 are exact in
 *   float64, so multiply-then-add and fused multiply-add agree.
 * - A dot product of length n is summed in float64 in four interleaved lanes:
 *   lane k takes elements i ≡ k (mod 4) for i < n − n mod 4, in increasing i;
 *   the n mod 4 tail goes into lane 0 in increasing i; the result is
 *   (s0 + s1) + (s2 + s3), rounded to float32 when stored. (Two f64x2 SIMD
 *   accumulators reproduce this exactly.)
 * - A matrix product of T positions computes every (position, output row) with
 *   that same dot, so a window of T positions gives bit for bit what T single
 *   matvecs give. Parallel work may split output rows (or positions), never
 *   one dot product.
 * - Element-wise steps (RMSNorm, SiLU, softmax, RoPE, residual adds) compute in
 *   float64 with a fixed sequential order and round to float32 on store.
 * - exp, pow, sin and cos are det-math.ts's (fdlibm's algorithms in plain
 *   IEEE arithmetic), never Math.exp & co., whose last bit the language leaves
 *   to the engine: the LM codec needs the same logits on every machine.
 *   Math.sqrt is correctly rounded by the standard and stays.
 */
import { detExp, detPow, detSinCos } from './det-math.js';
import { type WeightMatrix, type RowDecoder, ScratchRow, decodeRow, f16ToF32Table, rowDecoder } from './dtype.js';

/** The 4-lane float64 dot product of a[aOff..aOff+n) and b[bOff..bOff+n). */
export function dot(a: Float32Array, aOff: number, b: Float32Array, bOff: number, n: number): number {
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  const n4 = n - (n & 3);
  let i = 0;
  for (; i < n4; i += 4) {
    s0 += a[aOff + i]! * b[bOff + i]!;
    s1 += a[aOff + i + 1]! * b[bOff + i + 1]!;
    s2 += a[aOff + i + 2]! * b[bOff + i + 2]!;
    s3 += a[aOff + i + 3]! * b[bOff + i + 3]!;
  }
  for (; i < n; i++) s0 += a[aOff + i]! * b[bOff + i]!;
  return s0 + s1 + (s2 + s3);
}

/**
 * The same dot with b converted from stored BF16 bits as it goes (a Uint16 shifted into a Uint32
 * view of a float32): the exact values decodeRow gives, so the same bits, without the row pass.
 */
export function dotBf16(a: Float32Array, aOff: number, w: Uint16Array, wOff: number, n: number, tmpU: Uint32Array, tmpF: Float32Array): number {
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  const n4 = n - (n & 3);
  let i = 0;
  for (; i < n4; i += 4) {
    tmpU[0] = w[wOff + i]! << 16;
    tmpU[1] = w[wOff + i + 1]! << 16;
    tmpU[2] = w[wOff + i + 2]! << 16;
    tmpU[3] = w[wOff + i + 3]! << 16;
    s0 += a[aOff + i]! * tmpF[0]!;
    s1 += a[aOff + i + 1]! * tmpF[1]!;
    s2 += a[aOff + i + 2]! * tmpF[2]!;
    s3 += a[aOff + i + 3]! * tmpF[3]!;
  }
  for (; i < n; i++) {
    tmpU[0] = w[wOff + i]! << 16;
    s0 += a[aOff + i]! * tmpF[0]!;
  }
  return s0 + s1 + (s2 + s3);
}

/** The same dot with b converted from stored F16 bits through the exact 65536-entry table. */
export function dotF16(a: Float32Array, aOff: number, w: Uint16Array, wOff: number, n: number, t: Float32Array): number {
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  const n4 = n - (n & 3);
  let i = 0;
  for (; i < n4; i += 4) {
    s0 += a[aOff + i]! * t[w[wOff + i]!]!;
    s1 += a[aOff + i + 1]! * t[w[wOff + i + 1]!]!;
    s2 += a[aOff + i + 2]! * t[w[wOff + i + 2]!]!;
    s3 += a[aOff + i + 3]! * t[w[wOff + i + 3]!]!;
  }
  for (; i < n; i++) s0 += a[aOff + i]! * t[w[wOff + i]!]!;
  return s0 + s1 + (s2 + s3);
}

const tmpF = new Float32Array(4);
const tmpU = new Uint32Array(tmpF.buffer);

let shared: ScratchRow | undefined;
function scratchFor(n: number): ScratchRow {
  if (shared === undefined || shared.f32.length < n) shared = new ScratchRow(n);
  return shared;
}

export interface MatmulArgs {
  /** output: out[t * outStride + outCol0 + (r − rowStart)] for r in [rowStart, rowEnd) of the block */
  out: Float32Array;
  outStride: number;
  outCol0: number;
  /** input: x[t * w.cols + i], T positions */
  x: Float32Array;
  T: number;
  w: WeightMatrix;
  /** rows of `w` to compute (default all): the unit that threads split */
  rowStart?: number;
  rowEnd?: number;
}

/**
 * out = x · Wᵀ for T positions, W stored [rows = out features, cols = in features].
 * F32 rows are used in place. 16-bit rows: for one or two positions converted inside the dot
 * (dotBf16, dotF16); for more, each row is converted once into a float32 scratch row and used for
 * all T positions. Both give the same values to the same 4-lane sum, so the same bits.
 */
export function matmul(a: MatmulArgs): void {
  const { out, outStride, outCol0, x, T, w } = a;
  const cols = w.cols;
  const r0 = a.rowStart ?? 0;
  const r1 = a.rowEnd ?? w.rows;
  const d: RowDecoder = rowDecoder(w);
  if (d.dtype === 'F32') {
    const wf = d.f32!;
    for (let r = r0; r < r1; r++) {
      const wOff = r * cols;
      const o = outCol0 + (r - r0);
      for (let t = 0; t < T; t++) out[t * outStride + o] = dot(wf, wOff, x, t * cols, cols);
    }
    return;
  }
  if (T <= 2) {
    const u = d.u16!;
    const t16 = d.dtype === 'F16' ? f16ToF32Table() : undefined;
    for (let r = r0; r < r1; r++) {
      const wOff = r * cols;
      const o = outCol0 + (r - r0);
      for (let t = 0; t < T; t++) {
        out[t * outStride + o] = t16 !== undefined ? dotF16(x, t * cols, u, wOff, cols, t16) : dotBf16(x, t * cols, u, wOff, cols, tmpU, tmpF);
      }
    }
    return;
  }
  const s = scratchFor(cols);
  const row = s.f32;
  for (let r = r0; r < r1; r++) {
    decodeRow(d, r, row, s.u32);
    const o = outCol0 + (r - r0);
    for (let t = 0; t < T; t++) out[t * outStride + o] = dot(row, 0, x, t * cols, cols);
  }
}

/** out[r] = W[r,:] · x for one position: the T = 1 case of matmul, the same bits. */
export function matvec(out: Float32Array, x: Float32Array, w: WeightMatrix): void {
  matmul({ out, outStride: w.rows, outCol0: 0, x, T: 1, w });
}

/** Decodes a stored vector (a 1 × n matrix, e.g. a norm weight) into `out`. */
export function decodeVector(w: WeightMatrix, out: Float32Array): void {
  const d = rowDecoder(w);
  const s = new Uint32Array(out.buffer, out.byteOffset, w.cols);
  decodeRow(d, 0, out, s);
}

/**
 * RMSNorm of T rows of length n (HF LlamaRMSNorm): out = weight · x / sqrt(mean(x²) + eps).
 * Σx² in float64, sequential; `weight` already decoded to float32. In place (out === x) is fine.
 */
export function rmsnorm(out: Float32Array, x: Float32Array, weight: Float32Array, n: number, T: number, eps: number): void {
  for (let t = 0; t < T; t++) {
    const off = t * n;
    let ss = 0;
    for (let i = 0; i < n; i++) {
      const v = x[off + i]!;
      ss += v * v;
    }
    const scale = 1 / Math.sqrt(ss / n + eps);
    for (let i = 0; i < n; i++) out[off + i] = weight[i]! * (x[off + i]! * scale);
  }
}

/** In-place softmax of x[off..off+n) in float64: max, then exp, sequential sum, divide. */
export function softmax64(x: Float64Array, off: number, n: number): void {
  let max = -Infinity;
  for (let i = 0; i < n; i++) if (x[off + i]! > max) max = x[off + i]!;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const e = detExp(x[off + i]! - max);
    x[off + i] = e;
    sum += e;
  }
  const inv = 1 / sum;
  for (let i = 0; i < n; i++) x[off + i] = x[off + i]! * inv;
}

/** Inverse frequencies of rotate-half RoPE: invFreq[i] = theta^(−2i/headDim), i < headDim/2, in float64. */
export function ropeInvFreq(headDim: number, theta: number): Float64Array {
  const half = headDim >> 1;
  const f = new Float64Array(half);
  for (let i = 0; i < half; i++) f[i] = 1 / detPow(theta, (2 * i) / headDim);
  return f;
}

/** cos/sin of pos · invFreq[i], written to cos[0..half), sin[0..half). */
export function ropeAngles(pos: number, invFreq: Float64Array, cos: Float64Array, sin: Float64Array): void {
  const sc = { sin: 0, cos: 0 };
  for (let i = 0; i < invFreq.length; i++) {
    detSinCos(pos * invFreq[i]!, sc);
    cos[i] = sc.cos;
    sin[i] = sc.sin;
  }
}

/**
 * Rotate-half RoPE (HF Llama) in place on `heads` vectors of length headDim starting at x[off]:
 * (x1, x2) = (x[i], x[i+half]) → (x1·cos − x2·sin, x2·cos + x1·sin).
 */
export function rope(x: Float32Array, off: number, heads: number, headDim: number, cos: Float64Array, sin: Float64Array): void {
  const half = headDim >> 1;
  for (let h = 0; h < heads; h++) {
    const b = off + h * headDim;
    for (let i = 0; i < half; i++) {
      const x1 = x[b + i]!;
      const x2 = x[b + i + half]!;
      const c = cos[i]!;
      const s = sin[i]!;
      x[b + i] = x1 * c - x2 * s;
      x[b + i + half] = x2 * c + x1 * s;
    }
  }
}

/** SwiGLU: gate[i] = silu(gate[i]) · up[i], silu(g) = g / (1 + e^−g), in float64, n elements. */
export function swiglu(gate: Float32Array, up: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) {
    const g = gate[i]!;
    gate[i] = (g / (1 + detExp(-g))) * up[i]!;
  }
}

/** silu of n elements in place (kept for completeness; the model uses swiglu). */
export function silu(x: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) {
    const g = x[i]!;
    x[i] = g / (1 + detExp(-g));
  }
}

/** x[i] += y[i] for n elements (rounded to float32, the same as a float32 add). */
export function addInPlace(x: Float32Array, y: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) x[i] = x[i]! + y[i]!;
}

export interface AttentionArgs {
  /** output [T, nHeads·headDim] */
  out: Float32Array;
  /** queries [T, nHeads·headDim], already rotated */
  q: Float32Array;
  /** this layer's caches [maxSeq, nKvHeads·headDim]; positions < pos0 + T filled */
  kCache: Float32Array;
  vCache: Float32Array;
  T: number;
  pos0: number;
  nHeads: number;
  nKvHeads: number;
  headDim: number;
  /** scratch of at least pos0 + T scores */
  scores: Float64Array;
  /** scratch of at least headDim */
  acc: Float64Array;
}

/**
 * Causal grouped-query attention: query head h reads KV head ⌊h / (nHeads / nKvHeads)⌋.
 * score_j = (q · k_j) · headDim^−½ (4-lane dot), softmax in float64, out = Σ_j p_j v_j summed in j order.
 * Every (position, head) is independent, so a window gives the bits of token-by-token decoding.
 */
export function attention(a: AttentionArgs): void {
  const { out, q, kCache, vCache, T, pos0, nHeads, nKvHeads, headDim, scores, acc } = a;
  const group = nHeads / nKvHeads;
  const kvDim = nKvHeads * headDim;
  const qDim = nHeads * headDim;
  const scale = 1 / Math.sqrt(headDim);
  const hd4 = headDim - (headDim & 3);
  for (let t = 0; t < T; t++) {
    const n = pos0 + t + 1;
    for (let h = 0; h < nHeads; h++) {
      const qOff = t * qDim + h * headDim;
      const kvOff = Math.floor(h / group) * headDim;
      for (let j = 0; j < n; j++) {
        // dot(q, kCache) inlined (the same 4-lane float64 order, so the same bits): this loop is the hot spot of long contexts
        const kOff = j * kvDim + kvOff;
        let s0 = 0;
        let s1 = 0;
        let s2 = 0;
        let s3 = 0;
        let d = 0;
        for (; d < hd4; d += 4) {
          s0 += q[qOff + d]! * kCache[kOff + d]!;
          s1 += q[qOff + d + 1]! * kCache[kOff + d + 1]!;
          s2 += q[qOff + d + 2]! * kCache[kOff + d + 2]!;
          s3 += q[qOff + d + 3]! * kCache[kOff + d + 3]!;
        }
        for (; d < headDim; d++) s0 += q[qOff + d]! * kCache[kOff + d]!;
        scores[j] = (s0 + s1 + (s2 + s3)) * scale;
      }
      softmax64(scores, 0, n);
      acc.fill(0, 0, headDim);
      for (let j = 0; j < n; j++) {
        const p = scores[j]!;
        const vOff = j * kvDim + kvOff;
        for (let d = 0; d < headDim; d++) acc[d] = acc[d]! + p * vCache[vOff + d]!;
      }
      for (let d = 0; d < headDim; d++) out[qOff + d] = acc[d]!;
    }
  }
}
