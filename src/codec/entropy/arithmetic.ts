/**
 * A multi-symbol arithmetic (range) coder over integer frequency tables with
 * totals up to 2^24, for the LM codec: the model gives a distribution over a
 * vocabulary of thousands of tokens at every step, quantised to integers.
 *
 * Integer arithmetic only, carried in float64 numbers, which hold integers
 * exactly below 2^53: `low` is kept below 2^48 plus a carry bit and `range`
 * in [2^40, 2^48], so `range / total` keeps at least 16 bits for a total of
 * 2^24 (the cost of that truncation is under 2^−16 bits a symbol). Every
 * division is an exact integer quotient (`idiv`), so encoder and decoder
 * agree on every machine.
 *
 * The byte output follows LZMA's range encoder (a cache byte and a run of
 * pending 0xFF bytes absorb a carry), widened from 32 to 48 bits: the first
 * byte written is always 0, and `finish` flushes 7 bytes.
 */
import { At1Error } from '../../errors.js';

const TOP = 2 ** 48; //   low < TOP (plus a carry)
const BOT = 2 ** 40; //   range ≥ BOT after normalisation
const SHIFT = 2 ** 40; // the byte leaving low is bits 40..47
export const MAX_TOTAL = 2 ** 24;

/** ⌊a / b⌋ for non-negative integers below 2^53, exactly (a float division can round up across an integer). */
export function idiv(a: number, b: number): number {
  let q = Math.floor(a / b);
  if (q * b > a) q--;
  else if ((q + 1) * b <= a) q++;
  return q;
}

export class ArithmeticEncoder {
  private low = 0;
  private range = TOP - 1;
  private cache = 0;
  private cacheSize = 1;
  private buf: Uint8Array;
  private n = 0;

  constructor(initialCapacity = 1 << 16) {
    this.buf = new Uint8Array(initialCapacity);
  }

  /** Codes the symbol occupying [cum, cum + freq) of [0, total). */
  encode(cum: number, freq: number, total: number): void {
    if (!(freq > 0 && cum >= 0 && cum + freq <= total && total <= MAX_TOTAL)) {
      throw new RangeError(`arithmetic coder: bad interval [${cum}, ${cum + freq}) of ${total}`);
    }
    const r = idiv(this.range, total);
    this.low += r * cum;
    this.range = r * freq;
    while (this.range < BOT) {
      this.range *= 256;
      this.shiftLow();
    }
  }

  private shiftLow(): void {
    const carry = this.low >= TOP ? 1 : 0;
    const low48 = carry ? this.low - TOP : this.low;
    if (low48 < 0xff * SHIFT || carry) {
      let temp = this.cache;
      do {
        this.put((temp + carry) & 0xff);
        temp = 0xff;
      } while (--this.cacheSize !== 0);
      this.cache = Math.floor(low48 / SHIFT);
    }
    this.cacheSize++;
    this.low = (low48 % SHIFT) * 256;
  }

  private put(b: number): void {
    if (this.n === this.buf.length) {
      const next = new Uint8Array(this.buf.length * 2);
      next.set(this.buf);
      this.buf = next;
    }
    this.buf[this.n++] = b;
  }

  /** Bytes written so far (for statistics; the last few are still in flight). */
  get bytesOut(): number {
    return this.n + this.cacheSize;
  }

  /** Flushes the state and returns the coded bytes. */
  finish(): Uint8Array {
    for (let i = 0; i < 7; i++) this.shiftLow();
    return this.buf.slice(0, this.n);
  }
}

export class ArithmeticDecoder {
  private code = 0;
  private range = TOP - 1;
  private pos = 0;
  private r = 0;

  constructor(private readonly bytes: Uint8Array) {
    if (bytes.length < 7 || bytes[0] !== 0) throw new At1Error('E_CORRUPT', 'arithmetic-coded stream is truncated or does not start with its zero byte');
    this.pos = 1;
    for (let i = 0; i < 6; i++) this.code = this.code * 256 + this.next();
    if (this.code >= this.range) throw new At1Error('E_CORRUPT', 'arithmetic-coded stream starts outside its range');
  }

  private next(): number {
    // Past the end the encoder's flush implies zeros; a damaged stream that reads further is caught by the frame digest.
    return this.pos < this.bytes.length ? this.bytes[this.pos++]! : (this.pos++, 0);
  }

  /** The target cumulative frequency of the next symbol, in [0, total). Follow with `consume`. */
  target(total: number): number {
    this.r = idiv(this.range, total);
    const v = idiv(this.code, this.r);
    return v < total ? v : total - 1;
  }

  /** Removes the symbol [cum, cum + freq) found for the last `target`. */
  consume(cum: number, freq: number): void {
    this.code -= this.r * cum;
    this.range = this.r * freq;
    if (this.code < 0 || this.code >= this.range) throw new At1Error('E_CORRUPT', 'arithmetic-coded stream is damaged (code left its interval)');
    while (this.range < BOT) {
      this.code = this.code * 256 + this.next();
      this.range *= 256;
    }
  }

  /** Bytes read beyond the stream's end (a well-formed stream reads none past its flush). */
  get overrun(): number {
    return Math.max(0, this.pos - this.bytes.length);
  }
}
