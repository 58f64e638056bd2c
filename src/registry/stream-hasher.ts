/**
 * SHA-256 streams on a worker thread of their own: a pooled restore's
 * tensor and blob digests, so the main thread neither hashes nor waits on a
 * hash while it reads, schedules and writes. A stream's chunks are views of
 * the caller's shared slots (slot-ring.ts), sent in order; one worker runs
 * every stream, so messages need no ordering beyond the port's, and a
 * hash is never queued behind a decode (a decode at the max level takes
 * ten times as long as hashing the same chunk).
 */
import { At1Error } from '../errors.js';
import { WorkerPool } from './worker-pool.js';

export interface StreamHasher {
  /** A new stream's id. */
  open(): number;
  /** Hash `bytes` (in a SharedArrayBuffer) next in `stream`; settles once the bytes have been read (the caller may then reuse them). */
  update(stream: number, bytes: Uint8Array): Promise<void>;
  /** The stream's SHA-256 (hex); ends the stream. */
  digest(stream: number): Promise<string>;
  close(): Promise<void>;
}

/** The worker starts with the first stream: a source that never hashes this way (verify, tensor reads) starts no thread. */
export function workerHasher(): StreamHasher {
  let pool: WorkerPool | undefined;
  let next = 0;
  const started = (): WorkerPool => (pool ??= new WorkerPool(1));
  return {
    open: () => {
      started();
      return next++;
    },
    update: async (stream, bytes) => {
      if (!(bytes.buffer instanceof SharedArrayBuffer)) throw new At1Error('E_IO', 'internal: a hashing worker reads only shared memory');
      await started().run({ kind: 'hash-update', stream, bytes });
    },
    digest: async (stream) => {
      const r = await started().run({ kind: 'hash-digest', stream });
      if (r.kind !== 'hashed' || r.sha256 === undefined) throw new At1Error('E_IO', `internal: unexpected hashing worker reply ${r.kind}`);
      return r.sha256;
    },
    close: async () => await pool?.close(),
  };
}
