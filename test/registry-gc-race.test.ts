/**
 * gc racing an add that deduplicates against old orphans (the classic race
 * of content-addressed stores; docs/FORMAT.md §8b), on the local store and
 * on S3: gc must never delete an object that an add has just decided to
 * reuse, nor what that object is coded against. Orphans are made "old" by
 * waiting out a short grace period (S3's LastModified cannot be set back).
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { add, fsckRegistry, initRegistry, verifyRegistry, type Registry } from '../src/index.js';
import { serializeManifest, type VersionManifest } from '../src/registry/manifest.js';
import { gcRegistry } from '../src/registry/gc.js';
import { storeChunk } from '../src/registry/chunk-writer.js';
import { S3Backend } from '../src/store/s3-backend.js';
import { EMBEDDED, REPO, tempDir, type CliResult } from './helpers.js';
import { S3_SKIP, s3Location } from './s3-helpers.js';

const GRACE_MS = 1500;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type Ctx = { after: (fn: () => void | Promise<void>) => void };

const BACKENDS: { name: string; skip?: string | false; location: (t: Ctx) => string }[] = [
  { name: 'local', location: (t) => join(tempDir(t), 'reg') },
  { name: 's3', skip: S3_SKIP, location: (t) => s3Location(t, 'gcrace') },
];

function at1Async(args: string[], env: Record<string, string>): Promise<CliResult> {
  const child = spawn(process.execPath, [join(REPO, 'bin/at1.js'), ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => child.on('close', (code) => resolve({ status: code ?? -1, stdout, stderr })));
}

/**
 * base, prose-step0025 and prose-step0050 (coded against 0025), then both
 * fine-tunes' manifests removed (rm'd long ago, say) and the grace period
 * waited out: their objects are old orphans, ready for gc.
 */
async function oldOrphans(t: Ctx, location: string): Promise<{ reg: Registry; m2: VersionManifest; stray: string }> {
  const { registry: reg } = await initRegistry(location, join(EMBEDDED, 'base.safetensors'), { level: 'fast' });
  if (reg.backend instanceof S3Backend) t.after(() => (reg.backend as S3Backend).destroy());
  await add(reg, join(EMBEDDED, 'prose-step0025.safetensors'), { parent: 'base', level: 'fast' });
  await add(reg, join(EMBEDDED, 'prose-step0050.safetensors'), { parent: 'prose-step0025', level: 'fast' });
  const m2 = await reg.manifest('prose-step0050');
  await reg.backend.remove('versions/prose-step0050.json');
  await reg.backend.remove('versions/prose-step0025.json');
  // And one orphan that nothing will ever need again.
  const stray = (await storeChunk(reg.store, new Uint8Array(4096).map((_, i) => (i * 7919) & 0xff), 'U8', [], 'fast')).digest;
  await sleep(GRACE_MS + 300);
  return { reg, m2, stray };
}

for (const { name, skip, location } of BACKENDS) {
  describe(`gc racing a deduplicating add: ${name}`, { skip }, () => {
    test('an old orphan proven and reused by an add is young again: gc keeps it and the chain it is coded against', async (t) => {
      const { reg, m2 } = await oldOrphans(t, location(t));
      // A delta chunk of prose-step0050, now an orphan, coded against prose-step0025's chunk, also an orphan.
      const entry = m2.files[0]!;
      assert.equal(entry.kind, 'safetensors');
      const tensor = entry.kind === 'safetensors' ? entry.tensors.find((x) => x.chunks.length > 0)! : undefined;
      const digest = tensor!.chunks[0]!;
      const h = await reg.reader.header(digest);
      assert.ok(h.refs.length > 0, 'the chunk is a delta');
      const reused = { digest, refs: h.refs.map((r) => r.digest), bytes: (await reg.reader.read(digest)).bytes };
      // What an add does at dedup (chunk-writer.ts): the key exists, so it proves the object, renews it, and reuses it.
      const stored = await storeChunk(reg.store, reused.bytes, tensor!.dtype, [], 'max');
      assert.equal(stored.written, 0, 'dedup reused the orphan');
      const g = await gcRegistry(reg, { graceMs: GRACE_MS });
      assert.ok(g.removedObjects > 0, 'other old orphans are removed');
      assert.equal(await reg.store.has(reused.digest), true, 'the reused object survives');
      for (const r of reused.refs) assert.equal(await reg.store.has(r), true, 'and so does what it is coded against');
      assert.deepEqual((await reg.reader.read(reused.digest)).bytes, reused.bytes);
    });

    test('a writer stalled between its last lease check and its manifest: gc keeps what its pending manifest names, then clears the record once it is old', async (t) => {
      const { reg, m2, stray } = await oldOrphans(t, location(t));
      // What publish() leaves while the writer stalls: pending/<token>.json holding the manifest, stored before its last lease check.
      const bytes = serializeManifest(m2);
      const pending = 'pending/' + 'ab'.repeat(16) + '.json';
      await reg.backend.put(pending, bytes);
      const g = await gcRegistry(reg, { graceMs: GRACE_MS });
      assert.equal(await reg.store.has(stray), false, 'an old orphan that nothing pending names is removed');
      assert.equal(await reg.backend.size(pending), bytes.length, 'a young pending record stays');
      // The writer wakes and publishes: its version is whole.
      assert.equal(await reg.backend.create('versions/prose-step0050.json', bytes), true);
      assert.equal((await verifyRegistry(reg, 'prose-step0050')).ok, true);
      // A record older than the grace period is a dead writer's leftover: gc removes it, and it protects nothing.
      await reg.backend.remove('versions/prose-step0050.json');
      await sleep(GRACE_MS + 300);
      const g2 = await gcRegistry(reg, { graceMs: GRACE_MS });
      assert.ok(g2.removedLeftovers >= 1);
      assert.equal(await reg.backend.size(pending), undefined);
      assert.ok(g2.removedObjects > 0, 'its objects are orphans again');
      assert.equal((await fsckRegistry(reg)).objects.orphans, 0);
    });

    test('an add and a gc started at once in separate processes: whichever takes the lock first, the new version is whole', async (t) => {
      const loc = location(t);
      const { reg } = await oldOrphans(t, loc);
      const env = { AT1_LOCK_WAIT_MS: '60000' };
      const [a, g] = await Promise.all([
        at1Async(['registry', 'add', loc, join(EMBEDDED, 'prose-step0050.safetensors'), '--name', 'again', '--parent', 'base'], env),
        at1Async(['registry', 'gc', loc, '--grace', `${GRACE_MS}ms`], env),
      ]);
      assert.equal(a.status, 0, a.stderr);
      assert.equal(g.status, 0, g.stderr);
      assert.deepEqual(await reg.versionNames(), ['again', 'base']);
      assert.equal((await verifyRegistry(reg, 'again')).ok, true);
      const f = await fsckRegistry(loc, { readData: true });
      assert.equal(f.status, 'clean', JSON.stringify(f.problems));
    });
  });
}
