/**
 * Any bytes as a token sequence the decoder can turn back into exactly those
 * bytes, without ever running the tokenizer again.
 *
 * A Llama tokenizer is not a bijection on bytes: it normalises (a dummy "▁"
 * prepended, spaces become "▁"), maps characters outside its alphabet to
 * <unk> (the fixture's has no '{', '#', '=', tab…, and no byte tokens), and
 * takes only valid UTF-8. So the coder does not trust it: it tokenizes the
 * frame once (encoder side only), then walks the tokens against the text,
 * and every <unk> becomes an *escape*: the raw bytes it stands for are coded
 * after it by a byte model. Bytes that are not valid UTF-8 enter the text as
 * a placeholder character the vocabulary cannot hold, so they always fall
 * inside an escape and are coded as the original bytes. The decoder needs
 * only the vocabulary: token id → bytes (`TokenBytes`), and the rule that a
 * frame's first token drops the dummy prefix's space.
 *
 * If the walk finds a token that does not spell the text under it (a
 * tokenizer this code does not understand, or "▁" in the input, which
 * decodes as a space), the frame is coded as plain bytes instead: slower to
 * compress well, never wrong. The encoder checks the final reconstruction
 * against the input before coding anything.
 */
import { At1Error } from '../errors.js';

/** What the coder needs to know of a tokenizer: its vocabulary and normaliser conventions. */
export interface VocabularyView {
  vocabSize: number;
  /** the id of <unk> (the escape) */
  unkId: number;
  /** the token's string as stored in the vocabulary (undefined: no such id) */
  idToToken(id: number): string | undefined;
  /** ids of text, no special tokens added */
  encode(text: string): number[];
  /** how token strings spell bytes (LlamaTokenizer.spelling); default SentencePiece style with a dummy prefix */
  spelling?: { kind: 'metaspace' | 'bytelevel'; dummyPrefix: boolean };
}

/** GPT-2's byte ↔ character table of byte-level BPE vocabularies (character code → byte). */
const BYTE_LEVEL = (() => {
  const bs: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n++);
    }
  }
  const m = new Map<number, number>();
  bs.forEach((b, i) => m.set(cs[i]!, b));
  return m;
})();

function byteLevelBytes(t: string): Uint8Array | undefined {
  const out = new Uint8Array(t.length);
  for (let i = 0; i < t.length; i++) {
    const b = BYTE_LEVEL.get(t.charCodeAt(i));
    if (b === undefined) return undefined;
    out[i] = b;
  }
  return out;
}

const DUMMY = '\u2581'; // the normaliser's "▁": a space, and the dummy prefix
/** Stands for a byte that is not part of valid UTF-8; chosen outside any vocabulary (a noncharacter). */
const PLACEHOLDER = '\uFFFF';

export interface TokenizedFrame {
  /** token ids; each unkId is followed, in `escapes`, by the bytes it stands for */
  ids: number[];
  /** the bytes of each escape, in order of the unk tokens */
  escapes: Uint8Array[];
}

/** Token id → bytes, for decoding. Built once per vocabulary. */
export class TokenBytes {
  private readonly bytes: (Uint8Array | undefined)[];
  readonly dummyPrefix: boolean;
  readonly byteLevel: boolean;

  constructor(readonly vocab: VocabularyView) {
    const enc = new TextEncoder();
    this.byteLevel = vocab.spelling?.kind === 'bytelevel';
    this.dummyPrefix = vocab.spelling?.dummyPrefix ?? true;
    this.bytes = [];
    for (let id = 0; id < vocab.vocabSize; id++) {
      const t = vocab.idToToken(id);
      if (t === undefined || id === vocab.unkId) this.bytes.push(undefined);
      else this.bytes.push(this.byteLevel ? byteLevelBytes(t) : enc.encode(t.split(DUMMY).join(' ')));
    }
  }

  /** The bytes a (non-escape) token spells; `first`: the frame's first token, whose leading space is the dummy prefix. */
  of(id: number, first: boolean): Uint8Array {
    const b = this.bytes[id];
    if (b === undefined) throw new At1Error('E_CORRUPT', `token ${id} has no spelling in the vocabulary`);
    if (first && this.dummyPrefix) {
      if (b[0] !== 0x20) throw new At1Error('E_CORRUPT', `the first token of a frame (${id}) does not start with the dummy prefix`);
      return b.subarray(1);
    }
    return b;
  }

  /** Whether `id` can be decoded as a plain token (not the escape, not a gap in the vocabulary). */
  spells(id: number): boolean {
    return this.bytes[id] !== undefined;
  }
}

