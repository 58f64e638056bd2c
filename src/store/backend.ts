/**
 * The storage backend contract (version 2), after restic's: a backend stores
 * named byte strings ("objects", addressed by keys such as
 * `objects/ab/abcd…` or `versions/base.json`) and nothing else. It knows no
 * formats; the object store (object-store.ts) and the registry build on it.
 * A local directory (local-backend.ts), an in-process memory store
 * (memory-backend.ts) and an S3-compatible bucket (s3-backend.ts) implement
 * it, and one conformance suite (test/store-conformance.test.ts) runs every
 * case against every backend.
 * Callers open a backend by location with `openBackend` (open.ts); nothing
 * above src/store names a concrete backend.
 *
 * ## Keys
 * Keys are relative POSIX paths: segments separated by `/`, never `..`,
 * `.`, an empty segment, a leading `/`, a backslash or a control character,
 * at most 1024 characters. Every call refuses any other key with E_INPUT
 * (`checkKey`) before any I/O, so no caller can address anything outside
 * the backend's root. A folder prefix `p` names every key that starts with
 * `p/` (so `a` covers `a/x` and `a/b/c`, not `ab/x`).
 *
 * ## Calls
 * Every call takes an optional `{ signal }` (an AbortSignal). A signal that
 * is already aborted, or aborts while the call runs, rejects the call with
 * At1Error E_ABORTED naming the call and the key; backends check it before
 * starting I/O and between steps (after opening, before making a write
 * visible, between listing pages). An abort never leaves a partial object
 * visible: a write aborted before its commit step is not visible at all.
 *
 * - `read(key)`: the whole object. E_NOT_FOUND when missing.
 * - `readRange(key, offset, length)`: exactly `length` bytes from `offset`.
 *   Strict: an object too short to hold the range is an error (E_CORRUPT,
 *   naming key, offset, bytes wanted and bytes got), never a short result.
 *   S3: GET with `Range: bytes=offset-(offset+length-1)`.
 * - `readUpTo(key, offset, length)`: at most `length` bytes from `offset`;
 *   fewer only where the object ends (empty past the end). For readers that
 *   do not know an object's length yet (an object header is read this way).
 * - `size(key)`, `stat(key)`: size, and modification time in ms since the
 *   epoch **by the storage's clock** (local: mtime; S3: LastModified), or
 *   undefined when the key does not exist.
 * - `touch(key, expect?)`: set the modification time to now (the storage's
 *   clock). With `expect`, only while the key holds exactly those bytes
 *   (conditional touch). False when the key is missing or holds other bytes.
 *   It never changes the content. S3: a GET of the value and its ETag, the
 *   comparison, then a re-PUT of `expect` with `If-Match` on that ETag;
 *   without `expect`, a server-side copy onto itself.
 * - `create(key, data)`: exclusive create. Returns false, writing nothing,
 *   when the key exists; atomic with respect to every other writer of any
 *   process or host: of N concurrent creators of one key exactly one gets
 *   true. Content-addressed puts, version manifests, the writer lock, end
 *   markers and reader leases rely on it. S3: PUT with `If-None-Match: *`.
 * - `put(key, data)`: atomic replace. A reader sees the old content or the
 *   new, never a part (the registry replaces only in rm --rebase: an object
 *   re-encoded with the same content, a rebased manifest, `locks/removed-at`).
 * - Both writes are durable when they resolve (local: data and directory
 *   fsynced) and the object is visible to every later call of any process.
 * - `remove(key)`: removing a missing key is not an error.
 * - `list(prefix, { pageSize })`: every key under a folder prefix with its
 *   size and (where the listing gives it) modification time, as an async
 *   iterable fetched a page at a time (S3: ListObjectsV2 pages; local: the
 *   directory tree walked with streaming directory reads), in no set order.
 *   A key created or removed during the listing may or may not appear.
 *   `listAll(backend, prefix)` collects one into an array for callers that
 *   need one.
 * - `topLevel()`: the names of the root's entries (first key segments;
 *   local: any directory entry, also one that is not a key, such as an empty
 *   folder or a link). init uses it to refuse a location holding anything
 *   but a registry's own entries.
 * - `leftovers()`: the backend's own debris of interrupted writes (local:
 *   files in `tmp/`; memory: none unless a test plants some; S3: incomplete
 *   multipart uploads), never a stored key; `removeLeftover(key)` removes
 *   one (refusing, with E_INPUT, any key `leftovers` could not yield). gc
 *   removes old leftovers, fsck reports them.
 *
 * ## Errors
 * Every failure is an At1Error. `retryable` says whether the same call may
 * succeed if simply tried again (local: EAGAIN, EBUSY, EMFILE, ENFILE, EINTR,
 * ETIMEDOUT, EIO; S3: 5xx, 429, throttling, connection resets); permanent
 * ones (a missing key E_NOT_FOUND, EACCES, EROFS, ENOSPC, a refused key) are
 * not. Retrying is the caller's decision; a backend never retries silently
 * except its own internal races (local: a temp file swept away mid-write).
 *
 * ## Capabilities
 * `capabilities` says what a backend can promise; the registry needs:
 * - `exclusiveCreate` for everything it publishes (objects dedup on it,
 *   manifests are never overwritten) and for the lease lock (lease.ts): two
 *   writers taking the lock at once must not both succeed;
 * - `conditionalTouch` for lease renewal: a holder renewing its lease must
 *   never renew the lease of another holder that took over an expired one;
 * - `atomicReplace` for rm --rebase and the removal mark gc reads;
 * - and, for leases and gc's grace period (gc.ts), modification times by
 *   the storage's clock on `stat`, `list` and `touch`, so hosts with skewed
 *   clocks still agree on a lease's age.
 * Without exclusive create and conditional touch, leases refuse to run
 * (E_UNSUPPORTED). `suggestedConnections` is how many calls a caller should
 * keep in flight for throughput (local disk: a few; S3: dozens).
 */
