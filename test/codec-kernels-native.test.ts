/**
 * The compiled codec kernels (src/kernels/native/codec-kernels.c) against
 * the plain-JS reference loops: the same output bits, the same return codes
 * and the same errors, on random, adversarial and real fixture data, for
 * every dtype the numeric codecs take. The fuzz suite adds the codec-kernels
 * target (mutated payloads of every codec decoded both ways).
 *
 * Without the addon (no C compiler at install) these tests are skipped, unless
 * AT1_REQUIRE_NATIVE=1 (CI), where a missing addon fails the first test.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { codecById } from '../src/codec/index.js';
import { codecKernelsInUse, nativeKernels, useCodecKernels } from '../src/codec/kernels.js';
import type { ChunkContext, Level } from '../src/codec/types.js';
import { buildModel } from '../src/codec/entropy/model.js';
import { buildDecodeTables, RansStream, ransDecodeTokens, ransEncode, ransEncodeJs, RANS_L } from '../src/codec/entropy/rans.js';
import { contexts16, contexts16Js, contexts32, contexts32Js, rebuild16, rebuild32, tokenise16, tokenise16Js, tokenise32, tokenise32Js } from '../src/codec/numeric/delta-core.js';
import { decodePredicted, encodePredicted } from '../src/codec/numeric/delta-codec.js';
import { diffPlanes16, diffPlanes16Js, diffPlanes32, diffPlanes32Js, undiffPlanes16, undiffPlanes16Js, undiffPlanes32, undiffPlanes32Js } from '../src/codec/numeric/zplanes.js';
import { f32ToBf16, f32ToF16, floatFormat, predictionBits, predictionBitsJs, type FloatFormat } from '../src/codec/numeric/float.js';
import { loadNativeCodecKernels } from '../src/kernels/codec-native.js';
import { joinPlanes, joinPlanesJs, splitPlanes, splitPlanesJs } from '../src/codec/byte-planes.js';
import { parseSafetensorsHeader } from '../src/format/safetensors.js';
import { spawnSync } from 'node:child_process';
import { EMBEDDED, tempDir } from './helpers.js';
import { rng } from '../bench/synthetic.js';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const loaded = loadNativeCodecKernels();
const required = process.env['AT1_REQUIRE_NATIVE'] === '1' || process.env['AT1_KERNELS'] === 'native';
const skip = loaded.kernels ? false : `the compiled codec kernels are not built (${loaded.error?.message.split('\n')[0] ?? ''})`;

test('the compiled codec kernels load (required in CI)', { skip: !loaded.kernels && !required ? skip : false }, () => {
  assert.ok(loaded.kernels, `the addon did not load: ${loaded.error?.message}`);
  useCodecKernels('native');
  assert.equal(codecKernelsInUse(), 'native');
  useCodecKernels('auto');
});

/** Run f with the JS reference and with the compiled kernels; return both results (or error messages). */
function both<T>(f: () => T): { js: T | string; native: T | string } {
  const before = codecKernelsInUse();
  const run = (k: 'js' | 'native'): T | string => {
    useCodecKernels(k);
    try {
      return f();
    } catch (e) {
      return `error: ${e instanceof Error ? e.message : String(e)}`;
    } finally {
      useCodecKernels(before);
    }
  };
  return { js: run('js'), native: run('native') };
}

/** Float bit patterns of a dtype: mostly weight-like values, with the special values mixed in. */
function floats(n: number, width: 16 | 32, dtype: 'BF16' | 'F16' | 'F32', r: () => number): Uint16Array | Uint32Array {
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  const specials = [0, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0x00000001, 0x807fffff, 0x7f7fffff];
  const out = width === 16 ? new Uint16Array(n) : new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    const k = r() % 64;
    if (k === 0) u[0] = specials[r() % specials.length]!;
    else if (k === 1) u[0] = r();
    else f[0] = ((r() / 2 ** 32) * 2 - 1) * 0.05 * 2 ** ((r() % 9) - 4);
    out[i] = dtype === 'F32' ? u[0]! : dtype === 'BF16' ? f32ToBf16(u[0]!) : f32ToF16(u[0]!);
  }
  return out;
}

