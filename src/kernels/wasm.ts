/**
 * The compiled fast path of matmul/matvec: WebAssembly SIMD, optionally over worker threads that
 * split the output rows. The same bits as reference.ts for every dtype, shape and thread count.
 *
 * Why WebAssembly SIMD (and not a native addon): the build must come from the npm registry alone,
 * and CI machines have no compiler toolchain to rely on; a 10 KB module runs on every Node ≥ 20
 * host. Its f64x2 arithmetic reproduces the reference's 4-lane float64 order exactly — two f64x2
 * accumulators are lanes (0,1) and (2,3); f32x4 → two f64x2 by promote_low and a shuffle; BF16 by
 * widening u16 → u32 and shifting 16; F16 by bit moves and one exact multiplication by 2^112.
 * Relaxed SIMD's f64x2 FMA would give the same bits (the products are exact) but is behind a flag
 * in Node 20, so plain mul + add. A native addon was not tried: it would need a compiler on every
 * installing machine or prebuilt binaries per platform, neither of which the brief allows.
 *
 * Measured here (bench/kernels-bench.ts, 2-core AMD EPYC with AVX-512, shared with other work, so
 * the figures are noisy; medians of 3–5 runs, GFLOP/s, 4096×4096, weights already in the module's
 * memory; with a per-call copy in parentheses):
 *   matvec F32:  JS 2.1–2.5, wasm 1 thread 7.1–7.9 (3.5–4.2), 2 threads 11.7 on a quiet machine,
 *                onnxruntime-node 8.7–11.4 on 1 thread, 18.4 on 2
 *   matvec BF16: JS 1.2–2.0, wasm 1 thread 6.8–8.3 (4.4–5.7), 2 threads 11.8
 *   T = 64 F32:  JS 1.4–2.6, wasm 1 thread 10.5–13.4, 2 threads 19.9; onnxruntime-node 104–120
 *                (float32 FMA on AVX-512: the float64 accumulation the reference fixes, in 128-bit
 *                SIMD with separate mul and add, caps one core near 8 flops per cycle)
 *
 * How the .wasm is produced: wasm-source.ts generates the WebAssembly text (templates for the
 * unrolled dtype × block variants), build-wasm.ts assembles it with wabt (a devDependency) into
 * matmul.wasm, which is committed and loaded here; a test rebuilds it and compares the bytes.
 *
 * Kernels: T ≤ 2 (the decode step): 4 rows at a time read in their stored dtype inside the dot,
 * sharing each load of x (x promoted to float64 once per call). T ≥ 3: each row decoded once to
 * float64, then 4 positions at a time share each weight load. (The reference switches between its
 * two paths at the same T, and the operand order of each product follows it, so even NaN payloads
 * propagate as in the reference.)
 *
 * Memory: WebAssembly cannot read a JavaScript ArrayBuffer, so weights, x and out are copied into
 * the module's (shared) memory per call unless they already live there: `alloc(bytes)` hands out
 * views of that memory, and a caller that keeps its resident weights and stream scratch there
 * (the runtime could) skips the weight copy, which for a matvec is as costly as the product.
 *
 * Threads: `threads: N` starts N − 1 workers on the same module and memory; the calling thread
 * computes its share too and waits (Atomics.wait) for the others, so `matmul` stays synchronous.
 * Rows are split into N contiguous ranges; every dot is computed whole by one thread, so the bits
 * do not depend on N. Small products (under ~256 K multiply-adds) run on the calling thread only.
 */
import { Worker } from 'node:worker_threads';
import { readFileSync } from 'node:fs';
import { At1Error } from '../errors.js';
import { type WeightMatrix, dtypeBytes, f16ToF32Table, rowDecoder } from './dtype.js';
import type { Kernels } from './index.js';
import * as ref from './reference.js';
import { MM_ROW_BLOCK } from './wasm-source.js';

export interface WasmKernelOptions {
  /** threads computing a matmul, the caller's included (default 1) */
  threads?: number;
  /** below this many multiply-adds a matmul runs on the calling thread only (default 2^18) */
  parallelThreshold?: number;
}

export interface WasmKernels extends Kernels {
  readonly threads: number;
  /** A zeroed view of the module's memory: weights kept there are used without a copy. */
  alloc(byteLength: number): Uint8Array;
  /** Returns a view from `alloc` (the whole view as returned). */
  free(view: Uint8Array): void;
  /** Stops the worker threads (the kernels still work, single-threaded). */
  close(): Promise<void>;
}

const WASM_URL = new URL('./matmul.wasm', import.meta.url);
let compiled: WebAssembly.Module | undefined;

