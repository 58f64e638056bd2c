/**
 * Where chunks fall. A tensor is cut every `chunkElements` elements (not
 * bytes), so chunk i of an f32 tensor and chunk i of its bf16 relative cover
 * the same elements: cross-dtype deltas line up chunk for chunk.
 */
import { dtypeBits } from '../format/dtype.js';

export interface ChunkSpan {
  index: number;
  /** Byte offset within the tensor. */
  offset: number;
  length: number;
}

export function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

// A dtype fact, kept with the dtype table; re-exported for the registry files that import it from here.
export { dtypeBits };

/** The chunks of a tensor of `elements` elements of `bits` bits each. */
export function tensorChunks(elements: number, bits: number, chunkElements: number): ChunkSpan[] {
  const out: ChunkSpan[] = [];
  for (let i = 0, e = 0; e < elements; i++, e += chunkElements) {
    const n = Math.min(chunkElements, elements - e);
    out.push({ index: i, offset: (e * bits) / 8, length: (n * bits) / 8 });
  }
  return out;
}

/** The chunks of a blob of `size` bytes. */
export function blobChunks(size: number, chunkBytes: number): ChunkSpan[] {
  const out: ChunkSpan[] = [];
  for (let i = 0, o = 0; o < size; i++, o += chunkBytes) out.push({ index: i, offset: o, length: Math.min(chunkBytes, size - o) });
  return out;
}
