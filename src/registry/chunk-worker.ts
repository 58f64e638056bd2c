/**
 * The body of a pool worker (worker-pool.ts): pure CPU, no I/O. The main
 * thread reads objects and reference chains and writes what comes back, so
 * workers need no view of the registry and any backend gets them.
 *  - decode: object bytes + the raw bytes of its references -> raw bytes,
 *    into the caller's shared slot when given one (slot-ring.ts), else a
 *    fresh buffer transferred back (and their SHA-256 when asked: verified
 *    reads hash here, off the main thread);
 *  - encode: a raw chunk + its references -> its digest and the smallest
 *    verified object (chunk-writer.ts encodeVerified).
 *  - hash-update / hash-digest: a SHA-256 stream over chunks in shared
 *    memory, for a restore's tensor digests (stream-hasher.ts).
 * Results are transferred, not copied.
 */
import { createHash, type Hash } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import { At1Error } from '../errors.js';
import type { Level, RefChunk } from '../codec/types.js';
import type { ObjectHeader } from '../format/object.js';
import { sha256Hex } from '../util/hash.js';
import { decodeObjectInto } from './chunk-decoder.js';
import { encodeVerified, type Reference } from './chunk-writer.js';

export type WorkerJob =
  | { kind: 'decode'; digest: string; object: Uint8Array; header: ObjectHeader; refs: RefChunk[]; hash: boolean; out?: Uint8Array }
  | { kind: 'digest'; raw: Uint8Array }
  | { kind: 'hash-update'; stream: number; bytes: Uint8Array }
  | { kind: 'hash-digest'; stream: number }
  | { kind: 'encode'; raw: Uint8Array; dtype: string; refs: Reference[]; level: Level };

export type WorkerReply =
  | { kind: 'decoded'; bytes?: Uint8Array; sha256?: string }
  | { kind: 'digested'; digest: string; raw: Uint8Array }
  | { kind: 'hashed'; sha256?: string }
  | { kind: 'encoded'; object: Uint8Array; codec: string };

/**
 * SHA-256 streams of a hashing worker (stream-hasher.ts): a tensor's chunks
 * arrive in order, as views of the caller's shared slots, and are hashed
 * here instead of on the main thread.
 */
const streams = new Map<number, Hash>();

function handle(job: WorkerJob): { reply: WorkerReply; transfer: ArrayBuffer[] } {
  if (job.kind === 'hash-update') {
    let h = streams.get(job.stream);
    if (!h) streams.set(job.stream, (h = createHash('sha256')));
    h.update(job.bytes);
    return { reply: { kind: 'hashed' }, transfer: [] };
  }
  if (job.kind === 'hash-digest') {
    const h = streams.get(job.stream) ?? createHash('sha256');
    streams.delete(job.stream);
    return { reply: { kind: 'hashed', sha256: h.digest('hex') }, transfer: [] };
  }
  if (job.kind === 'decode') {
    if (job.out) {
      // The caller's shared slot (slot-ring.ts): decoded in place, only the digest goes back.
      decodeObjectInto(job.digest, job.object, job.header, job.refs, job.out);
      return { reply: { kind: 'decoded', sha256: job.hash ? sha256Hex(job.out) : undefined }, transfer: [] };
    }
    const bytes = new Uint8Array(job.header.rawLength);
    decodeObjectInto(job.digest, job.object, job.header, job.refs, bytes);
    return { reply: { kind: 'decoded', bytes, sha256: job.hash ? sha256Hex(bytes) : undefined }, transfer: [bytes.buffer] };
  }
  if (job.kind === 'digest') {
    // The raw chunk goes back with its digest: the main thread checks dedup before anything is encoded.
    return { reply: { kind: 'digested', digest: sha256Hex(job.raw), raw: job.raw }, transfer: [job.raw.buffer as ArrayBuffer] };
  }
  const { object, codec } = encodeVerified(job.raw, job.dtype, job.refs, job.level);
  const own = object.byteOffset === 0 && object.byteLength === object.buffer.byteLength ? object : object.slice();
  return { reply: { kind: 'encoded', object: own, codec }, transfer: [own.buffer as ArrayBuffer] };
}

export function start(): void {
  parentPort!.on('message', (m: { id: number; job: WorkerJob }) => {
    try {
      const { reply, transfer } = handle(m.job);
      parentPort!.postMessage({ id: m.id, ok: true, reply }, transfer);
    } catch (e) {
      const err = e instanceof At1Error ? e : new At1Error('E_IO', e instanceof Error ? e.message : String(e));
      parentPort!.postMessage({ id: m.id, ok: false, error: { code: err.code, message: err.message, where: (err as { where?: unknown }).where } });
    }
  });
}
