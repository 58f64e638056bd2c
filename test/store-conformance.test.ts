/**
 * The Backend contract (src/store/backend.ts), as one suite that every
 * backend must pass: create vs put, strict and up-to ranges, paginated
 * listing, abort, capabilities, leftovers, error classes and key refusal.
 * It runs against the local directory, the in-memory backend and an S3
 * bucket on a real service (Ceph's radosgw in CI, test/s3-helpers.ts; the
 * S3 cases skip, saying why, when no service is configured).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { At1Error } from '../src/errors.js';
import { listAll, type Backend, type KeyInfo } from '../src/store/backend.js';
import { LocalBackend, localIoError } from '../src/store/local-backend.js';
import { openBackend } from '../src/store/open.js';
import { MemoryBackend } from '../src/store/memory-backend.js';
import { ObjectStore } from '../src/store/object-store.js';
import { sha256Hex } from '../src/util/hash.js';
import { S3Backend } from '../src/store/s3-backend.js';
import { tempDir } from './helpers.js';
import { S3_SKIP, s3Location } from './s3-helpers.js';

interface Subject {
  b: Backend;
  /** Leave debris as an interrupted write of this backend would; returns its leftover key. */
  plant: (name: string, data: Uint8Array) => string | Promise<string>;
}

type TestContext = { after: (fn: () => void | Promise<void>) => void };

const BACKENDS: { name: string; skip?: string | false; make: (t: TestContext) => Subject }[] = [
  {
    name: 'local',
    make: (t) => {
      const dir = tempDir(t);
      return {
        b: new LocalBackend(dir),
        plant: (n, data) => {
          mkdirSync(join(dir, 'tmp'), { recursive: true });
          writeFileSync(join(dir, 'tmp', n), data);
          return `tmp/${n}`;
        },
      };
    },
  },
  {
    name: 'memory',
    make: () => {
      const m = new MemoryBackend();
      return { b: m, plant: (n, data) => m.plantLeftover(n, data) };
    },
  },
  {
    name: 's3',
    skip: S3_SKIP,
    make: (t) => {
      const s3 = new S3Backend(s3Location(t, 'conformance'));
      t.after(() => s3.destroy());
      // An interrupted multipart upload: what S3 leaves behind.
      return { b: s3, plant: (n, data) => s3.plantLeftover(n, data) };
    },
  },
];

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
const code = (c: string, re?: RegExp) => (e: unknown) => e instanceof At1Error && e.code === c && (!re || re.test(e.message));
const keysOf = async (it: AsyncIterable<KeyInfo>): Promise<string[]> => {
  const out: string[] = [];
  for await (const k of it) out.push(k.key);
  return out.sort();
};

