/**
 * The Backend contract, as one suite that every backend must pass. It runs
 * against the local directory and the in-memory backend; the S3 backend
 * will be added to BACKENDS and must pass the same cases unchanged.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { At1Error } from '../src/errors.js';
import type { Backend } from '../src/store/backend.js';
import { LocalBackend } from '../src/store/local-backend.js';
import { MemoryBackend } from '../src/store/memory-backend.js';
import { ObjectStore } from '../src/store/object-store.js';
import { sha256Hex } from '../src/util/hash.js';
import { tempDir } from './helpers.js';

const BACKENDS: { name: string; make: (t: Parameters<typeof tempDir>[0]) => Backend }[] = [
  { name: 'local', make: (t) => new LocalBackend(tempDir(t)) },
  { name: 'memory', make: () => new MemoryBackend() },
];

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

for (const { name, make } of BACKENDS) {
  describe(`backend conformance: ${name}`, () => {
    test('write then read, size, range reads', async (t) => {
      const b = make(t);
      assert.equal(await b.write('a/b/c', bytes('hello world')), true);
      assert.deepEqual(await b.read('a/b/c'), bytes('hello world'));
      assert.equal(await b.size('a/b/c'), 11);
      assert.deepEqual(await b.readRange('a/b/c', 6, 5), bytes('world'));
      assert.deepEqual(await b.readRange('a/b/c', 6, 100), bytes('world'), 'a range past the end is cut short');
      assert.equal(await b.size('a/b/missing'), undefined);
    });

    test('exclusive write refuses an existing key and keeps its content', async (t) => {
      const b = make(t);
      assert.equal(await b.write('k', bytes('first'), { exclusive: true }), true);
      assert.equal(await b.write('k', bytes('second'), { exclusive: true }), false);
      assert.deepEqual(await b.read('k'), bytes('first'));
      await b.write('k', bytes('third'));
      assert.deepEqual(await b.read('k'), bytes('third'), 'a plain write replaces');
    });

    test('concurrent exclusive writers of one key: exactly one wins', async (t) => {
      const b = make(t);
      const results = await Promise.all(Array.from({ length: 16 }, (_, i) => b.write('race', bytes(`writer ${i}`), { exclusive: true })));
      assert.equal(results.filter(Boolean).length, 1);
      const winner = results.indexOf(true);
      assert.deepEqual(await b.read('race'), bytes(`writer ${winner}`));
    });

    test('missing keys are E_NOT_FOUND; removing a missing key is fine', async (t) => {
      const b = make(t);
      await assert.rejects(b.read('nope'), (e: unknown) => e instanceof At1Error && e.code === 'E_NOT_FOUND');
      await assert.rejects(b.readRange('nope', 0, 1), (e: unknown) => e instanceof At1Error && e.code === 'E_NOT_FOUND');
      await b.remove('nope');
    });

    test('list returns every key under a prefix with sizes, and nothing else', async (t) => {
      const b = make(t);
      await b.write('objects/aa/1', bytes('x'));
      await b.write('objects/bb/2', bytes('yy'));
      await b.write('versions/v.json', bytes('{}'));
      const listed = await b.list('objects');
      for (const k of listed) assert.ok(k.mtimeMs === undefined || Math.abs(k.mtimeMs - Date.now()) < 60_000, 'a listed modification time is now-ish');
      const got = listed.map(({ key, size }) => ({ key, size })).sort((x, y) => x.key.localeCompare(y.key));
      assert.deepEqual(got, [
        { key: 'objects/aa/1', size: 1 },
        { key: 'objects/bb/2', size: 2 },
      ]);
      assert.deepEqual(await b.list('nothing-here'), []);
      await b.remove('objects/aa/1');
      assert.deepEqual((await b.list('objects')).map((k) => k.key), ['objects/bb/2']);
    });

    test('stat gives size and modification time; touch renews it, only while the key holds the expected bytes', async (t) => {
      const b = make(t);
      assert.equal(await b.stat('l/k'), undefined);
      assert.equal(await b.touch('l/k'), false, 'touching a missing key reports false');
      await b.write('l/k', bytes('lease-1'));
      const st = await b.stat('l/k');
      assert.equal(st?.size, 7);
      assert.ok(st && Math.abs(st.mtimeMs - Date.now()) < 60_000);
      // Make it old, then renew it: the time moves forward.
      await new Promise((r) => setTimeout(r, 20));
      const before = (await b.stat('l/k'))!.mtimeMs;
      assert.equal(await b.touch('l/k', bytes('lease-2')), false, 'other bytes: not renewed');
      assert.equal((await b.stat('l/k'))!.mtimeMs, before);
      assert.equal(await b.touch('l/k', bytes('lease-1')), true);
      assert.ok((await b.stat('l/k'))!.mtimeMs > before, 'renewed');
      assert.equal(await b.touch('l/k'), true, 'without expected bytes any existing key is renewed');
      assert.deepEqual(await b.read('l/k'), bytes('lease-1'), 'touch never changes the content');
    });

    test('keys that could escape the root are refused', async (t) => {
      const b = make(t);
      for (const key of ['../x', 'a/../../x', '/etc/passwd', 'a//b', 'a/./b', 'a\\b', '', 'a/\u0000']) {
        await assert.rejects(b.write(key, bytes('x')), (e: unknown) => e instanceof At1Error && e.code === 'E_INPUT', key);
        await assert.rejects(b.read(key), (e: unknown) => e instanceof At1Error && e.code === 'E_INPUT', key);
      }
    });
  });
}

describe('object store', () => {
  test('objects are keyed by digest under a two-character fan-out; put is idempotent', async (t) => {
    const dir = tempDir(t);
    const store = new ObjectStore(new LocalBackend(dir));
    const data = bytes('chunk');
    const d = sha256Hex(data);
    assert.equal(await store.put(d, data), true);
    assert.equal(await store.put(d, data), false, 'the second put of the same digest writes nothing');
    assert.deepEqual(readdirSync(join(dir, 'objects', d.slice(0, 2))), [d]);
    assert.deepEqual([...(await store.list()).entries()], [[d, data.length]]);
    assert.deepEqual(await store.get(d), data);
    assert.equal(store.stats.bytesRead, data.length);
    await assert.rejects(store.get('not-a-digest'), (e: unknown) => e instanceof At1Error && e.code === 'E_CORRUPT');
  });

  test('local writes leave no temp files behind', async (t) => {
    const dir = tempDir(t);
    const b = new LocalBackend(dir);
    await b.write('x/y', bytes('1'));
    await b.write('x/y', bytes('2'), { exclusive: true });
    assert.deepEqual(readdirSync(join(dir, 'tmp')), []);
  });
});
