/**
 * Stores one chunk: dedup by digest, else encode with the codecs that
 * accept it (standalone and against the reference chunks offered; at 'max'
 * those a sample of the chunk shows can win, codec/search.ts), keep the
 * smallest payload, check that it decodes back to the same bytes
 * (verify on write: a codec bug must never reach the disk), then write the
 * object. The raw codec is always a candidate, so no object is larger than
 * its raw bytes plus a header of at most a few hundred bytes.
 *
 * Dedup verifies before it trusts: a file sitting at a chunk's key is reused
 * only once it has been decoded, references included, to bytes whose SHA-256
 * is the key (docs/FORMAT.md §7 step 2). Anything else at that key (planted
 * garbage, a torn or damaged leftover, an object whose reference is gone) is
 * replaced by a fresh, verified encoding.
 */
import { At1Error } from '../errors.js';
import { encoderCandidates, type Codec, type Level, type RefChunk } from '../codec/index.js';
import { planSearch, type SearchMode } from '../codec/search.js';
import { encodeObject } from '../format/object.js';
import type { ObjectStore } from '../store/object-store.js';
import { sha256Hex } from '../util/hash.js';
import { ChunkReader } from './chunk-reader.js';

export interface Reference extends RefChunk {
  digest: string;
  depth: number;
}

export interface StoredChunk {
  digest: string;
  /** Bytes written now (a new object, or one that replaced a bad object at the key); 0 when a proven object existed already. */
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

/**
 * The smallest encoding of `raw` among the codecs that accept it with (a
 * prefix of) `refs`. At 'max' the candidates are first pruned by a sample
 * of the chunk (codec/search.ts: codecs whose sample payload is clearly
 * larger than the best are not run on the whole chunk); `search:
 * 'exhaustive'` encodes with every candidate, as benchmarks and tests do to
 * measure what the pruning costs. 'fast' takes the first candidate that
 * beats raw.
 */
export function bestEncoding(raw: Uint8Array, dtype: string, refs: readonly Reference[], level: Level, search: SearchMode = 'estimate'): Encoding {
  let best: Encoding | undefined;
  for (const codec of planSearch(raw, dtype, refs, level, encoderCandidates(level), search).codecs) {
    const used = refs.slice(0, codec.refCount);
    const payload = codec.encode(raw, { dtype, refs: used }, level);
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
export function encodeVerified(raw: Uint8Array, dtype: string, refs: readonly Reference[], level: Level, search: SearchMode = 'estimate'): { object: Uint8Array; codec: string; depth: number } {
  const best = bestEncoding(raw, dtype, refs, level, search);
  const check = best.codec.decode(best.payload, raw.length, { dtype, refs: best.refs });
  if (!equalBytes(check, raw)) {
    throw new At1Error('E_INPUT', `codec ${best.codec.name} failed its round-trip check on a ${dtype} chunk; nothing was stored (please report this)`);
  }
  const depth = best.refs.length === 0 ? 0 : 1 + Math.max(...best.refs.map((r) => r.depth));
  const object = encodeObject({ codec: best.codec.id, depth, rawLength: raw.length, dtype, refs: best.refs.map((r) => ({ digest: r.digest, dtype: r.dtype })) }, best.payload);
  return { object, codec: best.codec.name, depth };
}

/**
 * Whether the object stored at `digest` is proven to hold `raw`: its header
 * checks and it decodes, through the reader and its whole reference chain,
 * to `raw.length` bytes whose SHA-256 is `digest` (ChunkReader.read checks
 * the length against the header and the digest of the decoded bytes). Only
 * that is proof; that a file exists at the key proves nothing. Any failure
 * (bad header, unknown codec, missing or damaged reference, wrong length,
 * wrong digest, unreadable file) means "not proven".
 */
async function provenAt(reader: ChunkReader, digest: string, length: number): Promise<boolean> {
  try {
    await reader.read(digest, length);
    // About to be reused: renew its modification time so gc's grace period spares it until the manifest lands (FORMAT.md §8b).
    await reader.store.touch(digest);
    return true;
  } catch {
    return false;
  }
}

/**
 * Store one chunk and return its digest. `reader` reads the same store; it
 * proves an existing object before dedup reuses it (default: a reader
 * without a cache over `store`).
 */
export async function storeChunk(
  store: ObjectStore,
  raw: Uint8Array,
  dtype: string,
  refs: readonly Reference[],
  level: Level,
  reader: ChunkReader = new ChunkReader(store, 0),
): Promise<StoredChunk> {
  return storeEncoded(store, sha256Hex(raw), raw.length, async () => encodeVerified(raw, dtype, refs, level), reader);
}

/**
 * Store a chunk of digest `digest` and `rawLength` bytes, calling `encode`
 * for its object only when no proven object sits at the key already. The
 * I/O half of storeChunk: a worker pool does the encoding (and the digest),
 * the calling thread the reads, proofs and writes, so any backend works.
 */
export async function storeEncoded(
  store: ObjectStore,
  digest: string,
  rawLength: number,
  encode: () => Promise<{ object: Uint8Array; codec: string }>,
  reader: ChunkReader,
): Promise<StoredChunk> {
  const existed = await store.has(digest);
  if (existed && (await provenAt(reader, digest, rawLength))) return { digest, written: 0, codec: 'dedup' };
  const { object, codec } = await encode();
  if (!existed) {
    if (await store.put(digest, object)) return { digest, written: object.length, codec };
    // It appeared since has() (another writer storing the same chunk): reused only if proven, like any other.
    if (await provenAt(reader, digest, rawLength)) return { digest, written: 0, codec: 'dedup' };
  }
  // What sits at the key failed its proof: replace it atomically (a reader sees the bad object or the verified one, never a mix).
  await store.replace(digest, object);
  return { digest, written: object.length, codec };
}
