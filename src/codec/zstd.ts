/**
 * zstd through zstd-napi's low-level binding (libzstd 1.5.7), with reusable
 * contexts and caller-sized output buffers. Decompression writes into a
 * buffer of the size the object header declares, so a hostile frame cannot
 * make at1 allocate more than that: libzstd refuses to overrun `dst`.
 */
import { createRequire } from 'node:module';
import { At1Error } from '../errors.js';

interface Binding {
  CCtx: new () => { compress(dst: Uint8Array, src: Uint8Array, level: number): number };
  DCtx: new () => { decompress(dst: Uint8Array, src: Uint8Array): number };
  compressBound(n: number): number;
}

const binding = createRequire(import.meta.url)('zstd-napi/binding') as Binding;
let cctx: InstanceType<Binding['CCtx']> | undefined;
let dctx: InstanceType<Binding['DCtx']> | undefined;

export function zstdCompress(src: Uint8Array, level: number): Uint8Array {
  cctx ??= new binding.CCtx();
  const dst = new Uint8Array(binding.compressBound(src.length));
  const n = cctx.compress(dst, src, level);
  return dst.subarray(0, n);
}

/** Decompress exactly dst.length bytes into dst; anything else is a corrupt payload. */
export function zstdDecompressInto(dst: Uint8Array, src: Uint8Array, what: string): void {
  dctx ??= new binding.DCtx();
  let n: number;
  try {
    n = dctx.decompress(dst, src);
  } catch (e) {
    throw new At1Error('E_CORRUPT', `${what}: zstd stream is damaged (${(e as Error).message})`, { cause: e });
  }
  if (n !== dst.length) throw new At1Error('E_CORRUPT', `${what}: zstd stream holds ${n} bytes, expected ${dst.length}`);
}
