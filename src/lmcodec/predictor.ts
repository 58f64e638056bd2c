/**
 * The token predictor: the language model's distribution mixed with models
 * learned online from the frame being coded, turned into integer
 * frequencies for the arithmetic coder.
 *
 * Experts (each a full distribution over the coding alphabet):
 *  0  the LM: softmax of its logits (det-math exp, float64, fixed order);
 *  1  order-0: token counts in this frame so far, escaping to the LM;
 *  2–5 orders 1–4: counts of the token after the last 1–4 tokens, each
 *     escaping to the expert one order below (a PPM cascade: method C, as
 *     many escapes as distinct tokens seen), so the chain always ends in
 *     the LM and no token is impossible;
 *  6  match: the token that followed the longest earlier occurrence of the
 *     current context, with a confidence learned per match length, the
 *     rest of its mass on the order-4 cascade;
 *  7  the LM flattened, softmax(0.6 · logits): a model out of its domain
 *     is overconfident, and the mixer learns how much to trust each.
 *
 * Mixing: p = Σ w_k p_k, with weights chosen by a small context (match
 * length bucket × how much the order-2 context has been seen) and updated
 * after every token by exponentiated gradient on the coding cost,
 * w_k ← w_k · exp(η (p_k(x)/p(x) − 1)), renormalised. Everything is float64
 * +, −, ×, ÷ and det-math exp in a fixed order: encoder and decoder compute
 * the same frequencies on any machine.
 *
 * Frequencies: f_i = 1 + ⌊p_i · (2^24 − V)⌋, the rounding deficit added to
 * the likeliest token, so the total is exactly 2^24 and no token is
 * impossible (issue 10: total ≥ 2^16, floor 1).
 */
import { detExp } from '../kernels/det-math.js';

export const FREQ_TOTAL = 1 << 24;
const ORDERS = 4;
const EXPERTS = ORDERS + 4;
const FLAT = 0.6; // the flattened LM expert: softmax(logits · FLAT)
const MATCH_MIN = 3;
const MATCH_MAX = 64;
const ETA = 0.05;
const WEIGHT_FLOOR = 1e-4;
const COUNT_LIMIT = 1 << 20;
const SPARSE_CAP = 96; // tokens remembered per context (the least frequent are dropped)
const SEE_BUCKETS = (ORDERS + 1) * 8 * 8;
const SEE_PRIOR = 2; // weight of the method-C estimate in a fresh bucket

function seeBucket(order: number, distinct: number, total: number): number {
  const d = distinct > 7 ? 7 : distinct;
  let t = 0;
  for (let v = total; v > 1 && t < 7; v >>= 1) t++;
  return (order * 8 + d) * 8 + t;
}

/** Tokens seen after one context, with counts. */
class Counts {
  readonly toks: number[] = [];
  readonly cnts: number[] = [];
  total = 0;

  add(t: number): void {
    const i = this.toks.indexOf(t);
    if (i >= 0) this.cnts[i]! += 1;
    else if (this.toks.length < SPARSE_CAP) {
      this.toks.push(t);
      this.cnts.push(1);
    } else {
      // full: replace the rarest (first in order on ties), keeping the total honest
      let j = 0;
      for (let k = 1; k < this.cnts.length; k++) if (this.cnts[k]! < this.cnts[j]!) j = k;
      this.total -= this.cnts[j]!;
      this.toks[j] = t;
      this.cnts[j] = 1;
    }
    this.total += 1;
  }
}

function hashCtx(h: number, t: number): number {
  return (Math.imul(h ^ t, 0x9e3779b1) + 0x7f4a7c15) | 0;
}

/**
 * Escapes get symbols of their own: the coding alphabet is the vocabulary
 * followed by up to ESCAPE_SLOTS dictionary entries, one per distinct escape
 * string seen in the frame (symbol V + k), so the context and match experts
 * learn that "if" is followed by the escape "(" and not "{". The LM's
 * probability of <unk> is shared among the entries by their counts, the
 * <unk> symbol itself meaning "an escape not in the dictionary yet".
 */
export const ESCAPE_SLOTS = 1024;

