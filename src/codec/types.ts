/**
 * The codec contract. A codec turns one chunk of raw tensor bytes into a
 * payload and back, optionally given reference chunks (the same element range
 * of a relative's tensor). Codecs are pure functions of their inputs: the
 * same bytes, refs and parameters give the same payload on every machine, and
 * decode(encode(x)) === x byte for byte for every input, including NaN, Inf,
 * subnormals, odd lengths and empty chunks.
 *
 * The registry records each object's codec id in the object header, so new
 * codecs can be added without breaking old registries: ids are never reused.
 */

/** A reference chunk: the same element range of a relative's tensor. */
export interface RefChunk {
  /** safetensors dtype of the reference tensor (may differ from the chunk's: fp32 <-> bf16 <-> fp16). */
  readonly dtype: string;
  readonly bytes: Uint8Array;
}

export interface ChunkContext {
  /** safetensors dtype of the chunk being coded. */
  readonly dtype: string;
  /** Reference chunks, element-aligned with the chunk (same element count); empty for standalone coding. */
  readonly refs: readonly RefChunk[];
}

export type Level = 'fast' | 'max';

export interface Codec {
  /** Stable numeric id written in every object header; never reused. */
  readonly id: number;
  readonly name: string;
  /** How many reference chunks the codec consumes (0 = standalone). */
  readonly refCount: number;
  /** Whether the codec can code this chunk with these refs at all (dtype pairing, lengths). */
  accepts(rawLength: number, ctx: ChunkContext): boolean;
  encode(raw: Uint8Array, ctx: ChunkContext, level: Level): Uint8Array;
  /**
   * Decode into `out`, whose length is the chunk's raw length: a caller
   * (a tensor reader filling its destination) saves an allocation and a
   * copy. Must throw (never leave short or garbage data silently) when the
   * payload is malformed; must not allocate more than the raw length plus
   * small constants. `out` may sit at any offset: a codec that needs an
   * aligned output decodes into scratch and copies once (decode-into.ts).
   */
  decodeInto(payload: Uint8Array, ctx: ChunkContext, out: Uint8Array): void;
  /** decodeInto a freshly allocated array of `rawLength` bytes (decode-into.ts `allocating`). */
  decode(payload: Uint8Array, rawLength: number, ctx: ChunkContext): Uint8Array;
}
