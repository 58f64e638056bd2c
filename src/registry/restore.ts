/**
 * Restoring versions. A file is planned as a list of pieces (header chunks,
 * then every tensor's chunks in data order; a packed tensor's pieces are
 * slices of the pack chunks holding it); pieces are decoded through a
 * ChunkSource (in-process or on worker threads, several in flight) and come
 * back in order. Each chunk is verified against its digest where it is
 * decoded; here each tensor's SHA-256 is checked when its last chunk has
 * arrived and the whole file's at the end. A consumer that writes to disk
 * (getVersion) publishes the file only after the final check, so a failed
 * restore leaves no output file behind.
 */
import { mkdir, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { At1Error, IntegrityError } from '../errors.js';
import { AtomicFileWriter, fsyncDir, removeStaleTemps, tempNameFor } from '../util/atomic-file.js';
import { fsCall } from '../util/fs-errors.js';
import { checkOutputPath } from '../util/output-path.js';
import { newSha256 } from '../util/hash.js';
import { orderedMap } from '../util/ordered-map.js';
import type { BlobRef, FileEntry, SafetensorsFile, TensorEntry, VersionManifest } from './manifest.js';
import { packSlices } from './packs.js';
import { blobChunks, dtypeBits, elementCount, tensorChunks } from './geometry.js';
import type { ProgressFn } from './progress.js';
import type { Registry } from './registry.js';
import { chunkSource, readerSource, type ChunkSource } from './chunk-source.js';
import type { ChunkReader } from './chunk-reader.js';

export interface Where {
  version: string;
  file: string;
}

/** Wrap any failure while decoding a tensor into an IntegrityError that names version, file and tensor. */
export function tensorFailure(e: unknown, where: Where, tensor: string): IntegrityError {
  const why = e instanceof Error ? e.message : String(e);
  return new IntegrityError(`version ${where.version}, tensor ${JSON.stringify(tensor)}: ${why}`, { ...where, tensor });
}

/** One chunk to decode, and what it belongs to. */
export interface Piece {
  digest: string;
  /** Raw length of the object `digest`. */
  length: number;
  /** The tensor it belongs to, or the blob (header / side file) when absent. */
  tensor?: TensorEntry;
  blob?: BlobRef;
  first: boolean;
  last: boolean;
  /**
   * Part of a chunk of pack `pack` (a packed tensor): only bytes [from, to)
   * of the object belong to this piece. Such objects are read verified
   * against their key and shared by the pieces cut from them, so a pack
   * chunk holding 5,000 tensors is decoded once, not 5,000 times.
   */
  slice?: { pack: number; from: number; to: number };
}

export function blobPieces(blob: BlobRef): Piece[] {
  const spans = blobChunks(blob.size, blob.chunkBytes);
  return spans.map((s, i) => ({ digest: blob.chunks[s.index]!, length: s.length, blob, first: i === 0, last: i === spans.length - 1 }));
}

/** A tensor's pieces: its own chunks, or for a packed tensor the slices of the pack chunks holding it (which needs its file). */
export function tensorPieces(t: TensorEntry, file: SafetensorsFile | number): Piece[] {
  if (t.pack) {
    if (typeof file === 'number') throw new At1Error('E_INPUT', `tensor ${JSON.stringify(t.name)} is packed: reading it needs its file entry, not only the chunk size`);
    const slices = packSlices(file, t);
    const pack = t.pack[0];
    return slices.map((s, i) => ({ digest: s.digest, length: s.chunkLength, tensor: t, first: i === 0, last: i === slices.length - 1, slice: { pack, from: s.from, to: s.to } }));
  }
  const chunkElements = typeof file === 'number' ? file : file.chunkElements;
  const spans = tensorChunks(elementCount(t.shape), dtypeBits(t.dtype), chunkElements);
  return spans.map((s, i) => ({ digest: t.chunks[s.index]!, length: s.length, tensor: t, first: i === 0, last: i === spans.length - 1 }));
}

export function filePieces(f: FileEntry): Piece[] {
  if (f.kind === 'blob') return blobPieces(f);
  const out = blobPieces(f.header);
  for (const t of f.tensors) for (const p of tensorPieces(t, f)) out.push(p);
  return out;
}

export interface PieceResult {
  piece: Piece;
  bytes?: Uint8Array;
  error?: IntegrityError;
}

/**
 * Decode pieces in order, checking each tensor's and blob's SHA-256 as its
 * last piece arrives. Chunks are decoded without hashing each one (the
 * tensor's digest covers every byte of its chunks, so one hash per byte is
 * enough); when a tensor fails, its chunks are read again with every object
 * verified so the failure names the damaged object. Failures are returned
 * per piece (with the tensor named), not thrown, so verify can report them
 * all; the remaining pieces of a failed tensor are skipped.
 *
 * Pack slices are the exception: a pack chunk is read verified (its key
 * covers every byte handed out, whichever tensor they go to), once for
 * all the consecutive pieces cut from it, and each packed tensor's SHA-256
 * is then checked as well.
 */
export async function* decodePieces(source: ChunkSource, pieces: Iterable<Piece>, where: Where): AsyncGenerator<PieceResult> {
  let hash = newSha256();
  let broken = false;
  let group: Piece[] = [];
  /**
   * Per pack, the chunk its latest slice came from: the next slices of it
   * reuse the same read. A file's packs are each read front to back, so one
   * chunk per pack is kept (tensors of two dtypes may alternate in a file).
   */
  const shared = new Map<number, { digest: string; bytes: Promise<Uint8Array> }>();
  const results = orderedMap(
    pieces,
    async (p): Promise<{ p: Piece; bytes?: Uint8Array; e?: unknown }> => {
      try {
        if (p.slice) {
          let chunk = shared.get(p.slice.pack);
          if (chunk?.digest !== p.digest) shared.set(p.slice.pack, (chunk = { digest: p.digest, bytes: source.read(p.digest, p.length) }));
          return { p, bytes: (await chunk.bytes).subarray(p.slice.from, p.slice.to) };
        }
        return { p, bytes: await source.readUnverified(p.digest, p.length) };
      } catch (e) {
        return { p, e };
      }
    },
    source.window,
  );
  const failure = (p: Piece, e: unknown): IntegrityError =>
    p.tensor ? tensorFailure(e, where, p.tensor.name) : new IntegrityError(`version ${where.version}, file ${where.file}: header: ${e instanceof Error ? e.message : String(e)}`, where);
  /** Why a group of pieces failed its digest: the first object that does not verify, if any. */
  const diagnose = async (ps: Piece[]): Promise<unknown> => {
    for (const q of ps) {
      try {
        await source.read(q.digest, q.length);
      } catch (e) {
        return e;
      }
    }
    return new Error('bytes do not match the recorded SHA-256');
  };
  for await (const { p, bytes, e } of results) {
    if (p.first) {
      hash = newSha256();
      broken = false;
      group = [];
    }
    if (broken) continue;
    group.push(p);
    if (e !== undefined || !bytes) {
      broken = true;
      // A slice's read was verified already: its error is the pack object's own (named here if the decoder did not).
      const why = p.slice ? (e instanceof Error && e.message.includes(p.digest) ? e : new Error(`pack object ${p.digest}: ${e instanceof Error ? e.message : String(e)}`)) : e instanceof IntegrityError || e instanceof At1Error ? await diagnose([p]) : e;
      yield { piece: p, error: failure(p, why) };
      continue;
    }
    hash.update(bytes);
    if (p.last && hash.digest('hex') !== (p.tensor ? p.tensor.sha256 : p.blob!.sha256)) {
      broken = true;
      yield { piece: p, error: failure(p, await diagnose(group)) };
      continue;
    }
    yield { piece: p, bytes };
  }
}

/** One file of a version, in file order, fully verified by the time the generator returns. */
export async function* readFile(reg: Registry, m: VersionManifest, f: FileEntry, source: ChunkSource = readerSource(reg.reader)): AsyncGenerator<Uint8Array> {
  const where = { version: m.name, file: f.path };
  const hash = newSha256();
  for await (const r of decodePieces(source, filePieces(f), where)) {
    if (r.error) throw r.error;
    hash.update(r.bytes!);
    yield r.bytes!;
  }
  if (hash.digest('hex') !== f.sha256) throw new IntegrityError(`version ${m.name}, file ${f.path}: the restored file does not match its SHA-256`, where);
}

/** A tensor's raw bytes, chunk by chunk, verified. A packed tensor needs its file entry (`file`), an unpacked one only the chunk size. */
export async function* readTensor(reader: ChunkReader, t: TensorEntry, file: SafetensorsFile | number, where: Where): AsyncGenerator<Uint8Array> {
  for await (const r of decodePieces(readerSource(reader), tensorPieces(t, file), where)) {
    if (r.error) throw r.error;
    yield r.bytes!;
  }
}

/** A one-file version as a verified byte stream (for servers and pipes); the last read throws if any check fails. */
export function streamVersion(reg: Registry, name: string): AsyncGenerator<Uint8Array> {
  return reg.readingStream(`stream ${name}`, [name], async function* () {
    const m = await reg.manifest(name);
    if (m.layout !== 'file' || m.files.length !== 1) throw new At1Error('E_UNSUPPORTED', `version ${name} is a model directory; stream its files one by one`);
    yield* readFile(reg, m, m.files[0]!);
  });
}

export interface GetOptions {
  onProgress?: ProgressFn;
}

export interface GetResult {
  name: string;
  out: string;
  bytes: number;
  /** SHA-256 of the file (one-file versions). */
  sha256?: string;
  /** Every file restored, with its SHA-256 (model directories). */
  files?: { path: string; bytes: number; sha256: string }[];
}

/**
 * Restore a version: a one-file version to the file `out`, a model
 * directory to the directory `out` (which must not exist or be empty). Both
 * are atomic: the file or directory appears only when every check passed.
 */
export async function getVersion(reg: Registry, name: string, out: string, opts: GetOptions = {}): Promise<GetResult> {
  // Under a reader lease from before the manifest is read: gc and rm then leave everything this restore needs (FORMAT.md §8b).
  return reg.reading(`get ${name}`, [name], () => getUnderLease(reg, name, out, opts));
}

async function getUnderLease(reg: Registry, name: string, out: string, opts: GetOptions): Promise<GetResult> {
  const m = await reg.manifest(name);
  if (m.layout === 'directory') return getDirectory(reg, m, out, opts);
  const f = m.files[0]!;
  // Every output check before anything is decoded; then leftovers of interrupted restores of this same target.
  const checked = await checkOutputPath(out, { kind: 'file', registryRoot: reg.location });
  await removeStaleTemps(checked.path);
  const w = await AtomicFileWriter.create(out);
  let source: ChunkSource | undefined;
  try {
    source = chunkSource(reg, reg.reader, f.size);
    for await (const part of readFile(reg, m, f, source)) {
      await w.write(part);
      opts.onProgress?.({ label: `get ${name}`, done: w.bytesWritten, total: f.size, unit: 'bytes' });
    }
    await w.commit();
  } catch (e) {
    await w.abort();
    throw e;
  } finally {
    await source?.close();
  }
  return { name, out, bytes: f.size, sha256: f.sha256 };
}

/**
 * Restore a model directory into a temporary sibling of `out` (named as
 * tempNameFor names files, so interrupted ones are found and removed the
 * same way), then rename it into place: over nothing, or over an empty
 * directory (rename(2) replaces an empty directory atomically).
 */
async function getDirectory(reg: Registry, m: VersionManifest, out: string, opts: GetOptions): Promise<GetResult> {
  const checked = await checkOutputPath(out, { kind: 'directory', registryRoot: reg.location });
  await removeStaleTemps(checked.path);
  const total = m.files.reduce((a, f) => a + f.size, 0);
  const tmp = tempNameFor(checked.path);
  await fsCall('create the temporary directory for', out, () => mkdir(tmp));
  let source: ChunkSource | undefined;
  let done = 0;
  try {
    source = chunkSource(reg, reg.reader, total);
    for (const f of m.files) {
      const target = join(tmp, ...f.path.split('/')); // paths were checked when the manifest was parsed: relative, no '..'
      const shown = join(out, ...f.path.split('/'));
      await fsCall('create the directory for', shown, () => mkdir(dirname(target), { recursive: true }));
      const w = await AtomicFileWriter.create(target, shown);
      try {
        for await (const part of readFile(reg, m, f, source)) {
          await w.write(part);
          done += part.length;
          opts.onProgress?.({ label: `get ${m.name}`, done, total, unit: 'bytes' });
        }
        await w.commit();
      } catch (e) {
        await w.abort();
        throw e;
      }
    }
    await fsCall('move the restored directory into place at', out, () => rename(tmp, checked.path));
    fsyncDir(dirname(checked.path));
  } catch (e) {
    await rm(tmp, { recursive: true, force: true }).catch(() => undefined);
    throw e;
  } finally {
    await source?.close();
  }
  return { name: m.name, out, bytes: total, files: m.files.map((f) => ({ path: f.path, bytes: f.size, sha256: f.sha256 })) };
}
