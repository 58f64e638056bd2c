/**
 * One frame of the lm-mix/1 codec: bytes in, a self-contained payload out,
 * and back. A frame shares nothing with its neighbours (fresh LM context,
 * fresh adaptive models), so frames decode on their own and in parallel,
 * and damage to one loses only that one.
 *
 * Payload (docs/FORMAT.md §14, "Frame payload"):
 *   u8  mode      0 = tokens, 1 = bytes
 *   u32 count     LE: tokens (mode 0) or bytes (mode 1)
 *   ... the arithmetic-coded stream (codec/entropy/arithmetic.ts)
 * Mode 0 codes `count` tokens with the TokenPredictor (LM + online experts);
 * each <unk> token is followed by its escape bytes, coded by the ByteModel
 * and ended by END. Mode 1 codes `count` bytes with the ByteModel alone
 * (used when the tokenizer cannot be mapped onto the bytes).
 */
import { ArithmeticDecoder, ArithmeticEncoder } from '../codec/entropy/arithmetic.js';
import { At1Error } from '../errors.js';
import type { LlamaModel } from '../runtime/model.js';
import { ByteModel, END } from './byte-model.js';
import { IncrementalLogits, segmentLogits, segmentsOf } from './lm-context.js';
import { ESCAPE_SLOTS, FREQ_TOTAL, TokenPredictor } from './predictor.js';
import { TokenBytes, tokenizeFrame, type VocabularyView } from './tokenize-bytes.js';

export const MODE_TOKENS = 0;
export const MODE_BYTES = 1;
const HEADER = 5;
/** Longest escape the decoder accepts (an escape is a run of characters outside the vocabulary). */
const MAX_ESCAPE = 1 << 24;

export interface FrameCoderOptions {
  model: LlamaModel;
  vocab: VocabularyView;
  spell: TokenBytes;
  bos: number;
  /** positions of the model's context the coder uses (default and at most: max_position_embeddings) */
  context?: number;
  /** context tokens fed again at each new segment (default: a quarter of the context) */
  reuse?: number;
  /** called with the number of tokens (or bytes) coded so far in this frame */
  onProgress?: (done: number, total: number) => void;
  signal?: AbortSignal;
}

export interface EncodedFrame {
  payload: Uint8Array;
  mode: number;
  /** tokens coded (mode 0) or 0 */
  tokens: number;
  /** where the bits went (ideal code lengths): vocabulary tokens, escape symbols, escape bytes (and bytes of mode 1) */
  bits: { tokens: number; escapes: number; escapeBytes: number; escapeCount: number };
}

function maxSeqOf(o: FrameCoderOptions): number {
  return Math.min(o.context ?? o.model.config.maxPositionEmbeddings, o.model.config.maxPositionEmbeddings);
}

function reuseOf(o: FrameCoderOptions): number {
  return o.reuse ?? Math.max(1, Math.floor(maxSeqOf(o) / 4));
}

function header(mode: number, count: number, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(HEADER + body.length);
  out[0] = mode;
  new DataView(out.buffer).setUint32(1, count, true);
  out.set(body, HEADER);
  return out;
}

/** Cumulative frequency of symbol x. */
function cumOf(f: Uint32Array, x: number): number {
  let c = 0;
  for (let i = 0; i < x; i++) c += f[i]!;
  return c;
}

export async function encodeFrame(bytes: Uint8Array, o: FrameCoderOptions): Promise<EncodedFrame> {
  const tokenized = tokenizeFrame(bytes, o.vocab, o.spell);
  const enc = new ArithmeticEncoder(Math.max(1024, bytes.length >> 1));
  const bm = new ByteModel();
  if (!tokenized) {
    let p2 = 0;
    let p1 = 0;
    for (let i = 0; i < bytes.length; i++) {
      bm.setContext(p2, p1);
      bm.encode(enc, bytes[i]!);
      p2 = p1;
      p1 = bytes[i]!;
      if ((i & 0xffff) === 0) o.signal?.throwIfAborted();
    }
    return { payload: header(MODE_BYTES, bytes.length, enc.finish()), mode: MODE_BYTES, tokens: 0, bits: { tokens: 0, escapes: 0, escapeBytes: bytes.length * 8, escapeCount: 0 } };
  }
  const { ids, escapes } = tokenized;
  const V = o.model.config.vocabSize;
  const pred = new TokenPredictor(V, o.vocab.unkId);
  const dict = new EscapeDictionary(V);
  const bits = { tokens: 0, escapes: 0, escapeBytes: 0, escapeCount: 0 };
  const cost = (f: number): number => Math.log2(FREQ_TOTAL / f);
  let e = 0;
  let p2 = 0;
  let p1 = 0;
  const last2 = (b: Uint8Array): void => {
    if (b.length >= 2) {
      p2 = b[b.length - 2]!;
      p1 = b[b.length - 1]!;
    } else if (b.length === 1) {
      p2 = p1;
      p1 = b[0]!;
    }
  };
  for (const seg of segmentsOf(ids.length, maxSeqOf(o), reuseOf(o))) {
    o.signal?.throwIfAborted();
    const logits = await segmentLogits(o.model, o.bos, ids, seg);
    for (let i = seg.a; i < seg.b; i++) {
      const id = ids[i]!;
      const f = pred.predict(logits.subarray((i - seg.a) * V, (i - seg.a + 1) * V));
      if (id === o.vocab.unkId) {
        const esc = escapes[e++]!;
        const x = dict.symbolOf(esc) ?? id;
        enc.encode(cumOf(f, x), f[x]!, FREQ_TOTAL);
        bits.escapes += cost(f[x]!);
        bits.escapeCount++;
        if (x === id) {
          bm.setContext(p2, p1);
          const before = enc.bytesOut;
          bm.encodeRun(enc, esc);
          bits.escapeBytes += (enc.bytesOut - before) * 8;
        }
        pred.update(x, x === id && dict.admit(esc));
        last2(esc);
      } else {
        enc.encode(cumOf(f, id), f[id]!, FREQ_TOTAL);
        bits.tokens += cost(f[id]!);
        pred.update(id);
        last2(o.spell.of(id, i === 0));
      }
    }
    o.onProgress?.(seg.b, ids.length);
  }
  return { payload: header(MODE_TOKENS, ids.length, enc.finish()), mode: MODE_TOKENS, tokens: ids.length, bits };
}

