/**
 * Byte grouping ("byte planes"): plane k holds byte k of every element.
 * In float weights the byte holding sign and exponent is highly skewed and
 * compresses; mantissa bytes are near-random. Splitting them lets zstd (or
 * any coder) model each on its own. Width 1 is the identity.
 *
 * Widths 2 and 4 go through 16/32-bit views (little-endian, as safetensors
 * data is): one load or store per element instead of one per byte, which
 * made this the hottest loop of a restore before.
 */
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function aligned(b: Uint8Array, width: number): boolean {
  return LITTLE_ENDIAN && b.byteOffset % width === 0;
}

export function splitPlanes(src: Uint8Array, width: number): Uint8Array[] {
  const n = Math.floor(src.length / width);
  const planes = Array.from({ length: width }, () => new Uint8Array(n));
  if (width === 2 && aligned(src, 2)) {
    const s = new Uint16Array(src.buffer, src.byteOffset, n);
    const [lo, hi] = planes as [Uint8Array, Uint8Array];
    for (let i = 0; i < n; i++) {
      const v = s[i]!;
      lo[i] = v;
      hi[i] = v >>> 8;
    }
    return planes;
  }
  if (width === 4 && aligned(src, 4)) {
    const s = new Uint32Array(src.buffer, src.byteOffset, n);
    const [p0, p1, p2, p3] = planes as [Uint8Array, Uint8Array, Uint8Array, Uint8Array];
    for (let i = 0; i < n; i++) {
      const v = s[i]!;
      p0[i] = v;
      p1[i] = v >>> 8;
      p2[i] = v >>> 16;
      p3[i] = v >>> 24;
    }
    return planes;
  }
  for (let k = 0; k < width; k++) {
    const plane = planes[k]!;
    for (let i = 0, j = k; i < n; i++, j += width) plane[i] = src[j]!;
  }
  return planes;
}

export function joinPlanes(planes: readonly Uint8Array[], out: Uint8Array): void {
  const width = planes.length;
  const n = planes[0]?.length ?? 0;
  if (width === 2 && aligned(out, 2)) {
    const o = new Uint16Array(out.buffer, out.byteOffset, n);
    const [lo, hi] = planes as [Uint8Array, Uint8Array];
    for (let i = 0; i < n; i++) o[i] = lo[i]! | (hi[i]! << 8);
    return;
  }
  if (width === 4 && aligned(out, 4)) {
    const o = new Uint32Array(out.buffer, out.byteOffset, n);
    const [p0, p1, p2, p3] = planes as [Uint8Array, Uint8Array, Uint8Array, Uint8Array];
    for (let i = 0; i < n; i++) o[i] = (p0[i]! | (p1[i]! << 8) | (p2[i]! << 16) | (p3[i]! << 24)) >>> 0;
    return;
  }
  for (let k = 0; k < width; k++) {
    const plane = planes[k]!;
    for (let i = 0, j = k; i < plane.length; i++, j += width) out[j] = plane[i]!;
  }
}

/** Element width used for grouping a chunk: the dtype's byte width when the length allows it, else 1. */
export function groupingWidth(dtypeBytes: number | undefined, length: number): number {
  return dtypeBytes !== undefined && dtypeBytes > 1 && length % dtypeBytes === 0 ? dtypeBytes : 1;
}
