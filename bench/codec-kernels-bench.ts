/**
 * The codec's hot loops, four ways, on the same chunks in the same run: the
 * JS reference, the native addon (src/kernels/native/codec-kernels.c), and
 * that same C source compiled to WebAssembly with Debian clang + lld at -O3
 * and at -O3 -msimd128 (bench/wasm/). Issue 14 asked to measure WebAssembly
 * and a native addon on this machine and choose; this is the measurement.
 *
 *   npm run bench:kernels -- [--data ../shared/fixtures] [--chunk 1048576] [--runs 7] [--no-synthetic]
 *
 * Operations, per chunk (a bf16 chunk x and its parent p), each the call
 * production makes (useCodecKernels switches JS and native):
 *   delta-decode  floatDeltaCodec.decodeInto of x's 'max' payload against p: readFrame, then
 *                 rANS tokens + delta rebuild (JS: ransDecodeTokens + rebuild16; native and
 *                 WASM: the fused delta16Decode, with decodePredicted's arguments and checks)
 *   exp-decode    floatExpCodec.decodeInto of x alone: readFrame, then rANS + exponent unpack
 *                 (JS: ransDecodeTokens + the unpack loop; native and WASM: the fused expDecode)
 *   delta-encode  tokenise16 + rANS encode (the model build between them, plain JS for all, is not timed)
 * The addon has no separate token-decode or rebuild kernel any more (the
 * fused decoders replaced them), so the decoders are timed whole.
 * Each figure is ns per element, the best of --runs, the implementations run
 * round-robin so they share the machine's noise. WASM timings include the
 * copies into and out of the module's memory (what at1 would pay: its
 * arrays live on the JS heap); "kernel" is the calls alone on arrays
 * already in place. Every implementation's output, the kernel-only calls'
 * too, is compared with the JS output byte for byte (and the JS decoders'
 * with the chunk itself); a difference stops the bench (exit 1).
 *
 * Data: the synthetic Llama-shaped bf16 pair (bench/synthetic.ts; 1B-shape
 * layer-0 tensors, first and last --chunk elements of each), and the
 * fixture family (tinystories: code-full and prose-step0025 against base,
 * each file's tensors as one chunk) when --data has it.
 * Without clang + wasm-ld the WASM rows are skipped with how to install them.
 */
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { useCodecKernels } from '../src/codec/kernels.js';
import { loadNativeCodecKernels } from '../src/kernels/codec-native.js';
import { corrupt } from '../src/codec/entropy/bitio.js';
import { buildModel, type TokenModel } from '../src/codec/entropy/model.js';
import { nativeRansArgs, ransEncode, settleNativeRans } from '../src/codec/entropy/rans.js';
import { tokenise16 } from '../src/codec/numeric/delta-core.js';
import { floatDeltaCodec } from '../src/codec/numeric/delta-codec.js';
import { floatExpCodec } from '../src/codec/numeric/exp-codec.js';
import { alphabetFor, readFrame } from '../src/codec/numeric/frame.js';
import type { ChunkContext } from '../src/codec/types.js';
import { llamaShapes, writeChain, type Shape } from './synthetic.js';
import { WasmCodecKernels, buildCodecKernelsWasm, clangStatus, wasmFlags } from './wasm/codec-kernels-wasm.js';

const { values } = parseArgs({
  options: {
    data: { type: 'string', default: '../shared/fixtures' },
    chunk: { type: 'string', default: String(1 << 20) },
    runs: { type: 'string', default: '7' },
    'no-synthetic': { type: 'boolean', default: false },
  },
});
const CHUNK = Number(values.chunk);
const RUNS = Number(values.runs);
if (!(CHUNK >= 4096) || !(RUNS >= 1)) {
  console.error('codec-kernels-bench: --chunk must be >= 4096 and --runs >= 1');
  process.exit(2);
}

// ---------------------------------------------------------------- data

interface Chunk {
  name: string;
  x: Uint16Array; // bf16 bits of the version
  p: Uint16Array; // bf16 bits of its parent, element-aligned
}

