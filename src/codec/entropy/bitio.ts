/**
 * Bounds-checked byte and bit I/O for the entropy coders.
 *
 * Every reader throws At1Error('E_CORRUPT') instead of reading past its end,
 * so a truncated or hostile payload fails loudly and never allocates more
 * than the caller asked for. Writers grow geometrically.
 *
 * Raw bits are packed LSB-first into bytes (bit k of the stream is bit k%8 of
 * byte k>>3). Reads of up to 24 bits at a time keep the 32-bit accumulator in
 * int32 range, which is what lets V8 keep the hot loops in integer registers.
 */
import { At1Error } from '../../errors.js';

export function corrupt(what: string): never {
  throw new At1Error('E_CORRUPT', what);
}

export class ByteWriter {
  private buf: Uint8Array;
  pos = 0;
  constructor(initial = 256) {
    this.buf = new Uint8Array(Math.max(16, initial));
  }
  private ensure(extra: number): void {
    if (this.pos + extra <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.pos + extra) cap *= 2;
    const nb = new Uint8Array(cap);
    nb.set(this.buf.subarray(0, this.pos));
    this.buf = nb;
  }
  u8(v: number): void {
    this.ensure(1);
    this.buf[this.pos++] = v & 0xff;
  }
  /** Unsigned LEB128, up to 2^53. */
  varint(v: number): void {
    this.ensure(8);
    while (v >= 0x80) {
      this.buf[this.pos++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.buf[this.pos++] = v;
  }
  bytes(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }
  /** A byte string preceded by its length. */
  block(b: Uint8Array): void {
    this.varint(b.length);
    this.bytes(b);
  }
  finish(): Uint8Array {
    return this.buf.slice(0, this.pos);
  }
}

export class ByteReader {
  pos: number;
  constructor(
    readonly buf: Uint8Array,
    start = 0,
    readonly end = buf.length,
  ) {
    this.pos = start;
  }
  u8(): number {
    if (this.pos >= this.end) corrupt('payload truncated');
    return this.buf[this.pos++]!;
  }
  varint(max = Number.MAX_SAFE_INTEGER): number {
    let v = 0;
    let mul = 1;
    for (let i = 0; i < 8; i++) {
      const b = this.u8();
      v += (b & 0x7f) * mul;
      if (b < 0x80) {
        if (v > max) corrupt(`payload field ${v} exceeds its limit ${max}`);
        return v;
      }
      mul *= 0x80;
    }
    return corrupt('payload varint too long');
  }
  bytes(n: number): Uint8Array {
    if (n < 0 || this.pos + n > this.end) corrupt('payload truncated');
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  block(): Uint8Array {
    return this.bytes(this.varint());
  }
  get remaining(): number {
    return this.end - this.pos;
  }
}

/** LSB-first bit packer. */
export class BitWriter {
  private buf: Uint8Array;
  private pos = 0;
  private acc = 0;
  private n = 0;
  constructor(initialBytes = 64) {
    this.buf = new Uint8Array(Math.max(16, initialBytes));
  }
  /** Append the low `bits` bits of v (0 <= bits <= 24). */
  put(v: number, bits: number): void {
    if (bits === 0) return;
    this.acc |= (v & ((1 << bits) - 1)) << this.n;
    this.n += bits;
    if (this.n >= 8) this.flushBytes();
  }
  /** Append up to 32 bits (v taken as uint32). */
  putLong(v: number, bits: number): void {
    if (bits > 16) {
      this.put(v & 0xffff, 16);
      this.put(Math.floor((v >>> 0) / 65536), bits - 16);
    } else this.put(v, bits);
  }
  private flushBytes(): void {
    if (this.pos + 4 > this.buf.length) {
      const nb = new Uint8Array(this.buf.length * 2 + 8);
      nb.set(this.buf.subarray(0, this.pos));
      this.buf = nb;
    }
    while (this.n >= 8) {
      this.buf[this.pos++] = this.acc & 0xff;
      this.acc >>>= 8;
      this.n -= 8;
    }
  }
  /** Exp-Golomb code of order k for v >= 0 (v < 2^24). */
  expGolomb(v: number, k: number): void {
    const w = v + (1 << k);
    const len = 32 - Math.clz32(w); // >= k+1
    const z = len - k - 1;
    this.put(0, z);
    this.put(1, 1);
    this.putLong(w - (1 << (len - 1)), len - 1);
  }
  get bitLength(): number {
    return this.pos * 8 + this.n;
  }
  finish(): Uint8Array {
    if (this.n > 0) {
      this.n = (this.n + 7) & ~7;
      this.flushBytes();
    }
    return this.buf.slice(0, this.pos);
  }
}

/**
 * LSB-first bit reader over a byte range. Reading past the end yields zero
 * bits and sets `overrun`; callers check it once at the end (cheaper than a
 * branch per read in hot loops) and via get() for control fields.
 */
export class BitReader {
  private pos: number;
  private acc = 0;
  private n = 0;
  overrun = false;
  constructor(
    private readonly buf: Uint8Array,
    start = 0,
    private readonly end = buf.length,
  ) {
    this.pos = start;
  }
  /** Read `bits` bits (0..24). */
  get(bits: number): number {
    while (this.n < bits) {
      if (this.pos < this.end) this.acc |= this.buf[this.pos++]! << this.n;
      else this.overrun = true;
      this.n += 8;
    }
    const v = this.acc & ((1 << bits) - 1);
    this.acc >>>= bits;
    this.n -= bits;
    return v;
  }
  getLong(bits: number): number {
    if (bits > 16) {
      const lo = this.get(16);
      return lo + this.get(bits - 16) * 65536;
    }
    return this.get(bits);
  }
  /** Exp-Golomb of order k; rejects codes longer than 24 bits. */
  expGolomb(k: number): number {
    let zeros = 0;
    while (this.get(1) === 0) {
      if (++zeros > 24 || this.overrun) corrupt('bad Exp-Golomb code in payload');
    }
    const rest = this.getLong(zeros + k);
    return (1 << (zeros + k)) + rest - (1 << k);
  }
  check(what: string): void {
    if (this.overrun) corrupt(`${what}: bit stream truncated`);
  }
  /** Bytes consumed so far (whole bytes touched). */
  get bytePos(): number {
    return this.pos;
  }
}
