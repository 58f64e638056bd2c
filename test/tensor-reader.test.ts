/**
 * TensorReader.readInto and stream: whole tensors decoded into a caller's
 * buffer, byte ranges inside one chunk and across chunk boundaries, packed
 * tensors, damage named by version, tensor and chunk, and cancellation;
 * in-process and on the worker pool (workers: 'always'), same bytes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { add, initRegistry, IntegrityError, Registry, TensorReader } from '../src/index.js';
import { chunkSource, readerSource } from '../src/registry/chunk-source.js';
import { findTensor, tensorsOf } from '../src/registry/tensor-access.js';
import type { TensorLocation } from '../src/registry/tensor-reader.js';
import { objectKey } from '../src/store/object-store.js';
import { EMBEDDED, readTensors, tempDir } from './helpers.js';

const VERSION = 'prose-step0025';
const NAME = 'lm_head.weight'; // [2048, 128] bf16: 200-element chunks of 400 bytes, 1311 of them
const CHUNK = 400;

async function setup(t: Parameters<typeof tempDir>[0]): Promise<{ regDir: string; registry: Registry; original: Map<string, Uint8Array> }> {
  const regDir = join(tempDir(t), 'reg');
  const { registry } = await initRegistry(regDir, join(EMBEDDED, 'base.safetensors'), { chunkElements: 200 });
  await add(registry, join(EMBEDDED, `${VERSION}.safetensors`)); // a delta version: every read decodes a reference chain
  const original = new Map(readTensors(join(EMBEDDED, `${VERSION}.safetensors`)).map((x) => [x.name, x.data]));
  return { regDir, registry, original };
}

/** Each way of reading: in-process, and pooled (workers forced on for small data). */
const modes: { name: string; open: (reg: Registry) => TensorReader }[] = [
  { name: 'in-process', open: (reg) => new TensorReader(readerSource(reg.reader)) },
  { name: 'pooled', open: (reg) => new TensorReader(chunkSource(reg.reader, 0, { workers: 'always', threads: reg.settings.threads })) },
];

for (const mode of modes) {
  test(`${mode.name}: whole tensors, ranges and packed tensors into a caller's buffer`, async (t) => {
    const { registry, original } = await setup(t);
    const reader = mode.open(registry);
    t.after(() => reader.close());
    const loc = await findTensor(registry, VERSION, NAME);
    const want = original.get(NAME)!;
    // The whole tensor, into a slice at an odd offset of a larger buffer: nothing outside the slice is touched.
    const big = new Uint8Array(want.length + 7).fill(0xee);
    await reader.readInto(loc, big.subarray(3, 3 + want.length));
    assert.deepEqual(Buffer.from(big.subarray(3, 3 + want.length)), Buffer.from(want));
    assert.ok(big.subarray(0, 3).every((b) => b === 0xee) && big.subarray(3 + want.length).every((b) => b === 0xee));
    const ranges = [
      { start: 10, end: 20 }, // inside chunk 0
      { start: CHUNK - 3, end: CHUNK + 5 }, // across the boundary of chunks 0 and 1
      { start: 5 * CHUNK - 1, end: 9 * CHUNK + 1 }, // whole chunks 5-8 plus a byte either side
      { start: want.length - 1, end: want.length }, // the last byte
      { start: 100, end: 100 }, // empty
    ];
    for (const r of ranges) {
      const dest = new Uint8Array(r.end - r.start);
      await reader.readInto(loc, dest, { range: r, concurrency: 3 });
      assert.deepEqual(Buffer.from(dest), Buffer.from(want.subarray(r.start, r.end)), `${r.start}:${r.end}`);
      const parts: Uint8Array[] = [];
      for await (const p of reader.stream(loc, { range: r })) parts.push(p);
      assert.deepEqual(Buffer.concat(parts), Buffer.from(want.subarray(r.start, r.end)), `stream ${r.start}:${r.end}`);
    }
    const packed = tensorsOf(await registry.manifest(VERSION)).filter((x) => x.tensor.pack);
    assert.ok(packed.length >= 2, 'the fixture has packed tensors');
    for (const p of packed) {
      const w = original.get(p.tensor.name)!;
      const dest = new Uint8Array(w.length);
      await reader.readInto(p, dest);
      assert.deepEqual(Buffer.from(dest), Buffer.from(w), p.tensor.name);
      const r = { start: 1, end: w.length - 1 }; // 256-byte tensors in 400-byte pack chunks: some of these cross a pack chunk boundary
      const part = new Uint8Array(r.end - r.start);
      await reader.readInto(p, part, { range: r });
      assert.deepEqual(Buffer.from(part), Buffer.from(w.subarray(r.start, r.end)), `${p.tensor.name} ${r.start}:${r.end}`);
    }
    await assert.rejects(reader.readInto(loc, new Uint8Array(5), { range: { start: 0, end: 6 } }), /destination of 5 bytes/);
    await assert.rejects(reader.readInto(loc, new Uint8Array(5), { range: { start: want.length, end: want.length + 5 } }), /outside tensor/);
  });
}

