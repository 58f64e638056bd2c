/**
 * An add that fails at any write (disk full, I/O error, a crash modelled as
 * an exception) leaves the registry valid: earlier versions verify, the
 * interrupted version is absent, and the same add then succeeds. The
 * SIGKILL harness of the reliability issue extends this to real processes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cp } from 'node:fs/promises';
import { join } from 'node:path';
import { add, initRegistry, Registry, verifyRegistry, At1Error } from '../src/index.js';
import type { Backend, CallOptions, Capabilities, KeyInfo, KeyStat, ListOptions } from '../src/store/backend.js';
import { LocalBackend } from '../src/store/local-backend.js';
import { EMBEDDED, sha256File, tempDir } from './helpers.js';
import { getVersion } from '../src/registry/restore.js';
import { removeVersion } from '../src/registry/remove.js';
import { gcRegistry } from '../src/registry/gc.js';
import { fsckRegistry } from '../src/registry/fsck.js';

/** A backend that fails with ENOSPC on its Nth write (create or put), or EIO on its Nth removal (counting from 0). */
class FailingBackend implements Backend {
  writes = 0;
  removes = 0;
  failRemoveAt = -1;
  constructor(
    private readonly inner: Backend,
    private readonly failAt: number,
  ) {}
  get location(): string {
    return this.inner.location;
  }
  get capabilities(): Capabilities {
    return this.inner.capabilities;
  }
  read(k: string, o?: CallOptions): Promise<Uint8Array> {
    return this.inner.read(k, o);
  }
  readRange(k: string, off: number, l: number, o?: CallOptions): Promise<Uint8Array> {
    return this.inner.readRange(k, off, l, o);
  }
  readUpTo(k: string, off: number, l: number, o?: CallOptions): Promise<Uint8Array> {
    return this.inner.readUpTo(k, off, l, o);
  }
  size(k: string, o?: CallOptions): Promise<number | undefined> {
    return this.inner.size(k, o);
  }
  stat(k: string, o?: CallOptions): Promise<KeyStat | undefined> {
    return this.inner.stat(k, o);
  }
  touch(k: string, expect?: Uint8Array, o?: CallOptions): Promise<boolean> {
    return this.inner.touch(k, expect, o);
  }
  private failWrite(k: string): void {
    if (this.writes++ === this.failAt && !k.startsWith('lock')) throw new At1Error('E_IO', `could not write ${k}: ENOSPC (injected)`);
  }
  async create(k: string, d: Uint8Array, o?: CallOptions): Promise<boolean> {
    this.failWrite(k);
    return this.inner.create(k, d, o);
  }
  async put(k: string, d: Uint8Array, o?: CallOptions): Promise<void> {
    this.failWrite(k);
    return this.inner.put(k, d, o);
  }
  async remove(k: string, o?: CallOptions): Promise<void> {
    if (this.removes++ === this.failRemoveAt && !k.startsWith('lock')) throw new At1Error('E_IO', `could not remove ${k}: EIO (injected)`);
    return this.inner.remove(k, o);
  }
  list(p: string, o?: ListOptions): AsyncIterable<KeyInfo> {
    return this.inner.list(p, o);
  }
  topLevel(o?: CallOptions): AsyncIterable<string> {
    return this.inner.topLevel(o);
  }
  leftovers(o?: ListOptions): AsyncIterable<KeyInfo> {
    return this.inner.leftovers(o);
  }
  removeLeftover(k: string, o?: CallOptions): Promise<void> {
    return this.inner.removeLeftover(k, o);
  }
}

