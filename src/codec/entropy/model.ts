/**
 * Static per-chunk token models for the rANS coder: which context uses which
 * frequency table, and the tables themselves, in a compact serialisation.
 *
 * Why static tables and not adaptive coding: measured on the fixture family,
 * the empirical conditional entropy of the delta tokens given the parent's
 * exponent (what a static table codes, minus table cost) equals the cost of
 * a well-tuned adaptive model to within 1% (prose-step0025: 0.198 vs 0.200
 * of raw), while a static table lets the decoder run one table lookup per
 * element with no model updates.
 *
 * Raw contexts (e.g. sign+exponent of the parent value: 512 of them for bf16)
 * are merged into groups that each share one table. Groups are contiguous
 * runs in a fixed context order chosen by the codec (e.g. by exponent), so
 * the grouping costs only a few run lengths. The encoder merges greedily
 * (best adjacent pair first) while merging lowers the estimated total:
 * entropy + table bits. Rare exponents thus share a table with their
 * neighbours; well-populated ones keep their own.
 *
 * Tables are sent as quantised log-probabilities: q = round(4*log2(n/n_s))+1
 * (quarter-octave steps, at most ~9% probability error) coded as Exp-Golomb
 * differences between neighbouring tokens, about 3-4 bits per used token.
 * All overheads together (tables, quantisation, rANS flush) keep payloads
 * within ~1% of the empirical conditional entropy: prose-step0025 against
 * base codes its 20 tensors in 262.1 KB where H(token | exponent) + raw bits
 * is 259.8 KB. Both sides rebuild the exact integer
 * frequencies from q with the same integer normalisation, so the coder never
 * depends on floating point.
 */
import { BitReader, BitWriter, corrupt } from './bitio.js';
import { LOG_ONE, entropyCost, ilog2fp } from './ilog.js';

export const MIN_PREC = 10;
export const MAX_PREC = 12;
/** Upper bound on decode table entries (groups << prec), bounding decoder memory. */
export const MAX_TABLE_ENTRIES = 1 << 22;
export const MAX_GROUPS = 256;
const QMAX = 64;

export interface TokenModel {
  /** log2 of the frequency total M. */
  readonly prec: number;
  readonly groups: number;
  /** Alphabet size S. */
  readonly alphabet: number;
  /** groups*S frequencies (sum M per group) and cumulative starts. */
  readonly freq: Uint32Array;
  readonly cum: Uint32Array;
  /** raw context id -> group */
  readonly groupOf: Uint16Array;
}

// 2^20 * 2^(-k/4), k = 0..3, as exact integer literals.
const FR = [1048576, 881744, 741455, 623487];

function weightOfQ(q: number): number {
  return (FR[(q - 1) & 3]! << 10) >>> ((q - 1) >> 2);
}

/** Exact floor(a / b) for non-negative integers a, b < 2^53 with a*... products exact. */
function floorDiv(a: number, b: number): number {
  let q = Math.floor(a / b);
  if (q * b > a) q--;
  else if ((q + 1) * b <= a) q++;
  return q;
}

/** Deterministic integer normalisation of q-values (0 = absent) to frequencies summing to 2^prec. */
export function freqsFromQ(q: ArrayLike<number>, off: number, len: number, prec: number, out: Uint32Array, outOff: number): void {
  const M = 1 << prec;
  let total = 0;
  let best = -1;
  let bestW = -1;
  for (let s = 0; s < len; s++) {
    const qs = q[off + s]!;
    if (qs > 0) {
      const w = weightOfQ(qs);
      total += w;
      if (w > bestW) {
        bestW = w;
        best = s;
      }
    }
  }
  if (best < 0) corrupt('empty frequency table');
  let sum = 0;
  for (let s = 0; s < len; s++) {
    const qs = q[off + s]!;
    let f = 0;
    if (qs > 0) {
      f = floorDiv(weightOfQ(qs) * M, total);
      if (f < 1) f = 1;
    }
    out[outOff + s] = f;
    sum += f;
  }
  let diff = M - sum;
  if (diff > 0) out[outOff + best]! += diff;
  while (diff < 0) {
    let k = 0;
    let kf = 0;
    for (let s = 0; s < len; s++) {
      const f = out[outOff + s]!;
      if (f > kf) {
        kf = f;
        k = s;
      }
    }
    if (kf <= 1) corrupt('frequency table cannot be normalised');
    const take = Math.min(-diff, kf - 1);
    out[outOff + k] = kf - take;
    diff += take;
  }
}