import { At1Error } from '../errors.js';

export interface CallOptions {
  signal?: AbortSignal;
}

export interface ListOptions extends CallOptions {
  /** Keys fetched per page (a hint: S3 caps it at 1000). */
  pageSize?: number;
}

export interface KeyInfo {
  key: string;
  size: number;
  /** Last modification (ms since the epoch, storage's clock), where the listing gives it (local: always; S3: LastModified). */
  mtimeMs?: number;
}

export interface KeyStat {
  size: number;
  /** Last modification, ms since the epoch, by the storage's clock. */
  mtimeMs: number;
}

export interface Capabilities {
  /** `create` fails atomically when the key exists (S3: If-None-Match: *). */
  exclusiveCreate: boolean;
  /** `put` replaces atomically: readers see old or new, never a part. */
  atomicReplace: boolean;
  /** `touch(key, expect)` renews only while the key holds `expect` (S3: If-Match on the ETag). */
  conditionalTouch: boolean;
  /** How many calls to keep in flight for throughput. */
  suggestedConnections: number;
}

export const DEFAULT_PAGE_SIZE = 1000;

export interface Backend {
  /** A human-readable location, for messages. */
  readonly location: string;
  readonly capabilities: Capabilities;
  /**
   * The whole value. Every read returns a fresh buffer the caller owns (it
   * may be transferred to a worker thread or decoded into in place); a
   * backend that caches must hand out copies.
   */
  read(key: string, opts?: CallOptions): Promise<Uint8Array>;
  /** Exactly `length` bytes at `offset`; a short object is an error. */
  readRange(key: string, offset: number, length: number, opts?: CallOptions): Promise<Uint8Array>;
  /** Up to `length` bytes at `offset`: fewer only at the object's end. */
  readUpTo(key: string, offset: number, length: number, opts?: CallOptions): Promise<Uint8Array>;
  /** Size in bytes, or undefined when the key does not exist. */
  size(key: string, opts?: CallOptions): Promise<number | undefined>;
  /** Size and modification time, or undefined when the key does not exist. */
  stat(key: string, opts?: CallOptions): Promise<KeyStat | undefined>;
  /** Renew the modification time; with `expect`, only while the key holds exactly those bytes. False when missing or different. */
  touch(key: string, expect?: Uint8Array, opts?: CallOptions): Promise<boolean>;
  /** Exclusive create: false (nothing written) when the key exists. */
  create(key: string, data: Uint8Array, opts?: CallOptions): Promise<boolean>;
  /** Atomic replace (or create). */
  put(key: string, data: Uint8Array, opts?: CallOptions): Promise<void>;
  /** Remove a key; removing a missing key is not an error. */
  remove(key: string, opts?: CallOptions): Promise<void>;
  /** Every key under a folder prefix, fetched a page at a time. */
  list(prefix: string, opts?: ListOptions): AsyncIterable<KeyInfo>;
  /** Names of the root's entries (first key segments, and on local disk any other entry). */
  topLevel(opts?: CallOptions): AsyncIterable<string>;
  /** Debris of the backend's own interrupted writes. */
  leftovers(opts?: ListOptions): AsyncIterable<KeyInfo>;
  /** Remove one leftover (a key `leftovers` yielded); missing is not an error. */
  removeLeftover(key: string, opts?: CallOptions): Promise<void>;
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

/** Reject with E_ABORTED when `signal` has fired: called before I/O and between steps. */
export function checkAborted(signal: AbortSignal | undefined, what: string, key: string, location: string): void {
  if (signal?.aborted) throw new At1Error('E_ABORTED', `${what} ${key} in ${location} aborted`, { cause: signal.reason });
}

/** The error of a strict range read that found too few bytes. */
export function shortRead(location: string, key: string, offset: number, wanted: number, got: number): At1Error {
  return new At1Error('E_CORRUPT', `short read of ${key} in ${location}: wanted ${wanted} bytes at offset ${offset}, got ${got} (the object ends at ${offset + got})`);
}

/** A listing collected into one array, for callers that need every key at once. */
export async function listAll(backend: Backend, prefix: string, opts: ListOptions = {}): Promise<KeyInfo[]> {
  const out: KeyInfo[] = [];
  for await (const k of backend.list(prefix, opts)) out.push(k);
  return out;
}

/** Refuse to build leases on a backend that cannot give them (see Capabilities). */
export function requireLeaseCapabilities(backend: Backend): void {
  const c = backend.capabilities;
  const missing = [!c.exclusiveCreate && 'exclusive create', !c.conditionalTouch && 'conditional touch'].filter(Boolean);
  if (missing.length > 0) throw new At1Error('E_UNSUPPORTED', `${backend.location} cannot hold registry leases: the backend lacks ${missing.join(' and ')}`);
}
