/**
 * The codec's hot loops, four ways, on the same chunks in the same run: the
 * JS reference, the native addon (src/kernels/native/codec-kernels.c), and
 * that same C source compiled to WebAssembly with Debian clang + lld at -O3
 * and at -O3 -msimd128 (bench/wasm/). Issue 14 asked to measure WebAssembly
 * and a native addon on this machine and choose; this is the measurement.
 *
 *   npm run bench:kernels -- [--data ../shared/fixtures] [--chunk 1048576] [--runs 7] [--no-synthetic]
 *
 * Operations, per chunk (a bf16 chunk x and its parent p):
 *   rans-decode   rANS token decode under the delta model (context = p's sign+exponent, up to 256 groups)
 *   rebuild16     tokens + extra bits + p -> values
 *   exp-decode    float-exp payload -> values (readFrame, rANS decode, exponent unpack)
 *   delta-encode  tokenise16 + rANS encode (the model build between them, plain JS for all, is not timed)
 * Each figure is ns per element, the best of --runs, the implementations run
 * round-robin so they share the machine's noise. WASM timings include the
 * copies into and out of the module's memory (what at1 would pay: its
 * arrays live on the JS heap); "kernel" is the calls alone on arrays
 * already in place. Every implementation's output is compared with the JS
 * output byte for byte; a difference stops the bench (exit 1).
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
import { buildModel, type TokenModel } from '../src/codec/entropy/model.js';
import { RansStream, buildDecodeTables, ransDecodeTokens, ransEncode } from '../src/codec/entropy/rans.js';
import { rebuild16, tokenise16 } from '../src/codec/numeric/delta-core.js';
import { floatExpCodec } from '../src/codec/numeric/exp-codec.js';
import { alphabetFor, readFrame } from '../src/codec/numeric/frame.js';
import { llamaShapes, writeChain, type Shape } from './synthetic.js';
import { WasmCodecKernels, buildCodecKernelsWasm, clangStatus, wasmFlags, type WasmArray } from './wasm/codec-kernels-wasm.js';

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

// ---------------------------------------------------------------- the four operations

const BF16_MANT = 7;
const R = 2 << 8; // raw contexts of a bf16 delta chunk: sign+exponent of the prediction
const S = alphabetFor(16);

/** delta-codec.ts contextOrder(bf16, no trajectory): exponent-major, sign-minor. */
const ORDER = (() => {
  const o = new Int32Array(R);
  let j = 0;
  for (let e = 0; e < 256; e++) for (let s = 0; s < 2; s++) o[j++] = (s << 8) | e;
  return o;
})();

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

function rowBase(groupOf: Uint16Array, prec: number): Int32Array {
  const base = new Int32Array(groupOf.length);
  for (let r = 0; r < groupOf.length; r++) base[r] = groupOf[r]! << prec;
  return base;
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
  /** WASM only: the kernel calls alone, on arrays already in the module's memory. */
  kernel?: () => Outcome;
}
interface Op {
  name: string;
  impls: Impl[];
  /** Called after all runs of a chunk (e.g. to give back WASM memory). */
  done?: () => void;
}

/** Reference data for a chunk, made once with the JS kernels. */
function prepare(c: Chunk) {
  useCodecKernels('js');
  const n = c.x.length;
  const ts = tokenise16(c.x, c.p, null, BF16_MANT, R, S);
  const model = buildModel(ts.hist, R, S, ORDER).model;
  const stream = ransEncode(ts.tok, c.p, BF16_MANT, n, model);
  const tables = buildDecodeTables(model);
  const expPayload = floatExpCodec.encode(bytes(c.x), { dtype: 'BF16', refs: [] }, 'max');
  return { n, ts, model, stream, tables, expPayload };
}
type Prepared = ReturnType<typeof prepare>;

/** The dispatching (product) call for the JS reference and the native addon. */
function dispatchImpls(make: () => () => Outcome): Impl[] {
  const out: Impl[] = [{ label: 'js', before: () => useCodecKernels('js'), run: make() }];
  if (native.kernels) out.push({ label: 'native', before: () => useCodecKernels('native'), run: make() });
  return out;
}