/** Flip a byte of an object's payload on disk. */
function damage(regDir: string, digest: string): void {
  const path = join(regDir, ...objectKey(digest).split('/'));
  const b = readFileSync(path);
  b[b.length - 1]! ^= 0xff;
  writeFileSync(path, b);
}

test('a damaged chunk: readInto names version, tensor and chunk, whole or ranged; other ranges still read', async (t) => {
  const { regDir, original } = await setup(t);
  const reg = await Registry.open(regDir);
  const loc = await findTensor(reg, VERSION, NAME);
  damage(regDir, loc.tensor.chunks[7]!);
  const fresh = await Registry.open(regDir); // no cached chunks
  const reader = new TensorReader(readerSource(fresh.reader));
  const named = (e: unknown): boolean => e instanceof IntegrityError && e.message.includes(VERSION) && e.message.includes(NAME) && /chunk 7\b/.test(e.message) && e.where.tensor === NAME;
  await assert.rejects(reader.readInto(loc, new Uint8Array(loc.tensor.length)), named);
  await assert.rejects(reader.readInto(loc, new Uint8Array(10), { range: { start: 7 * CHUNK + 5, end: 7 * CHUNK + 15 } }), named);
  const ok = new Uint8Array(CHUNK);
  await reader.readInto(loc, ok, { range: { start: 20 * CHUNK, end: 21 * CHUNK } });
  assert.deepEqual(Buffer.from(ok), Buffer.from(original.get(NAME)!.subarray(20 * CHUNK, 21 * CHUNK)));
  const packed: TensorLocation = tensorsOf(await fresh.manifest(VERSION)).find((x) => x.tensor.pack)!;
  const slice = packed.file.packs![packed.tensor.pack![0]]!.chunks;
  for (const d of slice) damage(regDir, d);
  const again = new TensorReader(readerSource((await Registry.open(regDir)).reader));
  await assert.rejects(again.readInto(packed, new Uint8Array(packed.tensor.length)), (e: unknown) => e instanceof IntegrityError && e.message.includes(packed.tensor.name) && /pack chunk \d+/.test(e.message));
});

test('an aborted signal: refused before any read, and a read aborted midway rejects with the reason', async (t) => {
  const { registry } = await setup(t);
  const reader = new TensorReader(readerSource(registry.reader));
  const loc = await findTensor(registry, VERSION, NAME);
  const before = registry.store.stats.objectsRead;
  await assert.rejects(reader.readInto(loc, new Uint8Array(loc.tensor.length), { signal: AbortSignal.abort() }), (e: unknown) => (e as Error).name === 'AbortError');
  assert.equal(registry.store.stats.objectsRead, before, 'nothing read after an abort before the call');
  const ac = new AbortController();
  const reason = new Error('caller went away');
  const reading = reader.readInto(loc, new Uint8Array(loc.tensor.length), { signal: ac.signal, concurrency: 1 });
  setImmediate(() => ac.abort(reason));
  await assert.rejects(reading, (e: unknown) => e === reason);
  assert.ok(registry.store.stats.objectsRead - before < 2 * loc.tensor.chunks.length, 'stopped before reading every chunk');
  const streamed = reader.stream(loc, { signal: AbortSignal.abort() });
  await assert.rejects(streamed.next(), (e: unknown) => (e as Error).name === 'AbortError');
});
