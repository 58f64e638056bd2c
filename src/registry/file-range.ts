/**
 * Bytes [start, end) of one file of a version, reconstructed on the fly:
 * what a server sends for a file or a Range of it, without restoring the
 * file first. A safetensors file is its header blob followed by its tensors
 * in data order; a range decodes only the header chunks and the tensor
 * chunks it overlaps (tensor-reader.ts), a side file only its own chunks.
 *
 * Every piece is yielded only after the chunk it was cut from passed its
 * own SHA-256, so a consumer never sees an unchecked byte (a stream that
 * fails stops before the bad bytes, with an IntegrityError naming version,
 * file and tensor). A read of the whole file is also checked against the
 * file's SHA-256 at the end, as a restore is.
 */
import { IntegrityError } from '../errors.js';
import { newSha256 } from '../util/hash.js';
import { parallelMap } from '../util/parallel-map.js';
import { readerSource, type ChunkSource } from './chunk-source.js';
import { blobChunks } from './geometry.js';
import type { BlobRef, FileEntry, TensorEntry, VersionManifest } from './manifest.js';
import type { Registry } from './registry.js';
import { checkByteRange, TensorReader, type ByteRange } from './tensor-reader.js';

export interface FileRangeOptions {
  /** Where chunks are decoded (a worker pool for large reads); default: in-process through the registry's reader. */
  source?: ChunkSource;
  signal?: AbortSignal;
}

/** One stretch of a file: the header blob, a side file's blob, or a tensor, at byte `at` of the file. */
type Segment = { at: number; length: number } & ({ blob: BlobRef; tensor?: undefined } | { tensor: TensorEntry; blob?: undefined });

function segmentsOf(f: FileEntry): Segment[] {
  if (f.kind === 'blob') return [{ at: 0, length: f.size, blob: f }];
  const dataStart = f.header.size;
  return [{ at: 0, length: f.header.size, blob: f.header }, ...f.tensors.map((t) => ({ at: dataStart + t.offset, length: t.length, tensor: t }))];
}

/** Check a byte range against a file's size: E_INPUT naming the file when it does not fit. */
export function checkFileRange(f: FileEntry, r: ByteRange): void {
  checkByteRange({ name: f.path, length: f.size } as TensorEntry, r);
}

async function* blobRange(source: ChunkSource, m: VersionManifest, f: FileEntry, blob: BlobRef, r: ByteRange, signal?: AbortSignal): AsyncGenerator<Uint8Array> {
  const spans = blobChunks(blob.size, blob.chunkBytes).filter((s) => s.offset < r.end && s.offset + s.length > r.start);
  const pieces = parallelMap(
    spans,
    async (s) => {
      try {
        const bytes = await source.read(blob.chunks[s.index]!, s.length); // checked against the chunk's digest
        return bytes.subarray(Math.max(0, r.start - s.offset), Math.min(s.length, r.end - s.offset));
      } catch (e) {
        const what = f.kind === 'safetensors' ? 'header' : `chunk ${s.index}`;
        throw new IntegrityError(`version ${m.name}, file ${f.path}, ${what}: ${e instanceof Error ? e.message : String(e)}`, { version: m.name, file: f.path, object: blob.chunks[s.index] });
      }
    },
    source.window,
  );
  for await (const p of pieces) {
    signal?.throwIfAborted();
    yield p;
  }
}

/**
 * Bytes `range` (default: all) of file `f` of version `m`, as verified
 * pieces in order. Hold a reader lease around it (`reg.readingStream`).
 */
export async function* readFileRange(reg: Registry, m: VersionManifest, f: FileEntry, range?: ByteRange, opts: FileRangeOptions = {}): AsyncGenerator<Uint8Array> {
  const r = range ?? { start: 0, end: f.size };
  checkFileRange(f, r);
  const source = opts.source ?? readerSource(reg.reader);
  const whole = r.start === 0 && r.end === f.size;
  const hash = whole ? newSha256() : undefined;
  const reader = new TensorReader(source);
  for (const seg of segmentsOf(f)) {
    const from = Math.max(r.start, seg.at);
    const to = Math.min(r.end, seg.at + seg.length);
    if (from >= to) continue;
    const local = { start: from - seg.at, end: to - seg.at };
    const pieces = seg.blob
      ? blobRange(source, m, f, seg.blob, local, opts.signal)
      : reader.stream({ manifest: m, file: f as Extract<FileEntry, { kind: 'safetensors' }>, tensor: seg.tensor }, { range: local, eachChunk: true, signal: opts.signal });
    for await (const p of pieces) {
      hash?.update(p);
      yield p;
    }
  }
  if (hash && hash.digest('hex') !== f.sha256) throw new IntegrityError(`version ${m.name}, file ${f.path}: the reconstructed file does not match its SHA-256`, { version: m.name, file: f.path });
}
