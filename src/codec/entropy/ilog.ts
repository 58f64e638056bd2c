/**
 * Integer-only fixed-point log2, used by encoders to estimate code lengths
 * (context merging, frequency quantisation). Encoder decisions change the
 * payload, and payloads must be identical on every machine, so these
 * estimates avoid Math.log2 (whose last-ulp behaviour is not specified).
 *
 * LOG_ONE = 65536 is 1 bit. The table holds floor(log2(1 + j/1024) * 65536)
 * for j = 0..1024, computed by repeated exact squaring in doubles (all
 * intermediate products are < 2^53, so every step is an exact integer op).
 */
export const LOG_ONE = 65536;

const LT = new Int32Array(1025);
{
  const ONE = 33554432; // 2^25
  for (let j = 0; j <= 1024; j++) {
    let v = (1024 + j) * 32768; // in [2^25, 2^26]: fixed point with 2^25 = 1.0
    let r = 0;
    for (let k = 1; k <= 16; k++) {
      v = Math.floor((v * v) / ONE); // v*v <= 2^52: exact
      if (v >= 2 * ONE) {
        v = Math.floor(v / 2);
        r += 1 << (16 - k);
      }
    }
    LT[j] = j === 1024 ? LOG_ONE : r;
  }
}

/** floor-ish log2(x) * 65536 for integer x >= 1 (x < 2^31); 11 significant bits of x are used. */
export function ilog2fp(x: number): number {
  const bl = 31 - Math.clz32(x);
  const j = bl >= 10 ? (x >>> (bl - 10)) & 1023 : (x << (10 - bl)) & 1023;
  return bl * LOG_ONE + LT[j]!;
}

/** Empirical code length, in 1/65536 bits, of a histogram slice h[off..off+len). */
export function entropyCost(h: ArrayLike<number>, off: number, len: number): number {
  let n = 0;
  for (let s = 0; s < len; s++) n += h[off + s]!;
  if (n === 0) return 0;
  const ln = ilog2fp(n);
  let c = 0;
  for (let s = 0; s < len; s++) {
    const k = h[off + s]!;
    if (k > 0) c += k * (ln - ilog2fp(k));
  }
  return c;
}
