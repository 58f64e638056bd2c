/**
 * Ratio and speed of the numeric codecs (src/codec/numeric-codecs.ts)
 * against the published BitX baseline, on the fixture family.
 *
 *   node --import tsx bench/experiments/codec-ratio.ts [fixturesDir] [--no-speed] [--elements=64M]
 *
 * For each version against its family.json parent: raw bytes (the file),
 * BitX bytes, our bytes at level 'max' and 'fast', and ratios; then family
 * totals; then alternative reference choices (code-full-fp32 vs code-full,
 * base-fp32 vs base, code-lastlayer vs code-full, ...); then encode and
 * decode+SHA-256 throughput on a synthetic bf16 fine-tune pair.
 *
 * Accounting (the same for both sides): bit-identical tensors are free; every
 * stored chunk costs its payload plus OBJECT_OVERHEAD bytes of object header;
 * the safetensors header is counted as its zstd -19 size. Ours = per chunk
 * (<= 2^21 elements) the smallest payload over our codecs that accept it,
 * with raw as the floor (the registry's fallback). Codec 12 (trajectory) is
 * given the parent's parent as second reference where it exists.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { compress } from 'zstd-napi';
import { advancedCodecs } from '../../src/codec/numeric-codecs.js';
import type { ChunkContext, Codec, Level, RefChunk } from '../../src/codec/types.js';

const OBJECT_OVERHEAD = 40;
const CHUNK_ELEMENTS = 1 << 21;
const ELEM_BYTES: Record<string, number> = { BF16: 2, F16: 2, F32: 4, F64: 8, I8: 1, U8: 1, I16: 2, I32: 4, I64: 8 };

interface Tensor {
  dtype: string;
  shape: number[];
  bytes: Uint8Array;
}
interface Model {
  size: number;
  header: Uint8Array;
  tensors: Map<string, Tensor>;
}

/** Minimal safetensors reader: 8-byte LE header length, JSON header, data. */
function readSafetensors(path: string): Model {
  const b = readFileSync(path);
  const n = Number(b.readBigUInt64LE(0));
  const header = new Uint8Array(b.buffer, b.byteOffset + 8, n);
  const h = JSON.parse(Buffer.from(header).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const tensors = new Map<string, Tensor>();
  for (const [name, v] of Object.entries(h)) {
    if (name === '__metadata__') continue;
    const [s, e] = v.data_offsets;
    // copy: aligned, independent of the file buffer
    tensors.set(name, { dtype: v.dtype, shape: v.shape, bytes: new Uint8Array(b.subarray(8 + n + s, 8 + n + e)) });
  }
  return { size: b.length, header, tensors };
}

const zlen = (a: Uint8Array, level: number): number => compress(a, { compressionLevel: level }).length;

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.length).equals(Buffer.from(b.buffer, b.byteOffset, b.length));
}

/** Byte planes: plane k holds byte k of every w-byte element. */
function planes(a: Uint8Array, w: number): Uint8Array[] {
  const n = a.length / w;
  const out = Array.from({ length: w }, () => new Uint8Array(n));
  for (let i = 0; i < n; i++) for (let k = 0; k < w; k++) out[k]![i] = a[i * w + k]!;
  return out;
}

/** BitX as published: XOR with the parent's same-name tensor, byte planes, zstd -3 each; byte-grouped zstd -3 without one. */
function bitxBytes(t: Tensor, p: Tensor | undefined): number {
  const w = ELEM_BYTES[t.dtype] ?? 1;
  if (p && p.dtype === t.dtype && p.bytes.length === t.bytes.length && JSON.stringify(p.shape) === JSON.stringify(t.shape)) {
    if (equalBytes(p.bytes, t.bytes)) return 0;
    const x = new Uint8Array(t.bytes.length);
    for (let i = 0; i < x.length; i++) x[i] = t.bytes[i]! ^ p.bytes[i]!;
    return planes(x, w).reduce((s, pl) => s + zlen(pl, 3), 0) + OBJECT_OVERHEAD;
  }
  return planes(t.bytes, w).reduce((s, pl) => s + zlen(pl, 3), 0) + OBJECT_OVERHEAD;
}

