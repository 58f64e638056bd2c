/** The worker-pool path of add, get and verify gives the same bytes and the same named failures as the in-process path. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { add, getVersion, initRegistry, verifyRegistry } from '../src/index.js';
import { objectKey } from '../src/store/object-store.js';
import { EMBEDDED, family, sha256File, tempDir } from './helpers.js';

test('pooled add, get and verify: byte-exact, and damage named by tensor', async (t) => {
  const work = tempDir(t);
  const regDir = join(work, 'reg');
  const { registry } = await initRegistry(regDir, join(EMBEDDED, 'base.safetensors'), { chunkElements: 8192, settings: { workers: 'always' } });
  const r = await add(registry, join(EMBEDDED, 'prose-step0025.safetensors'));
  assert.equal(r.manifest.parent, 'base');
  assert.ok(r.storedBytes < 0.5 * r.manifest.stats.rawBytes, 'encoded as a delta by the workers');
  for (const v of family().filter((x) => x.name === 'base' || x.name === 'prose-step0025')) {
    const out = join(work, `${v.name}.out`);
    await getVersion(registry, v.name, out);
    assert.equal(sha256File(out), v.sha256);
  }
  assert.equal((await verifyRegistry(registry, undefined)).ok, true);
  const m = await registry.manifest('prose-step0025');
  const f = m.files[0]!;
  const tensor = f.kind === 'safetensors' ? f.tensors.find((x) => x.chunks.length > 2)! : undefined;
  const path = join(regDir, ...objectKey(tensor!.chunks[1]!).split('/'));
  const bytes = readFileSync(path);
  bytes[bytes.length - 3]! ^= 1;
  writeFileSync(path, bytes);
  const report = await verifyRegistry(registry, 'prose-step0025');
  assert.deepEqual(report.versions[0]!.failures.map((x) => x.tensor), [tensor!.name]);
  await assert.rejects(getVersion(registry, 'prose-step0025', join(work, 'bad.out')), new RegExp(tensor!.name.replace(/\./g, '\\.')));
});
