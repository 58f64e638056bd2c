/**
 * Helpers for Codec.decodeInto. Codecs whose hot loops go through 16- or
 * 32-bit views need an output aligned for them; a caller's buffer may not
 * be (a tensor slice at an odd offset), so such codecs decode into an
 * aligned scratch array and copy once. `allocating` gives every codec its
 * `decode` as allocate + decodeInto, so there is one decoder per codec.
 */
import type { ChunkContext, Codec } from './types.js';

/** Run `fill` on `out` itself when its offset is a multiple of `align`, else on an aligned buffer that is then copied into `out`. */
export function intoAligned(out: Uint8Array, align: number, fill: (o: Uint8Array) => void): void {
  if (out.byteOffset % align === 0) {
    fill(out);
    return;
  }
  const tmp = new Uint8Array(out.length);
  fill(tmp);
  out.set(tmp);
}

/** `decode` for a codec: a fresh output of `rawLength` bytes filled by its decodeInto. */
export function allocating(decodeInto: Codec['decodeInto']): Codec['decode'] {
  return (payload: Uint8Array, rawLength: number, ctx: ChunkContext): Uint8Array => {
    const out = new Uint8Array(rawLength);
    decodeInto(payload, ctx, out);
    return out;
  };
}