/** x moved from p by small steps (a fine-tune), by large ones, or not at all. */
function nudged(p: Uint16Array | Uint32Array, r: () => number): Uint16Array | Uint32Array {
  const x = p.slice();
  const lim = p instanceof Uint16Array ? 0xffff : 0xffffffff;
  for (let i = 0; i < x.length; i++) {
    const k = r() % 16;
    if (k < 6) continue;
    const step = k < 14 ? (r() % 9) - 4 : r();
    x[i] = ((x[i]! + step) >>> 0) & lim;
  }
  return x;
}

const SIZES = [0, 1, 3, 4, 5, 7, 8, 255, 1000, 4097];

/** decodePredicted's outcome on a payload: the decoded bytes, or the error's message. */
function decodeOutcome(payload: Uint8Array, fmt: FloatFormat, n: number, p: Uint16Array | Uint32Array, pp: Uint16Array | Uint32Array | null): string {
  const out = new Uint8Array(n * (fmt.width >>> 3));
  try {
    decodePredicted(payload, fmt, n, p, pp ? () => pp : null, out, 'test payload');
    return `bytes ${Buffer.from(out).toString('hex')}`;
  } catch (e) {
    return `error: ${(e as Error).message}`;
  }
}

test('delta tokens and contexts, 16- and 32-bit: the same tokens, histograms and extra bits; the fused decoders give the values back', { skip }, () => {
  const r = rng(16);
  for (const dtype of ['BF16', 'F16', 'F32'] as const) {
    const fmt = floatFormat(dtype)!;
    const w = fmt.width;
    const R1 = 2 << fmt.expBits;
    for (const n of SIZES) {
      const p = floats(n, w, dtype, r);
      const pp = nudged(p, r);
      const x = nudged(p, r);
      useCodecKernels('native');
      if (w === 16) {
        const c = contexts16Js(p as Uint16Array, pp as Uint16Array, fmt.mantBits, R1);
        assert.deepEqual(contexts16(p as Uint16Array, pp as Uint16Array, fmt.mantBits, R1), c, `${dtype} n=${n}: contexts16`);
        for (const ctx of [null, c]) {
          const R = ctx ? R1 * 16 : R1;
          const a = tokenise16Js(x as Uint16Array, p as Uint16Array, ctx, fmt.mantBits, R, 40);
          const b = tokenise16(x as Uint16Array, p as Uint16Array, ctx, fmt.mantBits, R, 40);
          assert.deepEqual(b.tok, a.tok, `${dtype} n=${n}: tokens`);
          assert.deepEqual(b.hist, a.hist, `${dtype} n=${n}: histogram`);
          assert.deepEqual(b.extra, a.extra, `${dtype} n=${n}: extra bits`);
          const o = new Uint16Array(n);
          rebuild16(o, a.tok, p as Uint16Array, a.extra);
          assert.deepEqual(o, x, `${dtype} n=${n}: the JS rebuild gives x back`);
        }
      } else {
        for (const second of [null, pp as Uint32Array]) {
          const c = contexts32Js(p as Uint32Array, second, fmt.mantBits, R1);
          assert.deepEqual(contexts32(p as Uint32Array, second, fmt.mantBits, R1), c, `n=${n}: contexts32`);
          const a = tokenise32Js(x as Uint32Array, p as Uint32Array, c, R1 * 16, 72);
          const b = tokenise32(x as Uint32Array, p as Uint32Array, c, R1 * 16, 72);
          assert.deepEqual(b.tok, a.tok);
          assert.deepEqual(b.hist, a.hist);
          assert.deepEqual(b.extra, a.extra, `n=${n}: extra bits`);
          const o = new Uint32Array(n);
          rebuild32(o, a.tok, p as Uint32Array, a.extra);
          assert.deepEqual(o, x, `n=${n}: the JS rebuild gives x back`);
        }
      }
      useCodecKernels('auto');
      if (n === 0) continue;
      // whole frames, one reference and two (trajectory contexts): the same payload, decoded by both to x
      for (const second of [null, pp]) {
        const raw = new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
        const enc = both(() => encodePredicted(raw, fmt, p, second));
        assert.ok(enc.js instanceof Uint8Array);
        assert.deepEqual(enc.native, enc.js, `${dtype} n=${n}: payload`);
        const dec = both(() => decodeOutcome(enc.js as Uint8Array, fmt, n, p, second));
        assert.equal(dec.native, dec.js);
        assert.equal(dec.js, `bytes ${Buffer.from(raw).toString('hex')}`);
      }
    }
  }
});

