/**
 * GFLOP/s of the matmul kernels: matvec (4096×4096, T = 1) and matmul (T = 64), F32 and BF16
 * weights, for the JS reference, the WebAssembly SIMD kernels on 1 and 2 threads (weights copied
 * into the module's memory per call, as for a plain ArrayBuffer, and weights already there via
 * alloc), and onnxruntime-node (F32 MatMul, 1 and 2 intra-op threads) measured in the same run
 * It is not a dependency of at1: its install script downloads from nuget.org, which breaks
 * `npm ci` on a machine that reaches only the npm registry. It is one of the bench-only references
 * of bench/peer/package.json, installed there (with ONNXRUNTIME_NODE_INSTALL=skip, from that
 * folder's lock file) the first time this bench runs; see bench/peer/install.ts. When that cannot
 * be done the published figures are printed, marked as not measured.
 * Every figure is the median of several timed runs.
 *
 *   node --import tsx bench/kernels-bench.ts [--rows 4096] [--cols 4096] [--runs 5] [--skip-ref]
 */
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { WeightDType, WeightMatrix } from '../src/kernels/dtype.js';
import * as ref from '../src/kernels/reference.js';
import { type WasmKernels, wasmKernels } from '../src/kernels/wasm.js';
import { ensurePeerPackage, PEER_DIR } from './peer/install.js';

const { values } = parseArgs({
  options: {
    rows: { type: 'string', default: '4096' },
    cols: { type: 'string', default: '4096' },
    runs: { type: 'string', default: '5' },
    'skip-ref': { type: 'boolean', default: false },
  },
});
const ROWS = Number(values.rows);
const COLS = Number(values.cols);
const RUNS = Number(values.runs);
const PUBLISHED = { matvec: 4.8, matmul64: 42 }; // design notes: onnxruntime-node on this kind of machine

function median(a: number[]): number {
  const s = [...a].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** median GFLOP/s of fn (2·rows·cols·T flops per call), each run long enough to time (~0.2 s) */
async function gflops(T: number, fn: () => void | Promise<void>): Promise<number> {
  await fn(); // warm up
  const flops = 2 * ROWS * COLS * T;
  const t0 = performance.now();
  await fn();
  const once = Math.max(1e-3, (performance.now() - t0) / 1000);
  const reps = Math.max(1, Math.round(0.2 / once));
  const rates: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    const s = performance.now();
    for (let i = 0; i < reps; i++) await fn();
    rates.push((flops * reps) / ((performance.now() - s) / 1000) / 1e9);
  }
  return median(rates);
}

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

const r = rng(42);
const wf32 = new Float32Array(ROWS * COLS).map(() => r() * 2 - 1);
const wbf16 = new Uint16Array(ROWS * COLS);
{
  const u = new Uint32Array(wf32.buffer);
  for (let i = 0; i < u.length; i++) wbf16[i] = u[i]! >>> 16;
}
const weights: Record<'F32' | 'BF16', Uint8Array> = { F32: new Uint8Array(wf32.buffer), BF16: new Uint8Array(wbf16.buffer) };
const xs: Record<number, Float32Array> = { 1: new Float32Array(COLS).map(() => r() * 2 - 1), 64: new Float32Array(64 * COLS).map(() => r() * 2 - 1) };

// ---------------------------------------------------------------- onnxruntime-node

interface Ort {
  InferenceSession: { create(model: Uint8Array, opts: object): Promise<{ run(feeds: object): Promise<unknown>; release(): Promise<void> }> };
  Tensor: new (type: string, data: Float32Array, dims: number[]) => unknown;
}

/** protobuf helpers: just enough to write an ONNX ModelProto with one MatMul */
function varint(n: number): number[] {
  const out: number[] = [];
  let v = BigInt(n);
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) b |= 0x80;
    out.push(b);
  } while (v > 0n);
  return out;
}
function fieldVarint(no: number, v: number): Uint8Array {
  return new Uint8Array([...varint((no << 3) | 0), ...varint(v)]);
}
function fieldBytes(no: number, ...parts: Uint8Array[]): Uint8Array {
  const len = parts.reduce((a, p) => a + p.byteLength, 0);
  return cat(new Uint8Array([...varint((no << 3) | 2), ...varint(len)]), ...parts);
}
function str(no: number, s: string): Uint8Array {
  return fieldBytes(no, new TextEncoder().encode(s));
}
function cat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.byteLength, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.byteLength;
  }
  return out;
}
function valueInfo(name: string, dims: number[]): Uint8Array {
  const shape = fieldBytes(2, ...dims.map((d) => fieldBytes(1, fieldVarint(1, d))));
  return cat(str(1, name), fieldBytes(2, fieldBytes(1, fieldVarint(1, 1), shape)));
}