/** The compiled module (compiled once per process). */
export function wasmModule(): WebAssembly.Module {
  if (compiled === undefined) compiled = new WebAssembly.Module(readFileSync(WASM_URL));
  return compiled;
}

interface Exports {
  set_f16_nan(pos: number, neg: number): void;
  promote(src: number, dst: number, n: number): void;
  [fn: string]: (...args: number[]) => void;
}

/** NaN bit patterns the F16 table gives for positive and negative NaN (checked to be uniform). */
function f16NanBits(): [number, number] {
  const u = new Uint32Array(f16ToF32Table().buffer);
  const pos = u[0x7e00]!;
  const neg = u[0xfe00]!;
  for (let m = 1; m < 0x400; m++) {
    if (u[0x7c00 | m] !== pos || u[0xfc00 | m] !== neg) throw new At1Error('E_UNSUPPORTED', 'the F16 table has NaNs of several bit patterns');
  }
  return [pos, neg];
}

// Job layout (Int32Array over a SharedArrayBuffer), read by every thread:
// [0] kind (0 mv, 1 mm, -1 exit)  [1] dtype (0 f32, 1 f16, 2 bf16)  [2] w  [3] cols  [4] x  [5] T
// [6] out  [7] ostride  [8] r0  [9] r1  [10] rowbuf base  [11] parts  [12] rowbuf bytes per part
// Control: [0] generation  [1] parts done  [2] error flag
const RUN_PART = `
  const kind = job[0], w = job[2], cols = job[3], x = job[4], T = job[5], out = job[6], ostride = job[7];
  const r0 = job[8], r1 = job[9], parts = job[11];
  if (part >= parts) return;
  const lo = r0 + Math.floor(((r1 - r0) * part) / parts);
  const hi = r0 + Math.floor(((r1 - r0) * (part + 1)) / parts);
  if (hi <= lo) return;
  const name = (kind === 0 ? 'mv_' : 'mm_') + (job[1] === 0 ? 'f32' : job[1] === 1 ? 'f16' : 'bf16');
  const o = (out + (lo - r0) * 4) | 0;
  if (kind === 0) e[name](w, lo, hi, cols, x, T, o, ostride);
  else e[name](w, lo, hi, cols, x, T, o, ostride, (job[10] + part * job[12]) | 0);
`;
const runPart = new Function('e', 'job', 'part', RUN_PART) as (e: Exports, job: Int32Array, part: number) => void;

const WORKER_SOURCE = `
const { workerData } = require('node:worker_threads');
const { module, memory, ctl, job, part, nanPos, nanNeg } = workerData;
const e = new WebAssembly.Instance(module, { env: { memory } }).exports;
e.set_f16_nan(nanPos, nanNeg);
const runPart = new Function('e', 'job', 'part', ${JSON.stringify(RUN_PART)});
let gen = 0;
for (;;) {
  Atomics.wait(ctl, 0, gen);
  gen = Atomics.load(ctl, 0);
  if (job[0] === -1) break;
  try { runPart(e, job, part); } catch (err) { Atomics.store(ctl, 2, 1); }
  Atomics.add(ctl, 1, 1);
  Atomics.notify(ctl, 1);
}
`;

const PAGE = 65536;
const MAX_PAGES = 65536;
const ALIGN = 64;

/** First-fit allocator over the module's memory, from `base` up; grows the memory as needed. */
class Heap {
  /** free segments [start, end), sorted, coalesced; the top [top, size) is free too */
  private free: Array<[number, number]> = [];
  private top: number;
  private readonly live = new Map<number, number>();
  constructor(private readonly memory: WebAssembly.Memory, base: number) {
    this.top = base;
  }
  alloc(n: number): number {
    const size = Math.max(ALIGN, Math.ceil(n / ALIGN) * ALIGN);
    for (let i = 0; i < this.free.length; i++) {
      const [s, e] = this.free[i]!;
      if (e - s >= size) {
        if (e - s === size) this.free.splice(i, 1);
        else this.free[i] = [s + size, e];
        this.live.set(s, size);
        return s;
      }
    }
    const p = this.top;
    const need = p + size;
    const have = this.memory.buffer.byteLength;
    if (need > have) {
      const pages = Math.ceil((need - have) / PAGE);
      if (have / PAGE + pages > MAX_PAGES) throw new At1Error('E_INPUT', `the WebAssembly kernels' memory cannot hold ${need} bytes (4 GiB at most)`);
      this.memory.grow(pages);
    }
    this.top = need;
    this.live.set(p, size);
    return p;
  }
  release(p: number): void {
    const size = this.live.get(p);
    if (size === undefined) throw new At1Error('E_INPUT', 'free: not a block from alloc');
    this.live.delete(p);
    let s = p;
    let e = p + size;
    // coalesce with neighbours, then with the top
    this.free = this.free.filter(([fs, fe]) => {
      if (fe === s) { s = fs; return false; }
      if (fs === e) { e = fe; return false; }
      return true;
    });
    if (e === this.top) this.top = s;
    else {
      this.free.push([s, e]);
      this.free.sort((a, b) => a[0] - b[0]);
    }
  }
}