/** The frame's bytes as a string for the tokenizer, and where each UTF-16 unit came from. */
function textOf(bytes: Uint8Array): { text: string; offsets: Int32Array } {
  const units: number[] = [];
  const offsets: number[] = [];
  let i = 0;
  const n = bytes.length;
  while (i < n) {
    const b0 = bytes[i]!;
    let cp = -1;
    let len = 1;
    if (b0 < 0x80) cp = b0;
    else if (b0 >= 0xc2 && b0 <= 0xdf && i + 1 < n && (bytes[i + 1]! & 0xc0) === 0x80) {
      cp = ((b0 & 0x1f) << 6) | (bytes[i + 1]! & 0x3f);
      len = 2;
    } else if (b0 >= 0xe0 && b0 <= 0xef && i + 2 < n && (bytes[i + 1]! & 0xc0) === 0x80 && (bytes[i + 2]! & 0xc0) === 0x80) {
      const c = ((b0 & 0x0f) << 12) | ((bytes[i + 1]! & 0x3f) << 6) | (bytes[i + 2]! & 0x3f);
      if (c >= 0x800 && (c < 0xd800 || c > 0xdfff)) {
        cp = c;
        len = 3;
      }
    } else if (b0 >= 0xf0 && b0 <= 0xf4 && i + 3 < n && (bytes[i + 1]! & 0xc0) === 0x80 && (bytes[i + 2]! & 0xc0) === 0x80 && (bytes[i + 3]! & 0xc0) === 0x80) {
      const c = ((b0 & 0x07) << 18) | ((bytes[i + 1]! & 0x3f) << 12) | ((bytes[i + 2]! & 0x3f) << 6) | (bytes[i + 3]! & 0x3f);
      if (c >= 0x10000 && c <= 0x10ffff) {
        cp = c;
        len = 4;
      }
    }
    if (cp < 0 || cp === 0xffff) {
      units.push(PLACEHOLDER.charCodeAt(0)); // an invalid byte (or U+FFFF itself): always escaped as raw bytes
      offsets.push(i);
      i += 1;
      continue;
    }
    if (cp >= 0x10000) {
      const c = cp - 0x10000;
      units.push(0xd800 + (c >> 10), 0xdc00 + (c & 0x3ff));
      offsets.push(i, i);
    } else {
      units.push(cp);
      offsets.push(i);
    }
    i += len;
  }
  offsets.push(n);
  let text = '';
  for (let k = 0; k < units.length; k += 8192) text += String.fromCharCode(...units.slice(k, k + 8192));
  return { text, offsets: Int32Array.from(offsets) };
}

/**
 * Tokenizes one frame for coding, or returns undefined when the tokenizer's
 * output cannot be mapped back onto the bytes (then code the frame as bytes).
 */
export function tokenizeFrame(bytes: Uint8Array, vocab: VocabularyView, spell: TokenBytes): TokenizedFrame | undefined {
  if (bytes.length === 0) return { ids: [], escapes: [] };
  const { text, offsets } = textOf(bytes);
  if (spell.byteLevel) {
    // byte-level BPE spells every byte: no escapes; the reconstruction check below is the whole proof
    const ids = vocab.encode(text);
    if (ids.includes(vocab.unkId)) return undefined;
    const frame = { ids, escapes: [] };
    return sameBytes(reconstruct(frame, spell), bytes) ? frame : undefined;
  }
  if (text.includes(DUMMY)) return undefined; // "▁" in the input decodes as a space: not invertible
  const ids = vocab.encode(text);
  // Walk the normalised text: position p of `norm` is text position p − d (d = 1 when norm[0] is the dummy "▁").
  const d = spell.dummyPrefix ? 1 : 0;
  const norm = (d ? DUMMY : '') + text.split(' ').join(DUMMY);
  const escapes: Uint8Array[] = [];
  let p = 0;
  for (let k = 0; k < ids.length; k++) {
    const id = ids[k]!;
    if (id === vocab.unkId) {
      // an unknown run: up to the next character that starts the next token's spelling
      const nextTok = k + 1 < ids.length ? vocab.idToToken(ids[k + 1]!) : undefined;
      let q = p;
      if (nextTok === undefined) q = norm.length;
      else {
        q = p + 1;
        while (q < norm.length && !norm.startsWith(nextTok, q)) q++;
      }
      if (p < d || q <= p) return undefined;
      escapes.push(bytes.subarray(offsets[p - d]!, offsets[q - d]!));
      p = q;
      continue;
    }
    const tok = vocab.idToToken(id);
    if (tok === undefined || !spell.spells(id) || !norm.startsWith(tok, p)) return undefined;
    p += tok.length;
  }
  if (p !== norm.length) return undefined;
  const frame = { ids, escapes };
  return sameBytes(reconstruct(frame, spell), bytes) ? frame : undefined;
}

/** The bytes a tokenized frame decodes to (what the decoder does, token by token). */
export function reconstruct(frame: TokenizedFrame, spell: TokenBytes): Uint8Array {
  const parts: Uint8Array[] = [];
  let e = 0;
  let total = 0;
  for (let k = 0; k < frame.ids.length; k++) {
    const id = frame.ids[k]!;
    const b = id === spell.vocab.unkId ? frame.escapes[e++]! : spell.of(id, k === 0);
    parts.push(b);
    total += b.length;
  }
  const out = new Uint8Array(total);
  let o = 0;
  for (const b of parts) {
    out.set(b, o);
    o += b.length;
  }
  return out;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);
}
