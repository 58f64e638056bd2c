/**
 * The shared decode pipeline of restore, verify and tensor reads. A file is
 * planned as a list of pieces (header chunks, then every tensor's chunks in
 * data order; a packed tensor's pieces are slices of the pack chunks
 * holding it); pieces are decoded through a ChunkSource (in-process or on
 * worker threads, several in flight), into a ring of buffers allocated once
 * when the consumer allows it, and come back in order. Each tensor's and
 * blob's SHA-256 is checked when its last chunk has arrived, and the
 * header's tensor table against the manifest's: every byte handed on is
 * covered by a SHA-256 that was checked, at the place it had.
 */
import { At1Error, IntegrityError } from '../errors.js';
import { dtypeBits } from '../format/dtype.js';
import { parseSafetensorsHeader, type SafetensorsHeader } from '../format/safetensors.js';
import { newSha256 } from '../util/hash.js';
import { parallelMap } from '../util/parallel-map.js';
import type { BlobRef, FileEntry, SafetensorsFile, TensorEntry, VersionManifest } from './manifest.js';
import { packSlices } from './packs.js';
import { blobChunks, elementCount, tensorChunks } from './geometry.js';
import type { Registry } from './registry.js';
import { readerSource, type ChunkSource } from './chunk-source.js';
import { SlotRing, type Slot } from './slot-ring.js';

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
  /**
   * With reuseBuffers: keep `bytes` past the next result, until `until`
   * settles (a write in flight that reads them). At most the `lentSlots`
   * asked for are worth lending at once; more only make the decodes wait.
   */
  lend?(until: Promise<unknown>): void;
}

export interface DecodeOptions {
  /**
   * Decode into a ring of buffers allocated once (slot-ring.ts; shared
   * memory when the source decodes on workers) instead of a fresh buffer per
   * chunk. The bytes of a yielded result are then valid only until the
   * consumer asks for the next result: their slot is reused after that. For
   * consumers that write or hash each result before going on (restore,
   * verify), never for ones that keep results.
   */
  reuseBuffers?: boolean;
  /** With reuseBuffers: how many results' bytes the consumer lends on at once (PieceResult.lend), e.g. writes in flight. */
  lentSlots?: number;
}

