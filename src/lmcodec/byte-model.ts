/**
 * The byte-level fallback: an adaptive order-2/order-1/order-0 model over
 * 256 byte values plus END, for the bytes of an escape (characters outside
 * the tokenizer's alphabet: '{', '#', tabs, invalid UTF-8…) and for whole
 * frames the tokenizer cannot map (see tokenize-bytes.ts).
 *
 * Integer counts only, so every machine computes the same frequencies. The
 * three orders are blended by PPM-style inheritance: a context's table
 * starts empty, and its distribution is its own counts plus an escape share
 * spread over the next-lower order's distribution. Counts grow by INC and
 * are halved when a table's total passes LIMIT, so the model follows drift.
 */
import type { ArithmeticDecoder, ArithmeticEncoder } from '../codec/entropy/arithmetic.js';

export const END = 256;
const SYMBOLS = 257;
const INC = 32;
const LIMIT = 1 << 16;
/** Total of a blended table given to the coder. */
const TOTAL = 1 << 22;

class Table {
  readonly counts = new Uint32Array(SYMBOLS);
  total = 0;
  distinct = 0;

  add(s: number): void {
    if (this.counts[s] === 0) this.distinct++;
    this.counts[s] = this.counts[s]! + INC;
    this.total += INC;
    if (this.total > LIMIT) {
      this.total = 0;
      this.distinct = 0;
      for (let i = 0; i < SYMBOLS; i++) {
        const c = this.counts[i]! >>> 1;
        this.counts[i] = c;
        this.total += c;
        if (c) this.distinct++;
      }
    }
  }
}

export class ByteModel {
  private readonly o0 = new Table();
  private readonly o1: Table[] = Array.from({ length: 256 }, () => new Table());
  private readonly o2 = new Map<number, Table>();
  private c1 = 0; // previous byte
  private c2 = 0; // the one before
  private readonly freq = new Uint32Array(SYMBOLS);
  private readonly prob = new Float64Array(SYMBOLS);

  /** Sets the context (the last two bytes before what is coded next). */
  setContext(prev2: number, prev1: number): void {
    this.c2 = prev2 & 0xff;
    this.c1 = prev1 & 0xff;
  }

  /** The blended distribution as integer frequencies summing to TOTAL, each ≥ 1. */
  private table(): Uint32Array {
    const p = this.prob;
    // order −1: uniform; then each order blends its counts with its escape share of the lower one
    p.fill(1 / SYMBOLS);
    const blend = (t: Table | undefined): void => {
      if (!t || t.total === 0) return;
      const esc = Math.max(1, t.distinct) * INC;
      const denom = t.total + esc;
      const keep = esc / denom;
      for (let i = 0; i < SYMBOLS; i++) p[i] = t.counts[i]! / denom + keep * p[i]!;
    };
    blend(this.o0);
    blend(this.o1[this.c1]);
    blend(this.o2.get((this.c2 << 8) | this.c1));
    const f = this.freq;
    const spare = TOTAL - SYMBOLS;
    let sum = 0;
    let best = 0;
    for (let i = 0; i < SYMBOLS; i++) {
      const v = 1 + Math.floor(p[i]! * spare);
      f[i] = v;
      sum += v;
      if (v > f[best]!) best = i;
    }
    f[best] = f[best]! + TOTAL - sum; // the rounding deficit goes to the likeliest symbol
    return f;
  }

  private update(s: number): void {
    this.o0.add(s);
    this.o1[this.c1]!.add(s);
    const k = (this.c2 << 8) | this.c1;
    let t = this.o2.get(k);
    if (!t) this.o2.set(k, (t = new Table()));
    t.add(s);
    if (s !== END) {
      this.c2 = this.c1;
      this.c1 = s;
    }
  }

  encode(enc: ArithmeticEncoder, s: number): void {
    const f = this.table();
    let cum = 0;
    for (let i = 0; i < s; i++) cum += f[i]!;
    enc.encode(cum, f[s]!, TOTAL);
    this.update(s);
  }

  decode(dec: ArithmeticDecoder): number {
    const f = this.table();
    const target = dec.target(TOTAL);
    let cum = 0;
    let s = 0;
    while (cum + f[s]! <= target) cum += f[s++]!;
    dec.consume(cum, f[s]!);
    this.update(s);
    return s;
  }

  /** Codes bytes followed by END. */
  encodeRun(enc: ArithmeticEncoder, bytes: Uint8Array): void {
    for (const b of bytes) this.encode(enc, b);
    this.encode(enc, END);
  }

  /** Decodes bytes up to END (at most `limit` of them: more is a damaged stream). */
  decodeRun(dec: ArithmeticDecoder, limit: number): Uint8Array | undefined {
    const out: number[] = [];
    for (;;) {
      const s = this.decode(dec);
      if (s === END) return Uint8Array.from(out);
      if (out.length >= limit) return undefined;
      out.push(s);
    }
  }
}
