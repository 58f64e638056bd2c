import { hostIdentity } from '../src/util/host-identity.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { hostname } from 'node:os';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { add, At1Error, initRegistry, Registry, SafetensorsError, verifyRegistry } from '../src/index.js';
import { at1, craftSafetensors, EMBEDDED, tempDir, treeDigest } from './helpers.js';

const craft = craftSafetensors;

const e = (dtype: string, shape: string, off: string): string => `{"dtype":"${dtype}","shape":${shape},"data_offsets":${off}}`;

/** One crafted file per safetensors rule (docs/FORMAT.md, "Input rules"), with the rule id the reader must name. */
const CASES: { what: string; rule: RegExp; bytes: Uint8Array }[] = [
  { what: 'shorter than 8 bytes', rule: /S1/, bytes: new Uint8Array([1, 0, 0]) },
  { what: 'header length over the cap', rule: /S2/, bytes: craft('{}', 0, 200_000_000n) },
  { what: 'header length past the end of the file', rule: /S2/, bytes: craft('{}', 0, 5000n) },
  { what: 'header not UTF-8', rule: /S3/, bytes: craft('{"\xff":1}'.replace('\xff', '\u00ff')).map((b, i) => (i === 10 ? 0xff : b)) },
  { what: 'header not JSON', rule: /S3/, bytes: craft('{"a":') },
  { what: 'header not an object', rule: /S3/, bytes: craft('[1, 2]') },
  { what: 'garbage after the object', rule: /S3/, bytes: craft('{}  x') },
  { what: 'metadata value not a string', rule: /S4/, bytes: craft('{"__metadata__":{"a":1}}') },
  { what: 'unknown dtype', rule: /S5/, bytes: craft(`{"w":${e('F128', '[1]', '[0,16]')}}`, 16) },
  { what: 'negative dimension', rule: /S5/, bytes: craft(`{"w":${e('U8', '[-1]', '[0,1]')}}`, 1) },
  { what: 'three data offsets', rule: /S5/, bytes: craft(`{"w":${e('U8', '[1]', '[0,1,2]')}}`, 1) },
  { what: 'duplicate tensor name', rule: /S6/, bytes: craft(`{"w":${e('U8', '[1]', '[0,1]')},"w":${e('U8', '[1]', '[0,1]')}}`, 1) },
  { what: 'a hole between tensors', rule: /S7/, bytes: craft(`{"a":${e('U8', '[1]', '[0,1]')},"b":${e('U8', '[1]', '[2,3]')}}`, 3) },
  { what: 'overlapping tensors', rule: /S7/, bytes: craft(`{"a":${e('U8', '[2]', '[0,2]')},"b":${e('U8', '[2]', '[1,3]')}}`, 3) },
  { what: 'size not dtype x shape', rule: /S8/, bytes: craft(`{"w":${e('F32', '[2]', '[0,4]')}}`, 4) },
  { what: 'shape product overflows', rule: /S8/, bytes: craft(`{"w":${e('F32', '[4294967296,4294967296]', '[0,4]')}}`, 4) },
  { what: 'trailing bytes after the data', rule: /S9/, bytes: craft(`{"w":${e('U8', '[1]', '[0,1]')}}`, 2) },
  { what: 'truncated data', rule: /S9/, bytes: craft(`{"w":${e('U8', '[4]', '[0,4]')}}`, 2) },
];

async function freshRegistry(t: Parameters<typeof tempDir>[0]): Promise<{ work: string; regDir: string; registry: Registry }> {
  const work = tempDir(t);
  const regDir = join(work, 'reg');
  const { registry } = await initRegistry(regDir, join(EMBEDDED, 'base.safetensors'));
  return { work, regDir, registry };
}

test('every safetensors rule: a crafted file is refused naming file and rule, registry untouched', async (t) => {
  const { work, regDir, registry } = await freshRegistry(t);
  const before = treeDigest(regDir);
  for (const c of CASES) {
    const file = join(work, `bad-${c.what.replace(/\W+/g, '-')}.safetensors`);
    writeFileSync(file, c.bytes);
    await assert.rejects(add(registry, file), (err: unknown) => {
      assert.ok(err instanceof SafetensorsError, `${c.what}: ${String(err)}`);
      assert.match(err.rule, c.rule, `${c.what}: ${err.message}`);
      assert.ok(err.message.includes(file), `${c.what}: message names the file: ${err.message}`);
      return true;
    });
  }
  assert.equal(treeDigest(regDir), before, 'the registry is byte-for-byte unchanged');
  assert.equal((await verifyRegistry(registry, undefined)).ok, true);
});

