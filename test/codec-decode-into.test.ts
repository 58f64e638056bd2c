/**
 * Codec.decodeInto for every codec in the table: decoding into a caller's
 * buffer (at an aligned and at an odd offset inside a larger array) gives
 * exactly what decode gives, touches no byte outside its slice, and refuses
 * a damaged payload the same way.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { At1Error } from '../src/errors.js';
import { basicCodecs } from '../src/codec/basic-codecs.js';
import { advancedCodecs } from '../src/codec/numeric-codecs.js';
import { f32ToBf16 } from '../src/codec/numeric/float.js';
import type { ChunkContext, Codec, Level } from '../src/codec/types.js';

function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}
const bf16 = (x: number): number => f32ToBf16(new Uint32Array(Float32Array.of(x).buffer)[0]!);

/** A rows x cols bf16 matrix of small random weights, and a relative of it: plus noise, plus a rank-1 update (so float-lowrank finds structure). */
function family(rows: number, cols: number): { parent: Uint8Array; child: Uint8Array; f32: Uint8Array; f32Parent: Uint8Array } {
  const r = prng(7);
  const pv = new Float32Array(rows * cols).map(() => (r() - 0.5) * 0.1);
  const u = Array.from({ length: rows }, () => r() - 0.5);
  const v = Array.from({ length: cols }, () => r() - 0.5);
  const cv = pv.map((x, i) => x + 0.02 * u[Math.floor(i / cols)]! * v[i % cols]! + (r() - 0.5) * 1e-4);
  const parent = new Uint8Array(Uint16Array.from(pv, bf16).buffer);
  const child = new Uint8Array(Uint16Array.from(cv, bf16).buffer);
  return { parent, child, f32: new Uint8Array(cv.buffer), f32Parent: new Uint8Array(pv.buffer) };
}

const { parent, child, f32, f32Parent } = family(64, 64);
const grand = new Uint8Array(parent).map((b, i) => (i % 2 === 0 ? b ^ 1 : b));
const cases: { what: string; raw: Uint8Array; ctx: ChunkContext }[] = [
  { what: 'bf16 standalone', raw: child, ctx: { dtype: 'BF16', refs: [] } },
  { what: 'bf16 vs bf16 parent', raw: child, ctx: { dtype: 'BF16', refs: [{ dtype: 'BF16', bytes: parent }] } },
  { what: 'bf16 vs parent and grandparent', raw: child, ctx: { dtype: 'BF16', refs: [{ dtype: 'BF16', bytes: parent }, { dtype: 'BF16', bytes: grand }] } },
  { what: 'f32 vs f32 parent', raw: f32, ctx: { dtype: 'F32', refs: [{ dtype: 'F32', bytes: f32Parent }] } },
  { what: 'bf16 vs f32 parent', raw: child, ctx: { dtype: 'BF16', refs: [{ dtype: 'F32', bytes: f32Parent }] } },
  { what: 'u8 odd length', raw: new Uint8Array(1001).map((_, i) => (i * 7) & 0xff), ctx: { dtype: 'U8', refs: [{ dtype: 'U8', bytes: new Uint8Array(1001).fill(3) }] } },
  { what: 'empty bf16', raw: new Uint8Array(0), ctx: { dtype: 'BF16', refs: [{ dtype: 'BF16', bytes: new Uint8Array(0) }] } },
];

const ALL: readonly Codec[] = [...basicCodecs, ...advancedCodecs];
const LEVELS: Level[] = ['fast', 'max'];

for (const codec of ALL) {
  test(`${codec.name}: decodeInto equals decode, in place and at an odd offset`, () => {
    let exercised = 0;
    for (const c of cases) {
      const ctx = { dtype: c.ctx.dtype, refs: c.ctx.refs.slice(0, codec.refCount) };
      if (ctx.refs.length < codec.refCount || !codec.accepts(c.raw.length, ctx)) continue;
      for (const level of LEVELS) {
        const payload = codec.encode(c.raw, ctx, level);
        const want = codec.decode(payload, c.raw.length, ctx);
        assert.deepEqual(Buffer.from(want), Buffer.from(c.raw), `${c.what} ${level}: decode round trip`);
        for (const offset of [0, 8, 3]) {
          const big = new Uint8Array(offset + c.raw.length + 5).fill(0xa5);
          const out = big.subarray(offset, offset + c.raw.length);
          codec.decodeInto(payload, ctx, out);
          assert.deepEqual(Buffer.from(out), Buffer.from(want), `${c.what} ${level} offset ${offset}: decodeInto`);
          assert.ok(big.subarray(0, offset).every((b) => b === 0xa5) && big.subarray(offset + c.raw.length).every((b) => b === 0xa5), `${c.what}: nothing written outside the slice`);
        }
        exercised++;
      }
    }
    assert.ok(exercised > 0, `${codec.name} accepted none of the cases`);
  });

  test(`${codec.name}: decodeInto refuses a truncated payload`, () => {
    const c = cases.find((x) => x.raw.length > 0 && codec.accepts(x.raw.length, { dtype: x.ctx.dtype, refs: x.ctx.refs.slice(0, codec.refCount) }) && x.ctx.refs.length >= codec.refCount)!;
    const ctx = { dtype: c.ctx.dtype, refs: c.ctx.refs.slice(0, codec.refCount) };
    const payload = codec.encode(c.raw, ctx, 'max');
    assert.throws(() => codec.decodeInto(payload.subarray(0, Math.floor(payload.length / 2)), ctx, new Uint8Array(c.raw.length)), (e: unknown) => e instanceof At1Error);
  });
}
