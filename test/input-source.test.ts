/** InputSource: strict reads naming the input, one open per input file per add, adds from memory; the CLI's environment mapping. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import { syncBuiltinESMExports } from 'node:module';
import { mkdirSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { add, At1Error, bytesSource, getVersion, initRegistry, openFileSource, readSafetensorsHeaderFrom, resolveSettings, type InputSource } from '../src/index.js';
import { settingsFromEnv } from '../src/cli/env.js';
import { EMBEDDED, at1, sha256File, tempDir } from './helpers.js';

const isInput = (re: RegExp) => (e: unknown) => e instanceof At1Error && e.code === 'E_INPUT' && re.test(e.message);

test('a file source reads exactly the range asked; a short read or a range past the end is an error naming the file', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'x.bin');
  writeFileSync(path, Uint8Array.from({ length: 100 }, (_, i) => i));
  const src = await openFileSource(path);
  try {
    assert.equal(src.size, 100);
    assert.deepEqual([...(await src.readRange(10, 3))], [10, 11, 12]);
    assert.equal((await src.readRange(100, 0)).length, 0);
    await assert.rejects(src.readRange(98, 5), isInput(/x\.bin.*runs past the end of the 100-byte input/));
    truncateSync(path, 50); // the file shrinks under the open source
    await assert.rejects(src.readRange(40, 20), isInput(/x\.bin became shorter while it was being read/));
    await assert.rejects(src.checkUnchanged!(), isInput(/x\.bin changed size while it was being read/));
  } finally {
    await src.close();
    await src.close(); // idempotent
  }
  await assert.rejects(openFileSource(join(dir, 'missing')), (e: unknown) => e instanceof At1Error && e.code === 'E_NOT_FOUND' && e.message.includes('missing'));
  await assert.rejects(openFileSource(dir), isInput(/not a regular file/));
  const mem = bytesSource(new Uint8Array(4), 'upload');
  await assert.rejects(mem.readRange(2, 3), isInput(/^upload: a read of bytes \[2, 5\)/));
  const aborted = AbortSignal.abort();
  await assert.rejects(mem.readRange(0, 1, { signal: aborted }), { name: 'AbortError' });
});

test('the header is parsed from a source; the strict rules and the verbatim header bytes are kept', async () => {
  const bytes = new Uint8Array(readFileSync(join(EMBEDDED, 'base.safetensors')));
  const h = await readSafetensorsHeaderFrom(bytesSource(bytes, 'mem:base'));
  assert.deepEqual(h.headerBytes, bytes.subarray(0, h.dataStart));
  assert.equal(h.fileSize, bytes.length);
  await assert.rejects(readSafetensorsHeaderFrom(bytesSource(bytes.subarray(0, bytes.length - 1), 'mem:cut')), (e: unknown) => e instanceof At1Error && /mem:cut: rule S9-truncated/.test(e.message));
});

/** Count the times node:fs/promises open() is called on `path` while `fn` runs (the library's named import is a live binding of the builtin). */
async function countOpens<T>(paths: string[], fn: () => Promise<T>): Promise<{ result: T; opens: Map<string, number> }> {
  const opens = new Map<string, number>(paths.map((p) => [resolve(p), 0]));
  const real = fsp.open;
  fsp.open = ((p: Parameters<typeof real>[0], ...rest: unknown[]) => {
    const key = resolve(String(p));
    if (opens.has(key)) opens.set(key, opens.get(key)! + 1);
    return (real as (...a: unknown[]) => ReturnType<typeof real>)(p, ...rest);
  }) as typeof real;
  syncBuiltinESMExports();
  try {
    return { result: await fn(), opens };
  } finally {
    fsp.open = real;
    syncBuiltinESMExports();
  }
}

test('an add opens its input file once (header, reference choice and chunk reads share it); a model directory once per shard', async (t) => {
  const work = tempDir(t);
  const base = join(EMBEDDED, 'base.safetensors');
  const ft = join(EMBEDDED, 'prose-step0025.safetensors');
  const { result: init, opens: initOpens } = await countOpens([base], () => initRegistry(join(work, 'reg'), base));
  assert.equal(initOpens.get(resolve(base)), 1, 'init opens the base once');
  const { result: r, opens } = await countOpens([ft], () => add(init.registry, ft)); // parent chosen by sampling: reference choice reads it too
  assert.equal(r.manifest.parent, 'base', 'the sampled reference choice ran');
  assert.equal(opens.get(resolve(ft)), 1, 'add opens the file once');
  const out = join(work, 'ft.out');
  await getVersion(init.registry, r.manifest.name, out);
  assert.equal(sha256File(out), sha256File(ft));

  const model = join(work, 'model');
  mkdirSync(model);
  writeFileSync(join(model, 'a.safetensors'), readFileSync(ft));
  writeFileSync(join(model, 'b.safetensors'), readFileSync(join(EMBEDDED, 'code-lora.safetensors')));
  const shards = [join(model, 'a.safetensors'), join(model, 'b.safetensors')];
  const { opens: dirOpens } = await countOpens(shards, () => add(init.registry, model, { name: 'dir' }));
  assert.deepEqual([...dirOpens.values()], [1, 1], 'each shard opened once');
});

