/**
 * Stores one chunk: dedup by digest, else encode with every codec that
 * accepts it (standalone and against the reference chunks offered), keep
 * the smallest payload, check that it decodes back to the same bytes
 * (verify on write: a codec bug must never reach the disk), then write the
 * object. The raw codec is always a candidate, so no object is larger than
 * its raw bytes plus a header of at most a few hundred bytes.
 */
import { At1Error } from '../errors.js';
import { encoderCandidates, type Codec, type Level, type RefChunk } from '../codec/index.js';
import { encodeObject } from '../format/object.js';
import type { ObjectStore } from '../store/object-store.js';
import { sha256Hex } from '../util/hash.js';

export interface Reference extends RefChunk {
  digest: string;
  depth: number;
}

export interface StoredChunk {
  digest: string;
  /** Bytes written now; 0 when the object existed already. */
  written: number;
  codec: string;
}

export interface Encoding {
  codec: Codec;
  payload: Uint8Array;
  refs: readonly Reference[];
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

/** The smallest encoding of `raw` among all codecs that accept it with (a prefix of) `refs`. */
export function bestEncoding(raw: Uint8Array, dtype: string, refs: readonly Reference[], level: Level): Encoding {
  let best: Encoding | undefined;
  for (const codec of encoderCandidates(level)) {
    if (codec.refCount > refs.length) continue;
    const used = refs.slice(0, codec.refCount);
    const ctx = { dtype, refs: used };
    if (!codec.accepts(raw.length, ctx)) continue;
    const payload = codec.encode(raw, ctx, level);
    if (!best || payload.length < best.payload.length) best = { codec, payload, refs: used };
    if (level === 'fast' && payload.length < raw.length) break; // 'fast': the first codec that pays wins
  }
  if (!best) throw new At1Error('E_INPUT', 'no codec accepts this chunk'); // unreachable: raw accepts all
  return best;
}

/**
 * The smallest encoding of `raw` as a complete object, after checking that
 * it decodes back to `raw` (verify on write: a codec bug must fail here, not
 * in a restore months later).
 */
export function encodeVerified(raw: Uint8Array, dtype: string, refs: readonly Reference[], level: Level): { object: Uint8Array; codec: string; depth: number } {
  const best = bestEncoding(raw, dtype, refs, level);
  const check = best.codec.decode(best.payload, raw.length, { dtype, refs: best.refs });
  if (!equalBytes(check, raw)) {
    throw new At1Error('E_INPUT', `codec ${best.codec.name} failed its round-trip check on a ${dtype} chunk; nothing was stored (please report this)`);
  }
  const depth = best.refs.length === 0 ? 0 : 1 + Math.max(...best.refs.map((r) => r.depth));
  const object = encodeObject({ codec: best.codec.id, depth, rawLength: raw.length, dtype, refs: best.refs.map((r) => ({ digest: r.digest, dtype: r.dtype })) }, best.payload);
  return { object, codec: best.codec.name, depth };
}

export async function storeChunk(store: ObjectStore, raw: Uint8Array, dtype: string, refs: readonly Reference[], level: Level): Promise<StoredChunk> {
  const digest = sha256Hex(raw);
  if (await store.has(digest)) return { digest, written: 0, codec: 'dedup' };
  const { object, codec } = encodeVerified(raw, dtype, refs, level);
  const wrote = await store.put(digest, object);
  return { digest, written: wrote ? object.length : 0, codec };
}
