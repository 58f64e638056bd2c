/**
 * `at1 serve` as a command (start, --json, SIGTERM, bad arguments), a folder
 * of registries as several repositories, and the decode slots that bound
 * concurrent decoding.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cpSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { at1, REPO } from './helpers.js';
import { buildFixtureRegistry, serve } from './server-helpers.js';
import { Slots } from '../src/server/context.js';
import { HttpError } from '../src/server/http-errors.js';

test('at1 serve: listens on 127.0.0.1, prints where with --json, logs JSON lines, stops on SIGTERM with exit 0', async (t) => {
  const { dir } = await buildFixtureRegistry(t);
  const child = spawn(process.execPath, [join(REPO, 'bin/at1.js'), 'serve', dir, '--port', '0', '--json', '--json-logs'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: string[] = [];
  createInterface({ input: child.stderr! }).on('line', (l) => logs.push(l));
  t.after(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`at1 serve exited with ${code}`)));
  });
  const info = JSON.parse(line) as { url: string; repos: string[]; writable: boolean };
  assert.match(info.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  assert.deepEqual(info.repos, ['local/fam']);
  assert.equal(info.writable, false);
  const r = await fetch(`${info.url}/v1/versions`);
  assert.equal(((await r.json()) as { versions: unknown[] }).versions.length, 6);
  const exit = new Promise<number | null>((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  assert.equal(await exit, 0);
  const requests = logs.map((l) => JSON.parse(l) as { msg: string; url?: string; status?: number }).filter((l) => l.msg === 'request');
  assert.deepEqual(requests.map((l) => [l.url, l.status]), [['/v1/versions', 200]], 'one JSON line per request');
});

test('at1 serve: bad arguments exit 2 with one clear line', async (t) => {
  const { dir, root } = await buildFixtureRegistry(t);
  const missing = at1('serve', join(root, 'nope'), '--port', '0');
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /no such directory/);
  const shortToken = join(root, 'token');
  writeFileSync(shortToken, 'short\n');
  const weak = at1('serve', dir, '--port', '0', '--token-file', shortToken);
  assert.equal(weak.status, 2);
  assert.match(weak.stderr, /at least 16 characters/);
  const badPort = at1('serve', dir, '--port', 'x');
  assert.equal(badPort.status, 2);
  const badRepo = at1('serve', dir, '--repo', 'no-slash', '--port', '0');
  assert.equal(badRepo.status, 2);
  assert.match(badRepo.stderr, /ORG\/NAME/);
  const help = at1('serve', '--help');
  assert.equal(help.status, 0);
  assert.match(help.stdout, /--token-file/);
});

test('a folder of registries: each is a repository; /v1 needs ?repo=, the Hub routes name it', async (t) => {
  const { dir, root } = await buildFixtureRegistry(t);
  cpSync(dir, join(root, 'twin'), { recursive: true });
  const s = await serve(t, { path: root });
  const repos = (await (await fetch(`${s.url}/v1/repos`)).json()) as { repos: { id: string }[] };
  assert.deepEqual(repos.repos.map((r) => r.id), ['local/fam', 'local/twin']);
  const bare = await fetch(`${s.url}/v1/versions`);
  assert.equal(bare.status, 400);
  assert.match(((await bare.json()) as { error: { message: string } }).error.message, /\?repo=/);
  const twin = (await (await fetch(`${s.url}/v1/versions?repo=local/twin`)).json()) as { repo: string; versions: unknown[] };
  assert.equal(twin.repo, 'local/twin');
  assert.equal(twin.versions.length, 6);
  assert.equal((await fetch(`${s.url}/v1/versions?repo=local/none`)).status, 404);
  const hub = await fetch(`${s.url}/local/twin/resolve/base/base.safetensors`, { method: 'HEAD' });
  assert.equal(hub.status, 200);
  assert.equal(hub.headers.get('x-linked-size'), '1314168');
});

test('decode slots: at most N holders; a waiter gets the next free slot, or a 503 after the queue wait', async () => {
  const slots = new Slots(2);
  const a = await slots.acquire(50);
  const b = await slots.acquire(50);
  assert.equal(slots.inUse, 2);
  await assert.rejects(slots.acquire(30), (e: unknown) => e instanceof HttpError && e.status === 503 && e.code === 'E_BUSY');
  const waiting = slots.acquire(10_000);
  a();
  a(); // releasing twice frees one slot, not two
  const c = await waiting;
  assert.equal(slots.inUse, 2);
  b();
  c();
  assert.equal(slots.inUse, 0);
});
