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
 *
 * Within one operation a DecodeMemo keeps what was decoded so each object is
 * decoded at most once: a trajectory delta names its parent and grandparent,
 * the parent names the grandparent again, and without the memo a chain of
 * depth d decoded ~1.6^d objects (Fibonacci) instead of d. The memo may hold
 * unhashed bytes, but hands them out only where docs/FORMAT.md §9 allows
 * unhashed bytes: as a reference inside a chain (covered by the digest the
 * consumer checks), or to readUnverified (whose caller checks a digest
 * covering them). A verified read of an unhashed entry hashes it first, and
 * the diagnosis after a failed check trusts no unhashed entry.
 */
import { At1Error, IntegrityError } from '../errors.js';
import type { RefChunk } from '../codec/index.js';
import { dtypeBits } from '../format/dtype.js';
import { decodeObjectHeader, HARD_MAX_DEPTH, MAX_HEADER_BYTES, type ObjectHeader } from '../format/object.js';
import type { ObjectStore } from '../store/object-store.js';
import { sha256Hex } from '../util/hash.js';
import { inProcessDecoder, type ChunkDecoder, type DecodeResult } from './chunk-decoder.js';

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

/** Bytes a DecodeMemo keeps for one operation: the object's raw bytes, and whether they were hashed against its key. */
interface MemoEntry extends DecodedChunk {
  verified: boolean;
}

/** Default bound of an operation's memo (a restore, a verify, an add): a few chains of 8 MiB chunks. */
export const DECODE_MEMO_BYTES = 128 << 20;

/**
 * What one operation (a restore, a verify, the reference reads of an add)
 * has decoded, least recently used first, bounded by `capacity` bytes, plus
 * the decodes in flight (two links of a chain asking for the same
 * grandparent at once share one decode). Never shared between operations:
 * create one per operation and drop it after.
 */
export class DecodeMemo {
  private readonly done = new Map<string, MemoEntry>();
  private readonly pending = new Map<string, Promise<MemoEntry>>();
  private bytes = 0;
  /**
   * Shared buffers of references decoded on workers (takeShared), and who
   * uses each: decodes holding it as a reference (`users`), whether the memo
   * keeps it, whether it was handed to a caller (then it is the caller's and
   * never reused). A buffer is reused only when none of these holds it.
   */
  private readonly shared = new Map<Uint8Array, { users: number; kept: boolean; escaped: boolean }>();
  private readonly spare: Uint8Array[] = [];
  private spareBytes = 0;

  constructor(readonly capacity = DECODE_MEMO_BYTES) {}

  /**
   * A buffer in shared memory for a reference decoded on a worker: the next
   * decode sends it to its worker without a copy. Reused from references the
   * memo dropped, so a restore's references cost no allocation per chunk
   * once the memo is full.
   */
  takeShared(length: number): Uint8Array {
    const i = this.spare.findIndex((b) => b.length === length);
    const b = i >= 0 ? this.spare.splice(i, 1)[0]! : new Uint8Array(new SharedArrayBuffer(length));
    if (i >= 0) this.spareBytes -= length;
    this.shared.set(b, { users: 0, kept: false, escaped: false });
    return b;
  }

  /** A decode uses `b` as a reference until it calls `unhold`. */
  hold(b: Uint8Array): void {
    const s = this.shared.get(b);
    if (s) s.users++;
  }

  unhold(b: Uint8Array): void {
    const s = this.shared.get(b);
    if (!s) return;
    s.users--;
    this.recycle(b);
  }

  /** `b` was handed to a caller outside the chain: never reuse it. */
  escape(b: Uint8Array): void {
    this.shared.delete(b);
  }

  private recycle(b: Uint8Array): void {
    const s = this.shared.get(b);
    if (!s || s.users > 0 || s.kept || s.escaped) return;
    this.shared.delete(b);
    if (this.spareBytes + b.length > this.capacity / 4) return; // enough spares: let it go
    this.spare.push(b);
    this.spareBytes += b.length;
  }

  private dropped(b: Uint8Array): void {
    const s = this.shared.get(b);
    if (!s) return;
    s.kept = false;
    this.recycle(b);
  }

  get(digest: string): MemoEntry | undefined {
    const hit = this.done.get(digest);
    if (hit) {
      this.done.delete(digest);
      this.done.set(digest, hit);
    }
    return hit;
  }

  inFlight(digest: string): Promise<MemoEntry> | undefined {
    return this.pending.get(digest);
  }

  track(digest: string, p: Promise<MemoEntry>): void {
    this.pending.set(digest, p);
    const drop = (): void => {
      if (this.pending.get(digest) === p) this.pending.delete(digest);
    };
    p.then(drop, drop);
  }