export class TokenPredictor {
  /** the coding alphabet: vocabulary + escape slots */
  readonly symbols: number;
  private readonly vocab: number;
  private readonly unk: number;
  private readonly escCounts = new Float64Array(ESCAPE_SLOTS);
  private escTotal = 0;
  private escEntries = 0;
  /** each expert's distribution for the current step: q[0] the LM, q[1] order 0, … */
  private readonly q: Float64Array[] = [];
  private readonly p: Float64Array;
  private readonly freq: Uint32Array;
  private readonly order0: Float64Array;
  private order0Total = 0;
  private order0Distinct = 0;
  private readonly ctx: Map<number, Counts>[] = [];
  private readonly history: number[] = [];
  private readonly matchIndex = new Map<number, number>();
  private matchPtr = -1;
  private matchLen = 0;
  private readonly matchHits: Float64Array;
  private readonly matchSeen: Float64Array;
  private readonly weights: Float64Array;
  /** secondary escape estimation (PPMd's SEE): per (order, distinct, total) bucket, how often a context met a new token */
  private readonly seeNovel = new Float64Array(SEE_BUCKETS);
  private readonly seeSeen = new Float64Array(SEE_BUCKETS);
  /** per order, this step: the bucket used (−1: the context was unseen) and whether x was new there */
  private readonly stepBucket = new Int32Array(ORDERS + 1);
  private readonly stepCtx: (Counts | undefined)[] = [];
  /** per order, this step: the context's hash (undefined: fewer tokens than the order so far), reused by update */
  private readonly stepHash: (number | undefined)[] = [];
  private matchToken = -1;
  private matchConf = 0;
  private set = 0;
  private best = 0;

  constructor(vocabSize: number, unkId: number) {
    this.vocab = vocabSize;
    this.unk = unkId;
    const V = (this.symbols = unkId >= 0 ? vocabSize + ESCAPE_SLOTS : vocabSize);
    for (let k = 0; k < EXPERTS; k++) this.q.push(new Float64Array(V));
    this.p = new Float64Array(V);
    this.freq = new Uint32Array(V);
    this.order0 = new Float64Array(V);
    for (let k = 0; k < ORDERS; k++) this.ctx.push(new Map());
    this.matchHits = new Float64Array(MATCH_MAX + 1);
    this.matchSeen = new Float64Array(MATCH_MAX + 1);
    const sets = 4 * 3 * 2;
    this.weights = new Float64Array(sets * EXPERTS);
    const w0 = 0.3;
    for (let s = 0; s < sets; s++) {
      this.weights[s * EXPERTS] = w0; // the LM starts trusted most; the rest share what is left
      for (let k = 1; k < EXPERTS; k++) this.weights[s * EXPERTS + k] = (1 - w0) / (EXPERTS - 1);
    }
  }

  /**
   * out = softmax(scale · logits) over the vocabulary in float64 (det-math exp, sequential sum; scale 1
   * multiplies exactly), then <unk>'s probability shared among the escape slots by their counts and a new escape.
   */
  private softmaxWithEscapes(out: Float64Array, logits: Float32Array, max: number, scale: number): void {
    const nv = this.vocab;
    let sum = 0;
    for (let i = 0; i < nv; i++) {
      const e = detExp((logits[i]! - max) * scale);
      out[i] = e;
      sum += e;
    }
    const inv = 1 / sum;
    for (let i = 0; i < nv; i++) out[i] = out[i]! * inv;
    if (this.unk >= 0) {
      const pu = out[this.unk]!;
      const denom = this.escTotal + this.escEntries + 1;
      for (let k = 0; k < this.escEntries; k++) out[nv + k] = (pu * this.escCounts[k]!) / denom;
      out[this.unk] = (pu * (this.escEntries + 1)) / denom;
    }
  }

  /** Hash of the last `order` tokens. */
  private ctxHash(order: number): number | undefined {
    const h = this.history;
    if (h.length < order) return undefined;
    let x = order * 0x632be5ab;
    for (let i = h.length - order; i < h.length; i++) x = hashCtx(x, h[i]!);
    return x;
  }

