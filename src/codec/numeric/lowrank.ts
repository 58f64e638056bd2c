/**
 * Low-rank structure of a weight delta, for LoRA-merged fine-tunes: the
 * merged update B·A has rank r (8 in the fixture's code-lora), so once the
 * encoder finds the chunk's row width and the rank-r factors, the values are
 * predicted to within their rounding and the residual costs ~1 bit/value.
 *
 * All arithmetic here is +, -, *, / on doubles in a fixed order (no sqrt,
 * log or exp, whose last bit ECMAScript leaves to the implementation), so
 * the factors, and hence the payload, are the same on every machine.
 * Subspace iteration keeps columns orthogonal by Gram-Schmidt without
 * normalising (which would need sqrt) and rescales by powers of two.
 */
import { LOG_ONE, ilog2fp } from '../entropy/ilog.js';

/** Deterministic pseudo-random start vectors. */
function seeded(n: number, seed: number): Float64Array {
  const a = new Float64Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = s / 4294967296 - 0.5;
  }
  return a;
}

/**
 * Gram-Schmidt (modified, unnormalised) over k vectors of length len stored
 * one after another in M (vector c at c*len), each then rescaled by a power
 * of two so its max |.| lies in [1, 2). Vector-major storage keeps every
 * inner loop a long contiguous dot product or axpy (2-3x faster in V8 than
 * strided k-wide inner loops).
 */
function orthogonalise(M: Float64Array, len: number, k: number): void {
  for (let c = 0; c < k; c++) {
    const oc = c * len;
    for (let l = 0; l < c; l++) {
      const ol = l * len;
      let dot = 0;
      let nn = 0;
      for (let t = 0; t < len; t++) {
        dot += M[oc + t]! * M[ol + t]!;
        nn += M[ol + t]! * M[ol + t]!;
      }
      if (nn === 0) continue;
      const f = dot / nn;
      for (let t = 0; t < len; t++) M[oc + t]! -= f * M[ol + t]!;
    }
    let m = 0;
    for (let t = 0; t < len; t++) {
      const v = Math.abs(M[oc + t]!);
      if (v > m) m = v;
    }
    if (m === 0 || !Number.isFinite(m)) continue;
    let sc = 1;
    while (m * sc >= 2) sc *= 0.5;
    while (m * sc < 1) sc *= 2;
    for (let t = 0; t < len; t++) M[oc + t]! *= sc;
  }
}

export interface Factors {
  /** k x rows: component l's row weights at l*rows, mutually orthogonal */
  U: Float64Array;
  /** k x cols: V_l = U_l^T D / |U_l|^2 */
  V: Float64Array;
  k: number;
  /** energy captured by each component, |U_l|^2 |V_l|^2 */
  energy: Float64Array;
}

/** Rank-k subspace iteration on D (rows x cols, row-major). */
export function subspace(D: Float64Array, rows: number, cols: number, k: number, iters: number): Factors {
  const Q = seeded(k * cols, 0x5eed + k); // k x cols
  const Y = new Float64Array(k * rows); // k x rows
  for (let it = 0; it < iters; it++) {
    // Y_l[i] = D_i . Q_l
    for (let i = 0; i < rows; i++) {
      const di = i * cols;
      for (let l = 0; l < k; l++) {
        const ql = l * cols;
        let a = 0;
        for (let j = 0; j < cols; j++) a += D[di + j]! * Q[ql + j]!;
        Y[l * rows + i] = a;
      }
    }
    orthogonalise(Y, rows, k);
    // Q_l = sum_i Y_l[i] D_i
    Q.fill(0);
    for (let i = 0; i < rows; i++) {
      const di = i * cols;
      for (let l = 0; l < k; l++) {
        const y = Y[l * rows + i]!;
        if (y === 0) continue;
        const ql = l * cols;
        for (let j = 0; j < cols; j++) Q[ql + j]! += y * D[di + j]!;
      }
    }
    if (it + 1 < iters) orthogonalise(Q, cols, k);
  }
  const energy = new Float64Array(k);
  for (let l = 0; l < k; l++) {
    let nn = 0;
    for (let i = 0; i < rows; i++) nn += Y[l * rows + i]! * Y[l * rows + i]!;
    if (nn === 0) {
      Q.fill(0, l * cols, (l + 1) * cols);
      continue;
    }
    let e = 0;
    for (let j = 0; j < cols; j++) {
      const v = Q[l * cols + j]! / nn;
      Q[l * cols + j] = v;
      e += v * v;
    }
    energy[l] = e * nn;
  }
  return { U: Y, V: Q, k, energy };
}

