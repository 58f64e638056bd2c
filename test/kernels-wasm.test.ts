/**
 * The WebAssembly SIMD kernels give the reference's bits: F32/F16/BF16 weights, tails (n mod 4),
 * odd shapes, T = 1, 2, 7, 64, row blocks and output offsets, 1 and 2 threads, weights inside and
 * outside the module's memory, NaN/Inf/denormal inputs; the F16 conversion on all 65536 patterns;
 * and the committed matmul.wasm is what the sources assemble to.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { type WeightDType, type WeightMatrix, f16ToF32Table } from '../src/kernels/index.js';
import * as ref from '../src/kernels/reference.js';
import { type WasmKernels, wasmKernels, wasmModule } from '../src/kernels/wasm.js';
import { WASM_PATH, buildWasm } from '../src/kernels/build-wasm.js';
import { lcg, randomMatrix as sharedRandomMatrix } from './runtime-helpers.js';
/** random weights (shared generator); F16 exponents 0-20, subnormals included; BF16 100-135 */
/** random weights from the shared generator; 16-bit exponent fields in { F16: [0, 20], BF16: [100, 135] } */
function randomMatrix(dtype: WeightDType, rows: number, cols: number, seed: number): WeightMatrix {
  return sharedRandomMatrix(dtype, rows, cols, seed, { F16: [0, 20], BF16: [100, 135] });
}

function randomX(n: number, seed: number): Float32Array {
  const r = lcg(seed);
  return new Float32Array(n).map(() => (r() * 2 - 1) * 4);
}

function bits(a: Float32Array): number[] {
  return Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));
}

/** the reference's and the kernels' out for the same call (out pre-filled, so untouched entries are compared too) */
function both(k: WasmKernels, w: WeightMatrix, x: Float32Array, T: number, opts: { rowStart?: number; rowEnd?: number; outCol0?: number; outStride?: number } = {}): [number[], number[]] {
  const r0 = opts.rowStart ?? 0;
  const r1 = opts.rowEnd ?? w.rows;
  const outCol0 = opts.outCol0 ?? 0;
  const outStride = opts.outStride ?? outCol0 + (r1 - r0);
  const a = new Float32Array(T * outStride).fill(7);
  const b = new Float32Array(T * outStride).fill(7);
  const args = { outStride, outCol0, x, T, w, rowStart: opts.rowStart, rowEnd: opts.rowEnd };
  ref.matmul({ ...args, out: a });
  k.matmul({ ...args, out: b });
  return [bits(a), bits(b)];
}

const DTYPES: WeightDType[] = ['F32', 'F16', 'BF16'];
const SHAPES: Array<[number, number]> = [
  [1, 1],
  [1, 3],
  [3, 4],
  [5, 7],
  [9, 33],
  [17, 64],
  [7, 130],
  [33, 257],
];

