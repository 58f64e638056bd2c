/** fsck on registries damaged on purpose; gc; rm with and without --rebase. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { add, At1Error, getVersion, initRegistry, listRegistry, Registry, verifyRegistry } from '../src/index.js';
import { fsckRegistry } from '../src/registry/fsck.js';
import { gcRegistry } from '../src/registry/gc.js';
import { removeVersion } from '../src/registry/remove.js';
import { objectKey } from '../src/store/object-store.js';
import { at1, EMBEDDED, family, sha256File, tempDir } from './helpers.js';

async function fixtureRegistry(t: Parameters<typeof tempDir>[0]): Promise<{ work: string; regDir: string; reg: Registry }> {
  const work = tempDir(t);
  const regDir = join(work, 'reg');
  const { registry: reg } = await initRegistry(regDir, join(EMBEDDED, 'base.safetensors'));
  for (const v of ['prose-step0025', 'prose-step0050', 'code-lora']) await add(reg, join(EMBEDDED, `${v}.safetensors`));
  return { work, regDir, reg };
}

async function objectOf(reg: Registry, version: string, tensor: string): Promise<string> {
  const m = await reg.manifest(version);
  const f = m.files[0]!;
  return f.kind === 'safetensors' ? f.tensors.find((x) => x.name === tensor)!.chunks[0]! : '';
}

const objPath = (regDir: string, d: string): string => join(regDir, ...objectKey(d).split('/'));
const T = 'model.layers.1.mlp.up_proj.weight';

test('fsck: a clean registry is clean, with --read-data too', async (t) => {
  const { regDir } = await fixtureRegistry(t);
  const r = await fsckRegistry(regDir, { readData: true });
  assert.equal(r.status, 'clean', JSON.stringify(r.problems));
  assert.equal(r.objects.checkedData, r.objects.needed);
  assert.equal(r.objects.orphans, 0);
});

test('fsck finds each kind of damage and names it', async (t) => {
  const damages: [string, (regDir: string, reg: Registry) => Promise<void>, { kind: string; readData?: boolean; tensor?: boolean }][] = [
    ['missing object', async (regDir, reg) => rmSync(objPath(regDir, await objectOf(reg, 'prose-step0050', T))), { kind: 'missing', tensor: true }],
    ['truncated object', async (regDir, reg) => {
      const p = objPath(regDir, await objectOf(reg, 'prose-step0050', T));
      writeFileSync(p, readFileSync(p).subarray(0, 12));
    }, { kind: 'bad-header', tensor: true }],
    ['flipped bit in a payload', async (regDir, reg) => {
      const p = objPath(regDir, await objectOf(reg, 'prose-step0050', T));
      const b = readFileSync(p);
      b[b.length - 5]! ^= 0x04;
      writeFileSync(p, b);
    }, { kind: 'data', readData: true, tensor: true }],
    ['manifest pointing at a wrong digest', async (regDir) => {
      const p = join(regDir, 'versions', 'code-lora.json');
      const m = JSON.parse(readFileSync(p, 'utf8'));
      m.files[0].tensors[3].chunks[0] = 'ab'.repeat(32);
      writeFileSync(p, JSON.stringify(m));
    }, { kind: 'missing' }],
    ['a cycle of parents', async (regDir) => {
      for (const [v, parent] of [['base', 'prose-step0050'], ['prose-step0050', 'base']]) {
        const p = join(regDir, 'versions', `${v}.json`);
        const m = JSON.parse(readFileSync(p, 'utf8'));
        m.parent = parent;
        writeFileSync(p, JSON.stringify(m));
      }
    }, { kind: 'parent-cycle' }],
    ['an unparseable manifest', async (regDir) => writeFileSync(join(regDir, 'versions', 'code-lora.json'), '{"format": "at1.version", '), { kind: 'manifest' }],
  ];
  for (const [what, damage, want] of damages) {
    const { regDir, reg } = await fixtureRegistry(t);
    await damage(regDir, reg);
    const r = await fsckRegistry(regDir, { readData: want.readData });
    assert.equal(r.status, 'damaged', what);
    const p = r.problems.find((x) => x.kind === want.kind);
    assert.ok(p, `${what}: ${JSON.stringify(r.problems)}`);
    if (want.tensor) assert.equal(p.tensor, T, what);
    if (want.readData) assert.equal((await fsckRegistry(regDir)).status, 'clean', `${what}: only --read-data sees payload damage`);
  }
  const cli = at1('registry', 'fsck', join(tempDir(t), 'nothing'));
  assert.equal(cli.status, 2);
  assert.match(cli.stdout, /fsck: UNUSABLE/);
});

test('fsck and gc: orphans and leftovers of interrupted writes are reported, then removed', async (t) => {
  const { regDir, reg } = await fixtureRegistry(t);
  // An add that died before its manifest: objects nobody names, and a temp file.
  const orphanBytes = new Uint8Array(100).fill(7);
  const { storeChunk } = await import('../src/registry/chunk-writer.js');
  await storeChunk(reg.store, orphanBytes, 'U8', [], 'max');
  mkdirSync(join(regDir, 'tmp'), { recursive: true });
  writeFileSync(join(regDir, 'tmp', '1234-deadbeef'), 'partial');
  const before = await fsckRegistry(regDir);
  assert.equal(before.status, 'clean', 'orphans are not damage');
  assert.equal(before.objects.orphans, 1);
  assert.deepEqual(before.leftovers, ['tmp/1234-deadbeef']);
  const g = await gcRegistry(reg, { graceMs: 0 }); // the planted leftovers are seconds old
  assert.equal(g.removedObjects, 1);
  assert.equal(g.removedLeftovers, 1);
  const after = await fsckRegistry(regDir, { readData: true });
  assert.equal(after.objects.orphans, 0);
  assert.equal(after.status, 'clean');
  assert.equal((await verifyRegistry(reg, undefined)).ok, true);
});

test('rm refuses while others are encoded against the version; --rebase re-encodes them, verified, then frees space', async (t) => {
  const { work, reg } = await fixtureRegistry(t);
  await assert.rejects(removeVersion(reg, 'prose-step0025'), (e: unknown) => e instanceof At1Error && /reference of prose-step0050/.test(e.message));
  assert.deepEqual(await reg.versionNames(), ['base', 'code-lora', 'prose-step0025', 'prose-step0050']);
  const before = (await listRegistry(reg)).total.storedBytes;
  const r = await removeVersion(reg, 'prose-step0025', { rebase: true });
  assert.ok(r.rebasedObjects > 0);
  assert.deepEqual(r.reparented, ['prose-step0050']);
  assert.equal((await reg.manifest('prose-step0050')).parent, 'base');
  assert.ok((await listRegistry(reg)).total.storedBytes < before, 'space was reclaimed');
  for (const v of family().filter((x) => ['base', 'prose-step0050', 'code-lora'].includes(x.name))) {
    await getVersion(reg, v.name, join(work, v.name));
    assert.equal(sha256File(join(work, v.name)), v.sha256, v.name);
  }
  assert.equal((await fsckRegistry(join(work, 'reg'), { readData: true })).status, 'clean');
  // A version nothing is coded against goes without --rebase; so can the base, with it.
  await removeVersion(reg, 'code-lora');
  await removeVersion(reg, 'base', { rebase: true });
  assert.deepEqual(await reg.versionNames(), ['prose-step0050']);
  await getVersion(reg, 'prose-step0050', join(work, 'last'));
  assert.equal(sha256File(join(work, 'last')), family().find((x) => x.name === 'prose-step0050')!.sha256);
  assert.equal((await fsckRegistry(join(work, 'reg'), { readData: true })).status, 'clean');
});
