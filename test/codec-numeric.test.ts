/**
 * The numeric codecs (ids 10-29): byte-exact round trips on real fixture
 * data (or synthetic weights when the fixtures are absent), on every bf16 /
 * f16 bit pattern, on float32 specials, across dtypes, on edge lengths; and
 * malformed payloads must raise At1Error('E_CORRUPT'), never crash or hang.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { At1Error } from '../src/errors.js';
import { advancedCodecs } from '../src/codec/numeric-codecs.js';
import { f16ToF32, f32ToBf16, f32ToF16, ord16, ord32, unord16, unord32 } from '../src/codec/numeric/float.js';
import type { ChunkContext, Codec, Level, RefChunk } from '../src/codec/types.js';

const FIXTURES = process.env.AT1_FIXTURES ?? join(import.meta.dirname, '../../shared/fixtures/tinystories');
const LEVELS: Level[] = ['fast', 'max'];
const byName = new Map(advancedCodecs.map((c) => [c.name, c]));
const codec = (name: string): Codec => byName.get(name)!;

function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}
const u16 = (a: ArrayLike<number>): Uint8Array => new Uint8Array(Uint16Array.from(a).buffer);
const u32 = (a: ArrayLike<number>): Uint8Array => new Uint8Array(Uint32Array.from(a).buffer);

function bf16(x: number): number {
  return f32ToBf16(new Uint32Array(Float32Array.of(x).buffer)[0]!);
}

/** encode at every level, decode, compare; returns the max-level payload size. */
function rt(c: Codec, raw: Uint8Array, ctx: ChunkContext, what = c.name): number {
  assert.ok(c.accepts(raw.length, ctx), `${what}: accepts`);
  let size = 0;
  for (const level of LEVELS) {
    const p = c.encode(raw, ctx, level);
    const again = c.encode(raw, ctx, level);
    assert.deepEqual(again, p, `${what} ${level}: deterministic`);
    const d = c.decode(p, raw.length, ctx);
    assert.equal(d.length, raw.length);
    assert.ok(Buffer.from(d).equals(Buffer.from(raw)), `${what} ${level}: round trip`);
    if (level === 'max') size = p.length;
  }
  return size;
}

const ref = (dtype: string, bytes: Uint8Array): RefChunk => ({ dtype, bytes });

// ------------------------------------------------------------------ real data

interface T {
  dtype: string;
  bytes: Uint8Array;
}
function readSafetensors(path: string): Map<string, T> {
  const b = readFileSync(path);
  const n = Number(b.readBigUInt64LE(0));
  const h = JSON.parse(b.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; data_offsets: [number, number] }>;
  const out = new Map<string, T>();
  for (const [k, v] of Object.entries(h)) if (k !== '__metadata__') out.set(k, { dtype: v.dtype, bytes: new Uint8Array(b.subarray(8 + n + v.data_offsets[0], 8 + n + v.data_offsets[1])) });
  return out;
}

/** A small family: the fixture files when present, otherwise synthetic bf16 weights and a fine-tune. */
function family(): { base: Map<string, T>; ft: Map<string, T>; ft2: Map<string, T>; f32: Map<string, T> } {
  if (existsSync(join(FIXTURES, 'family.json'))) {
    const load = (n: string): Map<string, T> => readSafetensors(join(FIXTURES, `${n}.safetensors`));
    return { base: load('base'), ft: load('prose-step0050'), ft2: load('prose-step0025'), f32: load('base-fp32') };
  }
  const rnd = prng(42);
  const g = (): number => (rnd() + rnd() + rnd() + rnd() - 2) * 1.732;
  const mk = (n: number, f: (i: number, w: number) => number): Map<string, T>[] => {
    const w = Array.from({ length: n }, () => g() * 0.02);
    const m = (vals: number[], dtype = 'BF16'): Map<string, T> =>
      new Map([['w', { dtype, bytes: dtype === 'BF16' ? u16(vals.map(bf16)) : new Uint8Array(Float32Array.from(vals.map((v) => Math.fround(v))).buffer) }]]);
    const mid = w.map((v, i) => f(i, v));
    return [m(w), m(w.map((v, i) => mid[i]! + (mid[i]! - v) * 0.8 + g() * 0.0002)), m(mid), m(w.map((v) => new Float32Array(Uint32Array.of(bf16(v) << 16).buffer)[0]!), 'F32')];
  };
  const [base, ft, ft2, f32] = mk(50_000, (_i, v) => v + g() * 0.0004);
  return { base: base!, ft: ft!, ft2: ft2!, f32: f32! };
}

