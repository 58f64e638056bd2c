/**
 * The token predictor: the language model's distribution mixed with models
 * learned online from the frame being coded, turned into integer
 * frequencies for the arithmetic coder.
 *
 * Experts (each a full distribution over the vocabulary):
 *  0  the LM: softmax of its logits (det-math exp, float64, fixed order);
 *  1  order-0: token counts in this frame so far;
 *  2–4 orders 1–3: counts of the token after the last 1, 2, 3 tokens;
 *  5  match: the token that followed the longest earlier occurrence of the
 *     current context, with a confidence learned per match length.
 * A counting expert spreads its escape share (PPM method C: as many escapes
 * as distinct tokens seen) over the LM's distribution, so every expert is
 * "the LM, sharpened by what this text has shown", and mixing costs one
 * dense pass plus the few tokens the counts name.
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
const EXPERTS = 6;
const ORDERS = 3;
const MATCH_MIN = 3;
const MATCH_MAX = 64;
const ETA = 0.05;
const WEIGHT_FLOOR = 1e-4;
const COUNT_LIMIT = 1 << 20;
const SPARSE_CAP = 96; // tokens remembered per context (the least frequent are dropped)

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
  private readonly V: number;
  private readonly vocab: number;
  private readonly unk: number;
  private readonly escCounts = new Float64Array(ESCAPE_SLOTS);
  private escTotal = 0;
  private escEntries = 0;
  private readonly lm: Float64Array;
  private readonly p: Float64Array;
  private readonly freq: Uint32Array;
  private readonly order0: Uint32Array;
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
  // per step: what each expert gave the coded token, and the mixing set used
  private readonly sparseScale = new Float64Array(EXPERTS);
  private readonly escShare = new Float64Array(EXPERTS);
  private active: (Counts | undefined)[] = [];
  private matchToken = -1;
  private matchConf = 0;
  private set = 0;
  private best = 0;

  constructor(vocabSize: number, unkId: number) {
    this.vocab = vocabSize;
    this.unk = unkId;
    this.V = this.symbols = unkId >= 0 ? vocabSize + ESCAPE_SLOTS : vocabSize;
    this.lm = new Float64Array(this.V);
    this.p = new Float64Array(this.V);
    this.freq = new Uint32Array(this.V);
    this.order0 = new Uint32Array(this.V);
    for (let k = 0; k < ORDERS; k++) this.ctx.push(new Map());
    this.matchHits = new Float64Array(MATCH_MAX + 1);
    this.matchSeen = new Float64Array(MATCH_MAX + 1);
    const sets = 4 * 3;
    this.weights = new Float64Array(sets * EXPERTS);
    for (let s = 0; s < sets; s++) {
      this.weights[s * EXPERTS] = 0.5; // the LM starts trusted; the rest share the other half
      for (let k = 1; k < EXPERTS; k++) this.weights[s * EXPERTS + k] = 0.5 / (EXPERTS - 1);
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
   * The frequencies for the next token given the LM's logits for it (a view of V float32).
   * Valid until the next call; follow with `update(actual)`.
   */
  predict(logits: Float32Array): Uint32Array {
    const V = this.V;
    const lm = this.lm;
    // LM softmax in float64
    const nv = this.vocab;
    let max = -Infinity;
    for (let i = 0; i < nv; i++) if (logits[i]! > max) max = logits[i]!;
    let sum = 0;
    for (let i = 0; i < nv; i++) {
      const e = detExp(logits[i]! - max);
      lm[i] = e;
      sum += e;
    }
    const inv = 1 / sum;
    for (let i = 0; i < nv; i++) lm[i] = lm[i]! * inv;
    if (this.unk >= 0) {
      // <unk>'s share among the known escapes and a new one
      const pu = lm[this.unk]!;
      const denom = this.escTotal + this.escEntries + 1;
      for (let k = 0; k < this.escEntries; k++) lm[nv + k] = (pu * this.escCounts[k]!) / denom;
      lm[this.unk] = (pu * (this.escEntries + 1)) / denom;
    }

    // the counting experts: their sparse part and escape share
    this.active = [undefined, undefined];
    for (let o = 1; o <= ORDERS; o++) {
      const h = this.ctxHash(o);
      this.active.push(h === undefined ? undefined : this.ctx[o - 1]!.get(h));
    }
    // order 0
    {
      const denom = this.order0Total + Math.max(1, this.order0Distinct);
      this.sparseScale[1] = this.order0Total === 0 ? 0 : 1 / denom;
      this.escShare[1] = this.order0Total === 0 ? 1 : Math.max(1, this.order0Distinct) / denom;
    }
    for (let o = 1; o <= ORDERS; o++) {
      const c = this.active[o + 1];
      if (!c || c.total === 0) {
        this.sparseScale[o + 1] = 0;
        this.escShare[o + 1] = 1;
      } else {
        const denom = c.total + c.toks.length;
        this.sparseScale[o + 1] = 1 / denom;
        this.escShare[o + 1] = c.toks.length / denom;
      }
    }
    // match expert
    this.matchToken = this.matchLen > 0 ? this.history[this.matchPtr]! : -1;
    const lenB = Math.min(this.matchLen, MATCH_MAX);
    this.matchConf = this.matchToken < 0 ? 0 : (this.matchHits[lenB]! + 0.5) / (this.matchSeen[lenB]! + 1);

    // the mixing set
    const mb = this.matchLen === 0 ? 0 : this.matchLen < 8 ? 1 : this.matchLen < 24 ? 2 : 3;
    const c2 = this.active[3];
    const cb = !c2 ? 0 : c2.total < 4 ? 1 : 2;
    this.set = mb * 3 + cb;
    const w = this.weights.subarray(this.set * EXPERTS, this.set * EXPERTS + EXPERTS);

    // p = A · lm + sparse parts
    let A = w[0]!;
    for (let k = 1; k < 5; k++) A += w[k]! * this.escShare[k]!;
    A += w[5]! * (1 - this.matchConf);
    const p = this.p;
    for (let i = 0; i < V; i++) p[i] = A * lm[i]!;
    if (this.order0Total > 0) {
      const s = w[1]! * this.sparseScale[1]!;
      const o0 = this.order0;
      for (let i = 0; i < V; i++) if (o0[i] !== 0) p[i] = p[i]! + s * o0[i]!;
    }
    for (let o = 1; o <= ORDERS; o++) {
      const c = this.active[o + 1];
      if (!c || c.total === 0) continue;
      const s = w[o + 1]! * this.sparseScale[o + 1]!;
      for (let j = 0; j < c.toks.length; j++) p[c.toks[j]!] = p[c.toks[j]!]! + s * c.cnts[j]!;
    }
    if (this.matchToken >= 0) p[this.matchToken] = p[this.matchToken]! + w[5]! * this.matchConf;

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
    if (x >= this.vocab) {
      this.escCounts[x - this.vocab] = this.escCounts[x - this.vocab]! + 1;
      this.escTotal++;
    } else if (newEscape) {
      this.escCounts[this.escEntries++] = 1;
      this.escTotal++;
    }
    const V = this.V;
    // each expert's probability of x, then the weight step
    const pk = new Float64Array(EXPERTS);
    const lmx = this.lm[x]!;
    pk[0] = lmx;
    pk[1] = this.sparseScale[1]! * this.order0[x]! + this.escShare[1]! * lmx;
    for (let o = 1; o <= ORDERS; o++) {
      const c = this.active[o + 1];
      let cnt = 0;
      if (c) {
        const j = c.toks.indexOf(x);
        if (j >= 0) cnt = c.cnts[j]!;
      }
      pk[o + 1] = this.sparseScale[o + 1]! * cnt + this.escShare[o + 1]! * lmx;
    }
    pk[5] = (this.matchToken === x ? this.matchConf : 0) + (1 - this.matchConf) * lmx;
    const w = this.weights.subarray(this.set * EXPERTS, this.set * EXPERTS + EXPERTS);
    let px = 0;
    for (let k = 0; k < EXPERTS; k++) px += w[k]! * pk[k]!;
    if (px > 0) {
      let ws = 0;
      for (let k = 0; k < EXPERTS; k++) {
        const g = pk[k]! / px - 1;
        const nw = Math.max(WEIGHT_FLOOR, w[k]! * detExp(ETA * (g > 20 ? 20 : g)));
        w[k] = nw;
        ws += nw;
      }
      for (let k = 0; k < EXPERTS; k++) w[k] = w[k]! / ws;
    }

    // match statistics and pointer
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
        this.order0[i] = this.order0[i]! >>> 1;
        this.order0Total += this.order0[i]!;
        if (this.order0[i]) this.order0Distinct++;
      }
    }
    for (let o = 1; o <= ORDERS; o++) {
      const h = this.ctxHash(o);
      if (h === undefined) continue;
      let c = this.ctx[o - 1]!.get(h);
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

  /** The likeliest token of the last prediction (for tests and diagnostics). */
  get likeliest(): number {
    return this.best;
  }
}