for (const { name, make, skip } of BACKENDS) {
  describe(`backend conformance: ${name}`, { skip }, () => {
    test('create then read, size, exact ranges, ranges up to the end', async (t) => {
      const { b } = make(t);
      assert.equal(await b.create('a/b/c', bytes('hello world')), true);
      assert.deepEqual(await b.read('a/b/c'), bytes('hello world'));
      assert.equal(await b.size('a/b/c'), 11);
      assert.deepEqual(await b.readRange('a/b/c', 6, 5), bytes('world'));
      assert.deepEqual(await b.readRange('a/b/c', 0, 0), bytes(''));
      assert.deepEqual(await b.readUpTo('a/b/c', 6, 100), bytes('world'), 'readUpTo stops where the object ends');
      assert.deepEqual(await b.readUpTo('a/b/c', 11, 4), bytes(''), 'at the end: empty');
      assert.deepEqual(await b.readUpTo('a/b/c', 50, 4), bytes(''), 'past the end: empty');
      assert.deepEqual(await b.readUpTo('a/b/c', 0, 5), bytes('hello'));
      assert.equal(await b.size('a/b/missing'), undefined);
    });

    test('reads return buffers the caller owns: writing into one, or into the data given to create, changes nothing stored', async (t) => {
      const { b } = make(t);
      const data = bytes('abcdef');
      await b.create('k', data);
      data.fill(0x21); // the caller reuses its buffer after create returned
      const whole = await b.read('k');
      whole.fill(0x3f); // a decoder writes into what it was given, or a worker takes it
      (await b.readRange('k', 1, 3)).fill(0x3f);
      (await b.readUpTo('k', 2, 10)).fill(0x3f);
      assert.deepEqual(await b.read('k'), bytes('abcdef'));
    });

    test('readRange is strict: a short object is an error naming key, offset, wanted and got', async (t) => {
      const { b } = make(t);
      await b.put('k/short', bytes('0123456789'));
      await assert.rejects(b.readRange('k/short', 6, 100), (e: unknown) => {
        assert.ok(e instanceof At1Error && e.code === 'E_CORRUPT', String(e));
        assert.match(e.message, /k\/short/);
        assert.match(e.message, /wanted 100 bytes at offset 6, got 4/);
        assert.equal(e.retryable, false);
        return true;
      });
      await assert.rejects(b.readRange('k/short', 10, 1), code('E_CORRUPT', /got 0/));
      await assert.rejects(b.readRange('k/short', -1, 1), code('E_INPUT'));
    });

    test('create refuses an existing key and keeps its content; put replaces or creates', async (t) => {
      const { b } = make(t);
      assert.equal(await b.create('k', bytes('first')), true);
      assert.equal(await b.create('k', bytes('second')), false);
      assert.deepEqual(await b.read('k'), bytes('first'));
      await b.put('k', bytes('third'));
      assert.deepEqual(await b.read('k'), bytes('third'), 'put replaces');
      await b.put('new/key', bytes('fresh'));
      assert.deepEqual(await b.read('new/key'), bytes('fresh'), 'put creates');
      assert.equal(await b.create('new/key', bytes('x')), false, 'a put key exists for create');
      await b.remove('k');
      assert.equal(await b.create('k', bytes('again')), true, 'a removed key can be created again');
    });

    test('concurrent creators of one key: exactly one wins, and its bytes are stored', async (t) => {
      const { b } = make(t);
      const results = await Promise.all(Array.from({ length: 16 }, (_, i) => b.create('race/k', bytes(`writer ${i}`))));
      assert.equal(results.filter(Boolean).length, 1);
      assert.deepEqual(await b.read('race/k'), bytes(`writer ${results.indexOf(true)}`));
      // and concurrent puts: the result is one of them, whole
      await Promise.all(Array.from({ length: 8 }, (_, i) => b.put('race/p', bytes(`put ${i}`.repeat(100)))));
      assert.match(new TextDecoder().decode(await b.read('race/p')), /^(put \d)\1{99}$/);
    });

    test('missing keys are E_NOT_FOUND (permanent); removing a missing key is fine', async (t) => {
      const { b } = make(t);
      for (const call of [() => b.read('nope'), () => b.readRange('nope', 0, 1), () => b.readUpTo('nope', 0, 1)]) {
        await assert.rejects(call(), (e: unknown) => e instanceof At1Error && e.code === 'E_NOT_FOUND' && !e.retryable && /nope/.test(e.message));
      }
      assert.equal(await b.stat('nope'), undefined);
      await b.remove('nope');
    });

    test('list yields every key under a folder prefix with sizes, and nothing else', async (t) => {
      const { b } = make(t);
      await b.put('objects/aa/1', bytes('x'));
      await b.put('objects/bb/2', bytes('yy'));
      await b.put('objectsX/3', bytes('no'));
      await b.put('versions/v.json', bytes('{}'));
      const listed = await listAll(b, 'objects');
      for (const k of listed) assert.ok(k.mtimeMs === undefined || Math.abs(k.mtimeMs - Date.now()) < 60_000, 'a listed modification time is now-ish');
      const got = listed.map(({ key, size }) => ({ key, size })).sort((x, y) => x.key.localeCompare(y.key));
      assert.deepEqual(got, [
        { key: 'objects/aa/1', size: 1 },
        { key: 'objects/bb/2', size: 2 },
      ]);
      assert.deepEqual(await listAll(b, 'nothing-here'), []);
      await b.remove('objects/aa/1');
      assert.deepEqual((await listAll(b, 'objects')).map((k) => k.key), ['objects/bb/2']);
    });

    test('list is paginated: more than one page, nested prefixes, early stop', async (t) => {
      const { b } = make(t);
      const want: string[] = [];
      for (let i = 0; i < 23; i++) {
        const key = `p/${i % 3}/${i % 2 === 0 ? 'even/' : ''}k${i}`;
        want.push(key);
        await b.create(key, bytes(String(i)));
      }
      await b.create('pq/outside', bytes('x'));
      await b.create('p0', bytes('x'));
      assert.deepEqual(await keysOf(b.list('p', { pageSize: 4 })), want.sort(), 'every key, over six pages');
      assert.deepEqual(await keysOf(b.list('p/1', { pageSize: 2 })), want.filter((k) => k.startsWith('p/1/')).sort());
      assert.deepEqual(await keysOf(b.list('p/1/even', { pageSize: 1 })), want.filter((k) => k.startsWith('p/1/even/')).sort());
      assert.deepEqual(await keysOf(b.list('p/1/even/k4')), [], 'a key is not a folder');
      let seen = 0;
      for await (const _ of b.list('p', { pageSize: 2 })) if (++seen === 3) break; // stopping early is allowed and releases the listing
      assert.equal(seen, 3);
      const top = new Set<string>();
      for await (const n of b.topLevel()) top.add(n);
      for (const n of ['p', 'pq', 'p0']) assert.ok(top.has(n), `topLevel names ${n}`);
    });

    test('listing beyond 1,000 keys (more than one S3 page): every key once, with its size', async (t) => {
      const { b } = make(t);
      const n = 1001;
      const names = Array.from({ length: n }, (_, i) => `big/${(i % 7).toString()}/k${i}`);
      const queue = [...names];
      await Promise.all(
        Array.from({ length: 16 }, async () => {
          for (let k = queue.pop(); k !== undefined; k = queue.pop()) assert.equal(await b.create(k, bytes(k)), true);
        }),
      );
      const listed = await listAll(b, 'big');
      assert.equal(listed.length, n, 'each key once');
      assert.deepEqual(listed.map((k) => k.key).sort(), [...names].sort());
      for (const k of listed) assert.equal(k.size, k.key.length);
      assert.equal((await listAll(b, 'big', { pageSize: 1000 })).length, n, 'a page of 1,000 and one of 1');
    });

    test('stat gives size and modification time; touch renews it, only while the key holds the expected bytes', async (t) => {
      const { b } = make(t);
      assert.equal(await b.stat('l/k'), undefined);
      assert.equal(await b.touch('l/k'), false, 'touching a missing key reports false');
      await b.put('l/k', bytes('lease-1'));
      const st = await b.stat('l/k');
      assert.equal(st?.size, 7);
      assert.ok(st && Math.abs(st.mtimeMs - Date.now()) < 60_000);
      // Make it old, then renew it: the time moves forward.
      await new Promise((r) => setTimeout(r, 20));
      const before = (await b.stat('l/k'))!.mtimeMs;
      assert.equal(await b.touch('l/k', bytes('lease-2')), false, 'other bytes: not renewed');
      assert.equal(await b.touch('l/k', bytes('lease-10')), false, 'other length: not renewed');
      assert.equal((await b.stat('l/k'))!.mtimeMs, before);
      assert.equal(await b.touch('l/k', bytes('lease-1')), true);
      assert.ok((await b.stat('l/k'))!.mtimeMs > before, 'renewed');
      assert.equal(await b.touch('l/k'), true, 'without expected bytes any existing key is renewed');
      assert.deepEqual(await b.read('l/k'), bytes('lease-1'), 'touch never changes the content');
    });

    test('an aborted signal rejects every call with E_ABORTED and writes nothing', async (t) => {
      const { b } = make(t);
      await b.put('s/k', bytes('kept'));
      const signal = AbortSignal.abort();
      const calls: [string, () => Promise<unknown>][] = [
        ['read', () => b.read('s/k', { signal })],
        ['readRange', () => b.readRange('s/k', 0, 1, { signal })],
        ['readUpTo', () => b.readUpTo('s/k', 0, 1, { signal })],
        ['size', () => b.size('s/k', { signal })],
        ['stat', () => b.stat('s/k', { signal })],
        ['touch', () => b.touch('s/k', undefined, { signal })],
        ['create', () => b.create('s/new', bytes('x'), { signal })],
        ['put', () => b.put('s/k', bytes('replaced'), { signal })],
        ['remove', () => b.remove('s/k', { signal })],
        ['list', () => listAll(b, 's', { signal })],
        ['leftovers', () => keysOf(b.leftovers({ signal }))],
        ['removeLeftover', () => b.removeLeftover('tmp/x', { signal })],
      ];
      for (const [what, call] of calls) await assert.rejects(call(), code('E_ABORTED', /aborted/), what);
      assert.deepEqual(await b.read('s/k'), bytes('kept'), 'an aborted put or remove changed nothing');
      assert.equal(await b.stat('s/new'), undefined, 'an aborted create created nothing');
    });

    test('a signal aborted during a listing stops it between pages', async (t) => {
      const { b } = make(t);
      for (let i = 0; i < 12; i++) await b.put(`many/${i}`, bytes('x'));
      const ac = new AbortController();
      let seen = 0;
      await assert.rejects(
        (async () => {
          for await (const _ of b.list('many', { pageSize: 2, signal: ac.signal })) if (++seen === 1) ac.abort();
        })(),
        code('E_ABORTED'),
      );
      assert.ok(seen < 12, `stopped after ${seen} keys`);
    });

    test('capabilities say what the backend gives; the registry needs exclusive create and conditional touch', (t) => {
      const { b } = make(t);
      const c = b.capabilities;
      for (const k of ['exclusiveCreate', 'atomicReplace', 'conditionalTouch'] as const) assert.equal(typeof c[k], 'boolean', k);
      assert.ok(Number.isInteger(c.suggestedConnections) && c.suggestedConnections >= 1);
      assert.equal(c.exclusiveCreate && c.conditionalTouch && c.atomicReplace, true, 'both built-in backends give everything');
    });

    test('leftovers yield only interrupted-write debris, never a stored key; removeLeftover removes one and refuses keys', async (t) => {
      const { b, plant } = make(t);
      await b.put('objects/aa/1', bytes('x'));
      await b.create('versions/v.json', bytes('{}'));
      assert.deepEqual(await keysOf(b.leftovers()), [], 'completed writes leave no debris');
      const key = await plant('123-deadbeef', bytes('half a write'));
      const found = [];
      for await (const k of b.leftovers({ pageSize: 1 })) found.push(k);
      assert.deepEqual(found.map((k) => [k.key, k.size]), [[key, 12]]);
      assert.ok(found[0]!.mtimeMs === undefined || Math.abs(found[0]!.mtimeMs - Date.now()) < 60_000);
      await assert.rejects(b.removeLeftover('objects/aa/1'), code('E_INPUT'), 'a stored key is not a leftover');
      assert.deepEqual(await b.read('objects/aa/1'), bytes('x'));
      await b.removeLeftover(key);
      await b.removeLeftover(key); // gone already: fine
      assert.deepEqual(await keysOf(b.leftovers()), []);
    });

    test('keys that could escape the root are refused by every call (E_INPUT, permanent)', async (t) => {
      const { b } = make(t);
      for (const key of ['../x', 'a/../../x', '/etc/passwd', 'a//b', 'a/./b', 'a\\b', '', 'a/\u0000']) {
        const calls = [
          () => b.create(key, bytes('x')),
          () => b.put(key, bytes('x')),
          () => b.read(key),
          () => b.readRange(key, 0, 1),
          () => b.readUpTo(key, 0, 1),
          () => b.stat(key),
          () => b.touch(key),
          () => b.remove(key),
          () => listAll(b, key),
        ];
        for (const call of calls) await assert.rejects(call(), (e: unknown) => e instanceof At1Error && e.code === 'E_INPUT' && !e.retryable, key);
      }
    });
  });
}