class WasmKernelsImpl implements WasmKernels {
  readonly name: string;
  readonly threads: number;
  readonly attention = ref.attention;
  readonly rmsnorm = ref.rmsnorm;
  readonly rope = ref.rope;
  readonly swiglu = ref.swiglu;
  readonly addInPlace = ref.addInPlace;
  readonly softmax64 = ref.softmax64;

  private readonly memory = new WebAssembly.Memory({ initial: 16, maximum: MAX_PAGES, shared: true });
  private readonly e: Exports;
  private readonly heap = new Heap(this.memory, PAGE);
  private readonly ours = new WeakSet<ArrayBufferLike>();
  private u8: Uint8Array;
  private readonly ctl = new Int32Array(new SharedArrayBuffer(16));
  private readonly job = new Int32Array(new SharedArrayBuffer(64));
  private workers: Worker[] = [];
  private scratch = 0;
  private scratchSize = 0;
  private readonly threshold: number;

  constructor(threads: number, threshold: number) {
    this.threads = threads;
    this.threshold = threshold;
    this.name = threads > 1 ? `wasm-simd×${threads}` : 'wasm-simd';
    const [pos, neg] = f16NanBits();
    this.e = new WebAssembly.Instance(wasmModule(), { env: { memory: this.memory } }).exports as unknown as Exports;
    this.e.set_f16_nan(pos, neg);
    this.u8 = this.view();
  }

  async start(): Promise<void> {
    const [nanPos, nanNeg] = f16NanBits();
    for (let part = 1; part < this.threads; part++) {
      const w = new Worker(WORKER_SOURCE, {
        eval: true,
        workerData: { module: wasmModule(), memory: this.memory, ctl: this.ctl, job: this.job, part, nanPos, nanNeg },
      });
      this.workers.push(w);
      await new Promise<void>((resolve, reject) => {
        w.once('online', resolve);
        w.once('error', reject);
      });
      w.unref(); // idle workers do not keep the process alive
    }
  }

  private view(): Uint8Array {
    const b = this.memory.buffer;
    this.ours.add(b);
    return new Uint8Array(b);
  }

  private bytes(): Uint8Array {
    if (this.u8.byteLength !== this.memory.buffer.byteLength) this.u8 = this.view();
    return this.u8;
  }

  alloc(byteLength: number): Uint8Array {
    const p = this.heap.alloc(byteLength);
    const u8 = this.bytes();
    u8.fill(0, p, p + byteLength);
    return u8.subarray(p, p + byteLength);
  }

  free(view: Uint8Array): void {
    if (!this.ours.has(view.buffer)) throw new At1Error('E_INPUT', 'free: not a view from alloc');
    this.heap.release(view.byteOffset);
  }

  /** the byte address of `a` inside the module's memory, or −1 when it lives elsewhere */
  private addr(a: ArrayBufferView): number {
    return this.ours.has(a.buffer) ? a.byteOffset : -1;
  }

  private scratchFor(n: number): number {
    if (n > this.scratchSize) {
      if (this.scratchSize > 0) this.heap.release(this.scratch);
      this.scratchSize = 0;
      this.scratch = this.heap.alloc(n);
      this.scratchSize = n;
    }
    return this.scratch;
  }

