/**
 * The writer lock and reader leases (src/registry/lease.ts, docs/FORMAT.md §8):
 * each test is named after the failure it stops.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { At1Error, add, initRegistry, Registry, verifyRegistry } from '../src/index.js';
import { LocalBackend } from '../src/store/local-backend.js';
import { acquireWriterLease, LOCK_KEY, parseLease, readerLeases, takeReaderLease } from '../src/registry/lease.js';
import { gcRegistry } from '../src/registry/gc.js';
import { removeVersion } from '../src/registry/remove.js';
import { readFile as readVersionFile } from '../src/registry/decode-pipeline.js';
import { fsckRegistry } from '../src/registry/fsck.js';
import { hostIdentity } from '../src/util/host-identity.js';
import { EMBEDDED, REPO, at1, sha256File, tempDir } from './helpers.js';

const HOLDER = join(REPO, 'test/scripts/lease-holder.ts');

function holder(args: string[], env: Record<string, string> = {}, prefix: string[] = []): ChildProcess {
  return spawn(prefix[0] ?? process.execPath, [...prefix.slice(1), ...(prefix.length ? [process.execPath] : []), '--import', 'tsx', HOLDER, ...args], {
    cwd: REPO,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

function waitForLine(child: ChildProcess, line: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes(line)) resolve();
    });
    child.on('exit', (code) => reject(new Error(`holder exited (${code}) before printing ${line}`)));
  });
}

function exited(child: ChildProcess): Promise<number> {
  let err = '';
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise((resolve) => {
    const done = (c: number | null): void => {
      if (c !== 0 && err) process.stderr.write(`lease-holder exited ${c}: ${err}\n`);
      resolve(c ?? -1);
    };
    if (child.exitCode !== null) done(child.exitCode);
    else child.on('exit', done);
  });
}

async function registry(t: { after: (fn: () => void) => void }): Promise<{ dir: string; reg: Registry }> {
  const dir = join(tempDir(t), 'reg');
  const { registry: reg } = await initRegistry(dir, join(EMBEDDED, 'base.safetensors'));
  return { dir, reg };
}

const canUnshare = spawnSync('unshare', ['--pid', '--fork', '--mount-proc', 'true']).status === 0;

test('a live writer in another PID namespace is never judged dead: gc there waits instead of breaking the lock', { skip: !canUnshare && 'unshare --pid is not available here' }, async (t) => {
  const { dir } = await registry(t);
  // The holder runs here; the gc runs in a new PID namespace, where the holder's pid does not exist.
  const h = holder(['hold', dir, '6000']);
  await waitForLine(h, 'held');
  const r = spawnSync('unshare', ['--pid', '--fork', '--mount-proc', process.execPath, join(REPO, 'bin/at1.js'), 'registry', 'gc', dir, '--grace', '0'], {
    encoding: 'utf8',
    env: { ...process.env, AT1_LOCK_WAIT_MS: '1500' },
  });
  assert.equal(r.status, 3, `gc from another namespace must wait and give up (exit 3), got ${r.status}: ${r.stderr}`);
  assert.match(r.stderr, /locked by pid \d+ on .*test hold/);
  const lock = parseLease(readFileSync(join(dir, LOCK_KEY)));
  assert.equal(lock.command, 'test hold', 'the holder still owns the lock');
  assert.equal(await exited(h), 0);
  assert.equal(existsSync(join(dir, LOCK_KEY)), false, 'the holder released its own lock');
});

test('a writer killed with SIGKILL in this namespace is recovered at once; one killed elsewhere after its lease expires', async (t) => {
  const { dir, reg } = await registry(t);
  const h = holder(['hold', dir, '60000']);
  await waitForLine(h, 'held');
  h.kill('SIGKILL');
  await exited(h);
  const t0 = Date.now();
  const lease = await acquireWriterLease(reg.backend, 'after kill', { waitMs: 2000 });
  assert.ok(Date.now() - t0 < 2000, 'a holder proven dead (same host, boot and PID namespace) does not make the next writer wait');
  await lease.release();

  // A lock from another host (identity unknown here) is honoured while renewed, broken once its lease has expired.
  const foreign = { format: 'at1.lease', kind: 'writer', token: 'ab'.repeat(16), command: 'add x', pid: 4242, host: 'elsewhere', identity: 'someone-else', startedAt: new Date().toISOString(), leaseMs: 1000 };
  writeFileSync(join(dir, LOCK_KEY), JSON.stringify(foreign));
  await assert.rejects(acquireWriterLease(reg.backend, 'waiter', { waitMs: 300 }), (e: unknown) => e instanceof At1Error && e.code === 'E_LOCKED' && /elsewhere/.test(e.message));
  const old = new Date(Date.now() - 10_000);
  utimesSync(join(dir, LOCK_KEY), old, old);
  const l2 = await acquireWriterLease(reg.backend, 'after expiry', { waitMs: 300 });
  assert.notEqual(parseLease(readFileSync(join(dir, LOCK_KEY))).token, foreign.token);
  await l2.release();
});

test('eight writers starting at a stale lock never hold it at once', async (t) => {
  const { dir } = await registry(t);
  for (let round = 0; round < 3; round++) {
    // A stale lock: an expired lease of a writer on another host.
    const stale = { format: 'at1.lease', kind: 'writer', token: `${round}`.padStart(32, 'c'), command: 'add old', pid: 1, host: 'gone', identity: 'gone', startedAt: '2026-01-01T00:00:00.000Z', leaseMs: 1000 };
    writeFileSync(join(dir, LOCK_KEY), JSON.stringify(stale));
    const old = new Date(Date.now() - 60_000);
    utimesSync(join(dir, LOCK_KEY), old, old);
    const log = join(dir, `..`, `log-${round}`);
    const kids = Array.from({ length: 8 }, () => holder(['contend', dir, log, '40']));
    const codes = await Promise.all(kids.map(exited));
    assert.deepEqual(codes, Array(8).fill(0));
    const events = readFileSync(log, 'utf8')
      .trim()
      .split('\n')
      .map((l) => l.split(' '))
      .map(([kind, pid, at]) => ({ kind: kind!, pid: pid!, at: Number(at) }))
      .sort((a, b) => a.at - b.at);
    assert.equal(events.length, 16);
    let inside = 0;
    for (const e of events) {
      inside += e.kind === 'enter' ? 1 : -1;
      assert.ok(inside <= 1, `round ${round}: two writers held the lock at once`);
    }
    assert.equal(existsSync(join(dir, LOCK_KEY)), false, 'every writer released its own lock');
  }
});

test('release removes only its own lock, and a writer that lost its lock publishes nothing', async (t) => {
  const { dir, reg } = await registry(t);
  const mine = await acquireWriterLease(reg.backend, 'mine', { leaseMs: 60_000 });
  // Another process judged it stale and took it over (simulated: the lock now holds someone else's token).
  const other = { format: 'at1.lease', kind: 'writer', token: 'de'.repeat(16), command: 'theirs', pid: 4243, host: 'h', identity: 'x', startedAt: new Date().toISOString(), leaseMs: 60_000 };
  writeFileSync(join(dir, LOCK_KEY), JSON.stringify(other));
  await assert.rejects(mine.assertHeld(), (e: unknown) => e instanceof At1Error && e.code === 'E_LOCKED' && /nothing was published/.test(e.message));
  await mine.release();
  assert.equal(parseLease(readFileSync(join(dir, LOCK_KEY))).token, other.token, "release left the other writer's lock alone");
  // And through publish: a manifest is never created under a lost lease.
  const manifest = await reg.manifest('base');
  await assert.rejects(reg.publish({ ...manifest, name: 'never' }, mine), /lost the registry lock/);
  assert.equal(await reg.hasVersion('never'), false);
});

test('bad AT1_LOCK_WAIT_MS or AT1_LEASE_MS values are refused clearly instead of waiting forever', async (t) => {
  const { dir } = await registry(t);
  for (const [name, value] of [['AT1_LOCK_WAIT_MS', 'abc'], ['AT1_LEASE_MS', '-5'], ['AT1_LEASE_MS', '10']] as const) {
    const r = spawnSync(process.execPath, [join(REPO, 'bin/at1.js'), 'registry', 'add', dir, join(EMBEDDED, 'code-lora.safetensors')], { encoding: 'utf8', env: { ...process.env, [name]: value } });
    assert.equal(r.status, 2, `${name}=${value}: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`${name}=.*not a whole number of milliseconds`));
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  }
  assert.equal((await Registry.open(dir)).config.format, 'at1.registry');
  assert.deepEqual(await (await Registry.open(dir)).versionNames(), ['base'], 'nothing was added');
});

test('a reader that started before rm keeps what it reads; a later gc frees it', async (t) => {
  const { dir, reg } = await registry(t);
  await add(reg, join(EMBEDDED, 'prose-step0025.safetensors'));
  await add(reg, join(EMBEDDED, 'code-lora.safetensors'));
  const want = sha256File(join(EMBEDDED, 'prose-step0025.safetensors'));
  const got = await reg.reading('test reader', ['prose-step0025'], async () => {
    const m = await reg.manifest('prose-step0025');
    // rm in another registry handle (as another process would) while this reader holds the manifest
    const r = await removeVersion(await Registry.open(dir), 'prose-step0025');
    assert.ok(r.gc.keptForReaders > 0, 'rm kept the objects the running reader may need');
    assert.equal(r.gc.removedObjects, 0);
    const { createHash } = await import('node:crypto');
    const h = createHash('sha256');
    for await (const part of readVersionFile(reg, m, m.files[0]!)) h.update(part);
    return h.digest('hex');
  });
  assert.equal(got, want, 'the reader restored the removed version byte-exact');
  assert.equal((await readerLeases(reg.backend)).length, 0, 'the reader lease is gone');
  const g = await gcRegistry(reg, { graceMs: 0 });
  assert.ok(g.removedObjects > 0, 'once the reader finished, gc frees the removed version');
  assert.equal((await fsckRegistry(dir, { readData: true })).status, 'clean');
  assert.equal((await verifyRegistry(reg, undefined)).ok, true);
});

test('an ended reader lease (its process killed) protects nothing and is removed by gc', async (t) => {
  const { reg } = await registry(t);
  const lease = await takeReaderLease(reg.backend, 'soon dead', []);
  await lease.release();
  // A lease record of a killed process of this namespace: proven dead.
  const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  const rec = { format: 'at1.lease', kind: 'reader', token: 'ef'.repeat(16), command: 'get x', pid: Number(dead.stdout), host: 'h', identity: hostIdentity(), startedAt: new Date(0).toISOString(), leaseMs: 60_000 };
  writeFileSync(join(reg.location, 'leases', `${rec.token}.json`), JSON.stringify(rec));
  const [l] = await readerLeases(reg.backend);
  assert.match(l!.ended ?? '', /has exited/);
  const g = await gcRegistry(reg, { graceMs: 0 });
  assert.equal(g.removedLeases, 1);
  assert.equal(g.keptForReaders, 0);
  assert.equal((await readerLeases(reg.backend)).length, 0);
});

test('gc spares unreachable objects younger than its grace period', async (t) => {
  const { dir, reg } = await registry(t);
  const { storeChunk } = await import('../src/registry/chunk-writer.js');
  const orphan = await storeChunk(reg.store, new Uint8Array(4096).fill(3), 'U8', [], 'max');
  const young = await gcRegistry(reg);
  assert.equal(young.keptYoung, 1, 'a just-written orphan (an add whose lock was lost may still publish it) is kept');
  assert.equal(await reg.store.has(orphan.digest), true);
  const key = join(dir, 'objects', orphan.digest.slice(0, 2), orphan.digest);
  const old = new Date(Date.now() - 3600_000);
  utimesSync(key, old, old);
  const g = await gcRegistry(reg);
  assert.equal(g.removedObjects, 1, 'an hour-old orphan is removed');
  assert.equal(await reg.store.has(orphan.digest), false);
  const cli = at1('registry', 'gc', dir, '--grace', 'soon');
  assert.equal(cli.status, 2);
  assert.match(cli.stderr, /expected a duration/);
});

test('stray files in versions/ are ignored by every command and reported by fsck', async (t) => {
  const { dir, reg } = await registry(t);
  writeFileSync(join(dir, 'versions', 'base (1).json'), readFileSync(join(dir, 'versions', 'base.json')));
  writeFileSync(join(dir, 'versions', 'notes.txt'), 'hello');
  assert.deepEqual(await reg.versionNames(), ['base']);
  assert.equal(at1('registry', 'list', dir).status, 0);
  assert.equal(at1('registry', 'verify', dir).status, 0);
  assert.equal(at1('registry', 'add', dir, join(EMBEDDED, 'code-lora.safetensors')).status, 0);
  const f = await fsckRegistry(dir);
  assert.equal(f.status, 'clean');
  assert.deepEqual(f.strays, ['versions/base (1).json', 'versions/notes.txt']);
  assert.match(at1('registry', 'fsck', dir).stdout, /2 stray files/);
});

test('a resumed init refuses options that differ from the ones it stored', async (t) => {
  const dir = join(tempDir(t), 'reg');
  const base = join(EMBEDDED, 'base.safetensors');
  // An init interrupted after its configuration: the configuration alone.
  await Registry.create(new LocalBackend(dir), Registry.newConfig({ maxChainDepth: 4 }));
  const r = at1('registry', 'init', base, dir, '--max-chain-depth', '6');
  assert.equal(r.status, 2);
  assert.match(r.stderr, /interrupted init with --max-chain-depth 4; resuming it with --max-chain-depth 6 is refused/);
  assert.deepEqual(await (await Registry.open(dir)).versionNames(), []);
  assert.equal(at1('registry', 'init', base, dir, '--max-chain-depth', '4').status, 0, 'the same options resume it');
  assert.equal(at1('registry', 'init', base, join(dir, '..', 'r2')).status, 0);
  assert.deepEqual(await (await Registry.open(dir)).versionNames(), ['base']);
});

test('an old orphan that an add has just reused survives gc, with the chain it is coded against', async (t) => {
  const { dir, reg } = await registry(t);
  await add(reg, join(EMBEDDED, 'prose-step0025.safetensors'), { parent: 'base' });
  await add(reg, join(EMBEDDED, 'prose-step0050.safetensors'), { parent: 'prose-step0025' });
  const m2 = await reg.manifest('prose-step0050');
  // Both versions' manifests vanish (rm'd long ago, say) and every object is old: orphans waiting for gc.
  const { rmSync, readdirSync } = await import('node:fs');
  rmSync(join(dir, 'versions', 'prose-step0050.json'));
  rmSync(join(dir, 'versions', 'prose-step0025.json'));
  const old = new Date(Date.now() - 3600_000);
  for (const sub of readdirSync(join(dir, 'objects'))) for (const f of readdirSync(join(dir, 'objects', sub))) utimesSync(join(dir, 'objects', sub, f), old, old);
  // An add is reusing one chunk of prose-step0050 (coded against prose-step0025's chunk): dedup proves and renews it.
  const tensor = m2.files[0]!.kind === 'safetensors' ? m2.files[0]!.tensors.find((x) => x.chunks.length > 0)! : undefined;
  const chunk = tensor!.chunks[0]!;
  const h = await reg.reader.header(chunk);
  assert.ok(h.refs.length > 0, 'the reused chunk is a delta');
  const { storeChunk } = await import('../src/registry/chunk-writer.js');
  const { bytes } = await reg.reader.read(chunk);
  assert.equal((await storeChunk(reg.store, bytes, tensor!.dtype, [], 'max')).written, 0, 'dedup reused it');
  const g = await gcRegistry(reg);
  assert.ok(g.removedObjects > 0, 'other old orphans are removed');
  assert.equal(await reg.store.has(chunk), true, 'the reused object survives');
  for (const r of h.refs) assert.equal(await reg.store.has(r.digest), true, 'and so does what it is coded against');
  assert.equal((await reg.reader.read(chunk)).bytes.length, bytes.length);
});

test('a planted lock or configuration holding deeply nested arrays is reported, never crashes a writer (found by the fuzzer)', async (t) => {
  const { dir, reg } = await registry(t);
  const deep = '['.repeat(100_000) + ']'.repeat(100_000);
  writeFileSync(join(dir, LOCK_KEY), `{"format":"at1.lease","kind":"writer","token":"${'ab'.repeat(16)}","leaseMs":60000,"pid":1,"identity":"x","command":${deep},"host":${deep},"startedAt":${deep}}`);
  await assert.rejects(acquireWriterLease(reg.backend, 'waiter', { waitMs: 100 }), (e: unknown) => e instanceof At1Error && e.code === 'E_LOCKED');
  const { rmSync } = await import('node:fs');
  rmSync(join(dir, LOCK_KEY));
  const config = readFileSync(join(dir, 'at1-registry.json'), 'utf8');
  writeFileSync(join(dir, 'at1-registry.json'), config.replace('"formatVersion": 1', `"formatVersion": ${deep}`));
  await assert.rejects(Registry.open(dir), (e: unknown) => e instanceof At1Error && e.code === 'E_UNSUPPORTED' && /format version an array/.test(e.message));
});