function ransDecodeOp(c: Chunk, d: Prepared): Op {
  const { n, stream, tables, model } = d;
  const run = (): Outcome => {
    const tok = new Uint8Array(n);
    const rs = new RansStream(stream, 0, stream.length);
    ransDecodeTokens(rs, tables, model.groupOf, c.p, BF16_MANT, n, tok);
    return { out: [tok, bytes(new Float64Array([rs.pos, rs.x0, rs.x1, rs.x2, rs.x3]))] };
  };
  const impls = dispatchImpls(() => run);
  const marks: [WasmCodecKernels, number][] = [];
  for (const { label, k } of wasm) {
    const rs0 = new RansStream(stream, 0, stream.length);
    const st0 = new Int32Array([rs0.x0, rs0.x1, rs0.x2, rs0.x3]);
    marks.push([k, k.mark()]);
    // resident copies for the kernel-only timing
    const r = { buf: k.place(stream), st: k.place(st0), tab: k.place(tables.tab), base: k.place(rowBase(model.groupOf, tables.prec)), p: k.place(c.p), tok: k.alloc(Uint8Array, n) };
    impls.push({
      label,
      run: () => {
        const m = k.mark();
        const rs = new RansStream(stream, 0, stream.length);
        const st = new Int32Array([rs.x0, rs.x1, rs.x2, rs.x3]);
        const base = rowBase(model.groupOf, tables.prec);
        const w = { buf: k.place(rs.buf), st: k.place(st), tab: k.place(tables.tab), base: k.place(base), p: k.place(c.p), tok: k.alloc(Uint8Array, n) };
        const pos = k.call('ransDecode', [w.buf, rs.pos, rs.end, w.st, w.tab, tables.prec, w.base, w.p, BF16_MANT, n, w.tok])!;
        const tok = w.tok.view().slice();
        const s = w.st.view().slice();
        k.release(m);
        return { out: [tok, bytes(new Float64Array([pos, s[0]!, s[1]!, s[2]!, s[3]!]))] };
      },
      kernel: () => {
        r.st.view().set(st0);
        const t0 = performance.now();
        k.call('ransDecode', [r.buf, 16, stream.length, r.st, r.tab, tables.prec, r.base, r.p, BF16_MANT, n, r.tok]);
        return { out: [], ms: performance.now() - t0 };
      },
    });
  }
  return { name: 'rans-decode', impls, done: () => marks.forEach(([k, m]) => k.release(m)) };
}

function rebuildOp(c: Chunk, d: Prepared): Op {
  const { n, ts } = d;
  const impls = dispatchImpls(() => () => {
    const out = new Uint16Array(n);
    rebuild16(out, ts.tok, c.p, ts.extra);
    return { out: [bytes(out)] };
  });
  const marks: [WasmCodecKernels, number][] = [];
  for (const { label, k } of wasm) {
    marks.push([k, k.mark()]);
    const r = { out: k.alloc(Uint16Array, n), tok: k.place(ts.tok), p: k.place(c.p), extra: k.place(ts.extra) };
    impls.push({
      label,
      run: () => {
        const m = k.mark();
        const w = { out: k.alloc(Uint16Array, n), tok: k.place(ts.tok), p: k.place(c.p), extra: k.place(ts.extra) };
        if (k.call('rebuild16', [w.out, w.tok, w.p, w.extra]) !== 0) throw new Error('wasm rebuild16: bad extra bits');
        const out = w.out.view().slice();
        k.release(m);
        return { out: [bytes(out)] };
      },
      kernel: () => {
        const t0 = performance.now();
        k.call('rebuild16', [r.out, r.tok, r.p, r.extra]);
        return { out: [], ms: performance.now() - t0 };
      },
    });
  }
  return { name: 'rebuild16', impls, done: () => marks.forEach(([k, m]) => k.release(m)) };
}

