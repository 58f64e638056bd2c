/**
 * Where an object's bytes are turned into raw chunk bytes: in this thread,
 * or on a worker pool. The caller (ChunkReader) has already done all I/O —
 * the object and the raw bytes of every reference — so a decoder is pure
 * CPU, and any backend gets the same parallelism. A decoder may also hash
 * what it decoded, so the SHA-256 of a verified read runs on a worker too.
 */
import { At1Error } from '../errors.js';
import { codecById, type RefChunk } from '../codec/index.js';
import type { ObjectHeader } from '../format/object.js';
import { sha256Hex } from '../util/hash.js';
import type { WorkerPool } from './worker-pool.js';

export interface DecodeJob {
  /** The object's key, for messages. */
  digest: string;
  /** The whole stored object, header included. */
  object: Uint8Array;
  header: ObjectHeader;
  /** Raw bytes of each reference, in header order. */
  refs: RefChunk[];
  /** Also return the SHA-256 of the decoded bytes. */
  hash: boolean;
  /**
   * Decode into this (header.rawLength bytes). In-process decoding writes
   * there directly; so does a pool worker when `out` lies in a
   * SharedArrayBuffer (slot-ring.ts); otherwise a pool copies its result
   * there once.
   */
  out?: Uint8Array;
  /**
   * The reference buffers are the caller's to give away: a pool transfers
   * them to the worker instead of copying. Never set for bytes a cache
   * still holds. The object's buffer (fresh from the store) is always given
   * away.
   */
  disposableRefs: boolean;
}

export interface DecodeResult {
  /** The decoded bytes: `out` when one was given. */
  bytes: Uint8Array;
  sha256?: string;
}

export interface ChunkDecoder {
  decode(job: DecodeJob): Promise<DecodeResult>;
  /** Decodes on other threads: outputs in a SharedArrayBuffer are written there directly (in-process decoding needs no shared memory). */
  readonly sharedOutput: boolean;
  /** How many decodes are worth keeping in flight. */
  readonly parallelism: number;
  close(): Promise<void>;
}

/** Decode an object's payload into `out` (its raw length). Codec errors keep their code and gain the object's name. */
export function decodeObjectInto(digest: string, object: Uint8Array, header: ObjectHeader, refs: readonly RefChunk[], out: Uint8Array): void {
  const codec = codecById(header.codec, `object ${digest}`);
  try {
    codec.decodeInto(object.subarray(header.payloadOffset), { dtype: header.dtype, refs }, out);
  } catch (e) {
    if (e instanceof At1Error && !e.message.includes(digest)) throw new At1Error(e.code, `object ${digest}: ${e.message}`, { cause: e });
    throw e;
  }
}

export const inProcessDecoder: ChunkDecoder = {
  decode: async (job) => {
    const bytes = job.out ?? new Uint8Array(job.header.rawLength);
    decodeObjectInto(job.digest, job.object, job.header, job.refs, bytes);
    return { bytes, sha256: job.hash ? sha256Hex(bytes) : undefined };
  },
  parallelism: 1,
  sharedOutput: false,
  close: async () => undefined,
};

/** The buffer behind `b` when `b` spans all of it (a transfer must not detach bytes that others share), else undefined. */
export function wholeBuffer(b: Uint8Array): ArrayBuffer | undefined {
  const buf = b.buffer;
  return buf instanceof ArrayBuffer && b.byteOffset === 0 && b.byteLength === buf.byteLength ? buf : undefined;
}

/** Decoding on a worker pool; the pool belongs to the caller, who closes it. */
export function pooledDecoder(pool: WorkerPool, parallelism: number): ChunkDecoder {
  return {
    decode: async (job) => {
      const transfer: ArrayBuffer[] = [];
      for (const b of [job.object, ...(job.disposableRefs ? job.refs.map((r) => r.bytes) : [])]) {
        const buf = wholeBuffer(b);
        if (buf && !transfer.includes(buf)) transfer.push(buf);
      }
      // Shared memory: the worker decodes straight into the caller's buffer and sends back only the digest.
      const into = job.out && job.out.buffer instanceof SharedArrayBuffer ? job.out : undefined;
      const reply = await pool.run({ kind: 'decode', digest: job.digest, object: job.object, header: job.header, refs: job.refs, hash: job.hash, out: into }, transfer);
      if (reply.kind !== 'decoded') throw new At1Error('E_IO', `object ${job.digest}: unexpected worker reply ${reply.kind}`);
      if (into) return { bytes: into, sha256: reply.sha256 };
      if (!reply.bytes) throw new At1Error('E_IO', `object ${job.digest}: the worker sent no bytes`);
      if (!job.out) return { bytes: reply.bytes, sha256: reply.sha256 };
      job.out.set(reply.bytes);
      return { bytes: job.out, sha256: reply.sha256 };
    },
    parallelism,
    sharedOutput: true,
    close: async () => undefined,
  };
}
