/**
 * Symbolic links inside a registry are never followed (docs/FORMAT.md §2,
 * §11): a link planted at an object, at a fan-out directory, at `versions/`
 * or at `tmp/` must not let a read see, or a write change, anything outside
 * the registry. The registry's root itself may be a link.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { At1Error } from '../src/errors.js';
import { LocalBackend } from '../src/store/local-backend.js';
import { listAll } from '../src/store/backend.js';
import { ObjectStore } from '../src/store/object-store.js';
import { getVersion, initRegistry, Registry, verifyRegistry } from '../src/index.js';
import { sha256Hex } from '../src/util/hash.js';
import { EMBEDDED, family, sha256File, tempDir, treeDigest } from './helpers.js';

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

/** A registry-like root and, beside it, an outside directory holding a canary file. */
function setup(t: Parameters<typeof tempDir>[0]): { root: string; outside: string; canary: string; before: string } {
  const work = tempDir(t);
  const root = join(work, 'reg');
  const outside = join(work, 'outside');
  mkdirSync(root);
  mkdirSync(outside);
  const canary = join(outside, 'canary');
  writeFileSync(canary, 'secret outside the registry');
  return { root, outside, canary, before: treeDigest(outside) };
}

function refusedAsLink(key: string): (e: unknown) => boolean {
  return (e: unknown) => {
    assert.ok(e instanceof At1Error, String(e));
    assert.equal(e.code, 'E_CORRUPT', e.message);
    assert.ok(e.message.includes(key), `names the key ${key}: ${e.message}`);
    assert.match(e.message, /symbolic link/);
    return true;
  };
}

test('a symlinked object file is refused by read, readRange, size, remove and exclusive write, and not listed', async (t) => {
  const { root, outside, canary, before } = setup(t);
  const b = new LocalBackend(root);
  const digest = sha256Hex(bytes('secret outside the registry'));
  const key = `objects/${digest.slice(0, 2)}/${digest}`;
  await b.put('objects/00/real', bytes('x'));
  mkdirSync(join(root, 'objects', digest.slice(0, 2)), { recursive: true });
  symlinkSync(canary, join(root, ...key.split('/')));

  await assert.rejects(b.read(key), refusedAsLink(key));
  await assert.rejects(b.readRange(key, 0, 4), refusedAsLink(key));
  await assert.rejects(b.size(key), refusedAsLink(key));
  await assert.rejects(b.remove(key), refusedAsLink(key));
  await assert.rejects(b.create(key, bytes('overwritten')), refusedAsLink(key));
  await assert.rejects(b.put(key, bytes('overwritten')), refusedAsLink(key));
  await assert.rejects(new ObjectStore(b).get(digest), refusedAsLink(key));
  assert.deepEqual((await listAll(b, 'objects')).map((k) => k.key), ['objects/00/real']);
  assert.equal(treeDigest(outside), before, 'nothing outside was changed');
  assert.deepEqual(readdirSync(join(root, 'tmp')), [], 'no temp file left behind');
});

test('a symlinked objects/ab directory pointing outside: read, write and remove refuse, list skips it, the canary is untouched', async (t) => {
  const { root, outside, before } = setup(t);
  const b = new LocalBackend(root);
  await b.put('objects/00/real', bytes('x'));
  symlinkSync(outside, join(root, 'objects', 'ab'));
  const key = 'objects/ab/canary';
  await assert.rejects(b.read(key), refusedAsLink(key));
  await assert.rejects(b.readRange(key, 0, 4), refusedAsLink(key));
  await assert.rejects(b.size(key), refusedAsLink(key));
  await assert.rejects(b.remove(key), refusedAsLink(key));
  await assert.rejects(b.create('objects/ab/new', bytes('planted')), refusedAsLink('objects/ab/new'));
  await assert.rejects(b.put('objects/ab/canary', bytes('overwritten')), refusedAsLink('objects/ab/canary'));
  await assert.rejects(b.put('objects/ab/sub/deeper', bytes('planted')), refusedAsLink('objects/ab/sub/deeper'));
  assert.deepEqual((await listAll(b, 'objects')).map((k) => k.key), ['objects/00/real'], 'the linked directory is not descended into');
  assert.equal(treeDigest(outside), before, 'nothing outside was read into the registry or changed');
  assert.deepEqual(readdirSync(outside), ['canary']);
});

test('a symlinked versions/ directory: list, read and write refuse', async (t) => {
  const { root, outside, before } = setup(t);
  writeFileSync(join(outside, 'evil.json'), '{}');
  const beforeWithManifest = treeDigest(outside);
  const b = new LocalBackend(root);
  await b.put('at1-registry.json', bytes('{}'));
  symlinkSync(outside, join(root, 'versions'));
  await assert.rejects(listAll(b, 'versions'), refusedAsLink('versions'));
  await assert.rejects(b.read('versions/evil.json'), refusedAsLink('versions/evil.json'));
  await assert.rejects(b.create('versions/new.json', bytes('{}')), refusedAsLink('versions/new.json'));
  assert.equal(treeDigest(outside), beforeWithManifest);
  assert.notEqual(before, beforeWithManifest);
});