test('the fused delta decoders on damaged frames (flipped, cut, extended; rANS words and extra bits alike): the same values or the same error as the JS', { skip }, () => {
  const r = rng(1616);
  let errors = 0;
  for (let c = 0; c < 600; c++) {
    const dtype = (['BF16', 'F16', 'F32'] as const)[c % 3]!;
    const fmt = floatFormat(dtype)!;
    const n = [5, 64, 300, 2000][(c >> 2) % 4]!;
    const p = floats(n, fmt.width, dtype, r);
    const pp = c % 2 ? nudged(p, r) : null;
    const x = nudged(p, r);
    const payload = encodePredicted(new Uint8Array(x.buffer, x.byteOffset, x.byteLength), fmt, p, pp);
    const bad = payload.slice();
    const kind = c % 5;
    let mutated: Uint8Array;
    if (kind === 0) mutated = bad.subarray(0, Math.max(1, bad.length - 1 - (r() % 8)));
    else if (kind === 1) mutated = Uint8Array.from([...bad, ...Array.from({ length: 1 + (r() % 6) }, () => r() & 0xff)]);
    else {
      // flip bytes, mostly in the last part of the frame (rANS words and extra bits)
      for (let k = 0; k <= r() % 3; k++) {
        const at = kind === 2 ? r() % bad.length : bad.length - 1 - (r() % Math.min(bad.length, 64));
        bad[at] = bad[at]! ^ (1 << (r() % 8));
      }
      mutated = bad;
    }
    const res = both(() => decodeOutcome(mutated, fmt, n, p, pp));
    assert.equal(res.native, res.js, `case ${c} (${dtype}, n=${n}, mutation ${kind})`);
    if (String(res.js).startsWith('error')) errors++;
  }
  assert.ok(errors > 100, `the mutations reach the checks (${errors} errors)`);
});

test('byte planes (fast level): diff and undiff, 16- and 32-bit, any alignment of the tail', { skip }, () => {
  const r = rng(99);
  for (const n of SIZES) {
    const p = Uint16Array.from({ length: n }, () => r() & 0xffff);
    const x = Uint16Array.from({ length: n }, () => r() & 0xffff);
    useCodecKernels('native');
    const [h, l] = diffPlanes16Js(x, p);
    const [h2, l2] = diffPlanes16(x, p);
    assert.deepEqual(h2, h);
    assert.deepEqual(l2, l);
    const o1 = new Uint16Array(n);
    const o2 = new Uint16Array(n);
    undiffPlanes16Js(o1, p, h, l);
    undiffPlanes16(o2, p, h, l);
    assert.deepEqual(o2, o1);
    assert.deepEqual(o2, x);
    const p32 = Uint32Array.from({ length: n }, () => r());
    const x32 = Uint32Array.from({ length: n }, () => r());
    const pl = diffPlanes32Js(x32, p32);
    assert.deepEqual(diffPlanes32(x32, p32), pl);
    const q1 = new Uint32Array(n);
    const q2 = new Uint32Array(n);
    undiffPlanes32Js(q1, p32, pl);
    undiffPlanes32(q2, p32, pl);
    assert.deepEqual(q2, q1);
    assert.deepEqual(q2, x32);
    useCodecKernels('auto');
  }
});

