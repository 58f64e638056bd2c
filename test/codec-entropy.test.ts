/**
 * The entropy layer on its own: bit I/O, integer log2, frequency
 * normalisation, model serialisation and the interleaved rANS coder.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { At1Error } from '../src/errors.js';
import { BitReader, BitWriter, ByteReader, ByteWriter } from '../src/codec/entropy/bitio.js';
import { LOG_ONE, entropyCost, ilog2fp } from '../src/codec/entropy/ilog.js';
import { buildModel, freqsFromQ, readModel } from '../src/codec/entropy/model.js';
import { RansStream, buildDecodeTables, ransDecodeTokens, ransEncode } from '../src/codec/entropy/rans.js';

function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

test('bit writer and reader agree, including Exp-Golomb and 32-bit fields', () => {
  const w = new BitWriter();
  const rnd = prng(1);
  const vals: [number, number][] = [];
  for (let i = 0; i < 5000; i++) {
    const bits = Math.floor(rnd() * 33);
    const v = bits === 0 ? 0 : Math.floor(rnd() * 2 ** bits);
    vals.push([v, bits]);
    w.putLong(v, bits);
    w.expGolomb(i % 300, i % 4);
  }
  const r = new BitReader(w.finish());
  for (let i = 0; i < vals.length; i++) {
    const [v, bits] = vals[i]!;
    assert.equal(r.getLong(bits), v);
    assert.equal(r.expGolomb(i % 4), i % 300);
  }
  r.check('test');
});

test('byte reader throws E_CORRUPT past its end', () => {
  const w = new ByteWriter();
  w.varint(300);
  w.block(new Uint8Array([1, 2, 3]));
  const b = w.finish();
  const r = new ByteReader(b);
  assert.equal(r.varint(), 300);
  assert.deepEqual([...r.block()], [1, 2, 3]);
  assert.throws(() => r.u8(), (e: unknown) => e instanceof At1Error && e.code === 'E_CORRUPT');
  assert.throws(() => new ByteReader(new Uint8Array([0x80, 0x80])).varint(), At1Error);
});

test('integer log2 is monotonic and close to the true value', () => {
  let prev = -1;
  for (let x = 1; x < 5000; x++) {
    const l = ilog2fp(x);
    assert.ok(l >= prev, `monotonic at ${x}`);
    prev = l;
    assert.ok(Math.abs(l / LOG_ONE - Math.log2(x)) < 0.002, `accuracy at ${x}`);
  }
  assert.equal(entropyCost([5, 5], 0, 2), 10 * LOG_ONE);
});

test('frequencies from q-values always sum to 2^prec, every used symbol >= 1', () => {
  const rnd = prng(7);
  for (let trial = 0; trial < 500; trial++) {
    const S = 1 + Math.floor(rnd() * 256);
    const q = new Int32Array(S);
    let any = false;
    for (let s = 0; s < S; s++) if (rnd() < 0.7) ((q[s] = 1 + Math.floor(rnd() * 64)), (any = true));
    if (!any) q[0] = 1;
    const prec = 10 + Math.floor(rnd() * 3);
    const f = new Uint32Array(S);
    freqsFromQ(q, 0, S, prec, f, 0);
    let sum = 0;
    for (let s = 0; s < S; s++) {
      sum += f[s]!;
      assert.equal(f[s]! > 0, q[s]! > 0);
    }
    assert.equal(sum, 1 << prec);
  }
});

function roundTrip(tok: Uint8Array, ctx: Uint16Array | null, R: number, S: number): number {
  const n = tok.length;
  const hist = new Uint32Array(R * S);
  for (let i = 0; i < n; i++) hist[(ctx ? ctx[i]! : 0) * S + tok[i]!]!++;
  const order = Int32Array.from({ length: R }, (_, i) => i);
  const m = buildModel(hist, R, S, order);
  const bw = new BitWriter();
  m.write(bw);
  const model = readModel(new BitReader(bw.finish()), R, S, order, n);
  assert.deepEqual(model.freq, m.model.freq);
  assert.deepEqual(model.groupOf, m.model.groupOf);
  const stream = ransEncode(tok, ctx, 0, n, m.model);
  const rs = new RansStream(stream, 0, stream.length);
  const out = new Uint8Array(n);
  ransDecodeTokens(rs, buildDecodeTables(model), model.groupOf, ctx, 0, n, out);
  rs.finish('test');
  assert.deepEqual(out, tok);
  return stream.length;
}

test('rANS round-trips skewed, uniform, single-symbol and tiny inputs with contexts', () => {
  const rnd = prng(3);
  for (const n of [1, 2, 3, 4, 5, 7, 100, 4097, 100_003]) {
    for (const kind of ['skewed', 'uniform', 'single']) {
      const S = kind === 'uniform' ? 256 : 40;
      const R = 5;
      const tok = new Uint8Array(n);
      const ctx = new Uint16Array(n);
      for (let i = 0; i < n; i++) {
        ctx[i] = Math.floor(rnd() * R);
        if (kind === 'single') tok[i] = 3;
        else if (kind === 'uniform') tok[i] = Math.floor(rnd() * 256);
        else {
          let t = 0;
          while (rnd() < 0.3 + 0.1 * ctx[i]! && t < S - 1) t++;
          tok[i] = t;
        }
      }
      const bytes = roundTrip(tok, ctx, R, S);
      if (kind === 'single') assert.equal(bytes, 16, 'a certain symbol costs nothing');
      roundTrip(tok, null, 1, S);
    }
  }
});

test('rANS codes a skewed source close to its entropy', () => {
  const rnd = prng(11);
  const n = 200_000;
  const tok = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    let t = 0;
    while (rnd() < 0.5 && t < 39) t++;
    tok[i] = t;
  }
  const bytes = roundTrip(tok, null, 1, 40);
  // geometric(1/2): 2 bits per symbol
  assert.ok(bytes * 8 < n * 2 * 1.01, `${bytes * 8} bits for ${n} symbols`);
});

test('a damaged rANS stream is reported, never silently accepted', () => {
  const rnd = prng(5);
  const n = 5000;
  const tok = new Uint8Array(n);
  for (let i = 0; i < n; i++) tok[i] = Math.floor(rnd() * rnd() * 30);
  const hist = new Uint32Array(40);
  for (const t of tok) hist[t]!++;
  const m = buildModel(hist, 1, 40, [0]);
  const stream = ransEncode(tok, null, 0, n, m.model);
  const tables = buildDecodeTables(m.model);
  let detected = 0;
  for (let trial = 0; trial < 50; trial++) {
    const bad = stream.slice(0, trial % 2 ? stream.length - 2 : stream.length);
    if (trial % 2 === 0) bad[16 + Math.floor(rnd() * (bad.length - 16))]! ^= 1 << Math.floor(rnd() * 8);
    try {
      const rs = new RansStream(bad, 0, bad.length);
      const out = new Uint8Array(n);
      ransDecodeTokens(rs, tables, m.model.groupOf, null, 0, n, out);
      rs.finish('test');
      if (out.every((v, i) => v === tok[i])) continue; // a flip that changed nothing decodable
    } catch (e) {
      assert.ok(e instanceof At1Error && e.code === 'E_CORRUPT');
      detected++;
    }
  }
  assert.ok(detected >= 45, `detected ${detected} of 50`);
});