/** Our size for a tensor: per chunk, min over accepting codecs (raw as floor), verified by decoding. */
function oursBytes(t: Tensor, refs: (Tensor | undefined)[], level: Level, codecs: readonly Codec[], tally: Map<string, number>): number {
  if (refs[0] && equalBytes(refs[0].bytes, t.bytes)) return 0;
  const w = ELEM_BYTES[t.dtype] ?? 1;
  const n = t.bytes.length / w;
  let total = 0;
  for (let o = 0; o < Math.max(1, n); o += CHUNK_ELEMENTS) {
    const l = Math.min(CHUNK_ELEMENTS, n - o);
    const raw = t.bytes.subarray(o * w, (o + l) * w);
    let best = raw.length;
    let bestName = 'raw';
    for (const c of codecs) {
      const rc: RefChunk[] = [];
      for (let k = 0; k < c.refCount; k++) {
        const r = refs[k];
        if (!r) break;
        const rw = ELEM_BYTES[r.dtype] ?? 1;
        if (r.bytes.length / rw !== n) break;
        rc.push({ dtype: r.dtype, bytes: r.bytes.subarray(o * rw, (o + l) * rw) });
      }
      const ctx: ChunkContext = { dtype: t.dtype, refs: rc };
      if (rc.length < c.refCount || !c.accepts(raw.length, ctx)) continue;
      const payload = c.encode(raw, ctx, level);
      if (payload.length < best) {
        if (!equalBytes(c.decode(payload, raw.length, ctx), raw)) throw new Error(`${c.name} does not round-trip`);
        best = payload.length;
        bestName = c.name;
      }
    }
    tally.set(bestName, (tally.get(bestName) ?? 0) + 1);
    total += best + OBJECT_OVERHEAD;
  }
  return total;
}

interface Row {
  version: string;
  ref: string;
  raw: number;
  bitx: number;
  max: number;
  fast: number;
  picks: string;
}

function measure(dir: string, version: string, refNames: (string | null)[], cache: Map<string, Model>): Row {
  const get = (name: string): Model => {
    let m = cache.get(name);
    if (!m) {
      m = readSafetensors(join(dir, `${name}.safetensors`));
      cache.set(name, m);
    }
    return m;
  };
  const v = get(version);
  const refs = refNames.map((r) => (r ? get(r) : undefined));
  const hdr = zlen(v.header, 19);
  let bitx = hdr;
  let max = hdr;
  let fast = hdr;
  const tally = new Map<string, number>();
  for (const [name, t] of v.tensors) {
    const rt = refs.map((r) => r?.tensors.get(name));
    bitx += bitxBytes(t, rt[0]);
    max += oursBytes(t, rt, 'max', advancedCodecs, tally);
    fast += oursBytes(t, rt, 'fast', advancedCodecs, new Map());
  }
  const picks = [...tally.entries()].map(([k, c]) => `${k}:${c}`).join(' ');
  return { version, ref: refNames.filter(Boolean).join('+') || '-', raw: v.size, bitx, max, fast, picks };
}