test('byte grouping (grouped-zstd, BitX): split and join for 2- and 4-byte elements, odd offsets, and the codecs on every dtype width', { skip }, () => {
  const r = rng(5);
  for (const width of [2, 4])
    for (const n of [0, 1, 3, 1001]) {
      const buf = Uint8Array.from({ length: n * width + 3 }, () => r() & 0xff);
      for (const off of [0, 1, 3]) {
        const src = buf.subarray(off, off + n * width);
        useCodecKernels('native');
        const a = splitPlanes(src, width);
        assert.deepEqual(a, splitPlanesJs(src, width), `split width ${width} n ${n} offset ${off}`);
        const o1 = new Uint8Array(n * width + 1).subarray(1);
        const o2 = new Uint8Array(n * width);
        joinPlanes(a, o1);
        joinPlanesJs(a, o2);
        useCodecKernels('auto');
        assert.deepEqual(o1, o2);
        assert.deepEqual(o1, src);
      }
    }
  for (const [dtype, w] of [['I16', 2], ['I32', 4], ['U8', 1], ['F64', 8]] as const) {
    const raw = Uint8Array.from({ length: 4096 * w }, (_, i) => (i % 7 === 0 ? r() & 0xff : (i * 31) & 0xff));
    const ref = raw.map((v, i) => (i % 13 === 0 ? v ^ 1 : v));
    for (const [id, refs] of [[1, []], [2, [{ dtype, bytes: ref }]]] as const) {
      const codec = codecById(id, 'basic');
      const enc = both(() => codec.encode(raw, { dtype, refs }, 'max'));
      assert.deepEqual(enc.native, enc.js, `codec ${id} ${dtype}: payload`);
      const dec = both(() => codec.decode(enc.js as Uint8Array, raw.length, { dtype, refs }));
      assert.deepEqual(dec.native, raw);
      assert.deepEqual(dec.js, raw);
    }
  }
});

test('rANS encode: the same stream from random models and contexts, decoded back by the JS', { skip }, () => {
  const r = rng(7);
  for (let c = 0; c < 60; c++) {
    const S = [2, 40, 72, 256][c % 4]!;
    const R = [1, 3, 512][c % 3]!;
    const n = [1, 2, 3, 4, 9, 5000][c % 6]!;
    const shift = R === 512 ? 7 : 0;
    const src = R === 1 ? null : Uint16Array.from({ length: n }, () => (R === 512 ? r() & 0xffff : r() % R));
    const tok = Uint8Array.from({ length: n }, (_, i) => (i % 7 === 0 ? r() % S : r() % Math.min(S, 6)));
    const hist = new Uint32Array(R * S);
    for (let i = 0; i < n; i++) hist[(src ? src[i]! >>> shift : 0) * S + tok[i]!]!++;
    const order = Int32Array.from({ length: R }, (_, i) => i);
    const { model } = buildModel(hist, R, S, order);
    useCodecKernels('native');
    const a = ransEncodeJs(tok, src, shift, n, model);
    const b = ransEncode(tok, src, shift, n, model);
    assert.deepEqual(b, a, `case ${c}: encoded stream`);
    const tables = buildDecodeTables(model);
    const rs = new RansStream(a, 0, a.length);
    const back = new Uint8Array(n);
    ransDecodeTokens(rs, tables, model.groupOf, src, shift, n, back);
    rs.finish('t');
    assert.deepEqual(back, tok, `case ${c}: decodes back`);
    useCodecKernels('auto');
  }
});

test('float conversions (a reference in another dtype): every 16-bit pattern and random, tie and special float32 patterns, to every float dtype', { skip }, () => {
  const r = rng(2024);
  const all16 = new Uint8Array(Uint16Array.from({ length: 65536 }, (_, i) => i).buffer);
  const ties = [0x00008000, 0x00018000, 0x3f808000, 0x3f818000, 0x7f7f8000, 0xff7fffff, 0x7f800001, 0xffc00000, 0x33000000, 0x33000001, 0x387fe000, 0x477ff000, 0x477fefff, 0x00000001, 0x80000000];
  const f32 = new Uint8Array(Uint32Array.from({ length: 100000 }, (_, i) => (i < ties.length ? ties[i]! : i % 3 === 0 ? (r() & 0xffff0000) | (r() & 0x1fff) : r())).buffer);
  for (const [bytes, from] of [[all16, 'BF16'], [all16, 'F16'], [f32, 'F32']] as const)
    for (const to of ['BF16', 'F16', 'F32'] as const) {
      if (from === to) continue;
      const fmt = floatFormat(to)!;
      const n = bytes.length / (from === 'F32' ? 4 : 2);
      useCodecKernels('native');
      const got = predictionBits(bytes, from, fmt, n);
      useCodecKernels('auto');
      assert.deepEqual(got, predictionBitsJs(bytes, floatFormat(from)!, fmt, n), `${from} -> ${to}`);
    }
});

