/**
 * The registry on a real S3 service (radosgw in CI; test/s3-helpers.ts),
 * through the library and, where it matters, the CLI as a user runs it (the
 * library in-process where a CLI run would only add a process start on a
 * shared machine): the round trip of the fixture family,
 * concurrent writers in separate processes, a writer killed mid-add, a
 * damaged object, and a read-only credential. Each test has a prefix of its
 * own in the test bucket, removed afterwards.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { add, fsckRegistry, getVersion, initRegistry, openRegistry, verifyRegistry, S3Backend, type Registry } from '../src/index.js';
import { removeVersion } from '../src/registry/remove.js';
import { LOCK_KEY } from '../src/registry/lease.js';
import { EMBEDDED, REPO, family, readTensors, sha256File, tempDir, type CliResult } from './helpers.js';
import { S3_SKIP, s3Location } from './s3-helpers.js';

const FAMILY = family(EMBEDDED);
const file = (name: string): string => join(EMBEDDED, FAMILY.find((v) => v.name === name)!.file);

/** `at1 …` in a child process, not blocking this one (several can run at once). */
function at1Async(args: string[], env: Record<string, string> = {}): { done: Promise<CliResult>; pid: number | undefined; kill: () => void } {
  const child = spawn(process.execPath, [join(REPO, 'bin/at1.js'), ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<CliResult>((resolve) => child.on('close', (code) => resolve({ status: code ?? -1, stdout, stderr })));
  return { done, pid: child.pid, kill: () => child.kill('SIGKILL') };
}

function at1(...args: string[]): CliResult {
  const r = spawnSync(process.execPath, [join(REPO, 'bin/at1.js'), ...args], { encoding: 'utf8', env: { ...process.env, AT1_LOCK_WAIT_MS: '20000' } });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

function ok(r: CliResult, what: string): CliResult {
  assert.equal(r.status, 0, `${what}: exit ${r.status}\n${r.stderr}`);
  return r;
}

const destroy = (reg: Registry): void => (reg.backend as S3Backend).destroy();

const canUnshare = spawnSync('unshare', ['--pid', '--fork', '--kill-child=SIGKILL', 'true']).status === 0;

test('the fixture family on S3: init, add, get byte-exact, verify, tensor ranges, rm --rebase, gc, fsck', { skip: S3_SKIP }, async (t) => {
  const loc = s3Location(t, 'roundtrip');
  const out = tempDir(t);
  const [base, ...rest] = FAMILY;
  const { registry: reg } = await initRegistry(loc, file(base!.name), { name: base!.name, level: 'fast' });
  t.after(() => destroy(reg));
  for (const v of rest) await add(reg, file(v.name), { name: v.name, parent: v.parent!, level: 'fast' });
  const listed = JSON.parse(ok(at1('registry', 'list', loc, '--json'), 'list').stdout) as { versions: { name: string }[] };
  assert.deepEqual(listed.versions.map((v) => v.name).sort(), FAMILY.map((v) => v.name).sort());
  for (const v of FAMILY) {
    const r = await getVersion(reg, v.name, join(out, v.name));
    assert.equal(r.sha256, v.sha256);
    assert.equal(sha256File(join(out, v.name)), v.sha256, `${v.name} restores byte-exact from S3`);
  }
  assert.match(ok(at1('registry', 'verify', loc), 'verify').stdout, /integrity: PASS/);

  // A row range of one tensor: ranged GETs of the chunks it overlaps, each checked against its key.
  const tensor = readTensors(file('prose-step0050')).find((x) => x.shape.length === 2 && x.shape[0]! >= 8)!;
  const rowBytes = tensor.data.length / tensor.shape[0]!;
  ok(at1('tensor', 'get', loc, 'prose-step0050', tensor.name, '--rows', '3:7', '--out', join(out, 'rows')), 'tensor get --rows');
  assert.deepEqual(new Uint8Array(readFileSync(join(out, 'rows'))), tensor.data.subarray(3 * rowBytes, 7 * rowBytes));

  // rm --rebase of a version others are coded against, then gc and fsck: everything left still restores.
  await assert.rejects(removeVersion(reg, 'prose-step0025'), /reference of prose-step0050/);
  const rm = await removeVersion(reg, 'prose-step0025', { rebase: true });
  assert.deepEqual(rm.reparented, ['prose-step0050']);
  ok(at1('registry', 'gc', loc, '--grace', '0'), 'gc');
  const f = await fsckRegistry(loc, { readData: true });
  assert.equal(f.status, 'clean', JSON.stringify(f.problems));
  assert.equal(f.objects.orphans, 0, 'rm and gc left no orphan');
  for (const v of FAMILY.filter((x) => x.name !== 'prose-step0025')) {
    await getVersion(reg, v.name, join(out, `${v.name}.2`));
    assert.equal(sha256File(join(out, `${v.name}.2`)), v.sha256);
  }
});

test('two writers in separate processes adding at once: both versions land, neither lost', { skip: S3_SKIP }, async (t) => {
  const loc = s3Location(t, 'writers');
  destroy((await initRegistry(loc, file('base'), { level: 'fast' })).registry);
  const env = { AT1_LOCK_WAIT_MS: '60000' };
  const [a, b] = await Promise.all([
    at1Async(['registry', 'add', loc, file('code-lora'), '--name', 'code-lora', '--parent', 'base'], env).done,
    at1Async(['registry', 'add', loc, file('prose-step0025'), '--name', 'prose-step0025', '--parent', 'base'], env).done,
  ]);
  ok(a, 'writer A');
  ok(b, 'writer B');
  const reg = await openRegistry(loc);
  t.after(() => destroy(reg));
  assert.deepEqual(await reg.versionNames(), ['base', 'code-lora', 'prose-step0025']);
  assert.equal((await verifyRegistry(reg, undefined)).ok, true);
  assert.equal(await reg.backend.stat(LOCK_KEY), undefined, 'the lock was released');
});

test(
  'a writer killed mid-add leaves nothing visible; the next writer proceeds once its lease has expired by the storage clock',
  { skip: S3_SKIP },
  async (t) => {
    const loc = s3Location(t, 'killed');
    const { registry: reg } = await initRegistry(loc, file('base'), { level: 'fast' });
    t.after(() => destroy(reg));
    const objectsBefore = (await reg.store.list()).size;
    // In a PID namespace of its own (where unshare works), the dead writer's pid proves nothing here: only expiry frees the lock.
    const prefix = canUnshare ? ['unshare', '--pid', '--fork', '--kill-child=SIGKILL'] : [];
    const cmd = [...prefix, process.execPath, join(REPO, 'bin/at1.js'), 'registry', 'add', loc, file('prose-step0025'), '--name', 'victim', '--parent', 'base'];
    const child = spawn(cmd[0]!, cmd.slice(1), { env: { ...process.env, AT1_LEASE_MS: '1500' }, stdio: 'ignore' });
    const exited = new Promise((r) => child.on('close', r));
    // Kill it once it holds the lock and has stored some of its objects, before its manifest.
    for (let i = 0; i < 600; i++) {
      if ((await reg.backend.stat(LOCK_KEY)) && (await reg.store.list()).size > objectsBefore + 2) break;
      await new Promise((r) => setTimeout(r, 25));
    }
    child.kill('SIGKILL');
    await exited;
    assert.ok((await reg.backend.stat(LOCK_KEY)) !== undefined, 'the killed writer left its lock');
    assert.ok((await reg.store.list()).size > objectsBefore, 'and some objects');
    assert.deepEqual(await reg.versionNames(), ['base'], 'but no version: nothing is visible before the manifest');
    assert.equal((await fsckRegistry(loc)).status, 'clean', 'orphans are not damage');
    // The next writer waits for the lease to expire (LastModified, the storage clock), then adds, reusing what it can.
    const next = ok(at1('registry', 'add', loc, file('prose-step0025'), '--name', 'prose-step0025', '--parent', 'base', '--json'), 'next writer');
    assert.equal((JSON.parse(next.stdout) as { name: string }).name, 'prose-step0025');
    assert.deepEqual(await reg.versionNames(), ['base', 'prose-step0025']);
    assert.equal((await verifyRegistry(reg, 'prose-step0025')).ok, true);
  },
);

test('a flipped byte in a stored object is caught by verify, naming the tensor; get refuses to restore it', { skip: S3_SKIP }, async (t) => {
  const loc = s3Location(t, 'flip');
  const out = tempDir(t);
  const { registry: reg } = await initRegistry(loc, file('base'), { level: 'fast' });
  t.after(() => destroy(reg));
  const m = await reg.manifest('base');
  const entry = m.files[0]!;
  assert.equal(entry.kind, 'safetensors');
  const victim = entry.kind === 'safetensors' ? entry.tensors.find((x) => x.chunks.length > 0 && x.length > 10_000)! : undefined;
  const key = `objects/${victim!.chunks[0]!.slice(0, 2)}/${victim!.chunks[0]}`;
  const bytes = await reg.backend.read(key);
  bytes[bytes.length - 100]! ^= 0x01;
  await reg.backend.put(key, bytes);
  const v = at1('registry', 'verify', loc);
  assert.equal(v.status, 1, v.stdout + v.stderr);
  assert.match(v.stdout + v.stderr, new RegExp(victim!.name.replace(/\./g, '\\.')));
  const g = at1('registry', 'get', loc, 'base', '--out', join(out, 'base'));
  assert.equal(g.status, 1);
  assert.equal(spawnSync('test', ['-e', join(out, 'base')]).status, 1, 'no output file');
});

test('a read-only credential can list, verify, get and read tensors, and cannot write', { skip: S3_SKIP || (!process.env.AT1_S3_TEST_READONLY_ACCESS_KEY_ID && 'no read-only test credential') }, async (t) => {
  const loc = s3Location(t, 'readonly');
  const out = tempDir(t);
  const { registry: reg } = await initRegistry(loc, file('base'), { level: 'fast' });
  t.after(() => destroy(reg));
  await add(reg, file('code-lora'), { parent: 'base', level: 'fast' });
  const ro = { AWS_ACCESS_KEY_ID: process.env.AT1_S3_TEST_READONLY_ACCESS_KEY_ID!, AWS_SECRET_ACCESS_KEY: process.env.AT1_S3_TEST_READONLY_SECRET_ACCESS_KEY! };
  const run = (...args: string[]) => at1Async(args, ro).done;
  ok(await run('registry', 'list', loc), 'list');
  assert.match(ok(await run('registry', 'verify', loc), 'verify').stdout, /integrity: PASS/);
  ok(await run('registry', 'get', loc, 'code-lora', '--out', join(out, 'v')), 'get');
  assert.equal(sha256File(join(out, 'v')), FAMILY.find((x) => x.name === 'code-lora')!.sha256);
  const tensor = readTensors(file('code-lora'))[0]!;
  ok(await run('tensor', 'get', loc, 'code-lora', tensor.name, '--out', join(out, 't')), 'tensor get');
  assert.deepEqual(new Uint8Array(readFileSync(join(out, 't'))), tensor.data);
  const denied = await run('registry', 'add', loc, file('prose-step0025'), '--parent', 'base');
  assert.equal(denied.status, 4, denied.stderr);
  assert.match(denied.stderr, /access denied/);
});
