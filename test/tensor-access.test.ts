import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { add, initRegistry, Registry, At1Error } from '../src/index.js';
import { findTensor, readTensorBytes, rowRange } from '../src/registry/tensor-access.js';
import { toFloat32, typedView } from '../src/format/dtype-convert.js';
import type { Backend, CallOptions, Capabilities, KeyInfo, KeyStat, ListOptions } from '../src/store/backend.js';
import { LocalBackend } from '../src/store/local-backend.js';
import { objectKey } from '../src/store/object-store.js';
import { llamaShapes, writeChain } from '../bench/synthetic.js';
import { at1, EMBEDDED, readTensors, tempDir } from './helpers.js';

const NAME = 'lm_head.weight'; // [2048, 128] bf16: with 1024-element chunks, 8 rows per chunk and 256 chunks

async function smallChunkRegistry(t: Parameters<typeof tempDir>[0]): Promise<{ work: string; regDir: string; registry: Registry }> {
  const work = tempDir(t);
  const regDir = join(work, 'reg');
  const { registry } = await initRegistry(regDir, join(EMBEDDED, 'base.safetensors'), { chunkElements: 1024 });
  await add(registry, join(EMBEDDED, 'prose-step0025.safetensors'));
  return { work, regDir, registry };
}

test('row ranges: first row, last row, across chunk boundaries, empty; out of bounds refused', async (t) => {
  const { registry } = await smallChunkRegistry(t);
  const original = readTensors(join(EMBEDDED, 'prose-step0025.safetensors')).find((x) => x.name === NAME)!.data;
  const loc = await findTensor(registry, 'prose-step0025', NAME);
  const row = 256; // bytes per row
  const cases: [number, number][] = [
    [0, 1], // first row
    [2047, 2048], // last row
    [7, 9], // across a chunk boundary (rows 0-7 | 8-15)
    [5, 29], // spans four chunks
    [100, 100], // empty
    [0, 2048], // all
  ];
  for (const [a, b] of cases) {
    const got = await readTensorBytes(registry, loc, rowRange(loc.tensor, a, b));
    assert.deepEqual(Buffer.from(got), Buffer.from(original.subarray(a * row, b * row)), `rows ${a}:${b}`);
  }
  for (const [a, b] of [
    [0, 2049],
    [10, 5],
    [-1, 2],
  ] as [number, number][]) {
    assert.throws(() => rowRange(loc.tensor, a, b), (e: unknown) => e instanceof At1Error && e.code === 'E_INPUT' && /outside tensor/.test(e.message), `${a}:${b}`);
  }
  const bytes = await readTensorBytes(registry, loc, { start: 3, end: 2051 }); // unaligned bytes across chunk 0 and 1
  assert.deepEqual(Buffer.from(bytes), Buffer.from(original.subarray(3, 2051)));
});

test('a range read decodes only its own chunks: damage elsewhere in the tensor does not touch it', async (t) => {
  const { regDir, registry } = await smallChunkRegistry(t);
  const loc = await findTensor(registry, 'prose-step0025', NAME);
  const damaged = loc.tensor.chunks[100]!;
  const path = join(regDir, ...objectKey(damaged).split('/'));
  const b = readFileSync(path);
  b[b.length - 1]! ^= 0xff;
  writeFileSync(path, b);
  const fresh = await Registry.open(regDir);
  const ok = await readTensorBytes(fresh, loc, rowRange(loc.tensor, 0, 16));
  assert.equal(ok.length, 16 * 256);
  await assert.rejects(readTensorBytes(fresh, loc, rowRange(loc.tensor, 800, 801)), (e: unknown) => e instanceof At1Error && /chunk 100/.test(e.message) && e.message.includes(NAME));
  await assert.rejects(readTensorBytes(fresh, loc), (e: unknown) => e instanceof At1Error && e.message.includes(NAME));
});