/** exp-codec.ts decodeExp for bf16 with the WASM kernels: tokens stay in the module's memory between the two calls. */
function expDecodeWasm(k: WasmCodecKernels, payload: Uint8Array, n: number): Uint8Array {
  const f = readFrame(payload, n, 'float-exp payload', (mode) => {
    const t = mode & 31;
    const kk = mode >>> 5;
    if (t > BF16_MANT || kk > 2 || kk > BF16_MANT - t) return undefined;
    return { R: 1, S: 256, order: new Int32Array([0]), params: 1, paramMax: 255 };
  });
  const t = f.mode & 31;
  const kk = f.mode >>> 5;
  const emin = f.params[0]!;
  const low = BF16_MANT - t - kk;
  for (let s = (255 - emin + 1) << kk; s < f.model.alphabet; s++) if (f.model.freq[s]! > 0) throw new Error('float-exp payload: exponent out of range');
  const m = k.mark();
  const rs = f.rans;
  const st = k.place(new Int32Array([rs.x0, rs.x1, rs.x2, rs.x3]));
  const tok = k.alloc(Uint8Array, n);
  rs.pos = k.call('ransDecode', [k.place(rs.buf), rs.pos, rs.end, st, k.place(f.tables.tab), f.tables.prec, k.place(new Int32Array([0])), null, 0, n, tok])!;
  const s = st.view();
  [rs.x0, rs.x1, rs.x2, rs.x3] = [s[0]!, s[1]!, s[2]!, s[3]!];
  rs.finish('float-exp payload');
  const out = k.alloc(Uint16Array, n);
  if (k.call('expUnpack', [out, tok, k.place(f.extra), BF16_MANT, emin, t, kk, low]) !== 0) throw new Error('float-exp payload: raw-bits section length does not match');
  const res = bytes(out.view().slice());
  k.release(m);
  return res;
}

function expDecodeOp(c: Chunk, d: Prepared): Op {
  const { n, expPayload } = d;
  const ctx = { dtype: 'BF16', refs: [] };
  const impls = dispatchImpls(() => () => {
    const out = new Uint8Array(2 * n);
    floatExpCodec.decodeInto(expPayload, ctx, out);
    return { out: [out] };
  });
  const marks: [WasmCodecKernels, number][] = [];
  for (const { label, k } of wasm) {
    marks.push([k, k.mark()]);
    // resident: the frame parsed once, the stream, table and raw bits in place
    const f = readFrame(expPayload, n, 'float-exp payload', () => ({ R: 1, S: 256, order: new Int32Array([0]), params: 1, paramMax: 255 }));
    const t = f.mode & 31;
    const kk = f.mode >>> 5;
    const st0 = new Int32Array([f.rans.x0, f.rans.x1, f.rans.x2, f.rans.x3]);
    const r = { buf: k.place(f.rans.buf), st: k.place(st0), tab: k.place(f.tables.tab), base: k.place(new Int32Array([0])), tok: k.alloc(Uint8Array, n), out: k.alloc(Uint16Array, n), extra: k.place(f.extra) };
    impls.push({
      label,
      run: () => ({ out: [expDecodeWasm(k, expPayload, n)] }),
      kernel: () => {
        r.st.view().set(st0);
        const t0 = performance.now();
        k.call('ransDecode', [r.buf, f.rans.pos, f.rans.end, r.st, r.tab, f.tables.prec, r.base, null, 0, n, r.tok]);
        k.call('expUnpack', [r.out, r.tok, r.extra, BF16_MANT, f.params[0]!, t, kk, BF16_MANT - t - kk]);
        return { out: [], ms: performance.now() - t0 };
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
        k.call('tokenise16', [r.x, r.p, null, BF16_MANT, S, r.tok, r.hist, r.buf]);
        k.call('ransEncode', [r.tok, r.p, BF16_MANT, n, r.fc, r.rowOf, d.model.prec, r.out]);
        return { out: [], ms: performance.now() - t0 };
      },
    });
  }
  return { name: 'delta-encode', impls, done: () => marks.forEach(([k, m]) => k.release(m)) };
}

// ---------------------------------------------------------------- harness

const OPS = [ransDecodeOp, rebuildOp, expDecodeOp, deltaEncodeOp];
const OP_NAMES = ['rans-decode', 'rebuild16', 'exp-decode', 'delta-encode'];

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

function measureChunk(c: Chunk, totals: Totals): void {
  const d = prepare(c);
  // the JS decode must give back the chunk: the reference itself is right
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
            if (op.name === 'rebuild16' || op.name === 'exp-decode') {
              const why = same(o.out, [bytes(c.x)]);
              if (why) throw new Error(`${c.name} ${op.name}: the JS reference does not give back the chunk (${why})`);
            }
          } else {
            const why = same(o.out, ref!);
            if (why) {
              console.error(`MISMATCH: ${c.name} ${op.name} ${im.label} differs from the JS reference: ${why}`);
              process.exit(1);
            }
          }
        }
        best.set(im.label, Math.min(best.get(im.label) ?? Infinity, ms));
        if (im.kernel) {
          const k = timed(im.kernel).ms;
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