function printRows(title: string, rows: Row[]): void {
  console.log(`\n## ${title}\n`);
  console.log('| version | reference(s) | raw bytes | BitX bytes | BitX ratio | max bytes | max ratio | max / BitX | fast bytes | fast ratio | fast / BitX | max picks |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const r of rows)
    console.log(
      `| ${r.version} | ${r.ref} | ${r.raw} | ${r.bitx} | ${(r.bitx / r.raw).toFixed(3)} | ${r.max} | ${(r.max / r.raw).toFixed(4)} | ${(r.max / r.bitx).toFixed(3)} | ${r.fast} | ${(r.fast / r.raw).toFixed(4)} | ${(r.fast / r.bitx).toFixed(3)} | ${r.picks} |`,
    );
}

function total(label: string, rows: Row[]): void {
  const raw = rows.reduce((s, r) => s + r.raw, 0);
  const b = rows.reduce((s, r) => s + r.bitx, 0);
  const m = rows.reduce((s, r) => s + r.max, 0);
  const f = rows.reduce((s, r) => s + r.fast, 0);
  console.log(`| **${label}** | | ${raw} | ${b} | ${(b / raw).toFixed(3)} | ${m} | ${(m / raw).toFixed(4)} | ${(m / b).toFixed(3)} | ${f} | ${(f / raw).toFixed(4)} | ${(f / b).toFixed(3)} | |`);
}

function targets(rows: Row[], best: Row[], alt: Row[]): void {
  const raw = best.reduce((a, r) => a + r.raw, 0);
  const fam = best.reduce((a, r) => a + r.max, 0) / raw;
  const famParents = rows.reduce((a, r) => a + r.max, 0) / raw;
  console.log('\n## Targets (level max)\n');
  console.log(`- family <= 0.26 of raw: ${fam.toFixed(4)} with best references, ${famParents.toFixed(4)} with family.json parents`);
  const worst = best.filter((r) => r.ref !== '-').map((r) => `${r.version} ${(r.max / r.bitx).toFixed(3)}`);
  console.log(`- every version with a relative <= 0.80 x BitX: ${worst.join(', ')}`);
  const standalone = alt.find((r) => r.version === 'base' && r.ref === '-');
  if (standalone) console.log(`- standalone bf16 <= 0.66 of raw: base ${(standalone.max / standalone.raw).toFixed(4)}`);
  const b = rows.find((r) => r.version === 'base');
  if (b) console.log(`- base against base-fp32 <= 0.01 of raw: ${(b.max / b.raw).toFixed(4)}`);
}

// ---------------------------------------------------------------- speed

/** Deterministic synthetic bf16 pair: base ~ N(0, 0.02), fine-tune = base + N(0, 0.0004), both RNE-rounded. */
function syntheticPair(n: number): { base: Uint8Array; ft: Uint8Array } {
  let s = 12345;
  const rnd = (): number => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
  const gauss = (): number => (rnd() + rnd() + rnd() + rnd() - 2) * 1.7320508;
  const f32 = new Float32Array(1);
  const u32 = new Uint32Array(f32.buffer);
  const bf = (x: number): number => {
    f32[0] = x;
    const u = u32[0]!;
    return ((u + 0x7fff + ((u >>> 16) & 1)) / 65536) & 0xffff;
  };
  const base = new Uint16Array(n);
  const ft = new Uint16Array(n);
  for (let i = 0; i < n; i++) {
    const w = gauss() * 0.02;
    base[i] = bf(w);
    ft[i] = bf(w + gauss() * 0.0004);
  }
  return { base: new Uint8Array(base.buffer), ft: new Uint8Array(ft.buffer) };
}

/** A rank-8 update of the synthetic base, 4096 wide (a merged LoRA): x = bf16(base + B A). */
function lowRankOf(base: Uint8Array, n: number): Uint8Array {
  const cols = 4096;
  const rows = Math.floor(n / cols);
  const r = 8;
  let s = 777;
  const rnd = (): number => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296 - 0.5;
  };
  const B = Float64Array.from({ length: rows * r }, rnd);
  const A = Float64Array.from({ length: r * cols }, () => rnd() * 0.002);
  const b16 = new Uint16Array(base.buffer, base.byteOffset, n);
  const out = new Uint16Array(n);
  const f32 = new Float32Array(1);
  const u32 = new Uint32Array(f32.buffer);
  for (let i = 0; i < n; i++) {
    const row = Math.floor(i / cols);
    const c = i % cols;
    let d = 0;
    if (row < rows) for (let l = 0; l < r; l++) d += B[row * r + l]! * A[l * cols + c]!;
    u32[0] = b16[i]! << 16;
    f32[0] = f32[0]! + d;
    const u = u32[0]!;
    out[i] = ((u + 0x7fff + ((u >>> 16) & 1)) / 65536) & 0xffff;
  }
  return new Uint8Array(out.buffer);
}