test('typed views and float32 conversion', async (t) => {
  const { registry } = await smallChunkRegistry(t);
  const loc = await findTensor(registry, 'base', 'model.norm.weight');
  const bytes = await readTensorBytes(registry, loc);
  const bits = typedView('BF16', bytes) as Uint16Array;
  assert.equal(bits.length, 128);
  const f = toFloat32('BF16', bytes);
  const u = new Uint32Array(f.buffer);
  for (let i = 0; i < 128; i++) assert.equal(u[i], bits[i]! << 16);
  const f32 = typedView('F32', new Uint8Array(new Float32Array([1.5, -2]).buffer));
  assert.deepEqual([...f32], [1.5, -2]);
});

/** Parse an .npy file by the format's own rules (format.rst, version 1.0). */
function parseNpy(b: Uint8Array): { descr: string; fortran: boolean; shape: number[]; data: Uint8Array; headerLength: number } {
  assert.deepEqual([...b.subarray(0, 6)], [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59], 'magic');
  assert.deepEqual([b[6], b[7]], [1, 0], 'version 1.0');
  const hl = b[8]! | (b[9]! << 8);
  const header = new TextDecoder('latin1').decode(b.subarray(10, 10 + hl));
  assert.equal((10 + hl) % 64, 0, 'data aligned to 64 bytes');
  assert.ok(header.endsWith('\n'), 'header ends with a newline');
  const m = /^\{'descr': '([^']+)', 'fortran_order': (True|False), 'shape': \(([^)]*)\), \} *\n$/.exec(header);
  assert.ok(m, header);
  const shape = m[3]!.split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  return { descr: m[1]!, fortran: m[2] === 'True', shape, data: b.subarray(10 + hl), headerLength: hl };
}

test('CLI: tensor get --format npy writes a valid .npy (bf16 widened to float32), rows too; tensor list', async (t) => {
  const { work, regDir } = await smallChunkRegistry(t);
  const original = readTensors(join(EMBEDDED, 'prose-step0025.safetensors')).find((x) => x.name === NAME)!.data;
  const out = join(work, 't.npy');
  const r = at1('tensor', 'get', regDir, 'prose-step0025', NAME, '--rows', '10:20', '--format', 'npy', '--out', out);
  assert.equal(r.status, 0, r.stderr);
  const npy = parseNpy(readFileSync(out));
  assert.deepEqual({ descr: npy.descr, fortran: npy.fortran, shape: npy.shape }, { descr: '<f4', fortran: false, shape: [10, 128] });
  const f = new Float32Array(npy.data.buffer.slice(npy.data.byteOffset, npy.data.byteOffset + npy.data.length));
  assert.deepEqual([...f], [...toFloat32('BF16', original.slice(10 * 256, 20 * 256))]);
  const list = at1('tensor', 'list', regDir, 'prose-step0025', '--json');
  const rows = JSON.parse(list.stdout) as { name: string; bytes: number; storedBytes: number; sha256: string; shape: number[] }[];
  assert.equal(rows.length, 20);
  const lm = rows.find((x) => x.name === NAME)!;
  assert.deepEqual(lm.shape, [2048, 128]);
  assert.equal(lm.bytes, 524288);
  assert.ok(lm.storedBytes > 0 && lm.storedBytes < lm.bytes);
  const bad = at1('tensor', 'get', regDir, 'prose-step0025', NAME, '--rows', '0:5000', '--out', join(work, 'x'));
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /outside tensor/);
  const missing = at1('tensor', 'get', regDir, 'prose-step0025', 'no.such.tensor', '--out', join(work, 'x'));
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /no tensor "no\.such\.tensor"/);
});