  /** Keep an entry; false when it is larger than the whole memo. */
  remember(digest: string, entry: MemoEntry): boolean {
    if (entry.bytes.length > this.capacity) return false;
    const old = this.done.get(digest);
    if (old) {
      this.bytes -= old.bytes.length;
      this.done.delete(digest);
      if (old.bytes !== entry.bytes) this.dropped(old.bytes);
    }
    this.done.set(digest, entry);
    const s = this.shared.get(entry.bytes);
    if (s) s.kept = true;
    this.bytes += entry.bytes.length;
    for (const [k, v] of this.done) {
      if (this.bytes <= this.capacity) break;
      this.done.delete(k);
      this.bytes -= v.bytes.length;
      this.dropped(v.bytes);
    }
    return true;
  }

  forget(digest: string): void {
    const old = this.done.get(digest);
    if (!old) return;
    this.done.delete(digest);
    this.bytes -= old.bytes.length;
    this.dropped(old.bytes);
  }

  /** Bytes held now (for tests and benches). */
  get size(): number {
    return this.bytes;
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
    /** The operation's memo; without one, each read has a memo of its own (its chain is still decoded once). */
    readonly memo?: DecodeMemo,
  ) {}

  /** The same store, cache and memo, decoding through `decoder` (a worker pool for a large restore). */
  withDecoder(decoder: ChunkDecoder): ChunkReader {
    return new ChunkReader(this.store, this.cache.capacity, decoder, this.cache, this.memo);
  }

  /** The same store, cache and decoder, with `memo` kept across reads: one operation's reader. */
  withMemo(memo = new DecodeMemo()): ChunkReader {
    return new ChunkReader(this.store, this.cache.capacity, this.decoder, this.cache, memo);
  }

  /** The operation's memo, or a fresh one for a single read. */
  private memoFor(): DecodeMemo {
    return this.memo ?? new DecodeMemo(Number.POSITIVE_INFINITY);
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
   * `out`, decoded there; without, the bytes may be shared with the
   * operation's memo (a later version's chunk is coded against them): do
   * not modify them.
   */
  async readUnverified(digest: string, expectedLength: number, out?: Uint8Array): Promise<Uint8Array> {
    const hit = this.cache.get(digest);
    if (hit && out) {
      this.checkLength(digest, hit.header, expectedLength);
      out.set(hit.bytes);
      return out;
    }
    if (hit) return hit.bytes;
    return (await this.decode(digest, expectedLength, HARD_MAX_DEPTH, { verify: false, verifyRefs: false }, this.memoFor(), out)).bytes;
  }

  private async checked(digest: string, expectedLength: number | undefined, maxDepth: number, out?: Uint8Array): Promise<DecodedChunk> {
    const memo = this.memoFor();
    try {
      return await this.decode(digest, expectedLength, maxDepth, { verify: true, verifyRefs: false }, memo, out);
    } catch (e) {
      if (!(e instanceof IntegrityError)) throw e;
      return this.decode(digest, expectedLength, maxDepth, { verify: true, verifyRefs: true }, memo, out); // throws, naming the damaged link
    }
  }

  private checkLength(digest: string, header: ObjectHeader, expectedLength: number | undefined): void {
    if (expectedLength !== undefined && header.rawLength !== expectedLength) {
      throw new At1Error('E_CORRUPT', `object ${digest}: holds ${header.rawLength} bytes, the manifest expects ${expectedLength}`);
    }
  }

  private checkDepth(digest: string, header: ObjectHeader, maxDepth: number): void {
    if (header.depth > maxDepth) {
      throw new At1Error('E_CORRUPT', `object ${digest}: chain depth ${header.depth} exceeds the ${maxDepth} allowed here (a cycle or a damaged header)`);
    }
  }

  /**
   * An entry of the memo (kept or in flight) usable in `mode`: any entry for
   * an unhashed read, an entry hashed now (or before) for a verified one;
   * nothing while diagnosing a failure, which re-reads every link.
   */
  private async fromMemo(digest: string, mode: Mode, memo: DecodeMemo): Promise<MemoEntry | undefined> {
    if (mode.verifyRefs) return undefined;
    let entry = memo.get(digest);
    if (!entry) {
      const p = memo.inFlight(digest);
      if (!p) return undefined;
      entry = await p.catch(() => undefined); // its failure is reported by whoever asked first; decode again here
      if (!entry) return undefined;
    }
    if (mode.verify && !entry.verified) {
      if (sha256Hex(entry.bytes) !== digest) {
        memo.forget(digest);
        return undefined;
      }
      entry.verified = true;
    }
    return entry;
  }