/** q-values from counts: quarter-octave log-probabilities, integer-only. */
export function qFromCounts(h: ArrayLike<number>, off: number, len: number, out: Int32Array, outOff: number): void {
  let n = 0;
  for (let s = 0; s < len; s++) n += h[off + s]!;
  const ln = ilog2fp(Math.max(1, n));
  for (let s = 0; s < len; s++) {
    const k = h[off + s]!;
    if (k === 0) out[outOff + s] = 0;
    else {
      const q = ((ln - ilog2fp(k)) * 4 + LOG_ONE / 2) >> 16;
      out[outOff + s] = Math.min(QMAX, q + 1);
    }
  }
}

const zig = (v: number): number => (v < 0 ? -2 * v - 1 : 2 * v);
const unzig = (z: number): number => (z & 1 ? -((z + 1) >> 1) : z >> 1);

function writeTable(bw: BitWriter, q: Int32Array, off: number, S: number): void {
  let first = -1;
  let last = -1;
  for (let s = 0; s < S; s++)
    if (q[off + s]! > 0) {
      if (first < 0) first = s;
      last = s;
    }
  bw.expGolomb(first, 2);
  bw.expGolomb(last - first, 2);
  let prev = q[off + first]!;
  bw.put(prev - 1, 6);
  for (let s = first + 1; s <= last; s++) {
    const qs = q[off + s]!;
    if (s !== last) bw.put(qs > 0 ? 1 : 0, 1);
    if (qs > 0) {
      bw.expGolomb(zig(qs - prev), 0);
      prev = qs;
    }
  }
}

function readTable(br: BitReader, q: Int32Array, S: number): void {
  q.fill(0);
  const first = br.expGolomb(2);
  const span = br.expGolomb(2);
  if (first + span >= S) corrupt('frequency table exceeds the alphabet');
  const last = first + span;
  let prev = br.get(6) + 1;
  q[first] = prev;
  for (let s = first + 1; s <= last; s++) {
    if (s !== last && br.get(1) === 0) continue;
    const v = prev + unzig(br.expGolomb(0));
    if (v < 1 || v > QMAX) corrupt('frequency table value out of range');
    q[s] = v;
    prev = v;
  }
  br.check('frequency table');
}

/** Estimated table cost in 1/65536 bits: a fixed part plus ~3.5 bits per used token. */
function tableCost(nnz: number): number {
  return (14 + 3.5 * nnz) * LOG_ONE;
}

export interface ModelChoice {
  model: TokenModel;
  /** Estimated payload bits (entropy + tables), for comparing alternatives. */
  costBits: number;
  write(bw: BitWriter): void;
}

/**
 * Table precision: 12 bits for chunks of 4096+ elements, less for smaller ones
 * (table building is per chunk). 12 rather than 14-15 because a 12-bit table
 * packs into one int32 per slot (see rans.ts) and stays in L1; it cost
 * nothing measurable (synthetic fine-tune: 0.3048 at 12 bits vs 0.3049 at 14;
 * the quarter-octave table quantisation dominates anyway).
 */
export function maxPrecFor(n: number): number {
  return Math.min(MAX_PREC, Math.max(MIN_PREC, 31 - Math.clz32(Math.max(1, n))));
}

function choosePrec(n: number, groups: number): number {
  let p = maxPrecFor(n);
  while (p > MIN_PREC && groups << p > MAX_TABLE_ENTRIES) p--;
  return p;
}

/**
 * Build a model from per-raw-context token histograms.
 * hist: R*S counts; order: the raw context ids in merge order (a permutation of 0..R-1).
 */