/**
 * Factors of D (rows x cols) at rank k: A (k x cols, orthogonal rows) from
 * subspace iteration on at most 128 evenly spaced rows (the row space of a
 * low-rank matrix is seen from any few rows), then B (rows x k) by
 * projecting every row onto A: one pass over D, n*k multiply-adds, instead
 * of 2*n*k per iteration on the whole chunk. Components come out ordered by
 * energy (|B_l|^2 |A_l|^2, largest first), so a rank-r prefix is the best r.
 */
export function factorise(D: Float64Array, rows: number, cols: number, k: number): { B: Float64Array; A: Float64Array } {
  const sr = Math.min(rows, 128);
  const S = new Float64Array(sr * cols);
  for (let a = 0; a < sr; a++) {
    const i = Math.floor((a * rows) / sr);
    S.set(D.subarray(i * cols, i * cols + cols), a * cols);
  }
  const V = subspace(S, sr, cols, k, 4).V; // k x cols
  orthogonalise(V, cols, k);
  const vv = new Float64Array(k);
  for (let l = 0; l < k; l++) for (let j = 0; j < cols; j++) vv[l]! += V[l * cols + j]! * V[l * cols + j]!;
  const Bk = new Float64Array(rows * k);
  for (let i = 0; i < rows; i++) {
    const di = i * cols;
    for (let l = 0; l < k; l++) {
      if (vv[l] === 0) continue;
      const vl = l * cols;
      let a = 0;
      for (let j = 0; j < cols; j++) a += D[di + j]! * V[vl + j]!;
      Bk[i * k + l] = a / vv[l]!;
    }
  }
  const energy = new Float64Array(k);
  for (let l = 0; l < k; l++) {
    let b = 0;
    for (let i = 0; i < rows; i++) b += Bk[i * k + l]! * Bk[i * k + l]!;
    energy[l] = b * vv[l]!;
  }
  const ord = Array.from({ length: k }, (_, l) => l).sort((x, y) => energy[y]! - energy[x]! || x - y);
  const B = new Float64Array(rows * k);
  const A = new Float64Array(k * cols);
  ord.forEach((l, c) => {
    for (let i = 0; i < rows; i++) B[i * k + c] = Bk[i * k + l]!;
    A.set(V.subarray(l * cols, (l + 1) * cols), c * cols);
  });
  return { B, A };
}

export interface LowRankShape {
  cols: number;
  rank: number;
}

/** Estimated code length of a residual r in units of its ulp: log2(1 + |r|/ulp), in 1/65536 bits (integer-only log). */
function bitsOf(r: number, ulp: number): number {
  if (ulp === 0 || !Number.isFinite(r)) return 0;
  const m = Math.floor(Math.abs(r) / ulp);
  return ilog2fp(1 + (m > 0x3fffffff ? 0x3fffffff : m));
}

/**
 * Find the row width and rank under which the delta D is low-rank (ulp(i):
 * the unit in the last place of element i's reference), judged by
 * estimated code length rather than energy (energy tests are fooled by a few
 * outlier deltas, which any rank-1 fit "explains"). For each candidate width
 * (multiples of 8 dividing n, >= 16 rows and columns): fit K components on
 * evenly spaced rows, then measure on *other* rows (held out, so noise fitted
 * by the components does not count) how many bits per value the projection
 * onto the first k components saves, minus the factor cost per value
 * (~13 bits per factor entry, (rows + cols) * k entries). Returns the width
 * and rank with the largest net saving, if it exceeds 0.25 bit per value.
 * Full fine-tunes (independent Adam noise) save nothing and are rejected.
 */