test('real (or synthetic) tensors round-trip through every codec and level', () => {
  const { base, ft, ft2, f32 } = family();
  let deltaBytes = 0;
  let rawBytes = 0;
  for (const [name, t] of ft) {
    const p = base.get(name)!;
    const pp = ft2.get(name)!;
    rt(codec('float-exp'), t.bytes, { dtype: t.dtype, refs: [] }, `${name} exp`);
    rawBytes += t.bytes.length;
    deltaBytes += rt(codec('float-delta'), t.bytes, { dtype: t.dtype, refs: [ref(p.dtype, p.bytes)] }, `${name} delta`);
    rt(codec('float-traj'), t.bytes, { dtype: t.dtype, refs: [ref(pp.dtype, pp.bytes), ref(p.dtype, p.bytes)] }, `${name} traj`);
    const lr = byName.get('float-lowrank');
    if (lr) rt(lr, t.bytes, { dtype: t.dtype, refs: [ref(p.dtype, p.bytes)] }, `${name} lowrank`);
  }
  assert.ok(deltaBytes < 0.45 * rawBytes, `delta coding compresses a fine-tune (${(deltaBytes / rawBytes).toFixed(3)})`);
  // bf16 that is the RNE rounding of its float32 parent, and the float32 against its bf16 rounding
  let small = 0;
  let tot = 0;
  for (const [name, t] of f32) {
    const b = base.get(name)!;
    small += rt(codec('float-delta'), b.bytes, { dtype: 'BF16', refs: [ref('F32', t.bytes)] }, `${name} bf16<-f32`);
    tot += b.bytes.length;
    rt(codec('float-delta'), t.bytes, { dtype: 'F32', refs: [ref('BF16', b.bytes)] }, `${name} f32<-bf16`);
    rt(codec('float-exp'), t.bytes, { dtype: 'F32', refs: [] }, `${name} f32 exp`);
  }
  assert.ok(small < 0.01 * tot, `bf16 rounding of its f32 parent costs ${(small / tot).toFixed(4)} of raw`);
});

// ------------------------------------------------------------------ bit patterns

test('every bf16 and f16 bit pattern, standalone and against shuffled, zero and equal references', () => {
  const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
  const rnd = prng(9);
  const shuffled = all.slice();
  for (let i = shuffled.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!];
  }
  const near = all.map((v) => (v + Math.floor(rnd() * 5) - 2) & 0xffff);
  for (const dtype of ['BF16', 'F16']) {
    const raw = new Uint8Array(all.buffer);
    rt(codec('float-exp'), raw, { dtype, refs: [] }, `${dtype} exp`);
    rt(codec('float-exp'), u16(shuffled), { dtype, refs: [] }, `${dtype} exp shuffled`);
    for (const r of [shuffled, new Uint16Array(65536), all, near]) {
      rt(codec('float-delta'), raw, { dtype, refs: [ref(dtype, new Uint8Array(r.buffer))] }, `${dtype} delta`);
      rt(codec('float-lowrank'), raw, { dtype, refs: [ref(dtype, new Uint8Array(r.buffer))] }, `${dtype} lowrank`);
      rt(codec('float-traj'), raw, { dtype, refs: [ref(dtype, new Uint8Array(r.buffer)), ref(dtype, u16(near))] }, `${dtype} traj`);
    }
  }
});

