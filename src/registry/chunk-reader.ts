/**
 * Reads objects and turns them into raw chunks. All I/O happens here, on
 * the calling thread: the object, then (recursively) its references; the
 * CPU part goes to a ChunkDecoder (in-process or a worker pool), so a pool
 * speeds up any backend. Each reference must sit strictly shallower than
 * the object naming it, so a damaged or hostile store cannot make a decode
 * loop, and recursion is bounded by HARD_MAX_DEPTH.
 *
 * `read` returns only bytes that matched their digest. A small LRU of such
 * chunks serves delta chains: verifying a family decodes each parent chunk
 * once, not once per child. Unverified bytes are never cached.
 */
import { At1Error, IntegrityError } from '../errors.js';
import type { RefChunk } from '../codec/index.js';
import { dtypeBits } from '../format/dtype.js';
import { decodeObjectHeader, HARD_MAX_DEPTH, MAX_HEADER_BYTES, type ObjectHeader } from '../format/object.js';
import type { ObjectStore } from '../store/object-store.js';
import { inProcessDecoder, type ChunkDecoder } from './chunk-decoder.js';

export interface DecodedChunk {
  bytes: Uint8Array;
  header: ObjectHeader;
}

/** Verified chunks by digest, least recently used first; shared by the readers of one store. */
export class ChunkCache {
  private readonly map = new Map<string, DecodedChunk>();
  private bytes = 0;

  constructor(readonly capacity: number) {}

  get(digest: string): DecodedChunk | undefined {
    const hit = this.map.get(digest);
    if (hit) {
      this.map.delete(digest);
      this.map.set(digest, hit);
    }
    return hit;
  }

  /** Keep a verified chunk; false when it is too large to keep (the caller then still owns the bytes alone). */
  remember(digest: string, chunk: DecodedChunk): boolean {
    if (chunk.bytes.length > this.capacity / 4) return false;
    if (this.map.has(digest)) return true;
    this.map.set(digest, chunk);
    this.bytes += chunk.bytes.length;
    for (const [k, v] of this.map) {
      if (this.bytes <= this.capacity) break;
      this.map.delete(k);
      this.bytes -= v.bytes.length;
    }
    return true;
  }
}

interface Decoded extends DecodedChunk {
  /** Not held by the cache: the caller may give the buffer away (transfer it to a worker). */
  own: boolean;
}

interface Mode {
  /** Hash this object's bytes against its digest. */
  verify: boolean;
  /** Hash every reference too (used only to name the damaged link after a failure). */
  verifyRefs: boolean;
}

export class ChunkReader {
  constructor(
    readonly store: ObjectStore,
    cacheBytes = 64 << 20,
    readonly decoder: ChunkDecoder = inProcessDecoder,
    private readonly cache = new ChunkCache(cacheBytes),
  ) {}

  /** The same store and cache, decoding through `decoder` (a worker pool for a large restore). */
  withDecoder(decoder: ChunkDecoder): ChunkReader {
    return new ChunkReader(this.store, this.cache.capacity, decoder, this.cache);
  }

  /** Header only: codec, depth and references, from one small range read. */
  async header(digest: string): Promise<ObjectHeader> {
    const hit = this.cache.get(digest);
    if (hit) return hit.header;
    const head = await this.store.getUpTo(digest, 0, MAX_HEADER_BYTES);
    return decodeObjectHeader(head, digest);
  }

  /**
   * The verified raw bytes of an object. `expectedLength`, when given, must
   * match the header (the manifest's view of the chunk); `maxDepth` bounds the
   * chain below this object. The bytes may be shared with the cache: do not
   * modify or transfer them.
   *
   * References are decoded without hashing each of them: the object's own
   * digest check covers its whole chain (a wrong reference byte cannot
   * produce the right SHA-256), which saves a hash per chain link on every
   * restore. Only when that final check fails is the chain re-read with every
   * link verified, so the error names the object that is actually damaged.
   */
  async read(digest: string, expectedLength?: number, maxDepth = HARD_MAX_DEPTH): Promise<DecodedChunk> {
    return this.checked(digest, expectedLength, maxDepth);
  }