/** Decodes a payload; `rawLength` (from the archive) bounds what it may produce. */
export async function decodeFrame(payload: Uint8Array, rawLength: number, o: FrameCoderOptions): Promise<Uint8Array> {
  if (payload.length < HEADER) throw new At1Error('E_CORRUPT', 'frame payload is shorter than its header');
  const mode = payload[0]!;
  const count = new DataView(payload.buffer, payload.byteOffset, payload.byteLength).getUint32(1, true);
  const dec = new ArithmeticDecoder(payload.subarray(HEADER));
  const bm = new ByteModel();
  const out = new Uint8Array(rawLength);
  if (mode === MODE_BYTES) {
    if (count !== rawLength) throw new At1Error('E_CORRUPT', `frame payload says ${count} bytes, the archive ${rawLength}`);
    let p2 = 0;
    let p1 = 0;
    for (let i = 0; i < count; i++) {
      bm.setContext(p2, p1);
      const s = bm.decode(dec);
      if (s === END) throw new At1Error('E_CORRUPT', 'frame payload ends early');
      out[i] = s;
      p2 = p1;
      p1 = s;
      if ((i & 0xffff) === 0) o.signal?.throwIfAborted();
    }
    return out;
  }
  if (mode !== MODE_TOKENS) throw new At1Error('E_CORRUPT', `frame payload has unknown mode ${mode}`);
  const V = o.model.config.vocabSize;
  const pred = new TokenPredictor(V, o.vocab.unkId);
  const dict = new EscapeDictionary(V);
  const lm = new IncrementalLogits(o.model, o.bos);
  const ids: number[] = [];
  let n = 0;
  let p2 = 0;
  let p1 = 0;
  const put = (b: Uint8Array): void => {
    if (n + b.length > rawLength) throw new At1Error('E_CORRUPT', `frame decodes to more than its ${rawLength} bytes`);
    out.set(b, n);
    n += b.length;
    if (n >= 2) {
      p2 = out[n - 2]!;
      p1 = out[n - 1]!;
    } else if (n === 1) {
      p2 = 0;
      p1 = out[0]!;
    }
  };
  for (const seg of segmentsOf(count, maxSeqOf(o), reuseOf(o))) {
    o.signal?.throwIfAborted();
    let logits = await lm.begin(ids, seg);
    for (let i = seg.a; i < seg.b; i++) {
      const f = pred.predict(logits);
      const target = dec.target(FREQ_TOTAL);
      let cum = 0;
      let x = 0;
      while (cum + f[x]! <= target) cum += f[x++]!;
      dec.consume(cum, f[x]!);
      let id = x;
      if (x >= V) {
        const esc = dict.entry(x);
        if (!esc) throw new At1Error('E_CORRUPT', `decoded escape symbol ${x} is not in the dictionary`);
        pred.update(x);
        put(esc);
        id = o.vocab.unkId;
      } else if (x === o.vocab.unkId) {
        bm.setContext(p2, p1);
        const esc = bm.decodeRun(dec, Math.min(MAX_ESCAPE, rawLength - n));
        if (!esc || esc.length === 0) throw new At1Error('E_CORRUPT', 'an escape is empty or runs past the frame');
        pred.update(x, dict.admit(esc));
        put(esc);
      } else {
        if (!o.spell.spells(x)) throw new At1Error('E_CORRUPT', `decoded token ${x} has no spelling`);
        pred.update(x);
        put(o.spell.of(x, i === 0));
      }
      ids.push(id);
      if (i + 1 < seg.b) logits = await lm.next(id);
    }
    o.onProgress?.(seg.b, count);
  }
  if (n !== rawLength) throw new At1Error('E_CORRUPT', `frame decodes to ${n} bytes, the archive says ${rawLength}`);
  return out;
}

/** The frame's distinct escape strings, as symbols vocab + k (at most ESCAPE_SLOTS). */
class EscapeDictionary {
  private readonly index = new Map<string, number>();
  private readonly entries: Uint8Array[] = [];

  constructor(private readonly vocab: number) {}

  private static key(b: Uint8Array): string {
    return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1');
  }

  symbolOf(esc: Uint8Array): number | undefined {
    const k = this.index.get(EscapeDictionary.key(esc));
    return k === undefined ? undefined : this.vocab + k;
  }

  entry(symbol: number): Uint8Array | undefined {
    return this.entries[symbol - this.vocab];
  }

  /** Enters a new escape while slots remain; true when it was entered. */
  admit(esc: Uint8Array): boolean {
    if (this.entries.length >= ESCAPE_SLOTS) return false;
    this.index.set(EscapeDictionary.key(esc), this.entries.length);
    this.entries.push(esc.slice());
    return true;
  }
}
