/**
 * Addressable weights: one tensor of one version, or a byte or row range
 * of it, decoded from its own chunks only (and, for deltas, the same
 * chunks of the same tensor along its reference chain) — never from the
 * rest of the model.
 *
 * A whole-tensor read checks the tensor's SHA-256; a range read decodes only
 * the chunks that overlap the range and checks each against its digest. A
 * packed tensor (docs/FORMAT.md §6) is read from the pack chunks holding its
 * bytes, each checked against its digest, and nothing else of the pack.
 */
import { At1Error } from '../errors.js';
import { decodePieces, tensorPieces } from './restore.js';
import { readerSource } from './chunk-source.js';
import { packSlices } from './packs.js';
import { dtypeBits, elementCount, tensorChunks } from './geometry.js';
import type { SafetensorsFile, TensorEntry, VersionManifest } from './manifest.js';
import type { Registry } from './registry.js';

export interface TensorLocation {
  manifest: VersionManifest;
  file: SafetensorsFile;
  tensor: TensorEntry;
}

/** Every tensor of a version, with the file it sits in. */
export function tensorsOf(m: VersionManifest): TensorLocation[] {
  return m.files.flatMap((f) => (f.kind === 'safetensors' ? f.tensors.map((tensor) => ({ manifest: m, file: f, tensor })) : []));
}

/**
 * Find a tensor. Like every read, under a reader lease; to keep gc and rm
 * from removing the version between finding a tensor and reading it, hold
 * one lease across both: `reg.reading(cmd, [version], async () => …)`.
 */
export async function findTensor(reg: Registry, version: string, name: string): Promise<TensorLocation> {
  return reg.reading(`tensor ${version}`, [version], () => findUnderLease(reg, version, name));
}

async function findUnderLease(reg: Registry, version: string, name: string): Promise<TensorLocation> {
  const m = await reg.manifest(version);
  const hit = tensorsOf(m).find((t) => t.tensor.name === name);
  if (!hit) throw new At1Error('E_NOT_FOUND', `version ${version} has no tensor ${JSON.stringify(name)}`);
  return hit;
}

/**
 * The objects a tensor's bytes are decoded from: its own chunks, or for a
 * packed tensor the pack chunks holding it (shared with the other tensors
 * packed in them). What `tensor list` should count as a tensor's objects.
 */
export function tensorObjects(loc: Pick<TensorLocation, 'file' | 'tensor'>): string[] {
  if (!loc.tensor.pack) return loc.tensor.chunks;
  return [...new Set(packSlices(loc.file, loc.tensor).map((s) => s.digest))];
}

/**
 * Bytes on disk a tensor accounts for: its own objects (shared ones included,
 * not the references they are coded against); a packed tensor counts its
 * share of each pack object, in proportion to the bytes it holds there.
 */
export function tensorStoredBytes(loc: Pick<TensorLocation, 'file' | 'tensor'>, sizes: ReadonlyMap<string, number>): number {
  if (!loc.tensor.pack) return loc.tensor.chunks.reduce((a, d) => a + (sizes.get(d) ?? 0), 0);
  return Math.round(packSlices(loc.file, loc.tensor).reduce((a, s) => a + ((sizes.get(s.digest) ?? 0) * (s.to - s.from)) / Math.max(1, s.chunkLength), 0));
}

/** A half-open byte range [start, end) within a tensor. */
export interface ByteRange {
  start: number;
  end: number;
}

/** Bytes of one row (one index of the first dimension). */
export function rowBytes(t: TensorEntry): number {
  if (t.shape.length === 0) throw new At1Error('E_INPUT', `tensor ${JSON.stringify(t.name)} is a scalar: it has no rows`);
  const perRow = elementCount(t.shape.slice(1)) * dtypeBits(t.dtype);
  if (perRow % 8 !== 0) throw new At1Error('E_INPUT', `tensor ${JSON.stringify(t.name)}: a row of ${t.dtype} is not a whole number of bytes`);
  return perRow / 8;
}

/** The byte range of rows [from, to) of the first dimension; refuses ranges outside the tensor. */
export function rowRange(t: TensorEntry, from: number, to: number): ByteRange {
  const rows = t.shape[0] ?? 0;
  const per = rowBytes(t);
  if (!Number.isSafeInteger(from) || !Number.isSafeInteger(to) || from < 0 || to < from || to > rows) {
    throw new At1Error('E_INPUT', `rows ${from}:${to} are outside tensor ${JSON.stringify(t.name)}, which has ${rows} rows (0:${rows})`);
  }
  return { start: from * per, end: to * per };
}

export function checkByteRange(t: TensorEntry, r: ByteRange): void {
  if (!Number.isSafeInteger(r.start) || !Number.isSafeInteger(r.end) || r.start < 0 || r.end < r.start || r.end > t.length) {
    throw new At1Error('E_INPUT', `bytes ${r.start}:${r.end} are outside tensor ${JSON.stringify(t.name)}, which has ${t.length} bytes`);
  }
}

/**
 * A tensor's bytes, or a range of them, as verified pieces in order. Only
 * the chunks overlapping the range are read.
 */
export function readTensorRange(reg: Registry, loc: TensorLocation, range?: ByteRange): AsyncGenerator<Uint8Array> {
  return reg.readingStream(`tensor ${loc.manifest.name}`, [loc.manifest.name], () => readRangeUnderLease(reg, loc, range));
}

async function* readRangeUnderLease(reg: Registry, loc: TensorLocation, range?: ByteRange): AsyncGenerator<Uint8Array> {
  const { tensor: t, file: f, manifest: m } = loc;
  const where = { version: m.name, file: f.path };
  if (range === undefined) {
    for await (const r of decodePieces(readerSource(reg.reader), tensorPieces(t, f), where)) {
      if (r.error) throw r.error;
      yield r.bytes!;
    }
    return;
  }
  checkByteRange(t, range);
  if (t.pack) {
    for (const s of packSlices(f, t, range.start, range.end)) {
      let bytes: Uint8Array;
      try {
        bytes = (await reg.reader.read(s.digest, s.chunkLength)).bytes; // checked against its digest
      } catch (e) {
        throw new At1Error(e instanceof At1Error ? e.code : 'E_IO', `version ${m.name}, tensor ${JSON.stringify(t.name)}, pack chunk ${s.index}: ${(e as Error).message}`);
      }
      yield bytes.subarray(s.from, s.to);
    }
    return;
  }
  for (const span of tensorChunks(elementCount(t.shape), dtypeBits(t.dtype), f.chunkElements)) {
    const from = Math.max(range.start, span.offset);
    const to = Math.min(range.end, span.offset + span.length);
    if (from >= to) continue;
    let bytes: Uint8Array;
    try {
      bytes = (await reg.reader.read(t.chunks[span.index]!, span.length)).bytes; // each chunk checked against its digest
    } catch (e) {
      throw new At1Error(e instanceof At1Error ? e.code : 'E_IO', `version ${m.name}, tensor ${JSON.stringify(t.name)}, chunk ${span.index}: ${(e as Error).message}`);
    }
    yield bytes.subarray(from - span.offset, to - span.offset);
  }
}

export async function readTensorBytes(reg: Registry, loc: TensorLocation, range?: ByteRange): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const p of readTensorRange(reg, loc, range)) parts.push(p);
  return parts.length === 1 ? parts[0]! : new Uint8Array(Buffer.concat(parts));
}
