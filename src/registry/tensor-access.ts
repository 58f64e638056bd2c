/**
 * Addressable weights: one tensor of one version, or a byte or row range
 * of it, decoded from its own chunks only (and, for deltas, the same
 * chunks of the same tensor along its reference chain) — never from the
 * rest of the model.
 *
 * This file finds tensors, says what they cost and which rows are which
 * bytes; reading is TensorReader's (tensor-reader.ts: what is checked,
 * whole tensor, range or packed), wrapped here in a reader lease.
 */
import { At1Error } from '../errors.js';
import { dtypeBits } from '../format/dtype.js';
import { readerSource } from './chunk-source.js';
import { packSlices } from './packs.js';
import { elementCount } from './geometry.js';
import type { TensorEntry, VersionManifest } from './manifest.js';
import type { Registry } from './registry.js';
import { checkByteRange, TensorReader, type ByteRange, type ReadOptions, type TensorLocation } from './tensor-reader.js';

export { checkByteRange, type ByteRange, type TensorLocation };

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

/**
 * A tensor's bytes, or a range of them, as pieces in order, under a reader
 * lease (TensorReader.stream). Only the chunks overlapping the range are read.
 */
export function readTensorRange(reg: Registry, loc: TensorLocation, range?: ByteRange, opts: Omit<ReadOptions, 'range'> = {}): AsyncGenerator<Uint8Array> {
  return reg.readingStream(`tensor ${loc.manifest.name}`, [loc.manifest.name], () => new TensorReader(readerSource(reg.reader)).stream(loc, { ...opts, range }));
}

/** A tensor's bytes, or a range of them, checked before they are returned (TensorReader.readInto), under a reader lease. */
export async function readTensorBytes(reg: Registry, loc: TensorLocation, range?: ByteRange, opts: Omit<ReadOptions, 'range'> = {}): Promise<Uint8Array> {
  const r = range ?? { start: 0, end: loc.tensor.length };
  checkByteRange(loc.tensor, r);
  const dest = new Uint8Array(r.end - r.start);
  await reg.reading(`tensor ${loc.manifest.name}`, [loc.manifest.name], () => new TensorReader(readerSource(reg.reader)).readInto(loc, dest, { ...opts, range }));
  return dest;
}
