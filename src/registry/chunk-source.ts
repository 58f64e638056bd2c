/**
 * Where verified chunk bytes come from during a restore or a verify: the
 * registry's in-process reader, or a worker pool decoding several chunks at
 * once. Either way every chunk returned has matched its digest.
 */
import type { ChunkReader } from './chunk-reader.js';
import { defaultPoolSize, WorkerPool } from './worker-pool.js';
import type { Registry } from './registry.js';
import { LocalBackend } from '../store/local-backend.js';

export interface ChunkSource {
  /** Verified bytes of a chunk. */
  read(digest: string, length: number): Promise<Uint8Array>;
  /** Decoded but unhashed bytes, for callers that check a digest covering them (see ChunkReader.readUnverified). */
  readUnverified(digest: string, length: number): Promise<Uint8Array>;
  /** How many reads to keep in flight. */
  readonly window: number;
  close(): Promise<void>;
}

export function readerSource(reader: ChunkReader): ChunkSource {
  return { read: async (d, n) => (await reader.read(d, n)).bytes, readUnverified: (d, n) => reader.readUnverified(d, n), window: 1, close: async () => undefined };
}

/** Below this many bytes a restore runs in-process: starting workers would cost more than it saves. */
export const POOL_THRESHOLD_BYTES = 64 << 20;

/**
 * A worker-pool source for large local restores, else the in-process reader.
 * settings.workers 'never' never uses workers; 'always' always does (tests use it
 * to run the pooled path on small data).
 */
export function chunkSource(reg: Registry, reader: ChunkReader, totalBytes: number): ChunkSource {
  const mode = reg.settings.workers;
  const wanted = mode === 'always' || (mode !== 'never' && totalBytes >= POOL_THRESHOLD_BYTES);
  if (!wanted || !(reg.backend instanceof LocalBackend)) return readerSource(reader);
  const pool = new WorkerPool({ root: reg.backend.root, maxChainDepth: reg.config.maxChainDepth }, defaultPoolSize('decode', reg.settings.threads));
  const decode = async (digest: string, length: number, verify: boolean): Promise<Uint8Array> => {
    const r = await pool.run({ kind: 'decode', digest, length, verify });
    if (r.kind !== 'decoded') throw new Error('unexpected worker reply');
    return r.bytes;
  };
  return {
    read: (digest, length) => decode(digest, length, true),
    readUnverified: (digest, length) => decode(digest, length, false),
    window: 6,
    close: () => pool.close(),
  };
}