test('CLI: a bad file exits non-zero with one clear line; init refuses a bad base without creating anything', async (t) => {
  const { work, regDir } = await freshRegistry(t);
  const file = join(work, 'hole.safetensors');
  writeFileSync(file, CASES.find((c) => c.what === 'a hole between tensors')!.bytes);
  const before = treeDigest(regDir);
  const r = at1('registry', 'add', regDir, file);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /^at1: error: .*hole\.safetensors: rule S7/m);
  assert.equal(treeDigest(regDir), before);
  const r2 = at1('registry', 'init', file, join(work, 'new-reg'));
  assert.equal(r2.status, 2);
  assert.equal(existsSync(join(work, 'new-reg')), false);
});

test('refused: a taken name, unsafe names, a non-registry, a missing file, an unknown parent', async (t) => {
  const { work, regDir, registry } = await freshRegistry(t);
  const good = join(EMBEDDED, 'code-lora.safetensors');
  await add(registry, good, { name: 'lora' });
  const before = treeDigest(regDir);
  // Thunks, run one at a time: each refusal must be checked against an otherwise idle registry.
  const refusals: [string, () => Promise<unknown>, string, RegExp][] = [
    ['taken name', () => add(registry, good, { name: 'lora' }), 'E_EXISTS', /already exists/],
    ['slash', () => add(registry, good, { name: 'a/b' }), 'E_INPUT', /path separator/],
    ['dot dot', () => add(registry, good, { name: 'a..b' }), 'E_INPUT', /'\.\.'/],
    ['control character', () => add(registry, good, { name: 'a\u0007b' }), 'E_INPUT', /control character/],
    ['too long', () => add(registry, good, { name: 'x'.repeat(129) }), 'E_INPUT', /129 characters/],
    ['missing file', () => add(registry, join(work, 'nope.safetensors')), 'E_NOT_FOUND', /nope\.safetensors does not exist/],
    ['unknown parent', () => add(registry, good, { name: 'x', parent: 'ghost' }), 'E_NOT_FOUND', /ghost/],
  ];
  for (const [what, p, code, msg] of refusals) {
    await assert.rejects(p(), (err: unknown) => {
      assert.ok(err instanceof At1Error, what);
      assert.equal(err.code, code, `${what}: ${err.message}`);
      assert.match(err.message, msg, what);
      return true;
    });
  }
  assert.equal(treeDigest(regDir), before);
  mkdirSync(join(work, 'plain'));
  await assert.rejects(Registry.open(join(work, 'plain')), /not an at1 registry/);
  const cli = at1('registry', 'list', join(work, 'plain'));
  assert.equal(cli.status, 2);
  assert.match(cli.stderr, /not an at1 registry/);
  const cli2 = at1('registry', 'add', regDir, good, '--name', '../escape');
  assert.equal(cli2.status, 2);
  assert.equal(existsSync(join(work, 'escape.json')), false);
});

test('lock: a live holder makes a second writer fail naming it; a dead holder is recovered', async (t) => {
  const { regDir, registry } = await freshRegistry(t);
  const sleeper = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)']);
  t.after(() => sleeper.kill());
  // A lease record as a writer in this PID namespace writes it (docs/FORMAT.md §8): there a dead pid proves the holder gone.
  const lock = { format: 'at1.lease', kind: 'writer', token: 'a1'.repeat(16), pid: sleeper.pid, host: hostname(), identity: hostIdentity(), command: 'add other', startedAt: new Date().toISOString(), leaseMs: 30_000 };
  writeFileSync(join(regDir, 'lock'), JSON.stringify(lock));
  const r = at1('registry', 'add', regDir, join(EMBEDDED, 'code-lora.safetensors'));
  assert.equal(r.status, 3);
  assert.match(r.stderr, new RegExp(`locked by pid ${sleeper.pid} on ${hostname()} \\(add other`));
  sleeper.kill();
  await new Promise((res) => sleeper.once('exit', res));
  // The holder is gone: its lock is stale and the next writer takes over.
  await add(registry, join(EMBEDDED, 'code-lora.safetensors'));
  assert.equal(existsSync(join(regDir, 'lock')), false, 'lock released');
  assert.deepEqual(await registry.versionNames(), ['base', 'code-lora']);
});

test('init refuses a non-empty directory and an existing registry', async (t) => {
  const { work, regDir } = await freshRegistry(t);
  const before = treeDigest(regDir);
  await assert.rejects(initRegistry(regDir, join(EMBEDDED, 'base.safetensors')), /already a registry/);
  assert.equal(treeDigest(regDir), before);
  mkdirSync(join(work, 'busy'));
  writeFileSync(join(work, 'busy', 'notes.txt'), 'mine');
  await assert.rejects(initRegistry(join(work, 'busy'), join(EMBEDDED, 'base.safetensors')), /not empty/);
  assert.equal(readFileSync(join(work, 'busy', 'notes.txt'), 'utf8'), 'mine');
});