  /**
   * The frequencies for the next symbol given the LM's logits for it (a view of the vocabulary's
   * float32 logits). Valid until the next call; follow with `update(actual)`.
   */
  predict(logits: Float32Array): Uint32Array {
    const V = this.symbols;
    const nv = this.vocab;
    const lm = this.q[0]!;
    let max = -Infinity;
    for (let i = 0; i < nv; i++) if (logits[i]! > max) max = logits[i]!;
    this.softmaxWithEscapes(lm, logits, max, 1);
    // the LM flattened (an out-of-domain model is overconfident): softmax(logits · FLAT), escapes shared alike
    this.softmaxWithEscapes(this.q[EXPERTS - 1]!, logits, max, FLAT);
    // order 0, escaping to the LM
    {
      const q1 = this.q[1]!;
      const t = this.order0Total;
      const d = Math.max(1, this.order0Distinct);
      let esc = 1;
      let sc = 0;
      this.stepBucket[0] = -1;
      if (t > 0) {
        const b = (this.stepBucket[0] = seeBucket(0, d, t));
        esc = (this.seeNovel[b]! + SEE_PRIOR * (d / (t + d))) / (this.seeSeen[b]! + SEE_PRIOR);
        sc = (1 - esc) / t;
      }
      const o0 = this.order0;
      for (let i = 0; i < V; i++) q1[i] = esc * lm[i]! + sc * o0[i]!;
    }
    // orders 1..ORDERS, each escaping to the one below
    let seen2 = 0;
    let seenTop = 0;
    for (let o = 1; o <= ORDERS; o++) {
      const lower = this.q[o]!;
      const qo = this.q[o + 1]!;
      const h = (this.stepHash[o] = this.ctxHash(o));
      const c = h === undefined ? undefined : this.ctx[o - 1]!.get(h);
      this.stepCtx[o] = c;
      this.stepBucket[o] = -1;
      if (!c || c.total === 0) {
        qo.set(lower);
        continue;
      }
      if (o === 2) seen2 = c.total < 4 ? 1 : 2;
      if (o === ORDERS) seenTop = 1;
      const d = c.toks.length;
      const b = (this.stepBucket[o] = seeBucket(o, d, c.total));
      const esc = (this.seeNovel[b]! + SEE_PRIOR * (d / (c.total + d))) / (this.seeSeen[b]! + SEE_PRIOR);
      for (let i = 0; i < V; i++) qo[i] = esc * lower[i]!;
      const sc = (1 - esc) / c.total;
      for (let j = 0; j < c.toks.length; j++) qo[c.toks[j]!] = qo[c.toks[j]!]! + sc * c.cnts[j]!;
    }
    // match, on top of the highest order
    {
      this.matchToken = this.matchLen > 0 ? this.history[this.matchPtr]! : -1;
      const lenB = Math.min(this.matchLen, MATCH_MAX);
      this.matchConf = this.matchToken < 0 ? 0 : (this.matchHits[lenB]! + 0.5) / (this.matchSeen[lenB]! + 1);
      const top = this.q[ORDERS + 1]!;
      const qm = this.q[ORDERS + 2]!;
      const keep = 1 - this.matchConf;
      for (let i = 0; i < V; i++) qm[i] = keep * top[i]!;
      if (this.matchToken >= 0) qm[this.matchToken] = qm[this.matchToken]! + this.matchConf;
    }

    // the mixing set: match length bucket × order-2 experience × whether the top order has seen this context
    const mb = this.matchLen === 0 ? 0 : this.matchLen < 8 ? 1 : this.matchLen < 24 ? 2 : 3;
    this.set = (mb * 3 + seen2) * 2 + seenTop;
    const w = this.weights.subarray(this.set * EXPERTS, this.set * EXPERTS + EXPERTS);
    const p = this.p;
    const q0 = this.q[0]!;
    const w0 = w[0]!;
    for (let i = 0; i < V; i++) p[i] = w0 * q0[i]!;
    for (let k = 1; k < EXPERTS; k++) {
      const qk = this.q[k]!;
      const wk = w[k]!;
      for (let i = 0; i < V; i++) p[i] = p[i]! + wk * qk[i]!;
    }

    // quantise: total exactly FREQ_TOTAL, floor 1
    let psum = 0;
    for (let i = 0; i < V; i++) psum += p[i]!;
    const scale = (FREQ_TOTAL - V) / psum;
    const f = this.freq;
    let fsum = 0;
    let best = 0;
    for (let i = 0; i < V; i++) {
      const v = 1 + Math.floor(p[i]! * scale);
      f[i] = v;
      fsum += v;
      if (v > f[best]!) best = i;
    }
    f[best] = f[best]! + FREQ_TOTAL - fsum;
    this.best = best;
    return f;
  }