  matmul(a: ref.MatmulArgs): void {
    const { out, outStride, outCol0, x, T, w } = a;
    const r0 = a.rowStart ?? 0;
    const r1 = a.rowEnd ?? w.rows;
    rowDecoder(w); // the reference's checks of size and alignment
    const nRows = r1 - r0;
    if (nRows <= 0 || T <= 0) return;
    const cols = w.cols;
    if (x.length < T * cols) throw new At1Error('E_INPUT', `x holds ${x.length} values, ${T}×${cols} needed`);
    const eb = dtypeBytes(w.dtype);
    const rowBytes = cols * eb;

    // scratch: [weights copy][x f32][x f64][out][row buffers]
    const wIn = this.addr(w.bytes);
    const xIn = this.addr(x);
    const outIn = this.addr(out);
    const up = (n: number): number => Math.ceil(n / ALIGN) * ALIGN;
    const wBytes = wIn < 0 ? up(nRows * rowBytes) : 0;
    const x32Bytes = xIn < 0 ? up(T * cols * 4) : 0;
    const x64Bytes = up(T * cols * 8);
    const outBytes = outIn < 0 ? up(T * nRows * 4) : 0;
    const mm = T > 2;
    const parts = this.workers.length > 0 && nRows * cols * T >= this.threshold ? Math.min(this.workers.length + 1, nRows) : 1;
    const rowbufPart = up(cols * 8 * MM_ROW_BLOCK);
    const rowbufBytes = mm ? rowbufPart * parts : 0;
    const s = this.scratchFor(wBytes + x32Bytes + x64Bytes + outBytes + rowbufBytes);
    const u8 = this.bytes();

    let wPtr: number;
    let rA: number;
    if (wIn < 0) {
      wPtr = s;
      u8.set(w.bytes.subarray(r0 * rowBytes, r1 * rowBytes), wPtr);
      rA = 0;
    } else {
      wPtr = wIn;
      rA = r0;
    }
    let p = s + wBytes;
    let x32: number;
    if (xIn < 0) {
      x32 = p;
      new Float32Array(u8.buffer, x32, T * cols).set(x.subarray(0, T * cols));
      p += x32Bytes;
    } else x32 = xIn;
    const x64 = p;
    p += x64Bytes;
    this.e.promote(x32, x64, T * cols);
    let outPtr: number;
    let ostride: number;
    if (outIn < 0) {
      outPtr = p;
      ostride = nRows;
      p += outBytes;
    } else {
      outPtr = outIn + outCol0 * 4;
      ostride = outStride;
    }
    const rowbuf = p;
    const job = this.job;
    job[0] = mm ? 1 : 0;
    job[1] = w.dtype === 'F32' ? 0 : w.dtype === 'F16' ? 1 : 2;
    job[2] = wPtr | 0;
    job[3] = cols;
    job[4] = x64 | 0;
    job[5] = T;
    job[6] = outPtr | 0;
    job[7] = ostride;
    job[8] = rA;
    job[9] = rA + nRows;
    job[10] = rowbuf | 0;
    job[11] = parts;
    job[12] = rowbufPart;
    if (parts > 1) this.runParallel(parts);
    else runPart(this.e, job, 0);

    if (outIn < 0) {
      const res = new Float32Array(u8.buffer, outPtr, T * nRows);
      for (let t = 0; t < T; t++) out.set(res.subarray(t * nRows, (t + 1) * nRows), t * outStride + outCol0);
    }
  }

  private runParallel(parts: number): void {
    const ctl = this.ctl;
    Atomics.store(ctl, 1, 0);
    Atomics.store(ctl, 2, 0);
    // workers 1 .. parts−1 compute; any worker beyond `parts` finds an empty range
    Atomics.add(ctl, 0, 1);
    Atomics.notify(ctl, 0);
    let err: unknown;
    try {
      runPart(this.e, this.job, 0);
    } catch (e) {
      err = e;
    }
    const n = this.workers.length;
    for (;;) {
      const done = Atomics.load(ctl, 1);
      if (done >= n) break;
      Atomics.wait(ctl, 1, done, 1000);
    }
    if (err !== undefined) throw err;
    if (Atomics.load(ctl, 2) !== 0) throw new Error('a WebAssembly kernel thread failed');
  }

  async close(): Promise<void> {
    if (this.workers.length === 0) return;
    this.job[0] = -1;
    Atomics.add(this.ctl, 0, 1);
    Atomics.notify(this.ctl, 0);
    const ws = this.workers;
    this.workers = [];
    await Promise.all(
      ws.map((w) => {
        w.ref();
        return new Promise<void>((resolve) => w.once('exit', () => resolve()));
      }),
    );
  }
}

/** WebAssembly SIMD kernels (matmul compiled, the rest the reference's), with `threads` threads. */
export async function wasmKernels(opts: WasmKernelOptions = {}): Promise<WasmKernels> {
  const threads = opts.threads ?? 1;
  if (!Number.isInteger(threads) || threads < 1 || threads > 256) throw new At1Error('E_INPUT', `threads must be an integer in 1..256, is ${threads}`);
  const k = new WasmKernelsImpl(threads, opts.parallelThreshold ?? 1 << 18);
  await k.start();
  return k;
}

/** Whether this host runs the module (WebAssembly SIMD and shared memory). */
export function wasmAvailable(): boolean {
  try {
    wasmModule();
    new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
    return true;
  } catch {
    return false;
  }
}

export type { WeightMatrix };
