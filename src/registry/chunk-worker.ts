/**
 * The body of a pool worker (worker-pool.ts): decodes and encodes chunks
 * against its own view of the registry. Objects it writes are exclusive
 * creates, so workers and the main thread never conflict.
 */
import { parentPort } from 'node:worker_threads';
import { At1Error } from '../errors.js';
import type { Level } from '../codec/types.js';
import { LocalBackend } from '../store/local-backend.js';
import { ObjectStore } from '../store/object-store.js';
import { ChunkReader } from './chunk-reader.js';
import { storeChunk } from './chunk-writer.js';
import { refsForChunk } from './reference.js';
import type { WorkerInit } from './worker-pool.js';

export type WorkerJob =
  | { kind: 'decode'; digest: string; length: number; verify: boolean }
  | { kind: 'encode'; raw: Uint8Array; dtype: string; parentChunk: string | undefined; level: Level };

export type WorkerReply = { kind: 'decoded'; bytes: Uint8Array } | { kind: 'stored'; digest: string; written: number; codec: string };

export function start(init: WorkerInit): void {
  const store = new ObjectStore(new LocalBackend(init.root));
  const reader = new ChunkReader(store, 16 << 20);
  const handle = async (job: WorkerJob): Promise<{ reply: WorkerReply; transfer: ArrayBuffer[] }> => {
    if (job.kind === 'decode') {
      if (!job.verify) {
        const bytes = await reader.readUnverified(job.digest, job.length);
        const own = bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes : bytes.slice();
        return { reply: { kind: 'decoded', bytes: own }, transfer: [own.buffer as ArrayBuffer] };
      }
      const { bytes } = await reader.read(job.digest, job.length);
      const copy = bytes.slice(); // the cache keeps its own; the copy is transferred
      return { reply: { kind: 'decoded', bytes: copy }, transfer: [copy.buffer as ArrayBuffer] };
    }
    const refs = await refsForChunk(reader, job.parentChunk, init.maxChainDepth);
    const r = await storeChunk(store, job.raw, job.dtype, refs, job.level, reader); // the reader proves an existing object before dedup reuses it
    return { reply: { kind: 'stored', ...r }, transfer: [] };
  };
  parentPort!.on('message', (m: { id: number; job: WorkerJob }) => {
    handle(m.job).then(
      ({ reply, transfer }) => parentPort!.postMessage({ id: m.id, ok: true, reply }, transfer),
      (e: unknown) => {
        const err = e instanceof At1Error ? e : new At1Error('E_IO', e instanceof Error ? e.message : String(e));
        parentPort!.postMessage({ id: m.id, ok: false, error: { code: err.code, message: err.message, where: (err as { where?: unknown }).where } });
      },
    );
  });
}
