import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { At1Error } from '../src/errors.js';
import { basicCodecs, bitxCodec, groupedZstdCodec, rawCodec } from '../src/codec/basic-codecs.js';
import { allDTypes } from '../src/format/dtype.js';
import { decodeObjectHeader, encodeObject, MAX_HEADER_BYTES } from '../src/format/object.js';
import { sha256Hex } from '../src/util/hash.js';
import type { Codec, ChunkContext } from '../src/codec/types.js';

/** Every 16-bit pattern once: all NaN payloads, ±Inf, subnormals, ±0 of bf16 and f16. */
function all16(): Uint8Array {
  const out = new Uint8Array(65536 * 2);
  const v = new DataView(out.buffer);
  for (let i = 0; i < 65536; i++) v.setUint16(2 * i, i, true);
  return out;
}

/** f32 specials: NaNs (quiet, signalling, payloads), ±Inf, ±0, subnormals, extremes. */
function f32Specials(): Uint8Array {
  const bits = [0x7fc00000, 0x7f800001, 0xffffffff, 0x7f800000, 0xff800000, 0, 0x80000000, 1, 0x807fffff, 0x7f7fffff, 0x00800000, 0x3f800000];
  const out = new Uint8Array(bits.length * 4);
  const v = new DataView(out.buffer);
  bits.forEach((b, i) => v.setUint32(4 * i, b >>> 0, true));
  return out;
}

function roundTrip(codec: Codec, raw: Uint8Array, ctx: ChunkContext): number {
  for (const level of ['fast', 'max'] as const) {
    if (!codec.accepts(raw.length, ctx)) return -1;
    const payload = codec.encode(raw, ctx, level);
    const back = codec.decode(payload, raw.length, ctx);
    assert.equal(sha256Hex(back), sha256Hex(raw), `${codec.name} ${ctx.dtype} ${level} round trip`);
  }
  return codec.encode(raw, ctx, 'max').length;
}

describe('basic codecs round-trip byte-exact', () => {
  test('every dtype: random, empty, single element, odd lengths', () => {
    for (const d of allDTypes()) {
      const w = Math.max(1, d.bits / 8);
      for (const n of [0, 1, 3, 1000]) {
        const raw = randomBytes(Math.ceil((n * d.bits) / 8));
        for (const codec of basicCodecs) {
          const ref = randomBytes(raw.length);
          roundTrip(codec, raw, { dtype: d.name, refs: codec.refCount ? [{ dtype: d.name, bytes: ref }] : [] });
        }
      }
      assert.ok(w >= 1);
    }
  });

  test('all 65536 bf16 and f16 patterns, against a shifted copy', () => {
    const raw = all16();
    const ref = new Uint8Array(raw.length);
    ref.set(raw.subarray(2), 0);
    for (const dtype of ['BF16', 'F16']) {
      for (const codec of basicCodecs) roundTrip(codec, raw, { dtype, refs: codec.refCount ? [{ dtype, bytes: ref }] : [] });
    }
  });

  test('f32 NaN, Inf, zero and subnormal bit patterns', () => {
    const raw = f32Specials();
    for (const codec of basicCodecs) roundTrip(codec, raw, { dtype: 'F32', refs: codec.refCount ? [{ dtype: 'F32', bytes: raw.slice().reverse() }] : [] });
  });

  test('bitx against an identical reference is tiny; grouped zstd beats raw on real-shaped weights', () => {
    const n = 1 << 16;
    const raw = new Uint8Array(n * 2);
    const v = new DataView(raw.buffer);
    for (let i = 0; i < n; i++) v.setUint16(2 * i, 0x3c00 + ((i * 2654435761) >>> 24), true); // skewed high byte, noisy low byte
    assert.ok(roundTrip(bitxCodec, raw, { dtype: 'BF16', refs: [{ dtype: 'BF16', bytes: raw }] }) < 200);
    assert.ok(roundTrip(groupedZstdCodec, raw, { dtype: 'BF16', refs: [] }) < raw.length * 0.7);
  });

  test('bitx refuses references of another width or length', () => {
    const raw = randomBytes(64);
    assert.equal(bitxCodec.accepts(64, { dtype: 'BF16', refs: [{ dtype: 'F32', bytes: randomBytes(128) }] }), false);
    assert.equal(bitxCodec.accepts(64, { dtype: 'BF16', refs: [{ dtype: 'BF16', bytes: randomBytes(62) }] }), false);
    assert.equal(bitxCodec.accepts(64, { dtype: 'BF16', refs: [] }), false);
    assert.throws(() => bitxCodec.decode(raw, 64, { dtype: 'BF16', refs: [] }), At1Error);
  });
});