/** y[T, rows] = x[T, cols] · Wᵀ with W given as its transpose [cols, rows] (ONNX MatMul), float32 */
function onnxMatMul(T: number): Uint8Array {
  const wt = new Float32Array(COLS * ROWS);
  for (let i = 0; i < ROWS; i++) for (let j = 0; j < COLS; j++) wt[j * ROWS + i] = wf32[i * COLS + j]!;
  const init = cat(fieldVarint(1, COLS), fieldVarint(1, ROWS), fieldVarint(2, 1), str(8, 'W'), fieldBytes(9, new Uint8Array(wt.buffer)));
  const node = cat(str(1, 'x'), str(1, 'W'), str(2, 'y'), str(3, 'mm'), str(4, 'MatMul'));
  const graph = cat(fieldBytes(1, node), str(2, 'g'), fieldBytes(5, init), fieldBytes(11, valueInfo('x', [T, COLS])), fieldBytes(12, valueInfo('y', [T, ROWS])));
  return cat(fieldVarint(1, 8), fieldBytes(8, str(1, ''), fieldVarint(2, 13)), fieldBytes(7, graph));
}

async function loadOrt(): Promise<Ort | undefined> {
  const missing = ensurePeerPackage('onnxruntime-node');
  if (missing) {
    console.error(`onnxruntime-node is not available: ${missing}; its published figures are printed instead`);
    return undefined;
  }
  try {
    return createRequire(join(PEER_DIR, 'package.json'))('onnxruntime-node') as Ort;
  } catch (e) {
    console.error(`onnxruntime-node cannot run here (${(e as Error).message.split('\n')[0]}); its published figures are printed instead`);
    return undefined;
  }
}

// ---------------------------------------------------------------- run

type Row = { impl: string; dtype: WeightDType; T: number; gflops: number; note?: string };
const rows: Row[] = [];
function record(impl: string, dtype: WeightDType, T: number, g: number, note?: string): void {
  rows.push({ impl, dtype, T, gflops: g, note });
  console.error(`  ${impl.padEnd(30)} ${dtype.padEnd(5)} T=${String(T).padEnd(3)} ${g.toFixed(2)} GFLOP/s${note ? ' ' + note : ''}`);
}

console.error(`matmul kernels, W ${ROWS}×${COLS}, median of ${RUNS} runs`);
for (const T of [1, 64]) {
  const out = new Float32Array(T * ROWS);
  const x = xs[T]!;
  for (const dtype of ['F32', 'BF16'] as const) {
    const w: WeightMatrix = { dtype, rows: ROWS, cols: COLS, bytes: weights[dtype] };
    const args = { out, outStride: ROWS, outCol0: 0, x, T, w };
    if (!values['skip-ref']) record('js reference', dtype, T, await gflops(T, () => ref.matmul(args)));
    for (const threads of [1, 2]) {
      const k: WasmKernels = await wasmKernels({ threads });
      record(`wasm ${threads}t (copy-in)`, dtype, T, await gflops(T, () => k.matmul(args)));
      const inside = k.alloc(weights[dtype].byteLength);
      inside.set(weights[dtype]);
      const wIn: WeightMatrix = { ...w, bytes: inside };
      record(`wasm ${threads}t (weights in memory)`, dtype, T, await gflops(T, () => k.matmul({ ...args, w: wIn })));
      k.free(inside);
      await k.close();
    }
  }
}

const ort = await loadOrt();
if (ort !== undefined) {
  for (const T of [1, 64]) {
    const model = onnxMatMul(T);
    const x = new ort.Tensor('float32', xs[T]!, [T, COLS]);
    for (const threads of [1, 2]) {
      const s = await ort.InferenceSession.create(model, { intraOpNumThreads: threads, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all' });
      record(`onnxruntime-node ${threads}t`, 'F32', T, await gflops(T, async () => void (await s.run({ x }))));
      await s.release();
    }
  }
} else {
  record('onnxruntime-node 1t (published)', 'F32', 1, PUBLISHED.matvec, '(not measured)');
  record('onnxruntime-node (published)', 'F32', 64, PUBLISHED.matmul64, '(not measured)');
}

// ---------------------------------------------------------------- table
function find(impl: string, T: number, dtype: WeightDType = 'F32'): number | undefined {
  return rows.find((r) => r.impl === impl && r.T === T && r.dtype === dtype)?.gflops;
}
console.log(`\n| kernel | dtype | T | GFLOP/s | × JS ref | × ORT 1t | × ORT 2t |`);
console.log(`| --- | --- | ---: | ---: | ---: | ---: | ---: |`);
for (const row of rows) {
  const js = find('js reference', row.T, row.dtype);
  const o1 = find('onnxruntime-node 1t', row.T) ?? find('onnxruntime-node 1t (published)', row.T) ?? find('onnxruntime-node (published)', row.T);
  const o2 = find('onnxruntime-node 2t', row.T);
  const ratio = (b: number | undefined): string => (b === undefined ? '–' : (row.gflops / b).toFixed(2));
  console.log(`| ${row.impl}${row.note ? ' ' + row.note : ''} | ${row.dtype} | ${row.T} | ${row.gflops.toFixed(2)} | ${ratio(js)} | ${ratio(o1)} | ${ratio(o2)} |`);
}
