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

/**
 * The hashing worker's whole program, in plain JavaScript (an eval'd
 * worker runs as CommonJS): it answers
 * chunk-worker.ts's hash-update / hash-digest jobs and needs nothing else,
 * so it starts without the TypeScript loader and the codec modules (that
 * start cost ~0.5 s of CPU on 2 cores, taken from the decode workers).
 */
const HASHER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const streams = new Map();
parentPort.on('message', ({ id, job }) => {
  try {
    if (job.kind === 'hash-update') {
      let h = streams.get(job.stream);
      if (!h) streams.set(job.stream, (h = createHash('sha256')));
      h.update(job.bytes);
      parentPort.postMessage({ id, ok: true, reply: { kind: 'hashed' } });
    } else if (job.kind === 'hash-digest') {
      const h = streams.get(job.stream) ?? createHash('sha256');
      streams.delete(job.stream);
      parentPort.postMessage({ id, ok: true, reply: { kind: 'hashed', sha256: h.digest('hex') } });
    } else parentPort.postMessage({ id, ok: false, error: { code: 'E_IO', message: 'the hashing worker only hashes: ' + job.kind } });
  } catch (e) {
    parentPort.postMessage({ id, ok: false, error: { code: 'E_IO', message: String(e && e.message) } });
  }
});
`;

/** The worker starts with the first stream: a source that never hashes this way (verify, tensor reads) starts no thread. */
export function workerHasher(): StreamHasher {
  let pool: WorkerPool | undefined;
  let next = 0;
  const started = (): WorkerPool => (pool ??= new WorkerPool(1, HASHER_SOURCE));
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