/** Slots beyond the reads in flight and those lent: the one whose bytes the consumer holds. */
const HELD_SLOTS = 1;

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
export async function* decodePieces(source: ChunkSource, pieceList: Iterable<Piece>, where: Where, opts: DecodeOptions = {}): AsyncGenerator<PieceResult> {
  const pieces = Array.isArray(pieceList) ? (pieceList as Piece[]) : [...pieceList];
  let hash = newSha256();
  let broken = false;
  let group: Piece[] = [];
  let slotBytes = 0;
  for (const p of pieces) if (!p.slice && p.length > slotBytes) slotBytes = p.length;
  const ring = opts.reuseBuffers && slotBytes > 0 ? new SlotRing(source.window + HELD_SLOTS + (opts.lentSlots ?? 0), slotBytes, source.sharedOutput === true) : undefined;
  /**
   * Per pack, the chunk its latest slice came from: the next slices of it
   * reuse the same read. A file's packs are each read front to back, so one
   * chunk per pack is kept (tensors of two dtypes may alternate in a file).
   */
  const shared = new Map<number, { digest: string; bytes: Promise<Uint8Array> }>();
  const results = parallelMap(
    pieces,
    async (p): Promise<{ p: Piece; bytes?: Uint8Array; e?: unknown; slot?: Slot }> => {
      let slot: Slot | undefined;
      try {
        if (p.slice) {
          let chunk = shared.get(p.slice.pack);
          if (chunk?.digest !== p.digest) shared.set(p.slice.pack, (chunk = { digest: p.digest, bytes: source.read(p.digest, p.length) }));
          return { p, bytes: (await chunk.bytes).subarray(p.slice.from, p.slice.to) };
        }
        slot = ring ? await ring.acquire() : undefined;
        return { p, bytes: await source.readUnverified(p.digest, p.length, slot?.view(p.length)), slot };
      } catch (e) {
        // The read has settled, so nothing writes into the slot any more: the pipeline releases it with the result.
        return { p, e, slot };
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
  // Decoded into shared memory: the tensors' digests are computed on the source's hashing worker, not here.
  const hasher = ring?.shared ? source.hasher : undefined;
  let stream = -1;
  for await (const { p, bytes, e, slot } of results) {
    let lentUntil: Promise<unknown> | undefined;
    let hashed: Promise<unknown> | undefined;
    try {
      if (p.first) {
        if (hasher && stream >= 0) void hasher.digest(stream).catch(() => undefined); // ends a failed tensor's stream
        hash = newSha256();
        // A packed tensor (all its pieces are slices of pack chunks, small and not in the ring) is hashed here: a round trip per slice would cost more.
        stream = hasher && !p.slice ? hasher.open() : -1;
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
      let digest: string | undefined;
      if (hasher && stream >= 0) {
        // A cache hit is copied into the slot too, so the stream's bytes are always shared memory; anything else is copied there.
        if (bytes.buffer instanceof SharedArrayBuffer) hashed = hasher.update(stream, bytes);
        else await hasher.update(stream, copyShared(bytes));
        if (p.last) {
          digest = await hasher.digest(stream);
          stream = -1;
        }
      } else {
        hash.update(bytes);
        if (p.last) digest = hash.digest('hex');
      }
      if (p.last && digest !== (p.tensor ? p.tensor.sha256 : p.blob!.sha256)) {
        broken = true;
        yield { piece: p, error: failure(p, await diagnose(group)) };
        continue;
      }
      yield slot ? { piece: p, bytes, lend: (until) => void (lentUntil = until) } : { piece: p, bytes };
    } finally {
      // Back in the ring only now: the consumer has finished with the bytes (it asked for the next result, or stopped), and whatever it lent them to has too.
      if (slot && (lentUntil || hashed)) {
        const back = (): void => ring!.release(slot);
        Promise.allSettled([lentUntil, hashed]).then(back, back);
      } else if (slot) ring!.release(slot);
    }
  }
}

/**
 * The placement half of a file's check (docs/FORMAT.md §9): the header has
 * passed its SHA-256, and it states where every tensor lies; the manifest's
 * tensor table (names, dtypes, shapes, offsets and lengths, in data order)
 * must say exactly the same, so each tensor's checked bytes land where the
 * original file had them. With every tensor's SHA-256 checked as well, the
 * restored file is the original one byte for byte, and hashing it whole
 * again would check nothing more.
 */
export function checkPlacement(f: SafetensorsFile, headerBytes: Uint8Array, where: Where): void {
  const fail = (why: string): never => {
    throw new IntegrityError(`version ${where.version}, file ${where.file}: the manifest does not match the file's own header: ${why}`, where);
  };
  let h: SafetensorsHeader;
  try {
    h = parseSafetensorsHeader(headerBytes, f.size, f.path);
  } catch (e) {
    return fail(e instanceof Error ? e.message : String(e));
  }
  if (h.dataStart !== f.header.size) fail(`the header is ${h.dataStart} bytes long, the manifest records ${f.header.size}`);
  if (h.tensors.length !== f.tensors.length) fail(`the header lists ${h.tensors.length} tensors, the manifest ${f.tensors.length}`);
  for (let i = 0; i < h.tensors.length; i++) {
    const a = h.tensors[i]!;
    const b = f.tensors[i]!;
    const same = a.name === b.name && a.dtype === b.dtype && a.begin === b.offset && a.end - a.begin === b.length && a.shape.length === b.shape.length && a.shape.every((d, k) => d === b.shape[k]);
    if (!same) fail(`tensor ${i} in data order is ${JSON.stringify(a.name)} (${a.dtype} ${JSON.stringify(a.shape)} at ${a.begin}) in the header, ${JSON.stringify(b.name)} (${b.dtype} ${JSON.stringify(b.shape)} at ${b.offset}) in the manifest`);
  }
}

/** A copy of `b` in shared memory, for the hashing worker. */
function copyShared(b: Uint8Array): Uint8Array {
  const out = new Uint8Array(new SharedArrayBuffer(b.length));
  out.set(b);
  return out;
}

/** The parts joined (the one part itself when there is one). */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * One file of a version, in file order, fully verified by the time the
 * generator returns: every byte by the SHA-256 of its tensor or blob, and
 * for a safetensors file the place of every tensor by the checked header
 * (checkPlacement) before any tensor byte is yielded. A blob file is one
 * blob whose SHA-256 is the file's own.
 */
export async function* readFile(reg: Registry, m: VersionManifest, f: FileEntry, source: ChunkSource = readerSource(reg.reader)): AsyncGenerator<Uint8Array> {
  for await (const r of readFileResults(m, f, source)) yield r.bytes!;
}

/** readFile's results, with its options: a restore decodes into a ring and lends each result's bytes to its write (PieceResult.lend). */
export async function* readFileResults(m: VersionManifest, f: FileEntry, source: ChunkSource, opts: DecodeOptions = {}): AsyncGenerator<PieceResult & { bytes: Uint8Array }> {
  const where = { version: m.name, file: f.path };
  const header: Uint8Array[] | undefined = f.kind === 'safetensors' ? [] : undefined;
  // The manifest's own claim for the whole file is checked too: without it a manifest whose file digest
  // was altered restored correct bytes under a wrong reported SHA-256 (the manifest-e2e fuzz target found it).
  const fileHash = newSha256();
  for await (const r of decodePieces(source, filePieces(f), where, opts)) {
    if (r.error) throw r.error;
    if (header && f.kind === 'safetensors' && r.piece.blob === f.header) {
      header.push(r.bytes!.slice()); // a copy: the slot is reused once this piece is written
      if (r.piece.last) checkPlacement(f, concatBytes(header), where);
    }
    fileHash.update(r.bytes!); // before the yield: the slot is still this piece's
    yield r as PieceResult & { bytes: Uint8Array };
  }
  if (fileHash.digest('hex') !== f.sha256) throw new IntegrityError(`version ${m.name}, file ${f.path}: the restored file does not match its SHA-256`, where);
}