describe('malformed payloads are typed errors, never crashes or oversized allocations', () => {
  test('truncated, extended and random payloads', () => {
    const raw = randomBytes(4096);
    const ctx = { dtype: 'BF16', refs: [{ dtype: 'BF16', bytes: randomBytes(4096) }] };
    for (const codec of [groupedZstdCodec, bitxCodec, rawCodec]) {
      const payload = codec.encode(raw, ctx, 'max');
      const mutants = [payload.subarray(0, payload.length - 1), new Uint8Array([...payload, 0]), randomBytes(payload.length), new Uint8Array(0)];
      for (const m of mutants) {
        try {
          const out = codec.decode(m, raw.length, ctx);
          assert.equal(out.length, raw.length, 'a decode that succeeds returns exactly the declared length');
        } catch (e) {
          assert.ok(e instanceof At1Error, `${codec.name}: ${String(e)}`);
        }
      }
    }
  });

  test('a zstd stream holding more than the declared length is refused', () => {
    const big = new Uint8Array(1 << 20);
    const payload = groupedZstdCodec.encode(big, { dtype: 'U8', refs: [] }, 'max');
    assert.throws(() => groupedZstdCodec.decode(payload, 1000, { dtype: 'U8', refs: [] }), At1Error);
  });
});

describe('object header', () => {
  test('round trip with references', () => {
    const refs = [{ digest: sha256Hex(new Uint8Array([1])), dtype: 'F32' }];
    const obj = encodeObject({ codec: 2, depth: 3, rawLength: 123456789, dtype: 'BF16', refs }, new Uint8Array([9, 9]));
    const h = decodeObjectHeader(obj, 'x');
    assert.deepEqual({ ...h, payloadOffset: undefined }, { codec: 2, depth: 3, rawLength: 123456789, dtype: 'BF16', refs, payloadOffset: undefined });
    assert.deepEqual(obj.subarray(h.payloadOffset), new Uint8Array([9, 9]));
    assert.ok(h.payloadOffset <= MAX_HEADER_BYTES);
  });

  test('damaged headers are E_CORRUPT or E_UNSUPPORTED', () => {
    const good = encodeObject({ codec: 1, depth: 1, rawLength: 10, dtype: 'F16', refs: [{ digest: sha256Hex(new Uint8Array()), dtype: 'F16' }] }, new Uint8Array(4));
    const cases: [string, (b: Uint8Array) => void, string][] = [
      ['magic', (b) => (b[0] = 0), 'E_CORRUPT'],
      ['layout version', (b) => (b[4] = 9), 'E_UNSUPPORTED'],
      ['ref count', (b) => (b[7] = 7), 'E_CORRUPT'],
      ['depth without refs', (b) => (b[6] = 0), 'E_CORRUPT'],
      ['depth beyond the hard cap', (b) => (b[6] = 200), 'E_CORRUPT'],
      ['dtype length', (b) => (b[16] = 0), 'E_CORRUPT'],
      ['dtype name', (b) => (b[17] = 0x5a), 'E_CORRUPT'],
      ['raw length beyond 2^53', (b) => (b[15] = 0xff), 'E_CORRUPT'],
    ];
    for (const [what, damage, code] of cases) {
      const b = good.slice();
      damage(b);
      assert.throws(() => decodeObjectHeader(b, 'obj'), (e: unknown) => e instanceof At1Error && e.code === code, what);
    }
    assert.throws(() => decodeObjectHeader(good.subarray(0, 40), 'obj'), (e: unknown) => e instanceof At1Error && e.code === 'E_CORRUPT', 'truncated refs');
  });
});
