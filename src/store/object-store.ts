/**
 * Content-addressed objects over a Backend, as in pnpm's store: the key of
 * an object is the SHA-256 of the raw bytes it decodes to, laid out as
 * `objects/<first two hex>/<all 64 hex>`. Puts are exclusive creates, so the
 * first writer of a digest wins and later writers of the same content are
 * no-ops: the same bytes are stored once across the whole family.
 *
 * The store does not check what an object decodes to (it cannot: decoding
 * needs the codecs and references); the registry's chunk reader hashes every
 * decoded chunk against its key before anything uses it.
 */
import { At1Error } from '../errors.js';
import { isSha256Hex } from '../util/hash.js';
import type { Backend } from './backend.js';

export const OBJECTS_DIR = 'objects';

export function objectKey(digest: string): string {
  if (!isSha256Hex(digest)) throw new At1Error('E_CORRUPT', `not a SHA-256 digest: ${JSON.stringify(digest)}`);
  return `${OBJECTS_DIR}/${digest.slice(0, 2)}/${digest}`;
}

/** The digest an `objects/ab/<digest>` key names, or undefined for any other key. */
export function digestOfKey(key: string): string | undefined {
  const parts = key.split('/');
  const name = parts[2];
  return parts.length === 3 && parts[0] === OBJECTS_DIR && name !== undefined && isSha256Hex(name) && parts[1] === name.slice(0, 2) ? name : undefined;
}

export interface ObjectStats {
  /** Bytes read from the backend since creation: lets tests prove what a read touched. */
  bytesRead: number;
  objectsRead: number;
}

export class ObjectStore {
  readonly stats: ObjectStats = { bytesRead: 0, objectsRead: 0 };
  /** Whole-object reads per digest, once countReadsPerObject() was called (each is one decode of that object). */
  private perObject: Map<string, number> | undefined;

  constructor(readonly backend: Backend) {}

  async has(digest: string): Promise<boolean> {
    return (await this.backend.size(objectKey(digest))) !== undefined;
  }

  async size(digest: string): Promise<number | undefined> {
    return this.backend.size(objectKey(digest));
  }

  /** Store an object; returns true when it was written now, false when it existed already. */
  async put(digest: string, bytes: Uint8Array): Promise<boolean> {
    return this.backend.create(objectKey(digest), bytes);
  }

  /** Replace an object with another encoding of the same content (rebase, repair). */
  async replace(digest: string, bytes: Uint8Array): Promise<void> {
    await this.backend.put(objectKey(digest), bytes);
  }

  async get(digest: string): Promise<Uint8Array> {
    const b = await this.backend.read(objectKey(digest));
    this.stats.bytesRead += b.length;
    this.stats.objectsRead += 1;
    this.perObject?.set(digest, (this.perObject.get(digest) ?? 0) + 1);
    return b;
  }

  /** Start counting whole-object reads per digest (off by default: a long-running server would keep a count per object); the map is live and the caller may clear it. */
  countReadsPerObject(): Map<string, number> {
    this.perObject ??= new Map();
    return this.perObject;
  }

  /** Exactly `length` bytes at `offset`: an object too short is an error (E_CORRUPT). */
  async getRange(digest: string, offset: number, length: number): Promise<Uint8Array> {
    const b = await this.backend.readRange(objectKey(digest), offset, length);
    this.stats.bytesRead += b.length;
    return b;
  }

  /** Up to `length` bytes at `offset`, fewer where the object ends (a header read before the length is known). */
  async getUpTo(digest: string, offset: number, length: number): Promise<Uint8Array> {
    const b = await this.backend.readUpTo(objectKey(digest), offset, length);
    this.stats.bytesRead += b.length;
    return b;
  }

  async remove(digest: string): Promise<void> {
    await this.backend.remove(objectKey(digest));
  }

  /** Every stored digest with its stored size (keys that are not well-formed object names are skipped; fsck reports them). */
  async list(): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    for (const [d, info] of await this.listWithTimes()) out.set(d, info.size);
    return out;
  }

  /** Every stored digest with its size and modification time (gc's grace period reads the time). */
  async listWithTimes(): Promise<Map<string, { size: number; mtimeMs?: number }>> {
    const out = new Map<string, { size: number; mtimeMs?: number }>();
    for await (const { key, size, mtimeMs } of this.backend.list(OBJECTS_DIR)) {
      const d = digestOfKey(key);
      if (d !== undefined) out.set(d, { size, mtimeMs });
    }
    return out;
  }

  /** Keys under objects/ that are not well-formed object names (stray files; fsck reports them). */
  async strays(): Promise<string[]> {
    const out: string[] = [];
    for await (const { key } of this.backend.list(OBJECTS_DIR)) if (digestOfKey(key) === undefined) out.push(key);
    return out;
  }

  /** Mark an object as just used (a writer reusing it): gc's grace period then spares it as young. */
  async touch(digest: string): Promise<boolean> {
    return this.backend.touch(objectKey(digest));
  }
}