/** Chunks of the fixture family (bf16), widened and narrowed to every float dtype, with their references. */
function fixtureChunks(): { what: string; codec: number; level: Level; raw: Uint8Array; ctx: ChunkContext }[] {
  const read = (file: string, name: string): Uint8Array => {
    const b = new Uint8Array(readFileSync(join(EMBEDDED, file)));
    const h = parseSafetensorsHeader(b, b.length, file);
    const t = h.tensors.find((x) => x.name === name)!;
    return b.slice(h.dataStart + t.begin, Math.min(h.dataStart + t.end, h.dataStart + t.begin + 2 * 16384));
  };
  const wide = (b: Uint8Array): Uint8Array => new Uint8Array(Uint32Array.from(new Uint16Array(b.buffer, b.byteOffset, b.length / 2), (v, i) => (v << 16) | (i * 2654435761) >>> 27).buffer);
  const f16 = (b: Uint8Array): Uint8Array => new Uint8Array(Uint16Array.from(new Uint16Array(b.buffer, b.byteOffset, b.length / 2), (v) => f32ToF16(v << 16)).buffer);
  const out: { what: string; codec: number; level: Level; raw: Uint8Array; ctx: ChunkContext }[] = [];
  for (const name of ['model.layers.0.self_attn.q_proj.weight', 'lm_head.weight', 'model.layers.1.mlp.down_proj.weight']) {
    const base = read('base.safetensors', name);
    const s25 = read('prose-step0025.safetensors', name);
    const s50 = read('prose-step0050.safetensors', name);
    const lora = read('code-lora.safetensors', name);
    for (const [dt, conv] of [['BF16', (b: Uint8Array) => b], ['F32', wide], ['F16', f16]] as const) {
      const ref = (b: Uint8Array) => ({ dtype: dt, bytes: conv(b) });
      out.push({ what: `${name} ${dt} float-exp`, codec: 10, level: 'max', raw: conv(base), ctx: { dtype: dt, refs: [] } });
      for (const level of ['max', 'fast'] as const) {
        out.push({ what: `${name} ${dt} float-delta ${level}`, codec: 11, level, raw: conv(s25), ctx: { dtype: dt, refs: [ref(base)] } });
        out.push({ what: `${name} ${dt} float-traj ${level}`, codec: 12, level, raw: conv(s50), ctx: { dtype: dt, refs: [ref(s25), ref(base)] } });
      }
      out.push({ what: `${name} ${dt} float-lowrank`, codec: 13, level: 'max', raw: conv(lora), ctx: { dtype: dt, refs: [ref(base)] } });
      out.push({ what: `${name} ${dt} float-delta against bf16`, codec: 11, level: 'max', raw: conv(s25), ctx: { dtype: dt, refs: [{ dtype: 'BF16', bytes: base }] } });
    }
  }
  return out;
}

test('every numeric codec on real fixture chunks, BF16/F32/F16, both levels: byte-identical payloads and decodes', { skip }, () => {
  const chunks = fixtureChunks();
  assert.ok(chunks.length >= 50);
  for (const c of chunks) {
    const codec = codecById(c.codec, c.what);
    const enc = both(() => codec.encode(c.raw, c.ctx, c.level));
    assert.ok(enc.js instanceof Uint8Array, `${c.what}: ${String(enc.js)}`);
    assert.deepEqual(enc.native, enc.js, `${c.what}: payload`);
    const dec = both(() => codec.decode(enc.js as Uint8Array, c.raw.length, c.ctx));
    assert.deepEqual(dec.native, c.raw, `${c.what}: native decode`);
    assert.deepEqual(dec.js, c.raw, `${c.what}: JS decode`);
  }
});

