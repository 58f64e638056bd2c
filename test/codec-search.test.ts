/**
 * The encoder search at 'max' (src/codec/search.ts) on real fixture data:
 * every version of fixtures/tinystories coded tensor by tensor against its
 * family.json parent (and grandparent), as `add` does, once with the search
 * and once trying every codec. The search must skip codecs on real chunks,
 * stay within 1% of the exhaustive size per version, be deterministic, never
 * exceed raw, and round-trip byte-exact; the float-lowrank gate must agree
 * with the codec's own detection.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encoderCandidates } from '../src/codec/index.js';
import { lowRankPossible } from '../src/codec/lowrank-gate.js';
import { floatLowRankCodec } from '../src/codec/numeric/lowrank-codec.js';
import { planSearch } from '../src/codec/search.js';
import { parseSafetensorsHeader } from '../src/format/safetensors.js';
import { bestEncoding, encodeVerified, type Reference } from '../src/registry/chunk-writer.js';

const DIR = fileURLToPath(new URL('../fixtures/tinystories/', import.meta.url));

interface Tensor {
  dtype: string;
  bytes: Uint8Array;
}

function tensors(file: string): Map<string, Tensor> {
  const buf = new Uint8Array(readFileSync(join(DIR, file)));
  const h = parseSafetensorsHeader(buf, buf.length, file);
  return new Map(h.tensors.map((t) => [t.name, { dtype: t.dtype, bytes: buf.subarray(h.dataStart + t.begin, h.dataStart + t.end) }]));
}

interface Chunk {
  version: string;
  name: string;
  dtype: string;
  raw: Uint8Array;
  refs: Reference[];
}

/** Every chunk `add` would encode for the fixture family (tensors are below one registry chunk; unchanged tensors dedup and are left out). */
function familyChunks(): Chunk[] {
  const family = JSON.parse(readFileSync(join(DIR, 'family.json'), 'utf8')) as { versions: { name: string; file: string; parent: string | null }[] };
  const byName = new Map(family.versions.map((v) => [v.name, v]));
  const out: Chunk[] = [];
  for (const v of family.versions) {
    const mine = tensors(v.file);
    const parent = v.parent ? byName.get(v.parent)! : undefined;
    const grand = parent?.parent ? byName.get(parent.parent) : undefined;
    const pt = parent ? tensors(parent.file) : undefined;
    const gt = grand ? tensors(grand.file) : undefined;
    for (const [name, t] of mine) {
      const p = pt?.get(name);
      if (p && Buffer.compare(p.bytes, t.bytes) === 0) continue;
      const refs = [p, gt?.get(name)].filter((r): r is Tensor => r !== undefined).map((r) => ({ digest: '', depth: 0, dtype: r.dtype, bytes: r.bytes }));
      out.push({ version: v.name, name, dtype: t.dtype, raw: t.bytes, refs });
    }
  }
  return out;
}

const chunks = familyChunks();

test('search at max: within 1% of trying every codec on every fixture version, skipping codecs on real chunks', () => {
  const sizes = new Map<string, { search: number; exhaustive: number }>();
  let sampled = 0;
  let skipped = 0;
  let sameWinner = 0;
  for (const c of chunks) {
    const all = planSearch(c.raw, c.dtype, c.refs, 'max', encoderCandidates('max'), 'exhaustive').codecs;
    const plan = planSearch(c.raw, c.dtype, c.refs, 'max', encoderCandidates('max'));
    if (plan.estimates) sampled++;
    skipped += all.length - plan.codecs.length;
    const s = bestEncoding(c.raw, c.dtype, c.refs, 'max');
    const e = bestEncoding(c.raw, c.dtype, c.refs, 'max', 'exhaustive');
    if (s.codec === e.codec) sameWinner++;
    const v = sizes.get(c.version) ?? { search: 0, exhaustive: 0 };
    v.search += s.payload.length;
    v.exhaustive += e.payload.length;
    sizes.set(c.version, v);
  }
  // The search must really have been exercised: chunks sampled, codecs left out.
  assert.ok(sampled >= 20, `only ${sampled} of ${chunks.length} chunks were sampled`);
  assert.ok(skipped >= 2 * sampled, `only ${skipped} full encodings were skipped over ${sampled} sampled chunks`);
  for (const [version, v] of sizes) {
    assert.ok(v.search <= v.exhaustive * 1.01, `${version}: search ${v.search} bytes, exhaustive ${v.exhaustive} (> 1%)`);
  }
  // On this family the search finds the exhaustive winner on every chunk (measured; the 1% bound above is the contract).
  assert.equal(sameWinner, chunks.length);
});

test('search at max: deterministic, never above raw, round-trips byte-exact through the verified object', () => {
  for (const c of chunks) {
    const a = bestEncoding(c.raw, c.dtype, c.refs, 'max');
    const b = bestEncoding(c.raw, c.dtype, c.refs, 'max');
    assert.equal(a.codec, b.codec, `${c.version}/${c.name}`);
    assert.ok(Buffer.compare(a.payload, b.payload) === 0, `${c.version}/${c.name}: two encodings differ`);
    assert.ok(a.payload.length <= c.raw.length, `${c.version}/${c.name}: ${a.payload.length} > raw ${c.raw.length}`);
    const back = a.codec.decode(a.payload, c.raw.length, { dtype: c.dtype, refs: a.refs });
    assert.ok(Buffer.compare(back, c.raw) === 0, `${c.version}/${c.name}: ${a.codec.name} did not round-trip`);
    encodeVerified(c.raw, c.dtype, c.refs, 'max'); // its own decode check throws on a mismatch
  }
});

test('float-lowrank gate: where it says no structure, the codec answers with its raw escape; it lets through the LoRA chunks', () => {
  let through = 0;
  let loraWins = 0;
  for (const c of chunks) {
    const ctx = { dtype: c.dtype, refs: c.refs.slice(0, 1) };
    if (!floatLowRankCodec.accepts(c.raw.length, ctx)) continue;
    const payload = floatLowRankCodec.encode(c.raw, ctx, 'max');
    if (!lowRankPossible(c.raw, ctx)) {
      assert.equal(payload.length, c.raw.length + 1, `${c.version}/${c.name}: gate said no structure, codec coded ${payload.length} bytes`);
      continue;
    }
    through++;
    if (c.version === 'code-lora' && payload.length < c.raw.length) loraWins++;
  }
  assert.ok(through > 0);
  assert.ok(loraWins > 0, 'the gate must let the merged-LoRA chunks through');
});
