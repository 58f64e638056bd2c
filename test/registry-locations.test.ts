/**
 * Registries by location (store/open.ts): a whole registry lives on a
 * `memory:` location through openRegistry, exactly as on disk; and init
 * creates nothing before its inputs are known good.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { add, At1Error, getVersion, initRegistry, listRegistry, verifyRegistry } from '../src/index.js';
import { openRegistry } from '../src/registry/registry.js';
import { fsckRegistry } from '../src/registry/fsck.js';
import { gcRegistry } from '../src/registry/gc.js';
import { removeVersion } from '../src/registry/remove.js';
import { MemoryBackend } from '../src/store/memory-backend.js';
import { listAll, type Backend } from '../src/store/backend.js';
import { acquireWriterLease, takeReaderLease } from '../src/registry/lease.js';
import { at1, EMBEDDED, sha256File, tempDir } from './helpers.js';

test('a whole registry on a memory: location: init, add, get, verify, list, rm, gc, fsck', async (t) => {
  const location = 'memory:registry-locations-whole';
  t.after(() => MemoryBackend.drop('registry-locations-whole'));
  const work = tempDir(t);
  await initRegistry(location, join(EMBEDDED, 'base.safetensors'), { level: 'fast' });
  const reg = await openRegistry(location); // a second handle on the same named store
  assert.equal(reg.location, location);
  for (const v of ['prose-step0025', 'prose-step0050']) await add(reg, join(EMBEDDED, `${v}.safetensors`));
  assert.deepEqual(await reg.versionNames(), ['base', 'prose-step0025', 'prose-step0050']);

  for (const v of ['base', 'prose-step0050']) {
    const out = join(work, `${v}.safetensors`);
    await getVersion(reg, v, out);
    assert.equal(sha256File(out), sha256File(join(EMBEDDED, `${v}.safetensors`)), `${v} restores bit for bit`);
  }
  assert.equal((await verifyRegistry(reg, undefined)).ok, true);
  const listing = await listRegistry(reg);
  assert.equal(listing.total.versions, 3);

  const removed = await removeVersion(reg, 'prose-step0025', { rebase: true });
  assert.equal(removed.removed, 'prose-step0025');
  await gcRegistry(reg, { graceMs: 0 });
  const afterRm = await openRegistry(location);
  assert.deepEqual(await afterRm.versionNames(), ['base', 'prose-step0050']);
  const out = join(work, 'again.safetensors');
  await getVersion(afterRm, 'prose-step0050', out);
  assert.equal(sha256File(out), sha256File(join(EMBEDDED, 'prose-step0050.safetensors')), 'a rebased child still restores');

  const byLocation = await fsckRegistry(location, { readData: true });
  assert.equal(byLocation.status, 'clean', JSON.stringify(byLocation.problems));
  assert.equal(byLocation.objects.orphans, 0);
  assert.deepEqual(byLocation.leftovers, []);
  assert.equal((await fsckRegistry(afterRm)).status, 'clean', 'fsck takes an open registry too');
  assert.equal(readdirSync(work).length, 3, 'nothing but the restored files was written to disk');
});

test('openRegistry: a file:// URL opens the same registry as its path; unknown schemes are refused (s3:// has its own tests)', async (t) => {
  const dir = join(tempDir(t), 'reg');
  await initRegistry(dir, join(EMBEDDED, 'base.safetensors'), { level: 'fast' });
  assert.deepEqual(await (await openRegistry(pathToFileURL(dir).href)).versionNames(), ['base']);
  await assert.rejects(openRegistry('gs://bucket/models'), (e: unknown) => e instanceof At1Error && e.code === 'E_UNSUPPORTED' && /s3:\/\/bucket\/prefix/.test(e.message));
  await assert.rejects(openRegistry(join(dir, 'nope')), (e: unknown) => e instanceof At1Error && e.code === 'E_NOT_FOUND' && /registry .* does not exist/.test(e.message));
  await assert.rejects(openRegistry('memory:registry-locations-empty'), (e: unknown) => e instanceof At1Error && e.code === 'E_NOT_FOUND' && /not an at1 registry/.test(e.message));
  MemoryBackend.drop('registry-locations-empty');
});

test('init with a model directory holding no safetensors exits 2 and creates nothing', async (t) => {
  const work = tempDir(t);
  const model = join(work, 'model');
  mkdirSync(model);
  writeFileSync(join(model, 'README.md'), 'no weights here\n');
  const fresh = join(work, 'fresh');
  await assert.rejects(initRegistry(fresh, model), (e: unknown) => e instanceof At1Error && /no \.safetensors/.test(e.message));
  assert.equal(existsSync(fresh), false, 'a new registry directory is not even created');
  const empty = join(work, 'empty');
  mkdirSync(empty);
  const r = at1('registry', 'init', model, empty);
  assert.equal(r.status, 2, r.stderr);
  assert.deepEqual(readdirSync(empty), [], 'no at1-registry.json, no tmp/ left behind');
});

test('init with a bad version name creates nothing (it used to fail after writing the configuration)', async (t) => {
  const work = tempDir(t);
  const reg = join(work, 'reg');
  await assert.rejects(initRegistry(reg, join(EMBEDDED, 'base.safetensors'), { name: 'bad/name' }), (e: unknown) => e instanceof At1Error && e.code === 'E_INPUT');
  assert.equal(existsSync(reg), false);
  const loc = 'memory:registry-locations-badname';
  await assert.rejects(initRegistry(loc, join(EMBEDDED, 'base.safetensors'), { name: '../x' }), (e: unknown) => e instanceof At1Error);
  const written: string[] = [];
  for await (const n of new MemoryBackend('registry-locations-badname').topLevel()) written.push(n);
  assert.deepEqual(written, [], 'nothing written to the memory store either');
  MemoryBackend.drop('registry-locations-badname');
});

test('leases refuse a backend without exclusive create or conditional touch instead of trusting it', async () => {
  const mem = new MemoryBackend();
  for (const lacking of ['exclusiveCreate', 'conditionalTouch'] as const) {
    const weak: Backend = Object.assign(Object.create(mem) as MemoryBackend, { capabilities: { ...mem.capabilities, [lacking]: false } });
    const words = lacking === 'exclusiveCreate' ? /exclusive create/ : /conditional touch/;
    await assert.rejects(acquireWriterLease(weak, 'test'), (e: unknown) => e instanceof At1Error && e.code === 'E_UNSUPPORTED' && words.test(e.message));
    await assert.rejects(takeReaderLease(weak, 'test', []), (e: unknown) => e instanceof At1Error && e.code === 'E_UNSUPPORTED');
  }
  assert.deepEqual(await listAll(mem, 'leases'), [], 'nothing was created');
});