describe('local backend errors', () => {
  test('errno classes: transient ones retryable, the rest permanent', () => {
    const err = (c: string) => localIoError(Object.assign(new Error(c), { code: c }), 'read', 'objects/aa/k', '/reg');
    for (const c of ['EAGAIN', 'EBUSY', 'EMFILE', 'ENFILE', 'EINTR', 'ETIMEDOUT', 'EIO']) assert.equal(err(c).retryable, true, c);
    for (const c of ['EACCES', 'EROFS', 'ENOSPC', 'EPERM', 'ENOTDIR', 'EDQUOT']) assert.equal(err(c).retryable, false, c);
    assert.match(err('ENOSPC').message, /could not read objects\/aa\/k in \/reg: ENOSPC/);
  });

  test('a real permanent failure: a key below a file (ENOTDIR)', async (t) => {
    const b = new LocalBackend(tempDir(t));
    await b.put('f', bytes('a file'));
    await assert.rejects(b.put('f/x', bytes('below a file')), (e: unknown) => e instanceof At1Error && e.code === 'E_IO' && !e.retryable && /f\/x/.test(e.message));
  });
});

describe('openBackend', () => {
  test('chooses the backend by location', async (t) => {
    const dir = tempDir(t);
    assert.ok((await openBackend(dir)) instanceof LocalBackend);
    const viaUrl = await openBackend(pathToFileURL(dir).href);
    assert.ok(viaUrl instanceof LocalBackend);
    await viaUrl.put('x/y', bytes('through file://'));
    assert.deepEqual(await (await openBackend(dir)).read('x/y'), bytes('through file://'));
    const m1 = await openBackend('memory:conformance-open');
    t.after(() => MemoryBackend.drop('conformance-open'));
    assert.ok(m1 instanceof MemoryBackend);
    await m1.put('k', bytes('shared'));
    assert.deepEqual(await (await openBackend('memory:conformance-open')).read('k'), bytes('shared'), 'one name, one store');
    const s3 = await openBackend('s3://bucket-name/some/prefix/', { endpoint: 'http://127.0.0.1:1' }); // opening sends no request
    assert.ok(s3 instanceof S3Backend);
    assert.equal(s3.location, 's3://bucket-name/some/prefix');
    s3.destroy();
    for (const bad of ['s3://Bad_Bucket/x', 's3://b/x', 's3://bucket-name/a/../x', 's3://bucket-name/a//b']) await assert.rejects(openBackend(bad), code('E_INPUT'), bad);
    await assert.rejects(openBackend('s3://bucket-name/x', { endpoint: 'ftp://h' }), code('E_INPUT', /http/));
    await assert.rejects(openBackend('gopher://x'), code('E_UNSUPPORTED'));
    await assert.rejects(openBackend('memory:'), code('E_INPUT'));
    await assert.rejects(openBackend(join(dir, 'missing')), code('E_NOT_FOUND'));
    await assert.rejects(openBackend(join(dir, 'x', 'y')), code('E_INPUT', /not a directory/));
    assert.ok((await openBackend(join(dir, 'missing'), { mode: 'create' })) instanceof LocalBackend, 'create: a missing directory is made by the first write');
    await assert.rejects(openBackend(join(dir, 'x', 'y'), { mode: 'create' }), code('E_INPUT', /exists and is not a directory/));
  });
});

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
    await b.put('x/y', bytes('1'));
    await b.create('x/y', bytes('2'));
    assert.deepEqual(readdirSync(join(dir, 'tmp')), []);
  });
});