/** Counts bytes read from objects and from everything else. */
class CountingBackend implements Backend {
  objectBytes = 0;
  otherBytes = 0;
  constructor(private readonly inner: Backend) {}
  get location(): string {
    return this.inner.location;
  }
  private count(k: string, n: number): void {
    if (k.startsWith('objects/')) this.objectBytes += n;
    else this.otherBytes += n;
  }
  async read(k: string): Promise<Uint8Array> {
    const b = await this.inner.read(k);
    this.count(k, b.length);
    return b;
  }
  async readRange(k: string, o: number, l: number, opts?: CallOptions): Promise<Uint8Array> {
    const b = await this.inner.readRange(k, o, l, opts);
    this.count(k, b.length);
    return b;
  }
  async readUpTo(k: string, o: number, l: number, opts?: CallOptions): Promise<Uint8Array> {
    const b = await this.inner.readUpTo(k, o, l, opts);
    this.count(k, b.length);
    return b;
  }
  get capabilities(): Capabilities {
    return this.inner.capabilities;
  }
  size(k: string): Promise<number | undefined> {
    return this.inner.size(k);
  }
  stat(k: string): Promise<KeyStat | undefined> {
    return this.inner.stat(k);
  }
  touch(k: string, expect?: Uint8Array): Promise<boolean> {
    return this.inner.touch(k, expect);
  }
  create(k: string, d: Uint8Array): Promise<boolean> {
    return this.inner.create(k, d);
  }
  put(k: string, d: Uint8Array): Promise<void> {
    return this.inner.put(k, d);
  }
  remove(k: string): Promise<void> {
    return this.inner.remove(k);
  }
  list(p: string, o?: ListOptions): AsyncIterable<KeyInfo> {
    return this.inner.list(p, o);
  }
  topLevel(): AsyncIterable<string> {
    return this.inner.topLevel();
  }
  leftovers(): AsyncIterable<KeyInfo> {
    return this.inner.leftovers();
  }
  removeLeftover(k: string): Promise<void> {
    return this.inner.removeLeftover(k);
  }
}

test('fetching one tensor reads only its chain, however large the model', async (t) => {
  const work = tempDir(t);
  const results: { params: number; objectBytes: number; chain: number; otherBytes: number; manifest: number }[] = [];
  for (const params of [2e6, 1.6e7]) {
    const paths = [join(work, `base-${params}.safetensors`), join(work, `ft-${params}.safetensors`)];
    writeChain(paths, llamaShapes(params), 6e-4, 5);
    const regDir = join(work, `reg-${params}`);
    const { registry } = await initRegistry(regDir, paths[0]!, { chunkElements: 1 << 16, level: 'fast' });
    await add(registry, paths[1]!, { name: 'ft' });
    const counting = new CountingBackend(new LocalBackend(regDir));
    const reg = await Registry.openBackend(counting);
    const loc = await findTensor(reg, 'ft', 'model.layers.0.self_attn.q_proj.weight');
    const before = { o: counting.objectBytes, x: counting.otherBytes };
    const bytes = await readTensorBytes(reg, loc);
    assert.equal(bytes.length, loc.tensor.length);
    // The chain: the tensor's own objects and, transitively, the objects they reference.
    const sizes = await registry.store.list();
    const chain = new Set<string>();
    const visit = async (d: string): Promise<void> => {
      if (chain.has(d)) return;
      chain.add(d);
      for (const r of (await registry.reader.header(d)).refs) await visit(r.digest);
    };
    for (const d of loc.tensor.chunks) await visit(d);
    const chainBytes = [...chain].reduce((a, d) => a + sizes.get(d)!, 0);
    const manifestBytes = (await counting.size('versions/ft.json'))!;
    results.push({ params, objectBytes: counting.objectBytes - before.o, chain: chainBytes, otherBytes: counting.otherBytes, manifest: manifestBytes });
    assert.ok(counting.objectBytes - before.o <= chainBytes, `read ${counting.objectBytes - before.o} object bytes, chain holds ${chainBytes}`);
  }
  const [small, large] = results as [(typeof results)[0], (typeof results)[0]];
  assert.ok(large.manifest > 5 * small.manifest, 'the larger model has many more tensors');
  // The model grew ~8x; the tensor's fetch did not (same shape, same statistics).
  assert.ok(Math.abs(large.objectBytes - small.objectBytes) < 0.1 * small.objectBytes, JSON.stringify(results));
  for (const r of results) assert.ok(r.otherBytes <= r.manifest + 1024, `metadata read: ${r.otherBytes} (manifest ${r.manifest})`);
  t.diagnostic(`bytes read for one tensor: ${JSON.stringify(results)}`);
});