test('float32 specials: NaN payloads, infinities, subnormals, -0, random patterns, across dtypes', () => {
  const rnd = prng(17);
  const specials = [0, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0xffc00001, 0x7f800001, 0xff812345, 1, 0x807fffff, 0x00800000, 0x7f7fffff, 0xff7fffff, 0x3f800000, 0x33800000, 0x387fe000];
  const vals: number[] = [...specials];
  for (let i = 0; i < 20000; i++) vals.push(Math.floor(rnd() * 2 ** 32));
  for (let i = 0; i < 20000; i++) vals.push(new Uint32Array(Float32Array.of((rnd() - 0.5) * 0.1).buffer)[0]!);
  const raw = u32(vals);
  const n = vals.length;
  rt(codec('float-exp'), raw, { dtype: 'F32', refs: [] }, 'f32 exp');
  const asBf16 = u16(vals.map(f32ToBf16));
  const asF16 = u16(vals.map(f32ToF16));
  const shuffled = u32(vals.map((_, i) => vals[(i * 7919) % n]!));
  for (const r of [ref('F32', shuffled), ref('BF16', asBf16), ref('F16', asF16), ref('F32', raw)]) {
    rt(codec('float-delta'), raw, { dtype: 'F32', refs: [r] }, `f32 <- ${r.dtype}`);
    rt(codec('float-lowrank'), raw, { dtype: 'F32', refs: [r] }, `f32 lowrank <- ${r.dtype}`);
    rt(codec('float-traj'), raw, { dtype: 'F32', refs: [r, ref('BF16', asBf16)] }, `f32 traj <- ${r.dtype}`);
    rt(codec('float-delta'), asBf16, { dtype: 'BF16', refs: [r] }, `bf16 <- ${r.dtype}`);
    rt(codec('float-delta'), asF16, { dtype: 'F16', refs: [r] }, `f16 <- ${r.dtype}`);
  }
  // the bf16 rounding of a float32 chunk costs almost nothing against it
  const sz = codec('float-delta').encode(asBf16, { dtype: 'BF16', refs: [ref('F32', raw)] }, 'max').length;
  assert.ok(sz < 0.02 * asBf16.length + 64, `bf16 <- its f32 source: ${sz} bytes`);
});

test('empty, single-element, odd-length and unaligned chunks', () => {
  const rnd = prng(23);
  for (const n of [0, 1, 2, 3, 5, 6, 7, 9, 31, 33]) {
    const v = Array.from({ length: n }, () => bf16((rnd() - 0.5) * 0.1));
    const p = v.map((x) => (x + Math.floor(rnd() * 3) - 1) & 0xffff);
    const raw = u16(v);
    rt(codec('float-exp'), raw, { dtype: 'BF16', refs: [] }, `exp n=${n}`);
    rt(codec('float-delta'), raw, { dtype: 'BF16', refs: [ref('BF16', u16(p))] }, `delta n=${n}`);
    rt(codec('float-traj'), raw, { dtype: 'BF16', refs: [ref('BF16', u16(p)), ref('BF16', raw)] }, `traj n=${n}`);
    // unaligned views of the same bytes
    const buf = new Uint8Array(raw.length + 1);
    buf.set(raw, 1);
    const pbuf = new Uint8Array(raw.length + 3);
    pbuf.set(u16(p), 3);
    rt(codec('float-delta'), buf.subarray(1), { dtype: 'BF16', refs: [ref('BF16', pbuf.subarray(3))] }, `unaligned n=${n}`);
    // 2-byte aligned but not 4-byte aligned (the SWAR paths fall back to scalar code)
    const pbuf2 = new Uint8Array(raw.length + 2);
    pbuf2.set(u16(p), 2);
    rt(codec('float-delta'), raw, { dtype: 'BF16', refs: [ref('BF16', pbuf2.subarray(2))] }, `half-aligned n=${n}`);
  }
  // lengths that are not whole elements, or refs of the wrong size, are refused up front
  assert.equal(codec('float-exp').accepts(3, { dtype: 'BF16', refs: [] }), false);
  assert.equal(codec('float-exp').accepts(6, { dtype: 'F32', refs: [] }), false);
  assert.equal(codec('float-delta').accepts(8, { dtype: 'BF16', refs: [ref('BF16', new Uint8Array(6))] }), false);
  assert.equal(codec('float-delta').accepts(8, { dtype: 'BF16', refs: [ref('F32', new Uint8Array(16))] }), true);
  assert.equal(codec('float-delta').accepts(8, { dtype: 'I16', refs: [ref('I16', new Uint8Array(8))] }), false);
  assert.equal(codec('float-traj').accepts(8, { dtype: 'BF16', refs: [ref('BF16', new Uint8Array(8))] }), false);
});

test('random bytes round-trip (incompressible data is still lossless)', () => {
  const rnd = prng(31);
  const raw = Uint8Array.from({ length: 40000 }, () => Math.floor(rnd() * 256));
  const r2 = Uint8Array.from({ length: 40000 }, () => Math.floor(rnd() * 256));
  for (const dtype of ['BF16', 'F16', 'F32']) {
    rt(codec('float-exp'), raw, { dtype, refs: [] });
    rt(codec('float-delta'), raw, { dtype, refs: [ref(dtype, r2)] });
    rt(codec('float-lowrank'), raw, { dtype, refs: [ref(dtype, r2)] });
    rt(codec('float-traj'), raw, { dtype, refs: [ref(dtype, r2), ref(dtype, raw)] });
  }
});

