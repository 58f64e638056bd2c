/**
 * The one tensor reader: restore, verify, `tensor get`, a runtime and a
 * server all read a tensor, or a byte range of it, through here.
 *
 * Every byte handed to a caller is covered by a SHA-256 that was checked:
 *  - a whole unpacked tensor is decoded (chunks in parallel, straight into
 *    the destination) without hashing each chunk, then checked against the
 *    tensor's digest; on a mismatch each chunk is re-read verified so the
 *    error names the damaged one;
 *  - a range reads only the chunks overlapping it, each checked against its
 *    own digest;
 *  - a packed tensor reads the pack chunks holding its bytes, each checked
 *    against its digest (a whole packed tensor is checked against its own
 *    digest as well), and nothing else of the pack.
 * `readInto` returns only once all of that passed; `stream` of a whole
 * tensor yields pieces in order and throws at the end if the tensor's
 * digest fails, as a restore stream does (use readInto to see only checked
 * bytes); `stream` of a range yields each piece only once its chunk passed.
 *
 * A reader does no locking: hold a reader lease (`reg.reading`) across
 * finding and reading a tensor, as tensor-access.ts's wrappers do.
 */
import { At1Error, IntegrityError } from '../errors.js';
import { dtypeBits } from '../format/dtype.js';
import { newSha256 } from '../util/hash.js';
import { parallelMap } from '../util/parallel-map.js';
import { chunkSource, type ChunkSource } from './chunk-source.js';
import { decodePieces, tensorPieces } from './decode-pipeline.js';
import { elementCount, tensorChunks } from './geometry.js';
import type { SafetensorsFile, TensorEntry, VersionManifest } from './manifest.js';
import { packSlices } from './packs.js';
import type { Registry } from './registry.js';

export interface TensorLocation {
  manifest: VersionManifest;
  file: SafetensorsFile;
  tensor: TensorEntry;
}

/** A half-open byte range [start, end) within a tensor. */
export interface ByteRange {
  start: number;
  end: number;
}

export interface ReadOptions {
  /** Bytes [start, end) of the tensor; default: all of it. */
  range?: ByteRange;
  /** Stops scheduling chunk reads; the read rejects with the signal's reason once the reads in flight have settled. */
  signal?: AbortSignal;
  /** Chunks read and decoded at once; default: the source's window. */
  concurrency?: number;
  /**
   * `stream` only: yield a whole tensor, too, piece by piece as each chunk
   * passes its own digest (as a range is), instead of checking the tensor's
   * digest after the last piece. For a server, which must never send a byte
   * before it was checked.
   */
  eachChunk?: boolean;
}

export function checkByteRange(t: TensorEntry, r: ByteRange): void {
  if (!Number.isSafeInteger(r.start) || !Number.isSafeInteger(r.end) || r.start < 0 || r.end < r.start || r.end > t.length) {
    throw new At1Error('E_INPUT', `bytes ${r.start}:${r.end} are outside tensor ${JSON.stringify(t.name)}, which has ${t.length} bytes`);
  }
}

/** One chunk a read needs: bytes [from, to) of the object go to the read's output at `at`. */
interface Part {
  /** Chunk index within the tensor (or the pack), for messages. */
  index: number;
  packed: boolean;
  digest: string;
  length: number;
  from: number;
  to: number;
  at: number;
}

/** The chunks holding bytes [start, end) of a tensor, in order. */
function partsOf(f: SafetensorsFile, t: TensorEntry, r: ByteRange): Part[] {
  const out: Part[] = [];
  if (t.pack) {
    for (const s of packSlices(f, t, r.start, r.end)) {
      out.push({ index: s.index, packed: true, digest: s.digest, length: s.chunkLength, from: s.from, to: s.to, at: out.length === 0 ? 0 : out[out.length - 1]!.at + (out[out.length - 1]!.to - out[out.length - 1]!.from) });
    }
    return out;
  }
  for (const span of tensorChunks(elementCount(t.shape), dtypeBits(t.dtype), f.chunkElements)) {
    const from = Math.max(r.start, span.offset);
    const to = Math.min(r.end, span.offset + span.length);
    if (from >= to) continue;
    const digest = t.chunks[span.index];
    if (digest === undefined) throw new At1Error('E_CORRUPT', `tensor ${JSON.stringify(t.name)} of ${f.path} has no chunk ${span.index}`);
    out.push({ index: span.index, packed: false, digest, length: span.length, from: from - span.offset, to: to - span.offset, at: from - r.start });
  }
  return out;
}

/** The error for a failed part, naming version, tensor and chunk; integrity failures stay IntegrityErrors. */
function partFailure(loc: TensorLocation, p: Part | undefined, e: unknown): At1Error {
  const chunk = p ? `, ${p.packed ? 'pack chunk' : 'chunk'} ${p.index}` : '';
  const msg = `version ${loc.manifest.name}, tensor ${JSON.stringify(loc.tensor.name)}${chunk}: ${e instanceof Error ? e.message : String(e)}`;
  if (e instanceof IntegrityError || !(e instanceof At1Error)) return new IntegrityError(msg, { version: loc.manifest.name, file: loc.file.path, tensor: loc.tensor.name, object: p?.digest });
  return new At1Error(e.code, msg, { cause: e });
}

