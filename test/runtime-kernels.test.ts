/**
 * The reference kernels: exact dtype conversion, matmul of T positions bit-identical to T matvecs
 * (and to any split of the output rows), the documented 4-lane summation order, RoPE and RMSNorm.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type WeightDType,
  type WeightMatrix,
  decodeVector,
  dot,
  f16ToF32Table,
  kernels,
  matvec,
  ropeAngles,
  ropeInvFreq,
} from '../src/kernels/index.js';
import { lcg, randomMatrix as sharedRandomMatrix, sameBits } from './runtime-helpers.js';

/** random weights (shared generator); exponents kept moderate: F16 12-17, BF16 118-130 */
function randomMatrix(dtype: WeightDType, rows: number, cols: number, seed: number): WeightMatrix {
  return sharedRandomMatrix(dtype, rows, cols, seed, { F16: [12, 17], BF16: [118, 130] });
}

describe('kernels', () => {
  it('BF16 and F16 convert exactly', () => {
    const t = f16ToF32Table();
    assert.equal(t[0x3c00], 1);
    assert.equal(t[0xc000], -2);
    assert.equal(t[0x7bff], 65504);
    assert.equal(t[0x0001], 2 ** -24);
    assert.equal(t[0x7c00], Infinity);
    assert.ok(Number.isNaN(t[0x7e00]!));
    assert.ok(Object.is(t[0x8000], -0));
    const out = new Float32Array(3);
    decodeVector({ dtype: 'BF16', rows: 1, cols: 3, bytes: new Uint8Array(new Uint16Array([0x3f80, 0xc040, 0x0001]).buffer) }, out);
    assert.deepEqual([...out], [1, -3, new Float32Array(new Uint32Array([0x10000]).buffer)[0]!]);
  });

  it('dot sums in four interleaved float64 lanes, the tail in lane 0', () => {
    const a = new Float32Array([1, 2, 3, 4, 5, 6, 7]);
    const b = new Float32Array([1e8, 1, -1e8, 1, 1, 1, 1]);
    let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    s0 += a[0]! * b[0]!; s1 += a[1]! * b[1]!; s2 += a[2]! * b[2]!; s3 += a[3]! * b[3]!;
    s0 += a[4]! * b[4]!; s0 += a[5]! * b[5]!; s0 += a[6]! * b[6]!;
    assert.equal(dot(a, 0, b, 0, 7), s0 + s1 + (s2 + s3));
  });

  for (const dtype of ['F32', 'F16', 'BF16'] as const) {
    it(`${dtype}: matmul of T positions equals T matvecs and any row split, bit for bit`, () => {
      const rows = 37;
      const cols = 53;
      const T = 9;
      const w = randomMatrix(dtype, rows, cols, 42);
      const r = lcg(7);
      const x = new Float32Array(T * cols).map(() => r() * 2 - 1);
      const all = new Float32Array(T * rows);
      kernels().matmul({ out: all, outStride: rows, outCol0: 0, x, T, w });
      const single = new Float32Array(T * rows);
      for (let t = 0; t < T; t++) {
        const o = new Float32Array(rows);
        matvec(o, x.subarray(t * cols, (t + 1) * cols), w);
        single.set(o, t * rows);
      }
      assert.ok(sameBits(all, single));
      const split = new Float32Array(T * rows);
      for (const [a, b] of [[0, 5], [5, 6], [6, 30], [30, 37]] as const) {
        kernels().matmul({ out: split, outStride: rows, outCol0: a, x, T, w, rowStart: a, rowEnd: b });
      }
      assert.ok(sameBits(split, all));
      // against a float64 evaluation of the same products
      const dv = new DataView(w.bytes.buffer);
      const f16 = f16ToF32Table();
      const tmp = new Float32Array(1);
      const tmpU = new Uint32Array(tmp.buffer);
      const wv = (i: number): number => {
        if (dtype === 'F32') return dv.getFloat32(i * 4, true);
        const h = dv.getUint16(i * 2, true);
        if (dtype === 'F16') return f16[h]!;
        tmpU[0] = h << 16;
        return tmp[0]!;
      };
      for (let t = 0; t < T; t++) {
        for (let o = 0; o < rows; o++) {
          let s = 0;
          for (let i = 0; i < cols; i++) s += wv(o * cols + i) * x[t * cols + i]!;
          assert.ok(Math.abs(all[t * rows + o]! - s) <= 1e-6 * Math.max(1, Math.abs(s)));
        }
      }
    });
  }

  it('rope is the rotate-half rotation of HF Llama', () => {
    const hd = 8;
    const inv = ropeInvFreq(hd, 10000);
    const cos = new Float64Array(hd / 2);
    const sin = new Float64Array(hd / 2);
    ropeAngles(3, inv, cos, sin);
    const x = new Float32Array([1, 2, 3, 4, 5, 6, 7, 8]);
    const want = [...x];
    for (let i = 0; i < 4; i++) {
      const a = 3 * Math.pow(10000, (-2 * i) / hd);
      want[i] = x[i]! * Math.cos(a) - x[i + 4]! * Math.sin(a);
      want[i + 4] = x[i + 4]! * Math.cos(a) + x[i]! * Math.sin(a);
    }
    kernels().rope(x, 0, 1, hd, cos, sin);
    for (let i = 0; i < hd; i++) assert.ok(Math.abs(x[i]! - want[i]!) < 1e-6);
  });

  it('rmsnorm and swiglu', () => {
    const x = new Float32Array([1, -2, 3, -4]);
    const out = new Float32Array(4);
    kernels().rmsnorm(out, x, new Float32Array([1, 1, 2, 0.5]), 4, 1, 0);
    const s = 1 / Math.sqrt((1 + 4 + 9 + 16) / 4);
    assert.deepEqual([...out], [1 * s, -2 * s, 6 * s, -2 * s].map(Math.fround));
    const g = new Float32Array([0, 1, -1]);
    kernels().swiglu(g, new Float32Array([5, 2, 3]), 3);
    assert.deepEqual([...g], [0, 2 / (1 + Math.exp(-1)), (3 * -1) / (1 + Math.exp(1))].map(Math.fround));
  });
});
