/**
 * Decodes objects into verified raw chunks. Every chunk returned has been
 * hashed and matched against its digest; nothing unverified leaves this
 * file. References are decoded recursively; each reference must sit strictly
 * shallower than the object naming it, so a damaged or hostile store cannot
 * make a decode loop, and recursion is bounded by HARD_MAX_DEPTH.
 *
 * A small LRU of decoded chunks serves delta chains: verifying a family
 * decodes each parent chunk once, not once per child.
 */
import { At1Error, IntegrityError } from '../errors.js';
import { codecById } from '../codec/index.js';
import { decodeObjectHeader, HARD_MAX_DEPTH, MAX_HEADER_BYTES, type ObjectHeader } from '../format/object.js';
import type { ObjectStore } from '../store/object-store.js';
import { sha256Hex } from '../util/hash.js';
import { dtypeBits } from './geometry.js';

export interface DecodedChunk {
  bytes: Uint8Array;
  header: ObjectHeader;
}

export class ChunkReader {
  private readonly cache = new Map<string, DecodedChunk>();
  private cached = 0;

  constructor(
    readonly store: ObjectStore,
    private readonly cacheBytes = 64 << 20,
  ) {}

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
   * chain below this object.
   *
   * References are decoded without hashing each of them: the object's own
   * digest check covers its whole chain (a wrong reference byte cannot
   * produce the right SHA-256), which saves a hash per chain link on every
   * restore. Only when that final check fails is the chain re-read with every
   * link verified, so the error names the object that is actually damaged.
   * Unverified bytes are never cached.
   */
  async read(digest: string, expectedLength?: number, maxDepth = HARD_MAX_DEPTH): Promise<DecodedChunk> {
    try {
      return await this.decode(digest, expectedLength, maxDepth, false);
    } catch (e) {
      if (!(e instanceof IntegrityError)) throw e;
      return this.decode(digest, expectedLength, maxDepth, true); // throws, naming the damaged link
    }
  }

  /**
   * Decoded bytes that have NOT been hashed: only for callers that hash the
   * same bytes themselves against a digest that covers them (a restore checks
   * every tensor's SHA-256, which a damaged chunk cannot pass), and re-read
   * with `read` to name the damaged object when that check fails.
   */
  async readUnverified(digest: string, expectedLength: number): Promise<Uint8Array> {
    return (await this.decode(digest, expectedLength, HARD_MAX_DEPTH, false, false)).bytes;
  }

  private async decode(digest: string, expectedLength: number | undefined, maxDepth: number, verifyRefs: boolean, verify = true): Promise<DecodedChunk> {
    const hit = this.cache.get(digest);
    if (hit) {
      this.cache.delete(digest);
      this.cache.set(digest, hit);
      return hit;
    }
    const obj = await this.store.get(digest);
    const header = decodeObjectHeader(obj, digest);
    if (header.depth > maxDepth) {
      throw new At1Error('E_CORRUPT', `object ${digest}: chain depth ${header.depth} exceeds the ${maxDepth} allowed here (a cycle or a damaged header)`);
    }
    if (expectedLength !== undefined && header.rawLength !== expectedLength) {
      throw new At1Error('E_CORRUPT', `object ${digest}: holds ${header.rawLength} bytes, the manifest expects ${expectedLength}`);
    }
    const refs = [];
    for (const r of header.refs) {
      // A reference covers the same elements as this chunk, so its length follows from the two dtypes.
      const refLength = (header.rawLength * dtypeBits(r.dtype)) / dtypeBits(header.dtype);
      const ref = await this.decode(r.digest, Number.isInteger(refLength) ? refLength : undefined, header.depth - 1, verifyRefs, verifyRefs);
      refs.push({ dtype: r.dtype, bytes: ref.bytes });
    }
    const codec = codecById(header.codec, `object ${digest}`);
    const bytes = codec.decode(obj.subarray(header.payloadOffset), header.rawLength, { dtype: header.dtype, refs });
    if (bytes.length !== header.rawLength) throw new IntegrityError(`object ${digest} decodes to ${bytes.length} bytes, not ${header.rawLength}`, { object: digest });
    const out = { bytes, header };
    if (!verify) return out;
    if (sha256Hex(bytes) !== digest) throw new IntegrityError(`object ${digest} does not decode to its SHA-256`, { object: digest });
    this.remember(digest, out);
    return out;
  }

  private remember(digest: string, chunk: DecodedChunk): void {
    if (chunk.bytes.length > this.cacheBytes / 4) return;
    this.cache.set(digest, chunk);
    this.cached += chunk.bytes.length;
    for (const [k, v] of this.cache) {
      if (this.cached <= this.cacheBytes) break;
      this.cache.delete(k);
      this.cached -= v.bytes.length;
    }
  }
}