export function buildModel(hist: Uint32Array, R: number, S: number, order: ArrayLike<number>, maxGroups = MAX_GROUPS): ModelChoice {
  // Non-empty contexts, as initial groups (positions in `order`).
  const start: number[] = [];
  for (let j = 0; j < R; j++) {
    const r = order[j]!;
    let any = false;
    for (let s = 0; s < S; s++)
      if (hist[r * S + s]! > 0) {
        any = true;
        break;
      }
    if (any) start.push(j);
  }
  let G = start.length;
  if (G === 0) corrupt('cannot model an empty chunk');
  const gh = new Float64Array(G * S); // group histograms
  for (let g = 0; g < G; g++) {
    const r = order[start[g]!]!;
    for (let s = 0; s < S; s++) gh[g * S + s] = hist[r * S + s]!;
  }
  const nnzOf = (off: number): number => {
    let c = 0;
    for (let s = 0; s < S; s++) if (gh[off + s]! > 0) c++;
    return c;
  };
  const cost = new Float64Array(G);
  for (let g = 0; g < G; g++) cost[g] = entropyCost(gh, g * S, S) + tableCost(nnzOf(g * S)) + 6 * LOG_ONE;
  const prev = new Int32Array(G);
  const next = new Int32Array(G);
  const alive = new Uint8Array(G).fill(1);
  for (let g = 0; g < G; g++) {
    prev[g] = g - 1;
    next[g] = g + 1 < G ? g + 1 : -1;
  }
  const tmp = new Float64Array(S);
  const mergedCost = (a: number, b: number): number => {
    let nnz = 0;
    for (let s = 0; s < S; s++) {
      const v = gh[a * S + s]! + gh[b * S + s]!;
      tmp[s] = v;
      if (v > 0) nnz++;
    }
    return entropyCost(tmp, 0, S) + tableCost(nnz) + 6 * LOG_ONE;
  };
  // Max-heap of (gain, left group, stamp) for adjacent pairs; stale entries skipped.
  const stamp = new Int32Array(G);
  const heapGain: number[] = [];
  const heapLeft: number[] = [];
  const heapStamp: number[] = [];
  const push = (gain: number, left: number): void => {
    let i = heapGain.length;
    heapGain.push(gain);
    heapLeft.push(left);
    heapStamp.push(stamp[left]! * 67108864 + stamp[next[left]!]!);
    while (i > 0) {
      const p = (i - 1) >> 1;
      // Larger gain first; ties: smaller left index first (deterministic).
      if (heapGain[p]! > heapGain[i]! || (heapGain[p] === heapGain[i] && heapLeft[p]! < heapLeft[i]!)) break;
      [heapGain[p], heapGain[i]] = [heapGain[i]!, heapGain[p]!];
      [heapLeft[p], heapLeft[i]] = [heapLeft[i]!, heapLeft[p]!];
      [heapStamp[p], heapStamp[i]] = [heapStamp[i]!, heapStamp[p]!];
      i = p;
    }
  };
  const pop = (): void => {
    const last = heapGain.length - 1;
    heapGain[0] = heapGain[last]!;
    heapLeft[0] = heapLeft[last]!;
    heapStamp[0] = heapStamp[last]!;
    heapGain.pop();
    heapLeft.pop();
    heapStamp.pop();
    let i = 0;
    const n = heapGain.length;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      const better = (a: number, b: number): boolean => heapGain[a]! > heapGain[b]! || (heapGain[a] === heapGain[b] && heapLeft[a]! < heapLeft[b]!);
      if (l < n && better(l, m)) m = l;
      if (r < n && better(r, m)) m = r;
      if (m === i) break;
      [heapGain[m], heapGain[i]] = [heapGain[i]!, heapGain[m]!];
      [heapLeft[m], heapLeft[i]] = [heapLeft[i]!, heapLeft[m]!];
      [heapStamp[m], heapStamp[i]] = [heapStamp[i]!, heapStamp[m]!];
      i = m;
    }
  };
  const pairCost = new Float64Array(G); // merged cost of (g, next[g])
  const consider = (g: number): void => {
    const b = next[g]!;
    if (g < 0 || b < 0) return;
    pairCost[g] = mergedCost(g, b);
    push(cost[g]! + cost[b]! - pairCost[g]!, g);
  };
  for (let g = 0; g + 1 < G; g++) consider(g);
  let live = G;
  while (heapGain.length > 0) {
    const gain = heapGain[0]!;
    const a = heapLeft[0]!;
    const st = heapStamp[0]!;
    pop();
    const b = next[a]!;
    if (!alive[a] || b < 0 || st !== stamp[a]! * 67108864 + stamp[b]!) continue;
    if (gain <= 0 && live <= maxGroups) break;
    // merge b into a
    for (let s = 0; s < S; s++) gh[a * S + s] = gh[a * S + s]! + gh[b * S + s]!;
    cost[a] = pairCost[a]!;
    alive[b] = 0;
    next[a] = next[b]!;
    if (next[b]! >= 0) prev[next[b]!] = a;
    stamp[a] = stamp[a]! + 1;
    live--;
    if (prev[a]! >= 0) consider(prev[a]!);
    consider(a);
  }
  // Collect surviving groups in order.
  const groupsStart: number[] = [];
  const groupIdx: number[] = [];
  for (let g = 0; g >= 0 && g < G; g = next[g]!) {
    groupsStart.push(start[g]!);
    groupIdx.push(g);
  }
  G = groupIdx.length;
  // Runs over the order: run k covers order positions [runStart[k], runStart[k+1]).
  const runStart = groupsStart.slice();
  runStart[0] = 0;
  const groupOf = new Uint16Array(R);
  for (let k = 0; k < G; k++) {
    const end = k + 1 < G ? runStart[k + 1]! : R;
    for (let j = runStart[k]!; j < end; j++) groupOf[order[j]!] = k;
  }
  const n = (() => {
    let t = 0;
    for (let i = 0; i < hist.length; i++) t += hist[i]!;
    return t;
  })();
  const prec = choosePrec(n, G);
  const q = new Int32Array(G * S);
  const freq = new Uint32Array(G * S);
  const cum = new Uint32Array(G * S);
  let costBits = 0;
  for (let k = 0; k < G; k++) {
    const g = groupIdx[k]!;
    qFromCounts(gh, g * S, S, q, k * S);
    freqsFromQ(q, k * S, S, prec, freq, k * S);
    let c = 0;
    for (let s = 0; s < S; s++) {
      cum[k * S + s] = c;
      c += freq[k * S + s]!;
    }
    costBits += cost[g]! / LOG_ONE;
  }
  const model: TokenModel = { prec, groups: G, alphabet: S, freq, cum, groupOf };
  return {
    model,
    costBits,
    write(bw: BitWriter): void {
      bw.put(prec - MIN_PREC, 3);
      bw.expGolomb(G - 1, 0);
      for (let k = 1; k < G; k++) bw.expGolomb(runStart[k]! - runStart[k - 1]! - 1, 2);
      for (let k = 0; k < G; k++) writeTable(bw, q, k * S, S);
    },
  };
}