test('an add reads from a source in memory: same version as from the file, and the source stays the caller\'s', async (t) => {
  const work = tempDir(t);
  const ft = join(EMBEDDED, 'prose-step0025.safetensors');
  const { registry } = await initRegistry(join(work, 'reg'), join(EMBEDDED, 'base.safetensors'));
  let reads = 0;
  let closed = false;
  const mem = bytesSource(new Uint8Array(readFileSync(ft)), 'upload:prose');
  const counted: InputSource = { name: mem.name, size: mem.size, readRange: (o, n, opts) => (reads++, mem.readRange(o, n, opts)), close: async () => void (closed = true) };
  // The path only names the input: nothing is read from it (it does not exist).
  const r = await add(registry, join(work, 'no-such-dir', 'prose.safetensors'), { input: counted });
  assert.equal(r.manifest.name, 'prose');
  assert.equal(r.manifest.parent, 'base');
  assert.ok(reads > 2, 'header, samples and chunks all read through the source');
  assert.equal(closed, false, 'add leaves a caller\'s source open');
  const f = r.manifest.files[0]!;
  assert.equal(f.path, 'prose.safetensors');
  const out = join(work, 'out');
  await getVersion(registry, 'prose', out);
  assert.equal(sha256File(out), sha256File(ft));
  // A hostile input from memory is refused with the same rule, naming the source.
  await assert.rejects(add(registry, 'x.safetensors', { input: bytesSource(new Uint8Array(4), 'upload:tiny') }), (e: unknown) => e instanceof At1Error && /upload:tiny: rule S1-short/.test(e.message));
});

test('settingsFromEnv maps the AT1_* variables and refuses malformed values naming the variable', () => {
  assert.deepEqual(settingsFromEnv({}), {});
  assert.deepEqual(settingsFromEnv({ AT1_PACK_BYTES: '', AT1_WORKERS: '' }), {}, 'empty counts as unset');
  assert.deepEqual(
    settingsFromEnv({ AT1_PACK_BYTES: '0', AT1_LOCK_WAIT_MS: '300', AT1_LEASE_MS: '100', AT1_THREADS: '3', AT1_WORKERS: '1', AT1_GC_GRACE_MS: '0', PATH: '/bin' }),
    { packBytes: 0, lockWaitMs: 300, leaseMs: 100, threads: 3, workers: 'always', gcGraceMs: 0 },
  );
  assert.equal(settingsFromEnv({ AT1_WORKERS: '0' }).workers, 'never');
  for (const [name, value, re] of [
    ['AT1_PACK_BYTES', '4k', /AT1_PACK_BYTES must be a whole number of bytes/],
    ['AT1_PACK_BYTES', '-1', /AT1_PACK_BYTES/],
    ['AT1_LOCK_WAIT_MS', 'abc', /AT1_LOCK_WAIT_MS="abc" is not a whole number of milliseconds/],
    ['AT1_LEASE_MS', '10', /AT1_LEASE_MS="10" is not a whole number of milliseconds \(at least 100\)/],
    ['AT1_GC_GRACE_MS', '1.5', /AT1_GC_GRACE_MS/],
    ['AT1_THREADS', '0', /AT1_THREADS="0" is not a number of worker threads from 1 to 64/],
    ['AT1_THREADS', '65', /AT1_THREADS/],
    ['AT1_WORKERS', 'yes', /AT1_WORKERS="yes" must be 1/],
  ] as const) {
    assert.throws(() => settingsFromEnv({ [name]: value }), isInput(re), `${name}=${value}`);
  }
  assert.equal(resolveSettings().packBytes, 4096);
  assert.throws(() => resolveSettings({ leaseMs: 5 }), isInput(/settings\.leaseMs/));
  assert.throws(() => resolveSettings({ workers: 'sometimes' as never }), isInput(/settings\.workers/));
});

test('the CLI refuses a malformed AT1_THREADS before reading anything (exit 2, no stack trace)', (t) => {
  const work = tempDir(t);
  const r = at1Env({ AT1_THREADS: 'many' }, 'registry', 'init', join(EMBEDDED, 'base.safetensors'), join(work, 'reg'));
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /AT1_THREADS="many"/);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
});

function at1Env(env: Record<string, string>, ...args: string[]): ReturnType<typeof at1> {
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  Object.assign(process.env, env);
  try {
    return at1(...args);
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}