function speed(n: number): void {
  console.log(`\n## Throughput: synthetic bf16 pairs, ${n / 2 ** 20}M elements, chunks of 2^21, one thread, wall clock\n`);
  const { base, ft } = syntheticPair(n);
  const { base: ft2 } = syntheticPair(n); // an unrelated "grandparent" for float-traj (worst case for its contexts)
  const nl = Math.min(n, 16 * 2 ** 20);
  const lora = lowRankOf(base, nl);
  const byName = new Map(advancedCodecs.map((c) => [c.name, c]));
  const cases: [string, Level, string, Uint8Array, number][] = [
    ['float-delta', 'fast', 'fine-tune vs base', ft, 1],
    ['float-delta', 'max', 'fine-tune vs base', ft, 1],
    ['float-traj', 'max', 'fine-tune vs base, 2nd ref', ft, 2],
    ['float-exp', 'max', 'fine-tune standalone', ft, 0],
    ['float-lowrank', 'max', 'fine-tune vs base (no structure: escape)', ft, 1],
    ['float-lowrank', 'max', `rank-8 update, ${nl / 2 ** 20}M elements`, lora, 1],
  ];
  console.log('| codec | level | data | ratio | encode MB/s (input) | decode + SHA-256 MB/s (output) |');
  console.log('|---|---|---|---|---|---|');
  for (const [name, level, what, data, nrefs] of cases) {
    const c = byName.get(name)!;
    const m = data.length / 2;
    const ctxOf = (o: number, l: number): ChunkContext => ({
      dtype: 'BF16',
      refs: [base, ft2].slice(0, nrefs).map((r) => ({ dtype: 'BF16', bytes: r.subarray(2 * o, 2 * (o + l)) })),
    });
    // warm-up on one chunk (JIT), not timed
    const w = c.encode(data.subarray(0, 2 * CHUNK_ELEMENTS), ctxOf(0, CHUNK_ELEMENTS), level);
    c.decode(w, 2 * CHUNK_ELEMENTS, ctxOf(0, CHUNK_ELEMENTS));
    const payloads: Uint8Array[] = [];
    let out = 0;
    let t0 = performance.now();
    for (let o = 0; o < m; o += CHUNK_ELEMENTS) {
      const l = Math.min(CHUNK_ELEMENTS, m - o);
      const p = c.encode(data.subarray(2 * o, 2 * (o + l)), ctxOf(o, l), level);
      payloads.push(p);
      out += p.length;
    }
    const te = (performance.now() - t0) / 1000;
    t0 = performance.now();
    let k = 0;
    for (let o = 0; o < m; o += CHUNK_ELEMENTS) {
      const l = Math.min(CHUNK_ELEMENTS, m - o);
      const d = c.decode(payloads[k++]!, 2 * l, ctxOf(o, l));
      createHash('sha256').update(d).digest();
    }
    const td = (performance.now() - t0) / 1000;
    const mb = (2 * m) / 1e6;
    console.log(`| ${name} | ${level} | ${what} | ${(out / (2 * m)).toFixed(4)} | ${(mb / te).toFixed(0)} | ${(mb / td).toFixed(0)} |`);
  }
}

// ---------------------------------------------------------------- main

function main(): void {
  const args = process.argv.slice(2);
  const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
  const dir = resolve(args.find((a) => !a.startsWith('--')) ?? join(root, '../shared/fixtures/tinystories'));
  const elemArg = args.find((a) => a.startsWith('--elements='));
  const elements = elemArg ? Math.round(Number.parseFloat(elemArg.slice(11)) * (elemArg.endsWith('M') ? 2 ** 20 : 1)) : 64 * 2 ** 20;
  if (existsSync(join(dir, 'family.json'))) {
    const fam = JSON.parse(readFileSync(join(dir, 'family.json'), 'utf8')) as { versions: { name: string; parent: string | null }[] };
    const parentOf = new Map(fam.versions.map((v) => [v.name, v.parent]));
    const cache = new Map<string, Model>();
    const rows = fam.versions.map((v) => {
      const p = v.parent;
      const gp = p ? (parentOf.get(p) ?? null) : null;
      return measure(dir, v.name, [p, gp], cache);
    });
    printRows('Each version against its family.json parent (max: grandparent as 2nd reference where present)', rows);
    total('whole family', rows);
    // Alternative references: only those whose relative is itself stored in the family.
    const alt: [string, (string | null)[]][] = [
      ['code-full-fp32', ['code-full', 'base-fp32']],
      ['code-full-fp32', ['code-full']],
      ['base-fp32', ['base']],
      ['base', []],
      ['code-lastlayer', ['code-full', 'base']],
      ['code-lora', ['code-full', 'base']],
      ['prose-step0050', ['prose-step0025']],
      ['prose-step0100', ['prose-step0050']],
      ['prose-step0150', ['prose-step0100']],
    ];
    const altRows = alt.filter(([v]) => parentOf.has(v)).map(([v, refs]) => measure(dir, v, refs, cache));
    printRows('Alternative reference choices', altRows);
    // Best choice per version without cycles: family.json parents, except code-full-fp32 against its own bf16 rounding.
    const best = rows.map((r) => {
      const cands = altRows.filter((a) => a.version === r.version && !(r.version === 'base-fp32' || r.version === 'base'));
      // BitX stays at its own plan (family.json parent): the baseline as published
      return { ...cands.reduce((b, a) => (a.max < b.max ? a : b), r), bitx: r.bitx };
    });
    printRows('Best reference per version (no cycles: base-fp32 standalone, base against it; BitX as published)', best);
    total('whole family, best references', best);
    targets(rows, best, altRows);
  } else console.log(`(no fixture family at ${dir}: ratio tables skipped)`);
  if (!args.includes('--no-speed')) speed(elements);
}

main();