/**
 * Parse a model written by buildModel().write, for R raw contexts in the
 * given order and a chunk of n elements. The precision and table count are
 * checked against what the encoder can produce for n, which bounds the
 * decode tables to 256 x max(1024, n) entries whatever the payload says.
 */
export function readModel(br: BitReader, R: number, S: number, order: ArrayLike<number>, n: number): TokenModel {
  const prec = br.get(3) + MIN_PREC;
  if (prec > maxPrecFor(n)) corrupt('table precision out of range');
  const G = br.expGolomb(0) + 1;
  if (G > R || G > MAX_GROUPS || G << prec > MAX_TABLE_ENTRIES) corrupt('too many frequency tables');
  const groupOf = new Uint16Array(R);
  let pos = 0;
  for (let k = 1; k < G; k++) {
    const len = br.expGolomb(2) + 1;
    if (pos + len >= R) corrupt('context runs exceed the context space');
    for (let j = pos; j < pos + len; j++) groupOf[order[j]!] = k - 1;
    pos += len;
  }
  for (let j = pos; j < R; j++) groupOf[order[j]!] = G - 1;
  const q = new Int32Array(S);
  const freq = new Uint32Array(G * S);
  const cum = new Uint32Array(G * S);
  for (let k = 0; k < G; k++) {
    readTable(br, q, S);
    freqsFromQ(q, 0, S, prec, freq, k * S);
    let c = 0;
    for (let s = 0; s < S; s++) {
      cum[k * S + s] = c;
      c += freq[k * S + s]!;
    }
  }
  br.check('token model');
  return { prec, groups: G, alphabet: S, freq, cum, groupOf };
}