for (const threads of [1, 2]) {
  describe(`wasm kernels, ${threads} thread${threads > 1 ? 's' : ''}`, () => {
    let k: WasmKernels;
    // parallelThreshold 1: every product is split over the threads, however small
    before(async () => {
      k = await wasmKernels({ threads, parallelThreshold: 1 });
    });
    after(async () => {
      await k.close();
    });

    for (const dtype of DTYPES) {
      it(`${dtype}: the reference's bits for odd shapes, tails and T = 1, 2, 7, 64`, () => {
        let seed = 1;
        for (const [rows, cols] of SHAPES) {
          for (const T of [1, 2, 3, 7, 64]) {
            const w = randomMatrix(dtype, rows, cols, seed++);
            const x = randomX(T * cols, seed++);
            const [a, b] = both(k, w, x, T);
            assert.deepEqual(b, a, `${rows}×${cols}, T = ${T}`);
          }
        }
      });

      it(`${dtype}: row ranges, output offsets and strides as the runtime's row blocks use them`, () => {
        const w = randomMatrix(dtype, 23, 45, 99);
        for (const T of [1, 2, 7]) {
          const x = randomX(T * 45, 100 + T);
          for (const [rowStart, rowEnd, outCol0, outStride] of [
            [0, 23, 0, 23],
            [3, 17, 5, 40],
            [22, 23, 0, 1],
            [0, 11, 11, 23],
          ] as const) {
            const [a, b] = both(k, w, x, T, { rowStart, rowEnd, outCol0, outStride });
            assert.deepEqual(b, a, `rows [${rowStart}, ${rowEnd}) at ${outCol0}/${outStride}, T = ${T}`);
          }
        }
      });

      it(`${dtype}: weights kept in the module's memory (alloc) give the same bits`, () => {
        const w = randomMatrix(dtype, 19, 37, 7);
        const v = k.alloc(w.bytes.byteLength);
        v.set(w.bytes);
        const inside: WeightMatrix = { ...w, bytes: v };
        const xv = k.alloc(4 * 37 * 4);
        const x = new Float32Array(xv.buffer, xv.byteOffset, 4 * 37);
        x.set(randomX(4 * 37, 8));
        for (const T of [1, 2, 4]) {
          const [a] = both(k, w, x, T);
          const [, b] = both(k, inside, x, T);
          assert.deepEqual(b, a, `T = ${T}`);
          // out inside too
          const ov = k.alloc(T * 19 * 4);
          const out = new Float32Array(ov.buffer, ov.byteOffset, T * 19);
          k.matmul({ out, outStride: 19, outCol0: 0, x, T, w: inside });
          assert.deepEqual(bits(out), a, `T = ${T}, out in the module's memory`);
          k.free(ov);
        }
        k.free(v);
        k.free(xv);
      });
    }

    it('matvec: NaN, ±Inf, denormal and signed-zero inputs give the reference\'s bits', () => {
      const cols = 11;
      const specials = [NaN, Infinity, -Infinity, 1e-45, -1e-45, 1.1754942e-38, 0, -0, 3.4028235e38, -3.4028235e38];
      const r = lcg(5);
      for (const dtype of DTYPES) {
        for (let trial = 0; trial < 40; trial++) {
          const w = randomMatrix(dtype, 6, cols, 50 + trial);
          const x = randomX(3 * cols, 60 + trial);
          // a few special values in x (at most one NaN per dot lane keeps NaN payloads well defined)
          for (let j = 0; j < 3; j++) x[Math.floor(r() * x.length)] = specials[Math.floor(r() * specials.length)]!;
          for (const T of [1, 2, 3]) {
            const [a, b] = both(k, w, x.subarray(0, T * cols), T);
            assert.deepEqual(b, a, `${dtype} trial ${trial} T = ${T}`);
          }
        }
        // weights of zeros times Inf (NaN from 0·∞), all-denormal weights
        const zeros: WeightMatrix = { dtype, rows: 2, cols: 5, bytes: new Uint8Array(2 * 5 * (dtype === 'F32' ? 4 : 2)) };
        const xi = new Float32Array([Infinity, 1, 2, 3, -Infinity, 1, 1, 1, 1, 1]);
        const [a, b] = both(k, zeros, xi, 2);
        assert.deepEqual(b, a, `${dtype} 0·∞`);
      }
      const den = new Uint16Array(4 * 9).fill(0x0001); // F16 and BF16 denormals
      for (const dtype of ['F16', 'BF16'] as const) {
        const w: WeightMatrix = { dtype, rows: 4, cols: 9, bytes: new Uint8Array(den.buffer) };
        const [a, b] = both(k, w, new Float32Array(9).fill(1e30), 1);
        assert.deepEqual(b, a, `${dtype} denormal weights`);
      }
    });

    it('F16 and BF16 special weights (NaN, ±Inf, −0) give the reference\'s bits', () => {
      const pats = [0x7c00, 0xfc00, 0x7e00, 0xfe01, 0x7c01, 0x8000, 0x0000, 0x03ff, 0x8001, 0x7f80, 0xff80, 0x7fc0, 0xffc1, 0x0080];
      for (const dtype of ['F16', 'BF16'] as const) {
        for (const p of pats) {
          const u = new Uint16Array(3 * 6).fill(0x3c00);
          u[4] = p; // row 0, a lane-0 main-loop element
          u[6 + 5] = p; // row 1, the tail
          const w: WeightMatrix = { dtype, rows: 3, cols: 6, bytes: new Uint8Array(u.buffer) };
          for (const T of [1, 3]) {
            const [a, b] = both(k, w, randomX(T * 6, p), T);
            assert.deepEqual(b, a, `${dtype} 0x${p.toString(16)} T = ${T}`);
          }
        }
      }
    });
  });
}

describe('wasm kernels: conversions and the build', () => {
  it('F16 → F32 in the module is the exact table on all 65536 patterns, BF16 the shift', () => {
    const memory = new WebAssembly.Memory({ initial: 8, maximum: 8, shared: true });
    const e = new WebAssembly.Instance(wasmModule(), { env: { memory } }).exports as Record<string, (...a: number[]) => void>;
    const t = new Uint32Array(f16ToF32Table().buffer);
    e.set_f16_nan!(t[0x7e00]!, t[0xfe00]!);
    const src = new Uint16Array(memory.buffer, 0, 65536);
    for (let h = 0; h < 65536; h++) src[h] = h;
    const dst = new Uint32Array(memory.buffer, 131072, 65536);
    for (const n of [65536, 65535]) {
      // 65535: the last 3 through the scalar path
      e.decode32_f16!(0, 131072, n);
      for (let h = 0; h < n; h++) if (dst[h] !== t[h]) assert.fail(`F16 0x${h.toString(16)}: 0x${dst[h]!.toString(16)} ≠ 0x${t[h]!.toString(16)}`);
      e.decode32_bf16!(0, 131072, n);
      for (let h = 0; h < n; h++) if (dst[h] !== (h << 16) >>> 0) assert.fail(`BF16 0x${h.toString(16)}`);
    }
  });

  it('the committed matmul.wasm is what wasm-source.ts assembles to', async () => {
    const built = await buildWasm();
    assert.ok(Buffer.from(built).equals(readFileSync(WASM_PATH)), 'rebuild with: node --import tsx src/kernels/build-wasm.ts');
  });

  it('threads must be a positive integer', async () => {
    await assert.rejects(wasmKernels({ threads: 0 }), /threads/);
    await assert.rejects(wasmKernels({ threads: 1.5 }), /threads/);
  });
});