export function detectLowRank(D: Float64Array, ulp: (i: number) => number, n: number, maxRank = 32, prepare?: (cols: number, rsMax: number, csMax: number) => void): LowRankShape | null {
  // Stage 1, every candidate width: 4 components on a 24x48 sample (~0.1 ms each).
  // (`prepare`, when given, is told which grid of D is read next: lowrank-gate.ts fills only those entries.)
  const cands: { cols: number; gain: number }[] = [];
  for (let cols = 16; cols * 16 <= n; cols += 8) {
    if (n % cols !== 0) continue;
    prepare?.(cols, 24, 48);
    const g = heldOutGain(D, ulp, n / cols, cols, 4, 24, 48, 2);
    if (g && g.gain > 0.1 * LOG_ONE) cands.push({ cols, gain: g.gain });
  }
  // Stage 2, the two most promising widths: up to 16 components on 48x64.
  cands.sort((a, b) => b.gain - a.gain || a.cols - b.cols);
  let best: LowRankShape | null = null;
  let bestGain = 0.25 * LOG_ONE;
  for (const { cols } of cands.slice(0, 2)) {
    prepare?.(cols, 48, 64);
    const g = heldOutGain(D, ulp, n / cols, cols, Math.min(maxRank, 16), 48, 64, 4);
    if (g && g.gain > bestGain) {
      bestGain = g.gain;
      best = { cols, rank: g.rank };
    }
  }
  return best;
}

function heldOutGain(D: Float64Array, ulp: (i: number) => number, rows: number, cols: number, K: number, rsMax: number, csMax: number, iters: number): { rank: number; gain: number } | null {
  const half = rows >> 1;
  const rs = Math.min(half, rsMax);
  const cs = Math.min(cols, csMax);
  K = Math.min(K, rs - 1, cs - 1);
  if (K < 1) return null;
  const colAt = (b: number): number => Math.floor((b * cols) / cs);
  // fit rows: even rows 2*floor(a*half/rs); held-out rows: the odd row after each
  const S = new Float64Array(rs * cs);
  for (let a = 0; a < rs; a++) {
    const i = 2 * Math.floor((a * half) / rs);
    for (let b = 0; b < cs; b++) S[a * cs + b] = D[i * cols + colAt(b)]!;
  }
  const f = subspace(S, rs, cs, K, iters);
  // the row basis V (K x cs), strongest component first, orthogonalised
  const ord = Array.from({ length: K }, (_, l) => l).sort((x, y) => f.energy[y]! - f.energy[x]! || x - y);
  const Vt = new Float64Array(K * cs);
  ord.forEach((l, c) => Vt.set(f.V.subarray(l * cs, (l + 1) * cs), c * cs));
  orthogonalise(Vt, cs, K);
  const vv = new Float64Array(K);
  for (let c = 0; c < K; c++) for (let b = 0; b < cs; b++) vv[c]! += Vt[c * cs + b]! * Vt[c * cs + b]!;
  // held-out cost after projecting onto the first k components, k = 0..K
  const cost = new Float64Array(K + 1);
  const res = new Float64Array(cs);
  const u = new Float64Array(cs);
  for (let a = 0; a < rs; a++) {
    const i = 2 * Math.floor((a * half) / rs) + 1;
    let prev = 0;
    for (let b = 0; b < cs; b++) {
      const k = i * cols + colAt(b);
      res[b] = D[k]!;
      u[b] = ulp(k);
      prev += bitsOf(res[b]!, u[b]!);
    }
    cost[0]! += prev;
    for (let c = 0; c < K; c++) {
      if (vv[c] === 0) {
        cost[c + 1]! += prev;
        continue;
      }
      let dot = 0;
      for (let b = 0; b < cs; b++) dot += res[b]! * Vt[c * cs + b]!;
      const coef = dot / vv[c]!;
      let row = 0;
      for (let b = 0; b < cs; b++) {
        res[b]! -= coef * Vt[c * cs + b]!;
        row += bitsOf(res[b]!, u[b]!);
      }
      cost[c + 1]! += row;
      prev = row;
    }
  }
  const m = rs * cs;
  const perEntry = 13 * LOG_ONE; // bits per stored factor value (bf16, exponent-coded)
  let bestK = 0;
  let bestGain = -Infinity;
  for (let k = 1; k <= K; k++) {
    if (vv[k - 1] === 0) break;
    const gain = (cost[0]! - cost[k]!) / m - (perEntry * (rows + cols) * k) / (rows * cols);
    if (gain > bestGain) {
      bestGain = gain;
      bestK = k;
    }
  }
  return bestK > 0 ? { rank: bestK, gain: bestGain } : null;
}
