/**
 * Byte grouping ("byte planes"): plane k holds byte k of every element.
 * In float weights the byte holding sign and exponent is highly skewed and
 * compresses; mantissa bytes are near-random. Splitting them lets zstd (or
 * any coder) model each on its own. Width 1 is the identity.
 */
export function splitPlanes(src: Uint8Array, width: number): Uint8Array[] {
  const n = Math.floor(src.length / width);
  const planes = Array.from({ length: width }, () => new Uint8Array(n));
  for (let k = 0; k < width; k++) {
    const plane = planes[k]!;
    for (let i = 0, j = k; i < n; i++, j += width) plane[i] = src[j]!;
  }
  return planes;
}

export function joinPlanes(planes: readonly Uint8Array[], out: Uint8Array): void {
  const width = planes.length;
  for (let k = 0; k < width; k++) {
    const plane = planes[k]!;
    for (let i = 0, j = k; i < plane.length; i++, j += width) out[j] = plane[i]!;
  }
}

/** Element width used for grouping a chunk: the dtype's byte width when the length allows it, else 1. */
export function groupingWidth(dtypeBytes: number | undefined, length: number): number {
  return dtypeBytes !== undefined && dtypeBytes > 1 && length % dtypeBytes === 0 ? dtypeBytes : 1;
}
