/** Real processes: killed writers, concurrent writers, readers during writes. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { add, getVersion, initRegistry, Registry, verifyRegistry } from '../src/index.js';
import { crashTrials } from '../bench/crash-trials.js';
import { EMBEDDED, family, REPO, sha256File, tempDir } from './helpers.js';

function at1Async(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(REPO, 'bin/at1.js'), ...args], { env: { ...process.env, ...env } });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (code) => resolve({ code, stderr }));
  });
}

test('SIGKILL at random moments during add, rm and gc never damages the registry (a few trials; npm run torture runs 200)', async (t) => {
  const s = await crashTrials({ familyDir: EMBEDDED, workDir: tempDir(t), trials: 5, maxKillMs: 2500, seed: 7 });
  assert.deepEqual(s.violations, []);
  assert.equal(s.trials, 5);
});

test('four writers at once: all succeed, serialised by the lock, and every version verifies', async (t) => {
  const work = tempDir(t);
  const regDir = join(work, 'reg');
  await initRegistry(regDir, join(EMBEDDED, 'base.safetensors'));
  const names = ['prose-step0025', 'prose-step0050', 'code-lora', 'code-lastlayer'];
  const results = await Promise.all(names.map((n) => at1Async(['registry', 'add', regDir, join(EMBEDDED, `${n}.safetensors`), '--parent', 'base'], { AT1_LOCK_WAIT_MS: '120000' })));
  for (const [i, r] of results.entries()) assert.equal(r.code, 0, `${names[i]}: ${r.stderr}`);
  const reg = await Registry.open(regDir);
  assert.deepEqual(await reg.versionNames(), ['base', ...names].sort());
  assert.equal((await verifyRegistry(reg, undefined)).ok, true);
});

test('a writer that cannot get the lock in time fails with a clear message and changes nothing', async (t) => {
  const work = tempDir(t);
  const regDir = join(work, 'reg');
  await initRegistry(regDir, join(EMBEDDED, 'base.safetensors'));
  const [slow, hasty] = await Promise.all([
    at1Async(['registry', 'add', regDir, join(EMBEDDED, 'prose-step0025.safetensors')]),
    new Promise<{ code: number | null; stderr: string }>((r) => setTimeout(() => void at1Async(['registry', 'add', regDir, join(EMBEDDED, 'code-lora.safetensors')], { AT1_LOCK_WAIT_MS: '1' }).then(r), 700)),
  ]);
  assert.equal(slow.code, 0, slow.stderr);
  // The second either found the lock free (the first was done) or failed cleanly naming the holder.
  if (hasty.code !== 0) {
    assert.equal(hasty.code, 3);
    assert.match(hasty.stderr, /is locked by pid \d+ on .* \(add prose-step0025/);
    assert.equal(await (await Registry.open(regDir)).hasVersion('code-lora'), false);
  }
  assert.equal((await verifyRegistry(await Registry.open(regDir), undefined)).ok, true);
});

test('readers during a write see a consistent registry', async (t) => {
  const work = tempDir(t);
  const regDir = join(work, 'reg');
  const { registry } = await initRegistry(regDir, join(EMBEDDED, 'base.safetensors'));
  await add(registry, join(EMBEDDED, 'code-lora.safetensors'));
  const writer = at1Async(['registry', 'add', regDir, join(EMBEDDED, 'prose-step0025.safetensors')]);
  let done = false;
  void writer.then(() => (done = true));
  const want = new Map(family().map((v) => [v.name, v.sha256]));
  let reads = 0;
  while (!done || reads < 2) {
    const reg = await Registry.open(regDir); // a fresh reader each time, as another process would be
    for (const name of await reg.versionNames()) {
      const out = join(work, `read-${reads}-${name}`);
      await getVersion(reg, name, out);
      assert.equal(sha256File(out), want.get(name), `${name} read during the write`);
    }
    const report = await verifyRegistry(reg, undefined);
    assert.equal(report.ok, true);
    reads++;
  }
  assert.equal((await writer).code, 0);
  t.diagnostic(`${reads} full reads while the add ran`);
});
