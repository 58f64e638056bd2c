/**
 * The shared decode pipeline of restore, verify and tensor reads. A file is
 * planned as a list of pieces (header chunks, then every tensor's chunks in
 * data order; a packed tensor's pieces are slices of the pack chunks
 * holding it); pieces are decoded through a ChunkSource (in-process or on
 * worker threads, several in flight) and come back in order. Each tensor's
 * SHA-256 is checked when its last chunk has arrived and the whole file's
 * at the end: every byte handed on is covered by a SHA-256 that was checked.
 */
import { At1Error, IntegrityError } from '../errors.js';
import { dtypeBits } from '../format/dtype.js';
import { newSha256 } from '../util/hash.js';
import { parallelMap } from '../util/parallel-map.js';
import type { BlobRef, FileEntry, SafetensorsFile, TensorEntry, VersionManifest } from './manifest.js';
import { packSlices } from './packs.js';
import { blobChunks, elementCount, tensorChunks } from './geometry.js';
import type { Registry } from './registry.js';
import { readerSource, type ChunkSource } from './chunk-source.js';

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
  const results = parallelMap(
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
