/**
 * The storage backend contract, after restic's: a backend stores named files
 * (keys are relative POSIX paths such as `objects/ab/abcd…` or
 * `versions/base.json`) and nothing else. It knows no formats; the object
 * store and the registry build on it. A local directory implements it today;
 * an S3-compatible bucket implements the same contract later, and one
 * conformance suite (test/store-conformance.test.ts) runs against every
 * backend.
 *
 * Contract:
 * - `write` is atomic: a reader sees the old content or the new, never a
 *   part. With `exclusive`, it fails (returns false) when the key exists,
 *   atomically with respect to other writers: this is what content-addressed
 *   puts, version manifests and the lock rely on.
 * - `read`/`readRange` throw At1Error E_NOT_FOUND for a missing key.
 * - `list(prefix)` returns every key under a folder prefix, in no set order.
 * - `stat` gives a key's size and modification time; `touch` renews the
 *   modification time (optionally only while the key holds given bytes).
 *   Leases (src/registry/lease.ts) and gc's grace period are built on these
 *   two and on exclusive create, which is all they need of a backend: a
 *   local directory gives them with link() and futimes(); an object store
 *   gives them with conditional PUT (If-None-Match: *, If-Match) and
 *   LastModified.
 * - Keys never contain `..`, a leading `/`, a backslash or empty segments;
 *   backends refuse such keys (checkKey) so no caller can escape the root.
 */
import { At1Error } from '../errors.js';

export interface WriteOptions {
  /** Fail (return false) instead of replacing an existing key. */
  exclusive?: boolean;
}

export interface KeyInfo {
  key: string;
  size: number;
  /** Last modification (ms since the epoch), where the listing gives it (local: always; S3: LastModified). */
  mtimeMs?: number;
}

export interface KeyStat {
  size: number;
  /** Last modification, ms since the epoch, by the storage's clock. */
  mtimeMs: number;
}

export interface Backend {
  /** A human-readable location, for messages. */
  readonly location: string;
  read(key: string): Promise<Uint8Array>;
  readRange(key: string, offset: number, length: number): Promise<Uint8Array>;
  /** Size in bytes, or undefined when the key does not exist. */
  size(key: string): Promise<number | undefined>;
  /** Size and modification time, or undefined when the key does not exist. */
  stat(key: string): Promise<KeyStat | undefined>;
  /**
   * Set the key's modification time to now. With `expect`, only while the
   * key holds exactly those bytes (a lease renewing itself must never renew
   * another holder's lease). Returns false when the key is missing or holds
   * other bytes.
   */
  touch(key: string, expect?: Uint8Array): Promise<boolean>;
  /** Atomic write; returns false only when `exclusive` and the key already exists. */
  write(key: string, data: Uint8Array, opts?: WriteOptions): Promise<boolean>;
  /** Remove a key; removing a missing key is not an error. */
  remove(key: string): Promise<void>;
  /** Every key under a folder prefix with its size (one call on S3: ListObjectsV2 gives sizes). */
  list(prefix: string): Promise<KeyInfo[]>;
}

const SEGMENT_BAD = /[\\\u0000-\u001f\u007f]/;

/** Refuses keys that could address anything outside the backend's root. */
export function checkKey(key: string): void {
  const segs = key.split('/');
  const bad =
    key.length === 0 ||
    key.length > 1024 ||
    key.startsWith('/') ||
    segs.some((s) => s === '' || s === '.' || s === '..' || SEGMENT_BAD.test(s));
  if (bad) throw new At1Error('E_INPUT', `refused storage key ${JSON.stringify(key)}: keys are relative paths without '..', '.', empty or control segments`);
}
