/**
 * exp, log, sin, cos and pow in plain IEEE-754 double arithmetic, the same
 * bits on every machine and every JavaScript engine.
 *
 * Why not Math.exp and friends: ECMAScript leaves their precision to the
 * implementation ("implementation-approximated"), so two engines, or two
 * versions of one, may differ in the last bit. The runtime's logits feed the
 * LM codec's arithmetic coder, whose encoder and decoder must compute the
 * same probabilities bit for bit, possibly years apart on other machines.
 * These functions use only +, −, ×, ÷ (each correctly rounded by IEEE-754;
 * JavaScript never contracts them into fused multiply-adds), Math.floor and
 * exact bit manipulation of the exponent field, so their results are fixed.
 *
 * The algorithms and constants are those of fdlibm (Sun Microsystems, 1993,
 * freely redistributable), which also underlies V8's own ieee754 routines:
 * results are within 1 ulp of the true value, and almost always equal to
 * what Math.* gives on V8 today.
 */

const view = new DataView(new ArrayBuffer(8));

function highWord(x: number): number {
  view.setFloat64(0, x);
  return view.getInt32(0);
}

function withHighWord(x: number, hi: number): number {
  view.setFloat64(0, x);
  view.setInt32(0, hi);
  return view.getFloat64(0);
}

/** 2^k for k in [−1022, 1023], built once from the exponent bits (exact). */
const POW2 = (() => {
  const t = new Float64Array(2046);
  for (let k = -1022; k <= 1023; k++) {
    view.setInt32(0, (k + 1023) << 20);
    view.setInt32(4, 0);
    t[k + 1022] = view.getFloat64(0);
  }
  return t;
})();

/** 2^k exactly, for an integer k in [−1022, 1023]. */
function pow2(k: number): number {
  return POW2[k + 1022]!;
}

// ---------------------------------------------------------------- exp

const LN2_HI = 6.93147180369123816490e-1; // ln 2, high 32 bits (trailing zeros: k·LN2_HI is exact)
const LN2_LO = 1.90821492927058770002e-10; // ln 2 − LN2_HI
const INV_LN2 = 1.44269504088896338700;
const P1 = 1.66666666666666019037e-1;
const P2 = -2.77777777770155933842e-3;
const P3 = 6.61375632143793436117e-5;
const P4 = -1.65339022054652515390e-6;
const P5 = 4.13813679705723846039e-8;
const EXP_OVER = 7.09782712893383973096e2;
const EXP_UNDER = -7.45133219101941108420e2;

/** e^x, deterministic (fdlibm's __ieee754_exp). */
export function detExp(x: number): number {
  if (x !== x) return NaN;
  if (x > EXP_OVER) return Infinity;
  if (x < EXP_UNDER) return 0;
  const ax = x < 0 ? -x : x;
  if (ax < 3.725290298461914e-9) return 1 + x; // |x| < 2^−28
  let hi: number;
  let lo: number;
  let k: number;
  if (ax > 0.34657359027997264) {
    // |x| > ln2/2: x = k·ln2 + r, |r| ≤ ln2/2
    k = ax < 1.0397207708399179 ? (x < 0 ? -1 : 1) : Math.trunc(INV_LN2 * x + (x < 0 ? -0.5 : 0.5));
    hi = x - k * LN2_HI;
    lo = k * LN2_LO;
  } else {
    k = 0;
    hi = x;
    lo = 0;
  }
  const r = hi - lo;
  const t = r * r;
  const c = r - t * (P1 + t * (P2 + t * (P3 + t * (P4 + t * P5))));
  if (k === 0) return 1 - ((r * c) / (c - 2) - r);
  const y = 1 - ((lo - (r * c) / (2 - c)) - hi);
  if (k >= -1021) return k === 1024 ? y * 2 * pow2(1023) : y * pow2(k);
  return y * pow2(k + 1000) * pow2(-1000); // subnormal result
}

// ---------------------------------------------------------------- log

const LG1 = 6.666666666666735130e-1;
const LG2 = 3.999999999940941908e-1;
const LG3 = 2.857142874366239149e-1;
const LG4 = 2.222219843214978396e-1;
const LG5 = 1.818357216161805012e-1;
const LG6 = 1.531383769920937332e-1;
const LG7 = 1.479819860511658591e-1;
const TWO54 = 1.80143985094819840000e16;