  private async decode(digest: string, expectedLength: number | undefined, maxDepth: number, mode: Mode, memo: DecodeMemo, out?: Uint8Array, path: readonly string[] = []): Promise<Decoded> {
    // A damaged object can name itself or an ancestor as its reference: waiting on that ancestor's decode in the memo
    // would wait forever (the promise waits on itself), so a cycle is refused before anything waits.
    if (path.includes(digest)) throw new At1Error('E_CORRUPT', `object ${digest}: its reference chain leads back to itself (a damaged header)`);
    const hit = this.cache.get(digest) ?? (await this.fromMemo(digest, mode, memo)); // verified bytes serve unverified reads too (a reference a child is decoded against)
    if (hit) {
      this.checkLength(digest, hit.header, expectedLength);
      this.checkDepth(digest, hit.header, maxDepth);
      if (out) {
        if (out.length !== hit.header.rawLength) throw new At1Error('E_INPUT', `object ${digest}: holds ${hit.header.rawLength} bytes, not the ${out.length} asked for`);
        out.set(hit.bytes);
        return { bytes: out, header: hit.header, own: false };
      }
      this.lend(memo, hit.bytes, path);
      return { bytes: hit.bytes, header: hit.header, own: false };
    }
    if (out || mode.verifyRefs) return this.decodeFresh(digest, expectedLength, maxDepth, mode, memo, out, path);
    // Others asking for this object while it decodes wait for this decode instead of starting their own.
    const p = this.decodeFresh(digest, expectedLength, maxDepth, mode, memo, undefined, path).then((d) => ({ bytes: d.bytes, header: d.header, verified: mode.verify }));
    memo.track(digest, p);
    const entry = await p;
    memo.remember(digest, entry);
    this.lend(memo, entry.bytes, path);
    return { bytes: entry.bytes, header: entry.header, own: false };
  }

  /** Memo bytes going out: to a decode as a reference (held until it is done with them, see decodeFresh), or to a caller, whose they then are. */
  private lend(memo: DecodeMemo, bytes: Uint8Array, path: readonly string[]): void {
    if (path.length > 0) memo.hold(bytes);
    else memo.escape(bytes);
  }

  private async decodeFresh(digest: string, expectedLength: number | undefined, maxDepth: number, mode: Mode, memo: DecodeMemo, out?: Uint8Array, path: readonly string[] = []): Promise<Decoded> {
    const object = await this.store.get(digest);
    const header = decodeObjectHeader(object, digest);
    this.checkDepth(digest, header, maxDepth);
    this.checkLength(digest, header, expectedLength);
    if (out && out.length !== header.rawLength) throw new At1Error('E_INPUT', `object ${digest}: holds ${header.rawLength} bytes, not the ${out.length} asked for`);
    // References are read (and decoded) concurrently: two links of a trajectory delta cost one round trip, not two.
    const refs = await Promise.all(
      header.refs.map((r) => {
        // A reference covers the same elements as this chunk, so its length follows from the two dtypes.
        const refLength = (header.rawLength * dtypeBits(r.dtype)) / dtypeBits(header.dtype);
        const refMode = { verify: mode.verifyRefs, verifyRefs: mode.verifyRefs };
        return this.decode(r.digest, Number.isInteger(refLength) ? refLength : undefined, header.depth - 1, refMode, memo, undefined, [...path, digest]);
      }),
    );
    const refChunks: RefChunk[] = header.refs.map((r, i) => ({ dtype: r.dtype, bytes: refs[i]!.bytes }));
    // A reference decoded on a worker goes to the memo in shared memory: the decode it is a reference of sends it to
    // its worker without a copy, and once no decode holds it and the memo dropped it, the buffer is reused.
    const target = out ?? (this.decoder.sharedOutput && path.length > 0 && !mode.verify ? memo.takeShared(header.rawLength) : undefined);
    let decoded: DecodeResult;
    try {
      decoded = await this.decoder.decode({ digest, object, header, refs: refChunks, hash: mode.verify, out: target, disposableRefs: refs.every((r) => r.own) });
    } finally {
      for (const r of refs) memo.unhold(r.bytes);
    }
    const { bytes, sha256 } = decoded;
    if (mode.verify && sha256 !== digest) throw new IntegrityError(`object ${digest} does not decode to its SHA-256`, { object: digest });
    const chunk = { bytes, header };
    // A chunk decoded into a caller's buffer is the caller's: caching it would let their writes change what the cache serves.
    const cached = mode.verify && !out && this.cache.remember(digest, chunk);
    return { ...chunk, own: !cached };
  }
}
