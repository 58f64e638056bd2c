/**
 * The restore pipeline's buffer ownership: chunks decoded into a ring of
 * buffers the caller owns (shared memory on the worker pool), hashed on a
 * hashing worker, lent to writes. A slot is never handed out while held, a
 * lent buffer is not overwritten before its write has it, damage in the
 * middle of a tensor is still named by tensor, and the placement check
 * refuses a manifest whose tensor table disagrees with the file's header.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { getVersion, initRegistry, verifyRegistry } from '../src/index.js';
import { objectKey } from '../src/store/object-store.js';
import { chunkSource } from '../src/registry/chunk-source.js';
import { checkPlacement, decodePieces, filePieces } from '../src/registry/decode-pipeline.js';
import { SlotRing } from '../src/registry/slot-ring.js';
import type { SafetensorsFile } from '../src/registry/manifest.js';
import { EMBEDDED, family, sha256File, tempDir } from './helpers.js';

test('slot ring: a held slot is never handed out again; waiters are served in order as slots come back', async () => {
  const ring = new SlotRing(2, 10, true);
  assert.ok(ring.buffer instanceof SharedArrayBuffer);
  const a = await ring.acquire();
  const b = await ring.acquire();
  assert.notEqual(a.index, b.index);
  // Views of different slots never overlap, and start 8-byte aligned.
  const va = a.view(10);
  const vb = b.view(10);
  assert.ok(va.byteOffset + va.length <= vb.byteOffset || vb.byteOffset + vb.length <= va.byteOffset);
  assert.equal(va.byteOffset % 8, 0);
  assert.equal(vb.byteOffset % 8, 0);
  assert.throws(() => a.view(17), /does not fit/);
  const order: number[] = [];
  const third = ring.acquire().then((s) => (order.push(1), s));
  const fourth = ring.acquire().then((s) => (order.push(2), s));
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(order, [], 'no slot while both are held');
  ring.release(b);
  const c = await third;
  assert.equal(c.index, b.index, 'the released slot goes to the first waiter');
  assert.deepEqual(order, [1]);
  assert.equal(ring.inUse, 2);
  ring.release(a);
  assert.equal((await fourth).index, a.index);
  assert.throws(() => ring.release({ index: 5, view: () => new Uint8Array() }), /not held/);
});

test('ring decode on workers: lent buffers stay intact until their lender settles, and no two live results share a slot', async (t) => {
  const work = tempDir(t);
  const { registry } = await initRegistry(join(work, 'reg'), join(EMBEDDED, 'base.safetensors'), { chunkElements: 8192, settings: { workers: 'always' } });
  const m = await registry.manifest('base');
  const f = m.files[0]!;
  const source = chunkSource(registry.reader.withMemo(), 0, registry.settings);
  t.after(() => source.close());
  assert.equal(source.sharedOutput, true);
  const lent: { view: Uint8Array; copy: Uint8Array; release: () => void }[] = [];
  const parts: Uint8Array[] = [];
  let checkedLate = 0;
  for await (const r of decodePieces(source, filePieces(f), { version: m.name, file: f.path }, { reuseBuffers: true, lentSlots: 3 })) {
    assert.equal(r.error, undefined);
    const bytes = r.bytes!;
    parts.push(bytes.slice());
    if (!r.lend) continue; // a pack slice: not a ring slot
    assert.ok(bytes.buffer instanceof SharedArrayBuffer, 'decoded straight into shared memory');
    // Every still-lent buffer keeps its bytes and its own place while later chunks are decoded.
    for (const l of lent) {
      assert.deepEqual(l.view, l.copy, 'a lent buffer was overwritten before its lender settled');
      const overlap = l.view.byteOffset < bytes.byteOffset + bytes.length && bytes.byteOffset < l.view.byteOffset + l.view.length;
      assert.equal(overlap && l.view.buffer === bytes.buffer, false, 'a slot was reused while lent');
      checkedLate++;
    }
    let release!: () => void;
    r.lend(new Promise<void>((res) => (release = res)));
    lent.push({ view: bytes, copy: bytes.slice(), release });
    // Keep three lent, like a restore's writes in flight; settle the oldest.
    if (lent.length > 3) lent.shift()!.release();
  }
  for (const l of lent) l.release();
  assert.ok(checkedLate > 10, 'lent buffers were checked while later chunks arrived');
  const whole = Buffer.concat(parts);
  assert.equal(whole.length, f.size);
  assert.equal(sha256File(join(EMBEDDED, 'base.safetensors')), (await import('node:crypto')).createHash('sha256').update(whole).digest('hex'));
});

test('damage in the middle of a tensor on the ring path: get names the tensor and the object, leaves no output; verify names it too', async (t) => {
  const work = tempDir(t);
  const regDir = join(work, 'reg');
  const { registry } = await initRegistry(regDir, join(EMBEDDED, 'base.safetensors'), { chunkElements: 8192, settings: { workers: 'always' } });
  const out = join(work, 'ok.out');
  await getVersion(registry, 'base', out);
  assert.equal(sha256File(out), family().find((v) => v.name === 'base')!.sha256);
  const f = (await registry.manifest('base')).files[0] as SafetensorsFile;
  const tensor = f.tensors.find((x) => x.chunks.length >= 3)!;
  const middle = tensor.chunks[Math.floor(tensor.chunks.length / 2)]!;
  const path = join(regDir, ...objectKey(middle).split('/'));
  const bytes = readFileSync(path);
  bytes[bytes.length - 5]! ^= 0x10;
  writeFileSync(path, bytes);
  const bad = join(work, 'bad.out');
  await assert.rejects(getVersion(registry, 'base', bad), (e: Error) => {
    assert.match(e.message, new RegExp(tensor.name.replace(/\./g, '\\.')));
    assert.match(e.message, new RegExp(middle.slice(0, 16)));
    return true;
  });
  assert.equal(existsSync(bad), false);
  assert.deepEqual(readdirSync(work).filter((n) => n.includes('bad.out')), [], 'no temp left behind');
  const report = await verifyRegistry(registry, 'base');
  assert.deepEqual(report.versions[0]!.failures.map((x) => x.tensor), [tensor.name]);
});

test('placement check: a manifest whose tensor table disagrees with the checked header is refused, naming the tensor', async (t) => {
  const work = tempDir(t);
  const { registry } = await initRegistry(join(work, 'reg'), join(EMBEDDED, 'base.safetensors'), { chunkElements: 8192 });
  const m = await registry.manifest('base');
  const f = m.files[0] as SafetensorsFile;
  const header = readFileSync(join(EMBEDDED, 'base.safetensors')).subarray(0, f.header.size);
  const where = { version: m.name, file: f.path };
  checkPlacement(f, header, where); // the real table passes
  // Two tensors of the same length in swapped order: every tensor digest would still pass, the file would not be the original.
  const i = f.tensors.findIndex((x, k) => k + 1 < f.tensors.length && f.tensors[k + 1]!.length === x.length && f.tensors[k + 1]!.name !== x.name);
  assert.ok(i >= 0, 'the fixture has two neighbouring tensors of one length');
  const swapped = f.tensors.slice();
  const [a, b] = [swapped[i]!, swapped[i + 1]!];
  swapped[i] = { ...b, offset: a.offset };
  swapped[i + 1] = { ...a, offset: b.offset };
  assert.throws(() => checkPlacement({ ...f, tensors: swapped }, header, where), (e: Error & { code?: string }) => {
    assert.equal(e.code, 'E_INTEGRITY');
    assert.match(e.message, new RegExp(b.name.replace(/\./g, '\\.')));
    return true;
  });
  assert.throws(() => checkPlacement({ ...f, tensors: f.tensors.slice(0, -1) }, header, where), /lists \d+ tensors/);
  assert.throws(() => checkPlacement(f, header.subarray(0, header.length - 1), where), /E_INTEGRITY|header/);
});