test('the addon refuses arguments of the wrong type or size instead of touching memory outside them', { skip }, () => {
  const K = nativeKernels() ?? loaded.kernels!;
  const st = new Int32Array([RANS_L, RANS_L, RANS_L, RANS_L, 0]);
  assert.throws(() => K.delta16Decode(new Uint8Array(16), 0, 32, st, new Int32Array(4096), 12, new Int32Array(512), new Uint16Array(4), 7, 4, new Uint8Array(0), new Uint16Array(4), new Uint16Array(4)), /out of range/);
  assert.throws(() => K.delta16Decode(new Uint8Array(16), 0, 16, st, new Int32Array(4096), 12, new Int32Array(512), new Uint16Array(4), 7, 8, new Uint8Array(0), new Uint16Array(8), new Uint16Array(4)), /out of range/);
  assert.throws(() => K.expDecode(new Uint8Array(16), 0, 16, st, new Int32Array(4096), 12, new Int32Array(1), null, 0, 4, new Uint8Array(0), new Uint8Array(8) as unknown as Uint16Array, 7, 0, 0, 0, 7), /Uint16Array or Uint32Array/);
  assert.throws(() => K.undiffPlanes16(new Uint8Array(10) as unknown as Uint16Array, new Uint16Array(10), new Uint8Array(10), new Uint8Array(10)), /wrong type/);
  assert.throws(() => K.tokenise16(new Uint16Array(100), new Uint16Array(100), null, 7, 40, new Uint8Array(100), new Uint32Array(512 * 40), new Uint8Array(10)), /out of range/);
  assert.throws(() => K.ransEncode(new Uint8Array(8), null, 0, 8, new Int32Array(4), new Int32Array(1), 12, new Uint8Array(20)), /out of range/);
});

test('AT1_KERNELS: a malformed value and an unmet `native` are refused before the command runs, exit 2, naming the variable', (t) => {
  const run = (env: Record<string, string>): { status: number; stderr: string } => {
    const r = spawnSync(process.execPath, [join(REPO, 'bin/at1.js'), 'registry', 'list', join(REPO, 'no-such-registry')], { encoding: 'utf8', env: { ...process.env, ...env } });
    return { status: r.status ?? -1, stderr: r.stderr };
  };
  const bad = run({ AT1_KERNELS: 'fastest' });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /AT1_KERNELS="fastest" must be js/);
  const missing = run({ AT1_KERNELS: 'native', AT1_KERNELS_ADDON: join(tempDir(t), 'absent.node') });
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /AT1_KERNELS=native, but the compiled codec kernels did not load/);
});

test('without the addon (none at AT1_KERNELS_ADDON, AT1_KERNELS unset) at1 runs its JS loops: a registry written with the compiled kernels restores byte-exact', (t) => {
  const dir = tempDir(t);
  const reg = join(dir, 'reg');
  const cli = (env: Record<string, string>, ...args: string[]): { status: number; stdout: string; stderr: string } => {
    const r = spawnSync(process.execPath, [join(REPO, 'bin/at1.js'), ...args], { encoding: 'utf8', env: { ...process.env, AT1_KERNELS: '', ...env } });
    return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
  };
  assert.equal(cli({}, 'registry', 'init', join(EMBEDDED, 'base.safetensors'), reg).status, 0);
  assert.equal(cli({}, 'registry', 'add', reg, join(EMBEDDED, 'code-lora.safetensors'), '--name', 'lora').status, 0);
  const none = { AT1_KERNELS_ADDON: join(dir, 'absent.node') };
  const out = join(dir, 'lora.safetensors');
  const got = cli(none, 'registry', 'get', reg, 'lora', '--out', out);
  assert.equal(got.status, 0, got.stderr);
  assert.deepEqual(readFileSync(out), readFileSync(join(EMBEDDED, 'code-lora.safetensors')));
  const v = cli(none, 'registry', 'verify', reg);
  assert.equal(v.status, 0, v.stderr);
  assert.match(v.stdout, /integrity: PASS \(SHA-256\)/);
});
