/**
 * Packs (docs/FORMAT.md §6): a file's small tensors of one dtype, their bytes
 * concatenated in data order, stored as one tensor-like run of chunks. A
 * file of 5,000 one-element tensors is then a few objects instead of 5,000
 * (each a file of at least one 4 KiB disk block, and one request on object
 * storage), and its pack chunks are coded with the float codecs and against
 * the parent's pack like any tensor chunk.
 *
 * This file holds the geometry (which pack chunks cover which bytes of a
 * packed tensor) and the writer's policy (which tensors are packed).
 */
import { At1Error } from '../errors.js';
import { dtypeBits, tensorChunks, type ChunkSpan } from './geometry.js';
import type { PackRef, SafetensorsFile, TensorEntry } from './manifest.js';
import { packOf } from './manifest.js';

/**
 * Tensors of at most this many bytes are packed (the registry's
 * settings.packBytes overrides; 0 disables packing): 4096, one disk block. Measured:
 *
 * - disk: 1 MiB of real bf16 weights cut into equal tensors, unpacked vs
 *   packed, bytes allocated on disk: 512 B tensors 9.96 MB vs 1.12 MB;
 *   2 KiB 3.16 vs 0.83; 4 KiB 1.78 vs 0.77; 8 KiB 1.52 vs 0.75; 16 KiB
 *   1.07 vs 0.74. Below 4 KiB each object wastes most of a block; above,
 *   the gain shrinks to the last block's slack.
 * - the fixture family (`npm run bench -- --only family`; its only tensors
 *   under 16 KiB are the five norm vectors per version): stored bytes
 *   3,556,588 without packs, 3,552,728 with 4096 (16384 gives the same:
 *   the 16 KiB projections stay unpacked because their f32 parents are
 *   larger), 3,554,792 with 32768, where packing the k/v projections costs
 *   the LoRA version its dedup of the unchanged ones (21.5 KB -> 25.8 KB).
 *
 * So larger thresholds save a little disk and can cost ratio on partial
 * fine-tunes; 4096 takes the whole gain where it is large and none of the loss.
 */
export const DEFAULT_PACK_MAX_BYTES = 4096;

/** A dtype's small tensors are packed only when there are at least this many: one alone gains nothing and would need a version 2 manifest. */
export const PACK_MIN_TENSORS = 2;

export function packElements(pack: PackRef): number {
  return (pack.length * 8) / dtypeBits(pack.dtype);
}

/** A pack's chunks, cut like a tensor's: chunk i covers elements [i·C, min((i+1)·C, n)). */
export function packChunks(pack: PackRef, chunkElements: number): ChunkSpan[] {
  return tensorChunks(packElements(pack), dtypeBits(pack.dtype), chunkElements);
}

/** Part of one pack chunk: the chunk (digest, raw length) and the bytes [from, to) of it wanted. */
export interface PackSlice {
  index: number;
  digest: string;
  chunkLength: number;
  from: number;
  to: number;
}

/**
 * The pack-chunk slices holding bytes [start, end) of packed tensor `t`
 * (default: all of it), in order. Only these chunks need decoding.
 */
export function packSlices(f: SafetensorsFile, t: TensorEntry, start = 0, end = t.length): PackSlice[] {
  const at = packOf(f, t);
  if (!at) throw new At1Error('E_INPUT', `tensor ${JSON.stringify(t.name)} is not packed`);
  const bits = dtypeBits(at.pack.dtype);
  const chunkBytes = (f.chunkElements * bits) / 8; // every pack chunk but the last holds exactly this many bytes
  const lo = at.offset + start;
  const hi = at.offset + end;
  const out: PackSlice[] = [];
  if (lo >= hi) return out;
  for (let i = Math.floor(lo / chunkBytes); i * chunkBytes < hi; i++) {
    const base = i * chunkBytes;
    const digest = at.pack.chunks[i];
    if (digest === undefined) throw new At1Error('E_CORRUPT', `tensor ${JSON.stringify(t.name)} of ${f.path} lies beyond the end of its pack`);
    out.push({ index: i, digest, chunkLength: Math.min(chunkBytes, at.pack.length - base), from: Math.max(lo, base) - base, to: Math.min(hi, base + chunkBytes) - base });
  }
  return out;
}