test('an add failing at every possible write leaves a valid registry, and a retry succeeds', async (t) => {
  const work = tempDir(t);
  const regDir = join(work, 'reg');
  await initRegistry(regDir, join(EMBEDDED, 'base.safetensors'));
  const file = join(EMBEDDED, 'prose-step0025.safetensors');
  // Count the writes of one successful add in a scratch copy of the same registry.
  const probeDir = join(work, 'probe');
  await initRegistry(probeDir, join(EMBEDDED, 'base.safetensors'));
  const counter = new FailingBackend(new LocalBackend(probeDir), -1);
  await add(await Registry.openBackend(counter), file);
  assert.ok(counter.writes > 5, `an add makes ${counter.writes} writes`);

  for (let failAt = 0; failAt < counter.writes; failAt++) {
    const faulty = await Registry.openBackend(new FailingBackend(new LocalBackend(regDir), failAt));
    try {
      await add(faulty, file, { name: `v${failAt}` });
      // The lock write is not failed, so the run that would fail only on it succeeds.
    } catch (e) {
      assert.ok(e instanceof At1Error && /ENOSPC/.test(e.message), String(e));
      const reg = await Registry.open(regDir);
      assert.equal(await reg.hasVersion(`v${failAt}`), false, `failure at write ${failAt}: the version is absent`);
      assert.equal((await verifyRegistry(reg, undefined)).ok, true, `failure at write ${failAt}: the registry verifies`);
    }
  }
  const reg = await Registry.open(regDir);
  await add(reg, file, { name: 'after-all-failures' });
  assert.equal((await verifyRegistry(reg, undefined)).ok, true);
  const out = join(work, 'out.safetensors');
  await getVersion(reg, 'after-all-failures', out);
  assert.equal(sha256File(out), sha256File(file));
});

test('rm --rebase and gc failing at every write or removal leave a valid registry, and a re-run finishes', async (t) => {
  const work = tempDir(t);
  // The registry every run starts from, built once (three versions at level max take seconds)
  // and copied for the probe and for each fault point: each run gets a fresh, identical registry.
  const template = join(work, 'template');
  {
    const { registry } = await initRegistry(template, join(EMBEDDED, 'base.safetensors'));
    await add(registry, join(EMBEDDED, 'prose-step0025.safetensors'));
    await add(registry, join(EMBEDDED, 'prose-step0050.safetensors'));
  }
  assert.equal((await fsckRegistry(template)).status, 'clean');
  const setup = (dir: string): Promise<void> => cp(template, dir, { recursive: true, errorOnExist: true, force: false });
  const probeDir = join(work, 'probe');
  await setup(probeDir);
  const probe = new FailingBackend(new LocalBackend(probeDir), -1);
  await removeVersion(await Registry.openBackend(probe), 'prose-step0025', { rebase: true });
  const steps = { writes: probe.writes, removes: probe.removes };
  assert.ok(steps.writes > 5 && steps.removes > 5, JSON.stringify(steps));
  const want = sha256File(join(EMBEDDED, 'prose-step0050.safetensors'));
  for (const kind of ['write', 'remove'] as const) {
    for (let at = 0; at < (kind === 'write' ? steps.writes : steps.removes); at++) {
      const dir = join(work, `${kind}-${at}`);
      await setup(dir);
      const b = new FailingBackend(new LocalBackend(dir), kind === 'write' ? at : -1);
      if (kind === 'remove') b.failRemoveAt = at;
      await removeVersion(await Registry.openBackend(b), 'prose-step0025', { rebase: true }).catch((e: unknown) => {
        assert.ok(e instanceof At1Error && /injected/.test(e.message), String(e));
      });
      const reg = await Registry.open(dir);
      assert.equal((await verifyRegistry(reg, undefined)).ok, true, `${kind} ${at}: every remaining version verifies`);
      assert.equal((await fsckRegistry(dir)).status, 'clean', `${kind} ${at}`);
      if (await reg.hasVersion('prose-step0025')) await removeVersion(reg, 'prose-step0025', { rebase: true });
      await gcRegistry(reg, { graceMs: 0 }); // what the interrupted rm left is seconds old
      const out = join(work, `${kind}-${at}.out`); // outside the registry: at1 refuses to restore into one
      await getVersion(reg, 'prose-step0050', out);
      assert.equal(sha256File(out), want);
      assert.equal((await fsckRegistry(dir, { readData: true })).objects.orphans, 0);
    }
  }
});