// ------------------------------------------------------------------ conversions

test('f16 <-> f32 conversions: exact widening, round-to-nearest-even narrowing', () => {
  for (let h = 0; h < 65536; h++) {
    const f = f16ToF32(h);
    const back = f32ToF16(f);
    const isNaN16 = (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
    if (isNaN16) assert.ok((back & 0x7c00) === 0x7c00 && (back & 0x3ff) !== 0, `NaN ${h}`);
    else assert.equal(back, h, `f16 ${h.toString(16)}`);
  }
  // narrowing of random float32 values: nearest f16, ties to even (checked against all neighbours)
  const f16val = (h: number): number => new Float32Array(Uint32Array.of(f16ToF32(h)).buffer)[0]!;
  const rnd = prng(77);
  for (let i = 0; i < 20000; i++) {
    const u = Math.floor(rnd() * 2 ** 32);
    if ((u & 0x7f800000) === 0x7f800000) continue;
    const x = new Float32Array(Uint32Array.of(u).buffer)[0]!;
    const h = f32ToF16(u);
    const y = f16val(h);
    if (!Number.isFinite(y)) {
      assert.ok(Math.abs(x) >= 65520, `overflow only beyond the rounding limit: ${x}`);
      continue;
    }
    for (const nb of [h - 1, h + 1]) {
      if ((nb & 0x7fff) >= 0x7c00 || ((nb ^ h) & 0x8000) !== 0) continue;
      const z = f16val(nb);
      const dy = Math.abs(x - y);
      const dz = Math.abs(x - z);
      assert.ok(dy < dz || (dy === dz && (h & 1) === 0), `RNE ${x} -> ${y} (neighbour ${z})`);
    }
  }
  assert.equal(f32ToBf16(0x3f808000), 0x3f80); // tie to even (down)
  assert.equal(f32ToBf16(0x3f818000), 0x3f82); // tie to even (up)
  assert.equal(f32ToBf16(0x7f7fffff), 0x7f80); // overflow to +inf
});

// ------------------------------------------------------------------ low rank

/** A reference such that v - ref is a rank-2 matrix (cols wide) in value terms, rounded to bf16. */
function lowRankRef(v: number[], cols: number, seed: number): number[] {
  const rnd = prng(seed);
  const rows = Math.floor(v.length / cols);
  const b = Array.from({ length: rows * 2 }, () => rnd() - 0.5);
  const a = Array.from({ length: cols * 2 }, () => (rnd() - 0.5) * 0.004);
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  return v.map((h, i) => {
    const r = Math.floor(i / cols);
    const c = i % cols;
    if (r >= rows) return h;
    u[0] = h << 16;
    f[0] = f[0]! - (b[2 * r]! * a[2 * c]! + b[2 * r + 1]! * a[2 * c + 1]!);
    return f32ToBf16(u[0]!);
  });
}

test('float-lowrank finds a rank-2 update, codes it below float-delta, and escapes when there is none', () => {
  const rnd = prng(61);
  const cols = 96;
  const v = Array.from({ length: cols * 200 }, () => bf16((rnd() + rnd() + rnd() - 1.5) * 0.05));
  const raw = u16(v);
  const r = u16(lowRankRef(v, cols, 62));
  const ctx: ChunkContext = { dtype: 'BF16', refs: [ref('BF16', r)] };
  const lr = rt(codec('float-lowrank'), raw, ctx);
  const plain = codec('float-delta').encode(raw, ctx, 'max').length;
  assert.ok(lr < 0.7 * plain, `low-rank ${lr} vs delta ${plain}`);
  // f32 target against a bf16 reference, too
  const f32raw = u32(v.map((h) => h << 16));
  rt(codec('float-lowrank'), f32raw, { dtype: 'F32', refs: [ref('BF16', r)] });
  // no structure: a raw escape, larger than raw so the registry never keeps it
  const noise = u16(v.map((h) => (h + Math.floor(rnd() * 7) - 3) & 0xffff));
  const esc = codec('float-lowrank').encode(raw, { dtype: 'BF16', refs: [ref('BF16', noise)] }, 'max');
  assert.equal(esc.length, raw.length + 1);
  assert.ok(Buffer.from(codec('float-lowrank').decode(esc, raw.length, { dtype: 'BF16', refs: [ref('BF16', noise)] })).equals(Buffer.from(raw)));
});

// ------------------------------------------------------------------ malformed payloads

function expectCorrupt(c: Codec, payload: Uint8Array, rawLength: number, ctx: ChunkContext, raw: Uint8Array | null, what: string): void {
  try {
    const d = c.decode(payload, rawLength, ctx);
    // A damaged payload may by chance still parse; it must then have the right length (the registry's SHA-256 catches the rest).
    assert.equal(d.length, rawLength, what);
    if (raw) assert.ok(!Buffer.from(d).equals(Buffer.from(raw)) || true);
  } catch (e) {
    assert.ok(e instanceof At1Error, `${what}: ${String(e)}`);
    assert.equal(e.code, 'E_CORRUPT', what);
  }
}

test('truncated, bit-flipped and random payloads raise At1Error E_CORRUPT', () => {
  const rnd = prng(99);
  const n = 3000;
  const v = Array.from({ length: n }, () => bf16((rnd() - 0.5) * 0.05));
  const p = v.map((x) => (x + Math.floor(rnd() * 9) - 4) & 0xffff);
  const raw = u16(v);
  const cases: [Codec, ChunkContext][] = [
    [codec('float-exp'), { dtype: 'BF16', refs: [] }],
    [codec('float-delta'), { dtype: 'BF16', refs: [ref('BF16', u16(p))] }],
    [codec('float-traj'), { dtype: 'BF16', refs: [ref('BF16', u16(p)), ref('BF16', raw)] }],
    [codec('float-lowrank'), { dtype: 'BF16', refs: [ref('BF16', u16(lowRankRef(v, 60, 50)))] }],
  ];
  for (const [c, ctx] of cases) {
    for (const level of LEVELS) {
      const good = c.encode(raw, ctx, level);
      // every truncation must throw (the framing is length-checked end to end)
      for (let len = 0; len < good.length; len += Math.max(1, Math.floor(good.length / 200))) {
        assert.throws(() => c.decode(good.subarray(0, len), raw.length, ctx), (e: unknown) => e instanceof At1Error && e.code === 'E_CORRUPT', `${c.name} ${level} truncated to ${len}`);
      }
      // bit flips: throw E_CORRUPT or decode to the right length
      for (let k = 0; k < 200; k++) {
        const bad = good.slice();
        bad[Math.floor(rnd() * bad.length)]! ^= 1 << Math.floor(rnd() * 8);
        expectCorrupt(c, bad, raw.length, ctx, raw, `${c.name} ${level} flip`);
      }
      // wrong raw length for the payload
      assert.throws(() => c.decode(good, raw.length + 2, { ...ctx, refs: ctx.refs.map((r) => ref(r.dtype, new Uint8Array(r.bytes.length + 2))) }), At1Error);
    }
    // random garbage of many sizes
    for (let k = 0; k < 300; k++) {
      const bad = Uint8Array.from({ length: Math.floor(rnd() * 300) }, () => Math.floor(rnd() * 256));
      if (k % 3 === 0 && bad.length > 0) bad[0] = k % 2; // plausible mode bytes
      expectCorrupt(c, bad, raw.length, ctx, null, `${c.name} random`);
    }
  }
});

test('the ordered-integer maps are monotonic in value and bijective', () => {
  const val = (h: number): number => new Float32Array(Uint32Array.of(h << 16).buffer)[0]!;
  const finite = Array.from({ length: 65536 }, (_, h) => h).filter((h) => (h & 0x7f80) !== 0x7f80);
  finite.sort((a, b) => val(a) - val(b) || (b >>> 15) - (a >>> 15)); // -0 before +0
  for (let k = 1; k < finite.length; k++) assert.ok(ord16(finite[k]!) > ord16(finite[k - 1]!), `ord16 order at ${finite[k]}`);
  for (let h = 0; h < 65536; h++) assert.equal(unord16(ord16(h)), h);
  const rnd = prng(5);
  for (let i = 0; i < 10000; i++) {
    const u = Math.floor(rnd() * 2 ** 32);
    assert.equal(unord32(ord32(u)) >>> 0, u);
  }
  assert.ok((ord32(0x80000000) >>> 0) + 1 === ord32(0) >>> 0, '-0 sits just below +0');
});
