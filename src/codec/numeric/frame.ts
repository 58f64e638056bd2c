/**
 * Payload framing shared by the numeric codecs:
 *
 *   u8 mode | varint n | varint params... | block(model bits) | block(rANS stream) | extra bits (rest)
 *
 * `n` (element count) is redundant with rawLength and checked against it,
 * which catches payloads handed to the wrong chunk early. The "extra bits"
 * section holds raw bits (mantissas, low bits of large deltas) that are
 * stored uncoded because they are incompressible.
 */
import { BitReader, BitWriter, ByteReader, ByteWriter, corrupt } from '../entropy/bitio.js';
import { readModel, type ModelChoice, type TokenModel } from '../entropy/model.js';
import { RansStream, buildDecodeTables, type DecodeTables } from '../entropy/rans.js';

export interface Frame {
  mode: number;
  model: TokenModel;
  tables: DecodeTables;
  rans: RansStream;
  extra: Uint8Array;
  /** Mode-specific small integers (e.g. the exponent offset of float-exp). */
  params: number[];
}

export interface FrameSpec {
  R: number;
  S: number;
  order: ArrayLike<number>;
  /** How many varint params follow n, and their upper bound. */
  params?: number;
  paramMax?: number;
}

export function writeFrame(mode: number, n: number, model: ModelChoice, rans: Uint8Array, extra: Uint8Array, params: readonly number[] = []): Uint8Array {
  const bw = new BitWriter();
  model.write(bw);
  const mb = bw.finish();
  const w = new ByteWriter(mb.length + rans.length + extra.length + 16);
  w.u8(mode);
  w.varint(n);
  for (const v of params) w.varint(v);
  w.block(mb);
  w.block(rans);
  w.bytes(extra);
  return w.finish();
}

/** Parse a frame; `contexts(mode)` gives the raw context count, order and alphabet the mode uses. */
export function readFrame(
  payload: Uint8Array,
  n: number,
  what: string,
  contexts: (mode: number) => FrameSpec | undefined,
): Frame {
  const r = new ByteReader(payload);
  const mode = r.u8();
  const spec = contexts(mode);
  if (!spec) corrupt(`${what}: unknown mode ${mode}`);
  if (r.varint() !== n) corrupt(`${what}: element count does not match the chunk`);
  const params: number[] = [];
  for (let k = 0; k < (spec.params ?? 0); k++) params.push(r.varint(spec.paramMax ?? 0));
  const mb = r.block();
  const model = readModel(new BitReader(mb), spec.R, spec.S, spec.order, n);
  const rb = r.block();
  const rans = new RansStream(rb, 0, rb.length);
  const extra = payload.subarray(r.pos);
  return { mode, model, tables: buildDecodeTables(model), rans, extra, params };
}

/**
 * Raw-bit sink for hot encoder loops: LSB-first, preallocated for the worst
 * case (the caller passes the maximum bit count), no bounds checks per put.
 */
export class ExtraBits {
  buf: Uint8Array;
  pos = 0;
  acc = 0;
  n = 0;
  constructor(maxBits: number) {
    this.buf = new Uint8Array((maxBits >>> 3) + 8);
  }
  finish(): Uint8Array {
    while (this.n > 0) {
      this.buf[this.pos++] = this.acc & 0xff;
      this.acc >>>= 8;
      this.n -= 8;
    }
    return this.buf.subarray(0, this.pos);
  }
}

/** Token alphabet for zigzag deltas: 0..15 direct, then (bit length, next bit) classes up to 32-bit values. */
export const DIRECT = 16;
export function alphabetFor(width: 16 | 32): number {
  return DIRECT + 2 * (width - 4);
}