/** ln x, deterministic (fdlibm's __ieee754_log). */
export function detLog(x: number): number {
  if (x !== x || x < 0) return NaN;
  if (x === 0) return -Infinity;
  if (x === Infinity) return Infinity;
  let k = 0;
  let hx = highWord(x);
  if (hx < 0x00100000) {
    // subnormal: scale up
    k -= 54;
    x *= TWO54;
    hx = highWord(x);
  }
  k += (hx >> 20) - 1023;
  hx &= 0x000fffff;
  const i = (hx + 0x95f64) & 0x100000;
  x = withHighWord(x, hx | (i ^ 0x3ff00000)); // x in [√2/2, √2)
  k += i >> 20;
  const f = x - 1;
  const s = f / (2 + f);
  const z = s * s;
  const w = z * z;
  const t1 = w * (LG2 + w * (LG4 + w * LG6));
  const t2 = z * (LG1 + w * (LG3 + w * (LG5 + w * LG7)));
  const R = t2 + t1;
  const hfsq = 0.5 * f * f;
  return k * LN2_HI - ((hfsq - (s * (hfsq + R) + k * LN2_LO)) - f);
}

/** base^e for base > 0, as e^(e·ln base): within a few ulp, deterministic. */
export function detPow(base: number, e: number): number {
  if (e === 0) return 1;
  return detExp(e * detLog(base));
}

// ---------------------------------------------------------------- sin, cos

const S1 = -1.66666666666666324348e-1;
const S2 = 8.33333333332248946124e-3;
const S3 = -1.98412698298579493134e-4;
const S4 = 2.75573137070700676789e-6;
const S5 = -2.50507602534068634195e-8;
const S6 = 1.58969099521155010221e-10;
const C1 = 4.16666666666666019037e-2;
const C2 = -1.38888888888741095749e-3;
const C3 = 2.48015872894767294178e-5;
const C4 = -2.75573143513906633035e-7;
const C5 = 2.08757232129817482790e-9;
const C6 = -1.13596475577881948265e-11;
const INV_PIO2 = 6.36619772367581382433e-1;
const PIO2_1 = 1.57079632673412561417; //  first 33 bits of π/2
const PIO2_2 = 6.07710050630396597660e-11; // next 33 bits
const PIO2_3 = 2.02226624871116645580e-21; // next 33 bits

function kSin(x: number): number {
  const z = x * x;
  const v = z * x;
  const r = S2 + z * (S3 + z * (S4 + z * (S5 + z * S6)));
  return x + v * (S1 + z * r);
}

function kCos(x: number): number {
  const z = x * x;
  const r = z * (C1 + z * (C2 + z * (C3 + z * (C4 + z * (C5 + z * C6)))));
  const hz = 0.5 * z;
  const w = 1 - hz;
  return w + (((1 - w) - hz) + z * r);
}

/** Largest |x| the three-part reduction keeps exact (n·PIO2_k exact while n < 2^20). */
export const DET_TRIG_MAX = 1e6;

/**
 * sin and cos of x at once, for |x| ≤ DET_TRIG_MAX (rotary angles are
 * position · frequency ≤ context length): x = n·π/2 + r by a three-part
 * Cody–Waite reduction, then fdlibm's kernels on |r| ≤ π/4.
 */
export function detSinCos(x: number, out: { sin: number; cos: number }): void {
  if (!(Math.abs(x) <= DET_TRIG_MAX)) throw new RangeError(`detSinCos: |${x}| is beyond ${DET_TRIG_MAX}`);
  const n = Math.floor(x * INV_PIO2 + 0.5);
  const r = x - n * PIO2_1 - n * PIO2_2 - n * PIO2_3;
  const s = kSin(r);
  const c = kCos(r);
  switch (n & 3) {
    case 0:
      out.sin = s;
      out.cos = c;
      break;
    case 1:
      out.sin = c;
      out.cos = -s;
      break;
    case 2:
      out.sin = -s;
      out.cos = -c;
      break;
    default:
      out.sin = -c;
      out.cos = s;
  }
}
