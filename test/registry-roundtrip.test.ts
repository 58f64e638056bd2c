import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { add, getVersion, initRegistry, listRegistry, verifyRegistry, Registry } from '../src/index.js';
import { EMBEDDED, family, HAS_SHARED, SHARED, sha256File, tempDir, type FamilyEntry } from './helpers.js';

async function roundTripFamily(t: Parameters<typeof tempDir>[0], dir: string, versions: FamilyEntry[], chunkElements?: number): Promise<Registry> {
  const work = tempDir(t);
  const regDir = join(work, 'reg');
  const [base, ...rest] = versions;
  const { registry } = await initRegistry(regDir, join(dir, base!.file), { name: base!.name, chunkElements });
  for (const v of rest) await add(registry, join(dir, v.file), { name: v.name, parent: v.parent ?? undefined });
  for (const v of versions) {
    const out = join(work, `${v.name}.out`);
    const r = await getVersion(registry, v.name, out);
    assert.equal(r.sha256, v.sha256, `${v.name}: recorded digest`);
    assert.equal(sha256File(out), v.sha256, `${v.name}: restored file is byte-exact`);
  }
  return registry;
}

test('every version of the embedded family restores byte-exact', async (t) => {
  const reg = await roundTripFamily(t, EMBEDDED, family(EMBEDDED));
  const report = await verifyRegistry(reg, undefined);
  assert.equal(report.ok, true);
  assert.equal(report.versions.length, 5);
});

test('every version restores byte-exact with small chunks (many chunks per tensor)', async (t) => {
  await roundTripFamily(t, EMBEDDED, family(EMBEDDED), 4096);
});

test('every version of the full shared family restores byte-exact, fp32 and bf16 mixed', { skip: !HAS_SHARED && 'shared fixtures not beside the repository' }, async (t) => {
  const reg = await roundTripFamily(t, SHARED, family(SHARED));
  const listing = await listRegistry(reg);
  assert.equal(listing.versions.length, 10);
  // Deltas pay: the family is stored well below its raw size (BitX-level or better).
  assert.ok(listing.total.ratio < 0.45, `family ratio ${listing.total.ratio}`);
});

test('list: parent, raw and stored bytes per version, rows adding up to the family total', async (t) => {
  const reg = await roundTripFamily(t, EMBEDDED, family(EMBEDDED));
  const l = await listRegistry(reg);
  const byName = new Map(l.versions.map((v) => [v.name, v]));
  for (const v of family(EMBEDDED)) {
    const row = byName.get(v.name)!;
    assert.equal(row.parent, v.parent);
    assert.equal(row.rawBytes, v.bytes);
    assert.ok(row.storedBytes > 0 && row.storedBytes < row.rawBytes, `${v.name} stored ${row.storedBytes}`);
  }
  assert.equal(l.total.storedBytes, l.versions.reduce((a, v) => a + v.storedBytes, 0));
  // The LoRA version differs only in q/v projections: far smaller than the base.
  assert.ok(byName.get('code-lora')!.storedBytes < byName.get('base')!.storedBytes / 5);
});

test('a bit-identical file added twice costs only a manifest', async (t) => {
  const work = tempDir(t);
  const { registry } = await initRegistry(join(work, 'reg'), join(EMBEDDED, 'base.safetensors'));
  const objectsBefore = (await registry.store.list()).size;
  const r1 = await add(registry, join(EMBEDDED, 'code-lora.safetensors'), { name: 'lora-a' });
  const objectsMid = (await registry.store.list()).size;
  const r2 = await add(registry, join(EMBEDDED, 'code-lora.safetensors'), { name: 'lora-b' });
  assert.equal((await registry.store.list()).size, objectsMid, 'no new objects for the second copy');
  assert.equal(r2.manifest.stats.newObjects, 0);
  assert.ok(r2.storedBytes < 20000, `second copy cost ${r2.storedBytes} bytes (manifest only)`);
  assert.ok(objectsMid > objectsBefore);
  assert.ok(r1.manifest.stats.newObjects > 0);
  // Unchanged tensors of the LoRA version are the base's own objects.
  const base = await registry.manifest('base');
  const lora = await registry.manifest('lora-a');
  const bt = base.files[0]!.kind === 'safetensors' ? base.files[0]!.tensors : [];
  const lt = lora.files[0]!.kind === 'safetensors' ? lora.files[0]!.tensors : [];
  const shared = lt.filter((t2, i) => t2.chunks.join() === bt[i]!.chunks.join()).length;
  assert.ok(shared >= 14, `${shared} of ${lt.length} tensors shared with the base`);
  assert.equal(sha256File(join(EMBEDDED, 'code-lora.safetensors')), family().find((v) => v.name === 'code-lora')!.sha256);
});

test('get writes atomically: no temp files are left beside the output', async (t) => {
  const work = tempDir(t);
  const { registry } = await initRegistry(join(work, 'reg'), join(EMBEDDED, 'base.safetensors'));
  await getVersion(registry, 'base', join(work, 'out.safetensors'));
  assert.deepEqual(readdirSync(work).sort(), ['out.safetensors', 'reg']);
});
