/**
 * Where verified chunk bytes come from during a restore, a verify or a
 * tensor read: a ChunkReader decoding in-process, or the same reader
 * decoding on a worker pool. Either way the calling thread does all the
 * I/O, `window` reads in flight, so every backend gets the same parallelism.
 */
import type { ChunkReader } from './chunk-reader.js';
import { pooledDecoder } from './chunk-decoder.js';
import { defaultPoolSize, WorkerPool } from './worker-pool.js';
import type { RegistrySettings } from './settings.js';
import { workerHasher, type StreamHasher } from './stream-hasher.js';

export interface ChunkSource {
  /** Verified bytes of a chunk (possibly shared with a cache: do not modify). */
  read(digest: string, length: number): Promise<Uint8Array>;
  /** Decode a chunk into `out` (its length) and check it against its digest. */
  readInto(digest: string, out: Uint8Array): Promise<void>;
  /** Decoded but unhashed bytes, for callers that check a digest covering them (see ChunkReader.readUnverified); decoded into `out` when given. */
  readUnverified(digest: string, length: number, out?: Uint8Array): Promise<Uint8Array>;
  /** How many reads to keep in flight. */
  readonly window: number;
  /** Decodes on worker threads: an `out` in a SharedArrayBuffer is decoded into directly, so output buffers should be shared (slot-ring.ts). Absent: in-process. */
  readonly sharedOutput?: boolean;
  /** Where a restore hashes tensors decoded into shared memory, off the main thread (stream-hasher.ts); absent: the caller hashes. */
  readonly hasher?: StreamHasher;
  close(): Promise<void>;
}

/**
 * Reads in flight for an in-process source: two, so the next object's read
 * (and, on a remote backend, its latency) overlaps this one's decode.
 */
const IN_PROCESS_WINDOW = 2;

/**
 * Reads in flight per pool worker: enough to keep each busy while the main
 * thread reads, hashes and writes. A delta chunk is two jobs (its reference,
 * then itself) with a hop through this thread between them, so a worker
 * idles unless more is queued: 3 left it ~15% idle on a 2-core get.
 */
const READS_PER_WORKER = 4;

/**
 * Reads in flight on a backend that wants many requests at once (an object
 * store: `suggestedConnections` ≥ 16). Each read there is a round trip of
 * milliseconds, not a page-cache hit: with two in flight a verify of the
 * fixture family on radosgw spent most of its time waiting.
 */
const REMOTE_WINDOW = 8;

/** Whether `reader`'s backend pays a network round trip per call. */
export function isRemote(reader: ChunkReader): boolean {
  return reader.store.backend.capabilities.suggestedConnections >= 16;
}

export function readerSource(reader: ChunkReader, window = isRemote(reader) ? REMOTE_WINDOW : IN_PROCESS_WINDOW): ChunkSource {
  return {
    read: async (d, n) => (await reader.read(d, n)).bytes,
    readInto: (d, out) => reader.readInto(d, out),
    readUnverified: (d, n, out) => reader.readUnverified(d, n, out),
    window,
    sharedOutput: reader.decoder.sharedOutput,
    close: async () => undefined,
  };
}

/** Below this many bytes a restore runs in-process: starting workers would cost more than it saves. */
export const POOL_THRESHOLD_BYTES = 64 << 20;

/** Whether work of `totalBytes` bytes should use a worker pool. settings.workers 'never' never does; 'always' always does (tests use it to run the pooled path on small data). */
export function wantsPool(totalBytes: number, settings: Pick<RegistrySettings, 'workers'>): boolean {
  const mode = settings.workers;
  return mode === 'always' || (mode !== 'never' && totalBytes >= POOL_THRESHOLD_BYTES);
}

/** A source decoding on a worker pool for large work, else in-process; `reader` does the I/O either way. */
export function chunkSource(reader: ChunkReader, totalBytes: number, settings: Pick<RegistrySettings, 'workers' | 'threads'>): ChunkSource {
  if (!wantsPool(totalBytes, settings)) return readerSource(reader);
  const pool = new WorkerPool(defaultPoolSize('decode', settings.threads));
  const window = Math.max(pool.size * READS_PER_WORKER, isRemote(reader) ? REMOTE_WINDOW : 0);
  const source = readerSource(reader.withDecoder(pooledDecoder(pool, pool.size)), window);
  const hasher = workerHasher();
  return { ...source, hasher, close: async () => void (await Promise.all([pool.close(), hasher.close()])) };
}

/**
 * Chunk sources for a long-running reader of one registry (a server):
 * in-process for small reads, and for large ones one worker pool shared by
 * every read, started at the first that needs it and ended by `close`, so
 * concurrent downloads neither start a pool each nor run more workers than
 * the settings allow. The sources handed out have a no-op close.
 */
export class SharedChunkSources {
  private pooled: { pool: WorkerPool; source: ChunkSource } | undefined;

  constructor(
    private readonly reader: ChunkReader,
    private readonly settings: Pick<RegistrySettings, 'workers' | 'threads'>,
  ) {}

  /** A source for a read of `expectedBytes` in all. */
  sourceFor(expectedBytes: number): ChunkSource {
    if (!wantsPool(expectedBytes, this.settings)) return readerSource(this.reader);
    if (!this.pooled) {
      const pool = new WorkerPool(defaultPoolSize('decode', this.settings.threads));
      const source = readerSource(this.reader.withDecoder(pooledDecoder(pool, pool.size)), pool.size * READS_PER_WORKER);
      this.pooled = { pool, source };
    }
    return this.pooled.source;
  }

  async close(): Promise<void> {
    const p = this.pooled;
    this.pooled = undefined;
    await p?.pool.close();
  }
}