/** Run `fn` over items, `limit` at once; on the first failure (or an abort) stop starting new ones, let those in flight settle, then throw. */
async function runBounded<T>(items: readonly T[], limit: number, signal: AbortSignal | undefined, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { e: unknown } | undefined;
  const lane = async (): Promise<void> => {
    while (!failure && next < items.length) {
      if (signal?.aborted) {
        failure ??= { e: signal.reason };
        return;
      }
      const item = items[next++]!;
      try {
        await fn(item);
      } catch (e) {
        failure ??= { e };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, lane));
  if (failure) throw failure.e;
  signal?.throwIfAborted();
}

export class TensorReader {
  constructor(readonly source: ChunkSource) {}

  /** A reader over a registry: decoding on a worker pool when it expects to read `expectedBytes` or more in all (chunk-source.ts). Close it when done. */
  static open(reg: Registry, expectedBytes = 0): TensorReader {
    return new TensorReader(chunkSource(reg.reader, expectedBytes, reg.settings));
  }

  close(): Promise<void> {
    return this.source.close();
  }

  /**
   * Decode a tensor, or `opts.range` of it, into `dest` (exactly as long),
   * chunks in parallel. Resolves once every byte written is covered by a
   * checked SHA-256 (see the file comment); on failure nothing more is
   * written after it rejects, but `dest` may hold partial, unchecked bytes.
   */
  async readInto(loc: TensorLocation, dest: Uint8Array, opts: ReadOptions = {}): Promise<void> {
    const { tensor: t, file: f } = loc;
    const range = opts.range ?? { start: 0, end: t.length };
    checkByteRange(t, range);
    if (dest.length !== range.end - range.start) throw new At1Error('E_INPUT', `tensor ${JSON.stringify(t.name)}: a destination of ${dest.length} bytes for a range of ${range.end - range.start}`);
    opts.signal?.throwIfAborted();
    const whole = range.start === 0 && range.end === t.length;
    const parts = partsOf(f, t, range);
    // Pack chunks are shared by consecutive slices (and tensors): each is read once per call.
    const shared = new Map<string, Promise<Uint8Array>>();
    await runBounded(parts, opts.concurrency ?? this.source.window, opts.signal, async (p) => {
      const out = dest.subarray(p.at, p.at + (p.to - p.from));
      try {
        if (!p.packed && whole) await this.source.readUnverified(p.digest, p.length, out); // the tensor's digest checks it below
        else if (!p.packed && p.from === 0 && p.to === p.length) await this.source.readInto(p.digest, out);
        else {
          let bytes = shared.get(p.digest);
          if (!bytes) shared.set(p.digest, (bytes = this.source.read(p.digest, p.length)));
          out.set((await bytes).subarray(p.from, p.to));
        }
      } catch (e) {
        throw partFailure(loc, p, e);
      }
    });
    if (whole && newSha256().update(dest).digest('hex') !== t.sha256) throw partFailure(loc, ...(await this.diagnose(parts)));
  }

  /** Why a tensor failed its digest: the first chunk that does not verify, if any. */
  private async diagnose(parts: readonly Part[]): Promise<[Part | undefined, unknown]> {
    for (const p of parts) {
      try {
        await this.source.read(p.digest, p.length);
      } catch (e) {
        return [p, e];
      }
    }
    return [undefined, new Error('bytes do not match the recorded SHA-256')];
  }

  /** A tensor, or a range of it, as pieces in order (see the file comment for what is checked when). */
  async *stream(loc: TensorLocation, opts: ReadOptions = {}): AsyncGenerator<Uint8Array> {
    const { tensor: t, file: f, manifest: m } = loc;
    opts.signal?.throwIfAborted();
    if (!opts.eachChunk && (opts.range === undefined || (opts.range.start === 0 && opts.range.end === t.length))) {
      if (opts.range) checkByteRange(t, opts.range);
      for await (const r of decodePieces(this.source, tensorPieces(t, f), { version: m.name, file: f.path })) {
        opts.signal?.throwIfAborted();
        if (r.error) throw r.error;
        yield r.bytes!;
      }
      return;
    }
    const range = opts.range ?? { start: 0, end: t.length };
    checkByteRange(t, range);
    const parts = parallelMap(
      partsOf(f, t, range),
      async (p) => {
        try {
          return (await this.source.read(p.digest, p.length)).subarray(p.from, p.to); // checked against the chunk's digest
        } catch (e) {
          throw partFailure(loc, p, e);
        }
      },
      opts.concurrency ?? this.source.window,
    );
    for await (const bytes of parts) {
      opts.signal?.throwIfAborted();
      yield bytes;
    }
  }
}