  /**
   * Decode an object straight into `out` (its raw length) and check it
   * against its digest: a tensor reader filling a caller's buffer. A cached
   * chunk is copied in.
   */
  async readInto(digest: string, out: Uint8Array): Promise<void> {
    await this.checked(digest, out.length, HARD_MAX_DEPTH, out);
  }

  /**
   * Decoded bytes that have NOT been hashed: only for callers that hash the
   * same bytes themselves against a digest that covers them (a restore checks
   * every tensor's SHA-256, which a damaged chunk cannot pass), and re-read
   * with `read` to name the damaged object when that check fails. With
   * `out`, decoded there. The bytes returned are the caller's own.
   */
  async readUnverified(digest: string, expectedLength: number, out?: Uint8Array): Promise<Uint8Array> {
    const hit = this.cache.get(digest);
    if (hit && out) {
      this.checkLength(digest, hit.header, expectedLength);
      out.set(hit.bytes);
      return out;
    }
    if (hit) return hit.bytes.slice();
    return (await this.decode(digest, expectedLength, HARD_MAX_DEPTH, { verify: false, verifyRefs: false }, out)).bytes;
  }

  private async checked(digest: string, expectedLength: number | undefined, maxDepth: number, out?: Uint8Array): Promise<DecodedChunk> {
    try {
      return await this.decode(digest, expectedLength, maxDepth, { verify: true, verifyRefs: false }, out);
    } catch (e) {
      if (!(e instanceof IntegrityError)) throw e;
      return this.decode(digest, expectedLength, maxDepth, { verify: true, verifyRefs: true }, out); // throws, naming the damaged link
    }
  }

  private checkLength(digest: string, header: ObjectHeader, expectedLength: number | undefined): void {
    if (expectedLength !== undefined && header.rawLength !== expectedLength) {
      throw new At1Error('E_CORRUPT', `object ${digest}: holds ${header.rawLength} bytes, the manifest expects ${expectedLength}`);
    }
  }

  private async decode(digest: string, expectedLength: number | undefined, maxDepth: number, mode: Mode, out?: Uint8Array): Promise<Decoded> {
    const hit = this.cache.get(digest); // verified bytes serve unverified reads too (a reference a child is decoded against)
    if (hit) {
      this.checkLength(digest, hit.header, expectedLength);
      if (out) {
        out.set(hit.bytes);
        return { bytes: out, header: hit.header, own: false };
      }
      return { ...hit, own: false };
    }
    const object = await this.store.get(digest);
    const header = decodeObjectHeader(object, digest);
    if (header.depth > maxDepth) {
      throw new At1Error('E_CORRUPT', `object ${digest}: chain depth ${header.depth} exceeds the ${maxDepth} allowed here (a cycle or a damaged header)`);
    }
    this.checkLength(digest, header, expectedLength);
    if (out && out.length !== header.rawLength) throw new At1Error('E_INPUT', `object ${digest}: holds ${header.rawLength} bytes, not the ${out.length} asked for`);
    // References are read (and decoded) concurrently: two links of a trajectory delta cost one round trip, not two.
    const refs = await Promise.all(
      header.refs.map((r) => {
        // A reference covers the same elements as this chunk, so its length follows from the two dtypes.
        const refLength = (header.rawLength * dtypeBits(r.dtype)) / dtypeBits(header.dtype);
        const refMode = { verify: mode.verifyRefs, verifyRefs: mode.verifyRefs };
        return this.decode(r.digest, Number.isInteger(refLength) ? refLength : undefined, header.depth - 1, refMode);
      }),
    );
    const refChunks: RefChunk[] = header.refs.map((r, i) => ({ dtype: r.dtype, bytes: refs[i]!.bytes }));
    const { bytes, sha256 } = await this.decoder.decode({ digest, object, header, refs: refChunks, hash: mode.verify, out, disposableRefs: refs.every((r) => r.own) });
    if (mode.verify && sha256 !== digest) throw new IntegrityError(`object ${digest} does not decode to its SHA-256`, { object: digest });
    const chunk = { bytes, header };
    // A chunk decoded into a caller's buffer is the caller's: caching it would let their writes change what the cache serves.
    const cached = mode.verify && !out && this.cache.remember(digest, chunk);
    return { ...chunk, own: !cached };
  }
}