/** The tensors of a safetensors file as [name, dtype, bf16 bits] (a copy, so 2-byte aligned). */
function tensors(file: string): { name: string; dtype: string; bits: Uint16Array }[] {
  const b = readFileSync(file);
  const hl = Number(b.readBigUInt64LE(0));
  const h = JSON.parse(b.subarray(8, 8 + hl).toString('utf8')) as Record<string, { dtype: string; data_offsets: [number, number] }>;
  const base = 8 + hl;
  return Object.entries(h)
    .filter(([k]) => k !== '__metadata__')
    .map(([name, t]) => {
      const raw = b.subarray(base + t.data_offsets[0], base + t.data_offsets[1]);
      const bits = new Uint16Array(raw.length >>> 1);
      new Uint8Array(bits.buffer).set(raw.subarray(0, bits.length * 2));
      return { name, dtype: t.dtype, bits };
    });
}

function syntheticChunks(): Chunk[] {
  const wanted = new Set(['model.layers.0.self_attn.q_proj.weight', 'model.layers.0.mlp.gate_proj.weight', 'model.layers.0.mlp.down_proj.weight']);
  const shapes: Shape[] = llamaShapes(1e9).filter((s) => wanted.has(s.name));
  const dir = mkdtempSync(join(tmpdir(), 'at1-kbench-'));
  try {
    const files = [join(dir, 'base.safetensors'), join(dir, 'ft.safetensors')];
    console.error(`generating the synthetic pair (${shapes.map((s) => s.shape.join('x')).join(', ')}) ...`);
    writeChain(files, shapes);
    const [base, ft] = files.map(tensors) as [ReturnType<typeof tensors>, ReturnType<typeof tensors>];
    const out: Chunk[] = [];
    for (let k = 0; k < base.length; k++) {
      const p = base[k]!.bits;
      const x = ft[k]!.bits;
      const n = Math.min(CHUNK, x.length);
      const short = base[k]!.name.replace('model.layers.0.', '').replace('.weight', '');
      out.push({ name: `synthetic ${short} [0,${n})`, x: x.slice(0, n), p: p.slice(0, n) });
      if (x.length >= 2 * n) out.push({ name: `synthetic ${short} [-${n},end)`, x: x.slice(x.length - n), p: p.slice(p.length - n) });
    }
    return out;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A file's tensors, concatenated, as one chunk against the same tensors of its parent. */
function fixtureChunk(dir: string, file: string, parent: string): Chunk {
  const join16 = (f: string): Uint16Array => {
    const ts = tensors(join(dir, f));
    for (const t of ts) if (t.dtype !== 'BF16') throw new Error(`${f}: tensor ${t.name} is ${t.dtype}, expected BF16`);
    const out = new Uint16Array(ts.reduce((a, t) => a + t.bits.length, 0));
    let o = 0;
    for (const t of ts) {
      out.set(t.bits, o);
      o += t.bits.length;
    }
    return out;
  };
  return { name: `tinystories ${file.replace('.safetensors', '')} vs ${parent.replace('.safetensors', '')}`, x: join16(file), p: join16(parent) };
}

// ---------------------------------------------------------------- implementations

const native = loadNativeCodecKernels();
if (!native.kernels) console.error(`the native addon did not load (${native.error?.message}); build it with \`npm rebuild\`. Its rows are skipped.`);

interface WasmVariant {
  label: string;
  k: WasmCodecKernels;
}
const wasm: WasmVariant[] = [];
const clang = clangStatus();
if (!clang.ok) console.error(`WASM rows skipped: ${clang.why}`);
else {
  const dir = mkdtempSync(join(tmpdir(), 'at1-kwasm-'));
  try {
    for (const simd of [false, true]) {
      const label = simd ? 'wasm -O3 -msimd128' : 'wasm -O3';
      wasm.push({ label, k: await WasmCodecKernels.load(buildCodecKernelsWasm(dir, simd)) });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- the operations

const BF16_MANT = 7;
const R = 2 << 8; // raw contexts of a bf16 delta chunk: sign+exponent of the prediction
const S = alphabetFor(16);
const MODE_EXP = 0; // delta-codec.ts: a parent-only rANS frame (what 'max' writes without a grandparent)

/** delta-codec.ts contextOrder(bf16, no trajectory): exponent-major, sign-minor. */
const ORDER = (() => {
  const o = new Int32Array(R);
  let j = 0;
  for (let e = 0; e < 256; e++) for (let s = 0; s < 2; s++) o[j++] = (s << 8) | e;
  return o;
})();
const ORDER1 = new Int32Array([0]);
const GROUP0 = new Uint16Array(1);

/** rans.ts encodeTables: (group, token) -> frequency, start; per raw context its row offset. */
function encodeTables(model: TokenModel): { fc: Int32Array; rowOf: Int32Array } {
  const fc = new Int32Array(2 * model.groups * model.alphabet);
  for (let k = 0; k < model.groups * model.alphabet; k++) {
    fc[2 * k] = model.freq[k]!;
    fc[2 * k + 1] = model.cum[k]!;
  }
  const rowOf = new Int32Array(model.groupOf.length);
  for (let r = 0; r < rowOf.length; r++) rowOf[r] = model.groupOf[r]! * model.alphabet * 2;
  return { fc, rowOf };
}

const bytes = (a: ArrayBufferView): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

/** One run's output (compared with the JS's) and, when it timed itself, its time. */
interface Outcome {
  out: Uint8Array[];
  ms?: number;
}
interface Impl {
  label: string;
  /** Called before each timed run, untimed (e.g. which kernels the dispatch uses). */
  before?: () => void;
  run: () => Outcome;
  /** WASM only: the kernel calls alone, on arrays already in the module's memory (ms: the calls; out: read back after them, untimed). */
  kernel?: () => Outcome;
}
interface Op {
  name: string;
  impls: Impl[];
  /** Called after all runs of a chunk (e.g. to give back WASM memory). */
  done?: () => void;
}

/** Reference data for a chunk, made once with the JS kernels: the two payloads the decoders read, and the model delta-encode's kernel-only timing uses. */
function prepare(c: Chunk) {
  useCodecKernels('js');
  const n = c.x.length;
  const ts = tokenise16(c.x, c.p, null, BF16_MANT, R, S);
  const model = buildModel(ts.hist, R, S, ORDER).model;
  const deltaPayload = floatDeltaCodec.encode(bytes(c.x), deltaCtx(c), 'max');
  if (deltaPayload[0] !== MODE_EXP) throw new Error(`${c.name}: float-delta wrote mode ${deltaPayload[0]}, expected the parent-only rANS frame (${MODE_EXP})`);
  const expPayload = floatExpCodec.encode(bytes(c.x), EXP_CTX, 'max');
  return { n, model, deltaPayload, expPayload };
}
type Prepared = ReturnType<typeof prepare>;

const deltaCtx = (c: Chunk): ChunkContext => ({ dtype: 'BF16', refs: [{ dtype: 'BF16', bytes: bytes(c.p) }] });
const EXP_CTX: ChunkContext = { dtype: 'BF16', refs: [] };

/** The dispatching (product) call for the JS reference and the native addon. */
function dispatchImpls(make: () => () => Outcome): Impl[] {
  const out: Impl[] = [{ label: 'js', before: () => useCodecKernels('js'), run: make() }];
  if (native.kernels) out.push({ label: 'native', before: () => useCodecKernels('native'), run: make() });
  return out;
}

/** The parent-only bf16 float-delta frame, as delta-codec.ts decodePredicted reads it (other modes are not what this bench made). */
const readDeltaFrame = (payload: Uint8Array, n: number) =>
  readFrame(payload, n, 'float-delta payload', (mode) => (mode === MODE_EXP ? { R, S, order: ORDER } : undefined));

/**
 * floatDeltaCodec.decodeInto for a bf16 chunk against a bf16 parent, with
 * the WASM build of the kernel: decodePredicted's native branch (the same
 * arguments, checks and order), plus the copies into and out of the
 * module's memory. The prediction is the parent's bits as they are (same
 * dtype: predictionBits is a view), so src and p are one array.
 */
function deltaDecodeWasm(k: WasmCodecKernels, payload: Uint8Array, n: number, p: Uint16Array, out: Uint8Array): void {
  const what = 'float-delta payload';
  const f = readDeltaFrame(payload, n);
  const a = nativeRansArgs(f.rans, f.tables, f.model.groupOf);
  const m = k.mark();
  try {
    const st = k.place(a.states);
    const wp = k.place(p);
    const o = k.alloc(Uint16Array, n);
    const pos = k.call('delta16Decode', [k.place(f.rans.buf), f.rans.pos, f.rans.end, st, k.place(f.tables.tab), f.tables.prec, k.place(a.base), wp, BF16_MANT, n, k.place(f.extra), wp, o])!;
    a.states.set(st.view());
    new Uint16Array(out.buffer, out.byteOffset, n).set(o.view());
    settleNativeRans(f.rans, a.states, pos);
  } finally {
    k.release(m);
  }
  f.rans.finish(what);
  if (a.states[4] === 1) corrupt('extra-bits section is shorter than the tokens need');
  if (a.states[4] === 2) corrupt('extra-bits section length does not match the tokens');
}

function deltaDecodeOp(c: Chunk, d: Prepared): Op {
  const { n, deltaPayload } = d;
  const ctx = deltaCtx(c);
  const impls = dispatchImpls(() => () => {
    const out = new Uint8Array(2 * n);
    floatDeltaCodec.decodeInto(deltaPayload, ctx, out);
    return { out: [out] };
  });
  const marks: [WasmCodecKernels, number][] = [];
  for (const { label, k } of wasm) {
    marks.push([k, k.mark()]);
    // resident: the frame parsed once, its stream, tables and extra bits and the parent in place
    const f = readDeltaFrame(deltaPayload, n);
    const a = nativeRansArgs(f.rans, f.tables, f.model.groupOf);
    const r = { buf: k.place(f.rans.buf), st: k.place(a.states), tab: k.place(f.tables.tab), base: k.place(a.base), p: k.place(c.p), extra: k.place(f.extra), out: k.alloc(Uint16Array, n) };
    impls.push({
      label,
      run: () => {
        const out = new Uint8Array(2 * n);
        deltaDecodeWasm(k, deltaPayload, n, c.p, out);
        return { out: [out] };
      },
      kernel: () => {
        r.st.view().set(a.states);
        const t0 = performance.now();
        k.call('delta16Decode', [r.buf, f.rans.pos, f.rans.end, r.st, r.tab, f.tables.prec, r.base, r.p, BF16_MANT, n, r.extra, r.p, r.out]);
        const ms = performance.now() - t0;
        return { out: [bytes(r.out.view().slice())], ms };
      },
    });
  }
  return { name: 'delta-decode', impls, done: () => marks.forEach(([k, m]) => k.release(m)) };
}

/** The bf16 float-exp frame as exp-codec.ts decodeExp reads and checks it; the unpack parameters. */
function readExpFrame(payload: Uint8Array, n: number) {
  const f = readFrame(payload, n, 'float-exp payload', (mode) => {
    const t = mode & 31;
    const kk = mode >>> 5;
    if (t > BF16_MANT || kk > 2 || kk > BF16_MANT - t) return undefined;
    return { R: 1, S: 256, order: ORDER1, params: 1, paramMax: 255 };
  });
  const t = f.mode & 31;
  const kk = f.mode >>> 5;
  const emin = f.params[0]!;
  for (let s = (255 - emin + 1) << kk; s < f.model.alphabet; s++) if (f.model.freq[s]! > 0) corrupt('float-exp payload: exponent out of range');
  return { f, t, kk, emin, low: BF16_MANT - t - kk };
}

/** floatExpCodec.decodeInto for bf16 with the WASM build of the kernel: decodeExp's native branch, plus the copies. */
function expDecodeWasm(k: WasmCodecKernels, payload: Uint8Array, n: number, out: Uint8Array): void {
  const { f, t, kk, emin, low } = readExpFrame(payload, n);
  const a = nativeRansArgs(f.rans, f.tables, GROUP0);
  const m = k.mark();
  try {
    const st = k.place(a.states);
    const o = k.alloc(Uint16Array, n);
    const pos = k.call('expDecode', [k.place(f.rans.buf), f.rans.pos, f.rans.end, st, k.place(f.tables.tab), f.tables.prec, k.place(a.base), null, 0, n, k.place(f.extra), o, BF16_MANT, emin, t, kk, low])!;
    a.states.set(st.view());
    new Uint16Array(out.buffer, out.byteOffset, n).set(o.view());
    settleNativeRans(f.rans, a.states, pos);
  } finally {
    k.release(m);
  }
  f.rans.finish('float-exp payload');
  if (a.states[4] !== 0) corrupt('float-exp payload: raw-bits section length does not match');
}

function expDecodeOp(_c: Chunk, d: Prepared): Op {
  const { n, expPayload } = d;
  const impls = dispatchImpls(() => () => {
    const out = new Uint8Array(2 * n);
    floatExpCodec.decodeInto(expPayload, EXP_CTX, out);
    return { out: [out] };
  });
  const marks: [WasmCodecKernels, number][] = [];
  for (const { label, k } of wasm) {
    marks.push([k, k.mark()]);
    // resident: the frame parsed once, its stream, table and raw bits in place
    const { f, t, kk, emin, low } = readExpFrame(expPayload, n);
    const a = nativeRansArgs(f.rans, f.tables, GROUP0);
    const r = { buf: k.place(f.rans.buf), st: k.place(a.states), tab: k.place(f.tables.tab), base: k.place(a.base), extra: k.place(f.extra), out: k.alloc(Uint16Array, n) };
    impls.push({
      label,
      run: () => {
        const out = new Uint8Array(2 * n);
        expDecodeWasm(k, expPayload, n, out);
        return { out: [out] };
      },
      kernel: () => {
        r.st.view().set(a.states);
        const t0 = performance.now();
        k.call('expDecode', [r.buf, f.rans.pos, f.rans.end, r.st, r.tab, f.tables.prec, r.base, null, 0, n, r.extra, r.out, BF16_MANT, emin, t, kk, low]);
        const ms = performance.now() - t0;
        return { out: [bytes(r.out.view().slice())], ms };
      },
    });
  }
  return { name: 'exp-decode', impls, done: () => marks.forEach(([k, m]) => k.release(m)) };
}

function deltaEncodeOp(c: Chunk, d: Prepared): Op {
  const { n } = d;
  const impls = dispatchImpls(() => () => {
    const t0 = performance.now();
    const ts = tokenise16(c.x, c.p, null, BF16_MANT, R, S);
    const t1 = performance.now();
    const model = buildModel(ts.hist, R, S, ORDER).model; // plain JS for every implementation: not timed
    const t2 = performance.now();
    const stream = ransEncode(ts.tok, c.p, BF16_MANT, n, model);
    const t3 = performance.now();
    return { out: [ts.tok, bytes(ts.hist), ts.extra, stream], ms: t1 - t0 + (t3 - t2) };
  });
  const marks: [WasmCodecKernels, number][] = [];
  for (const { label, k } of wasm) {
    marks.push([k, k.mark()]);
    const { fc, rowOf } = encodeTables(d.model);
    const r = {
      x: k.place(c.x),
      p: k.place(c.p),
      tok: k.alloc(Uint8Array, n),
      hist: k.alloc(Uint32Array, R * S),
      buf: k.alloc(Uint8Array, ((n * 14) >>> 3) + 8),
      fc: k.place(fc),
      rowOf: k.place(rowOf),
      out: k.alloc(Uint8Array, 16 + 2 * (n + 8)),
    };
    impls.push({
      label,
      run: () => {
        const m = k.mark();
        const t0 = performance.now();
        const w = { x: k.place(c.x), p: k.place(c.p), tok: k.alloc(Uint8Array, n), hist: k.alloc(Uint32Array, R * S), buf: k.alloc(Uint8Array, ((n * 14) >>> 3) + 8) };
        w.hist.view().fill(0);
        const len = k.call('tokenise16', [w.x, w.p, null, BF16_MANT, S, w.tok, w.hist, w.buf])!;
        const hist = w.hist.view().slice();
        const extra = w.buf.view().slice(0, len);
        const t1 = performance.now();
        const model = buildModel(hist, R, S, ORDER).model;
        const t2 = performance.now();
        const { fc, rowOf } = encodeTables(model);
        const out = k.alloc(Uint8Array, 16 + 2 * (n + 8));
        const sl = k.call('ransEncode', [w.tok, w.p, BF16_MANT, n, k.place(fc), k.place(rowOf), model.prec, out])!;
        if (sl < 0) throw new Error('wasm ransEncode: a token has no frequency');
        const stream = out.view().slice(0, sl);
        const t3 = performance.now();
        const tok = w.tok.view().slice(); // for the comparison only (a WASM port keeps the tokens in place)
        k.release(m);
        return { out: [tok, bytes(hist), extra, stream], ms: t1 - t0 + (t3 - t2) };
      },
      kernel: () => {
        r.hist.view().fill(0);
        const t0 = performance.now();
        const len = k.call('tokenise16', [r.x, r.p, null, BF16_MANT, S, r.tok, r.hist, r.buf])!;
        const sl = k.call('ransEncode', [r.tok, r.p, BF16_MANT, n, r.fc, r.rowOf, d.model.prec, r.out])!;
        const ms = performance.now() - t0;
        // the JS's model was built from the same histogram, so the same outputs are expected
        return { out: [r.tok.view().slice(), bytes(r.hist.view().slice()), r.buf.view().slice(0, len), r.out.view().slice(0, Math.max(sl, 0))], ms };
      },
    });
  }
  return { name: 'delta-encode', impls, done: () => marks.forEach(([k, m]) => k.release(m)) };
}

// ---------------------------------------------------------------- harness

const OPS = [deltaDecodeOp, expDecodeOp, deltaEncodeOp];
const OP_NAMES = ['delta-decode', 'exp-decode', 'delta-encode'];

function same(a: Uint8Array[], b: Uint8Array[]): string | undefined {
  if (a.length !== b.length) return `${a.length} outputs, expected ${b.length}`;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x.length !== y.length) return `output ${i}: ${x.length} bytes, expected ${y.length}`;
    for (let j = 0; j < x.length; j++) if (x[j] !== y[j]) return `output ${i}: byte ${j} is ${x[j]}, expected ${y[j]}`;
  }
  return undefined;
}

function timed(fn: () => Outcome): { o: Outcome; ms: number } {
  const t0 = performance.now();
  const o = fn();
  const ms = performance.now() - t0;
  return { o, ms: o.ms ?? ms };
}

/** [set][op][impl] -> summed best ms and elements; kernel-only under `impl + ' kernel'`. */
type Totals = Map<string, { ms: number; n: number }>;

function mismatch(c: Chunk, op: Op, label: string, why: string): never {
  console.error(`MISMATCH: ${c.name} ${op.name} ${label} differs from the JS reference: ${why}`);
  process.exit(1);
}

function measureChunk(c: Chunk, totals: Totals): void {
  const d = prepare(c);
  for (const make of OPS) {
    const op = make(c, d);
    const best = new Map<string, number>();
    let ref: Uint8Array[] | undefined;
    for (let rep = 0; rep < RUNS; rep++) {
      for (const im of op.impls) {
        im.before?.();
        const { o, ms } = timed(im.run);
        if (rep === 0) {
          if (im.label === 'js') {
            ref = o.out;
            // the JS decoders must give back the chunk: the reference itself is right
            if (op.name.endsWith('-decode')) {
              const why = same(o.out, [bytes(c.x)]);
              if (why) throw new Error(`${c.name} ${op.name}: the JS reference does not give back the chunk (${why})`);
            }
          } else {
            const why = same(o.out, ref!);
            if (why) mismatch(c, op, im.label, why);
          }
        }
        best.set(im.label, Math.min(best.get(im.label) ?? Infinity, ms));
        if (im.kernel) {
          const { o: ko, ms: k } = timed(im.kernel);
          if (rep === 0) {
            const why = same(ko.out, ref!);
            if (why) mismatch(c, op, `${im.label} kernel`, why);
          }
          best.set(`${im.label} kernel`, Math.min(best.get(`${im.label} kernel`) ?? Infinity, k));
        }
      }
    }
    op.done?.();
    useCodecKernels('auto');
    for (const [label, ms] of best) {
      const key = `${op.name}|${label}`;
      const t = totals.get(key) ?? { ms: 0, n: 0 };
      t.ms += ms;
      t.n += c.x.length;
      totals.set(key, t);
    }
    const line = [...best].map(([l, ms]) => `${l} ${((ms * 1e6) / c.x.length).toFixed(2)}`).join(', ');
    console.error(`  ${c.name.padEnd(44)} ${op.name.padEnd(12)} ns/elt: ${line}`);
  }
}

function table(title: string, totals: Totals): void {
  const ns = (op: string, label: string): number | undefined => {
    const t = totals.get(`${op}|${label}`);
    return t ? (t.ms * 1e6) / t.n : undefined;
  };
  const labels = ['js', ...(native.kernels ? ['native'] : []), ...wasm.map((w) => w.label)];
  const f = (v: number | undefined, d = 2): string => (v === undefined ? '–' : v.toFixed(d));
  console.log(`\n${title}`);
  console.log('| operation | implementation | ns/element | kernel only ns/element | × JS | × native | kernel × native |');
  console.log('| --- | --- | ---: | ---: | ---: | ---: | ---: |');
  for (const op of OP_NAMES) {
    const js = ns(op, 'js');
    const nat = ns(op, 'native');
    for (const l of labels) {
      const v = ns(op, l);
      const k = ns(op, `${l} kernel`);
      console.log(
        `| ${op} | ${l} | ${f(v)} | ${f(k)} | ${f(js && v ? js / v : undefined)} | ${f(nat && v ? nat / v : undefined)} | ${f(nat && k ? nat / k : undefined)} |`,
      );
    }
  }
}

console.log(`codec kernels: best of ${RUNS}, chunks of up to ${CHUNK} bf16 elements; node ${process.version}`);
console.log(`native: ${native.kernels ? 'build/Release/at1_codec_kernels.node (gcc -O3, binding.gyp)' : 'not loaded'}`);
console.log(clang.ok ? `wasm: ${clang.version}; clang ${wasmFlags(false).join(' ')} [-msimd128], src/kernels/native/codec-kernels.c unchanged` : `wasm: skipped (${clang.why})`);
console.log('× JS, × native: how many times faster than that implementation (higher is faster); WASM ns/element include the copies in and out of its memory.');

const sets: { title: string; chunks: () => Chunk[] }[] = [];
if (!values['no-synthetic']) sets.push({ title: 'synthetic Llama-1B-shaped bf16 pair (bench/synthetic.ts), layer-0 q_proj, gate_proj, down_proj', chunks: syntheticChunks });
const fixDir = join(values.data!, 'tinystories');
if (existsSync(join(fixDir, 'code-full.safetensors')))
  sets.push({ title: `fixture family ${fixDir}: code-full and prose-step0025 vs base`, chunks: () => [fixtureChunk(fixDir, 'code-full.safetensors', 'base.safetensors'), fixtureChunk(fixDir, 'prose-step0025.safetensors', 'base.safetensors')] });
else console.error(`no fixture family at ${fixDir}; its table is skipped (pass --data)`);

for (const set of sets) {
  console.error(`\n${set.title}`);
  const totals: Totals = new Map();
  for (const c of set.chunks()) measureChunk(c, totals);
  table(set.title, totals);
}