  /**
   * Learns from the symbol just coded. `newEscape`: x is <unk> and its escape string was
   * entered in the dictionary (as symbol vocab + entries, while slots remain).
   */
  update(x: number, newEscape = false): void {
    const V = this.symbols;
    // the weight step: each expert's probability of x against the mixture's
    const w = this.weights.subarray(this.set * EXPERTS, this.set * EXPERTS + EXPERTS);
    let px = 0;
    for (let k = 0; k < EXPERTS; k++) px += w[k]! * this.q[k]![x]!;
    if (px > 0) {
      let ws = 0;
      for (let k = 0; k < EXPERTS; k++) {
        const g = this.q[k]![x]! / px - 1;
        const nw = Math.max(WEIGHT_FLOOR, w[k]! * detExp(ETA * (g > 20 ? 20 : g)));
        w[k] = nw;
        ws += nw;
      }
      for (let k = 0; k < EXPERTS; k++) w[k] = w[k]! / ws;
    }
    if (x >= this.vocab) {
      this.escCounts[x - this.vocab] = this.escCounts[x - this.vocab]! + 1;
      this.escTotal++;
    } else if (newEscape) {
      this.escCounts[this.escEntries++] = 1;
      this.escTotal++;
    }

    // escape statistics
    for (let o = 0; o <= ORDERS; o++) {
      const b = this.stepBucket[o]!;
      if (b < 0) continue;
      const novel = o === 0 ? this.order0[x] === 0 : !this.stepCtx[o]!.toks.includes(x);
      this.seeSeen[b] = this.seeSeen[b]! + 1;
      if (novel) this.seeNovel[b] = this.seeNovel[b]! + 1;
      if (this.seeSeen[b]! > 8192) {
        this.seeSeen[b] = this.seeSeen[b]! / 2;
        this.seeNovel[b] = this.seeNovel[b]! / 2;
      }
    }
    // match statistics
    if (this.matchToken >= 0) {
      const lenB = Math.min(this.matchLen, MATCH_MAX);
      this.matchSeen[lenB] = this.matchSeen[lenB]! + 1;
      if (this.matchToken === x) this.matchHits[lenB] = this.matchHits[lenB]! + 1;
      if (this.matchSeen[lenB]! > 4096) {
        this.matchSeen[lenB] = this.matchSeen[lenB]! / 2;
        this.matchHits[lenB] = this.matchHits[lenB]! / 2;
      }
    }
    // counts
    if (this.order0[x] === 0) this.order0Distinct++;
    this.order0[x] = this.order0[x]! + 1;
    this.order0Total += 1;
    if (this.order0Total > COUNT_LIMIT) {
      this.order0Total = 0;
      this.order0Distinct = 0;
      for (let i = 0; i < V; i++) {
        const c = Math.floor(this.order0[i]! / 2);
        this.order0[i] = c;
        this.order0Total += c;
        if (c) this.order0Distinct++;
      }
    }
    for (let o = 1; o <= ORDERS; o++) {
      const h = this.stepHash[o];
      if (h === undefined) continue;
      let c = this.stepCtx[o];
      if (!c) this.ctx[o - 1]!.set(h, (c = new Counts()));
      c.add(x);
    }
    // history and the match model
    if (this.matchLen > 0 && this.matchToken === x) {
      this.matchLen++;
      this.matchPtr++;
    } else {
      this.matchLen = 0;
    }
    this.history.push(x);
    const n = this.history.length;
    if (n >= MATCH_MIN) {
      const h = this.ctxHash(MATCH_MIN)!;
      if (this.matchLen === 0) {
        const prev = this.matchIndex.get(h);
        if (prev !== undefined) {
          // verify and measure the match backwards (a hash collision gives length 0)
          let len = 0;
          while (len < MATCH_MAX && prev - 1 - len >= 0 && this.history[prev - 1 - len] === this.history[n - 1 - len]) len++;
          if (len >= MATCH_MIN) {
            this.matchLen = len;
            this.matchPtr = prev;
          }
        }
      }
      this.matchIndex.set(h, n);
    }
    if (this.matchLen > 0 && this.matchPtr >= n) this.matchLen = 0;
  }

  /** The likeliest symbol of the last prediction (for tests and diagnostics). */
  get likeliest(): number {
    return this.best;
  }
}