test('a symlinked tmp/ directory: writes refuse and write nothing outside', async (t) => {
  const { root, outside, before } = setup(t);
  symlinkSync(outside, join(root, 'tmp'));
  const b = new LocalBackend(root);
  await assert.rejects(b.create('objects/aa/x', bytes('data')), refusedAsLink('objects/aa/x'));
  await assert.rejects(b.create('lock', bytes('data')), refusedAsLink('lock'));
  assert.equal(treeDigest(outside), before);
});

test('a dangling link at a key is refused, never reported as an existing object', async (t) => {
  const { root, outside, before } = setup(t);
  const b = new LocalBackend(root);
  symlinkSync(join(outside, 'not-there'), join(root, 'lock'));
  await assert.rejects(b.create('lock', bytes('me')), refusedAsLink('lock'));
  await assert.rejects(b.read('lock'), refusedAsLink('lock'));
  assert.equal(treeDigest(outside), before);
  assert.deepEqual(readdirSync(outside), ['canary'], 'the link target was not created');
});

test('a FIFO planted at a key is refused at once, not waited on', { skip: spawnSync('mkfifo', ['--version']).status !== 0 }, async (t) => {
  const { root } = setup(t);
  const b = new LocalBackend(root);
  mkdirSync(join(root, 'versions'));
  assert.equal(spawnSync('mkfifo', [join(root, 'versions', 'pipe.json')]).status, 0);
  await assert.rejects(b.read('versions/pipe.json'), (e: unknown) => e instanceof At1Error && e.code === 'E_CORRUPT' && /not a regular file/.test(e.message));
  assert.deepEqual(await listAll(b, 'versions'), []);
});

test('a root that is itself a symlink works: write, read, list; a registry opened through it restores and verifies', async (t) => {
  const work = tempDir(t);
  const real = join(work, 'real-root');
  mkdirSync(real);
  const linked = join(work, 'linked-root');
  symlinkSync(real, linked);
  const b = new LocalBackend(linked);
  assert.equal(b.location, linked, 'messages keep the path the user gave');
  await b.create('objects/aa/k', bytes('v'));
  assert.deepEqual(await b.read('objects/aa/k'), bytes('v'));
  assert.deepEqual((await listAll(b, 'objects')).map(({ key, size }) => ({ key, size })), [{ key: 'objects/aa/k', size: 1 }]);
  assert.deepEqual(readFileSync(join(real, 'objects', 'aa', 'k')), Buffer.from('v'));

  const regReal = join(work, 'reg-real');
  mkdirSync(regReal);
  const regLink = join(work, 'reg-link');
  symlinkSync(regReal, regLink);
  await initRegistry(regLink, join(EMBEDDED, 'base.safetensors'));
  const reg = await Registry.open(regLink);
  const out = join(work, 'base.out.safetensors');
  await getVersion(reg, 'base', out);
  assert.equal(sha256File(out), family().find((v) => v.name === 'base')!.sha256);
  assert.equal((await verifyRegistry(reg, undefined)).ok, true);
});

test('a registry with a symlinked object: get and verify fail with a typed error naming the tensor, nothing outside is read as data', async (t) => {
  const work = tempDir(t);
  const regDir = join(work, 'reg');
  const { registry } = await initRegistry(regDir, join(EMBEDDED, 'base.safetensors'), { chunkElements: 4096 });
  const m = await registry.manifest('base');
  const f = m.files[0]!;
  if (f.kind !== 'safetensors') throw new Error('expected a safetensors file');
  const tensor = f.tensors.find((x) => x.chunks.length > 0)!;
  const digest = tensor.chunks[0]!;
  const path = join(regDir, 'objects', digest.slice(0, 2), digest);
  // Move the real object outside and link to it: the bytes are right, the link is still refused.
  const moved = join(work, 'moved-object');
  writeFileSync(moved, readFileSync(path));
  spawnSync('rm', [path]);
  symlinkSync(moved, path);
  const reg = await Registry.open(regDir);
  const out = join(work, 'out.safetensors');
  await assert.rejects(getVersion(reg, 'base', out), (e: unknown) => {
    assert.ok(e instanceof At1Error, String(e));
    assert.ok(e.message.includes(tensor.name) && /symbolic link/.test(e.message), e.message);
    return true;
  });
  assert.deepEqual(readdirSync(work).sort(), ['moved-object', 'reg'], 'no output file left');
  const report = await verifyRegistry(reg, undefined);
  assert.equal(report.ok, false);
  assert.ok(report.versions[0]!.failures.some((x) => x.tensor === tensor.name && /symbolic link/.test(x.reason)));
});
