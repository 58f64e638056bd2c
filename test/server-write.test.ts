/**
 * Writes over HTTP: PUT a safetensors file or a tar of a model directory,
 * DELETE a version; bearer-token auth (401/403, 405 when read-only); bad
 * bodies refused with nothing added; a stalled upload holds no lock.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import tar from 'tar-stream';
import { add, openRegistry, readTokenFile } from '../src/index.js';
import { EMBEDDED, tempDir } from './helpers.js';
import { buildFixtureRegistry, serve } from './server-helpers.js';

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
const TOKEN = 'at1-test-token-0123456789abcdef';

async function tarOf(files: Record<string, Buffer>, extra: (p: tar.Pack) => void = () => undefined): Promise<Uint8Array<ArrayBuffer>> {
  const pack = tar.pack();
  for (const [name, data] of Object.entries(files)) pack.entry({ name, size: data.length }, data);
  extra(pack);
  pack.finalize();
  const parts: Buffer[] = [];
  for await (const c of pack) parts.push(c as Buffer);
  return new Uint8Array(Buffer.concat(parts));
}

test('writes: auth, PUT, DELETE, refusals', async (t) => {
  const { dir, root } = await buildFixtureRegistry(t);
  const tokenFile = join(root, 'token');
  writeFileSync(tokenFile, TOKEN + '\n');
  const uploadDir = tempDir(t, 'at1-uploads-');
  const s = await serve(t, { path: dir, token: await readTokenFile(tokenFile), limits: { uploadDir } });
  const auth = { authorization: `Bearer ${TOKEN}` };
  const lastLayer = readFileSync(join(EMBEDDED, 'code-lastlayer.safetensors'));
  const put = (name: string, body: BodyInit, headers: Record<string, string> = auth, query = ''): Promise<Response> => fetch(`${s.url}/v1/versions/${name}${query}`, { method: 'PUT', body, headers: { 'content-type': 'application/octet-stream', ...headers } });

  await t.test('no token → 401 with WWW-Authenticate; a wrong one → 403; nothing added', async () => {
    const none = await put('up1', lastLayer, {});
    assert.equal(none.status, 401);
    assert.match(none.headers.get('www-authenticate') ?? '', /^Bearer/);
    const wrong = await put('up1', lastLayer, { authorization: `Bearer ${TOKEN.slice(0, -1)}x` });
    assert.equal(wrong.status, 403);
    assert.equal(((await wrong.json()) as { error: { code: string } }).error.code, 'E_FORBIDDEN');
    assert.equal((await fetch(`${s.url}/v1/versions/base`, { method: 'DELETE', headers: { authorization: 'Basic abc' } })).status, 401);
    assert.equal((await fetch(`${s.url}/v1/versions/up1`)).status, 404);
    assert.deepEqual(readdirSync(uploadDir), [], 'a refused upload never reached the disk');
  });

  await t.test('PUT a safetensors body → 201, then served byte-exact', async () => {
    const r = await put('up1', lastLayer, auth, '?parent=base');
    assert.equal(r.status, 201, await r.clone().text());
    const body = (await r.json()) as { name: string; parent: string; files: { path: string; sha256: string }[] };
    assert.equal(body.parent, 'base');
    assert.deepEqual(body.files.map((f) => [f.path, f.sha256]), [['up1.safetensors', sha(lastLayer)]]);
    const got = Buffer.from(await (await fetch(`${s.url}/v1/versions/up1/files/up1.safetensors`)).arrayBuffer());
    assert.ok(got.equals(lastLayer));
    assert.deepEqual(readdirSync(uploadDir), [], 'the upload area is cleaned up');
    assert.equal((await put('up1', lastLayer)).status, 409, 'a taken name');
  });

  await t.test('PUT a tar of a model directory → every file served byte-exact', async () => {
    const files = { 'model.safetensors': lastLayer, 'config.json': readFileSync(join(EMBEDDED, 'config.json')), 'tok/tokenizer.json': readFileSync(join(EMBEDDED, 'tokenizer.json')) };
    const r = await put('dir1', await tarOf(files), { ...auth, 'content-type': 'application/x-tar' });
    assert.equal(r.status, 201, await r.clone().text());
    const v = (await (await fetch(`${s.url}/v1/versions/dir1`)).json()) as { layout: string; files: { path: string; sha256: string }[] };
    assert.equal(v.layout, 'directory');
    assert.deepEqual(v.files.map((f) => f.path).sort(), Object.keys(files).sort());
    for (const [p, data] of Object.entries(files)) assert.ok(Buffer.from(await (await fetch(`${s.url}/v1/versions/dir1/files/${p}`)).arrayBuffer()).equals(data), p);
  });

  await t.test('bad bodies are refused and add nothing: not safetensors (400), a tar with .. (400), a link (400), wrong type (415), too large (413)', async () => {
    const garbage = await put('bad1', Buffer.from('this is not a safetensors file at all'));
    assert.equal(garbage.status, 400);
    assert.equal(((await garbage.json()) as { error: { code: string } }).error.code, 'E_SAFETENSORS');
    const evil = await put('bad2', await tarOf({ '../evil.json': Buffer.from('{}'), 'model.safetensors': lastLayer }), { ...auth, 'content-type': 'application/x-tar' });
    assert.equal(evil.status, 400);
    assert.match(((await evil.json()) as { error: { message: string } }).error.message, /\.\./);
    const link = await put('bad3', await tarOf({ 'model.safetensors': lastLayer }, (p) => p.entry({ name: 'x', type: 'symlink', linkname: '/etc/passwd' })), { ...auth, 'content-type': 'application/x-tar' });
    assert.equal(link.status, 400);
    assert.equal((await put('bad4', lastLayer, { ...auth, 'content-type': 'text/plain' })).status, 415);
    assert.equal((await put('bad 5', lastLayer)).status, 400, 'an invalid version name');
    const reg = await openRegistry(dir);
    for (const n of ['bad1', 'bad2', 'bad3', 'bad4']) assert.equal(await reg.hasVersion(n), false, n);
    assert.deepEqual(readdirSync(uploadDir), []);
  });

  await t.test('DELETE: refused while others are coded against it (409), else removed', async () => {
    const inUse = await fetch(`${s.url}/v1/versions/base`, { method: 'DELETE', headers: auth });
    assert.equal(inUse.status, 409);
    assert.match(((await inUse.json()) as { error: { message: string } }).error.message, /reference of/);
    const ok = await fetch(`${s.url}/v1/versions/dir1`, { method: 'DELETE', headers: auth });
    assert.equal(ok.status, 200, await ok.clone().text());
    assert.equal((await fetch(`${s.url}/v1/versions/dir1`)).status, 404);
    assert.equal((await fetch(`${s.url}/v1/versions/dir1`, { method: 'DELETE', headers: auth })).status, 404);
  });
});

test('limits: an upload over the byte limit is cut off (413); a stalled upload holds no lock', async (t) => {
  const { dir } = await buildFixtureRegistry(t);
  const uploadDir = tempDir(t, 'at1-uploads-');
  const s = await serve(t, { path: dir, token: TOKEN, limits: { uploadDir, maxUploadBytes: 1_000_000 } });
  const lastLayer = readFileSync(join(EMBEDDED, 'code-lastlayer.safetensors'));
  const u = new URL(s.url);

  const declared = await fetch(`${s.url}/v1/versions/big`, { method: 'PUT', body: lastLayer, headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/octet-stream' } });
  assert.equal(declared.status, 413);
  // Chunked (no Content-Length): counted as it arrives.
  const chunked = await new Promise<number>((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, path: '/v1/versions/big2', method: 'PUT', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/octet-stream', 'transfer-encoding': 'chunked' } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    for (let at = 0; at < lastLayer.length; at += 65536) req.write(lastLayer.subarray(at, at + 65536));
    req.end();
  });
  assert.equal(chunked, 413);
  assert.equal(await (await openRegistry(dir)).hasVersion('big2'), false);

  // A stalled upload: half the body sent, then nothing. The registry lock stays free meanwhile.
  const s2 = await serve(t, { path: dir, token: TOKEN, limits: { uploadDir } });
  const u2 = new URL(s2.url);
  let finish!: () => void;
  const status = new Promise<number>((resolve, reject) => {
    const req = request({ host: u2.hostname, port: u2.port, path: '/v1/versions/slow?parent=base', method: 'PUT', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/octet-stream', 'content-length': String(lastLayer.length) } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
    req.write(lastLayer.subarray(0, 600_000));
    finish = () => req.end(lastLayer.subarray(600_000));
  });
  // Wait until the server has the first half in its upload area.
  for (;;) {
    const areas = readdirSync(uploadDir);
    const file = areas.length ? join(uploadDir, areas[0]!, 'slow.safetensors') : undefined;
    if (file && (() => { try { return statSync(file).size >= 600_000; } catch { return false; } })()) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  const other = await openRegistry(dir, { settings: { lockWaitMs: 200 } });
  const r = await add(other, join(EMBEDDED, 'prose-step0025.safetensors'), { name: 'while-stalled', parent: 'base', level: 'fast' });
  assert.equal(r.manifest.name, 'while-stalled', 'another writer took the lock while the upload was stalled');
  finish();
  assert.equal(await status, 201);
  assert.ok(Buffer.from(await (await fetch(`${s2.url}/v1/versions/slow/files/slow.safetensors`)).arrayBuffer()).equals(lastLayer));
});

test('a request that takes longer than the request time limit is cut off (408); nothing is added, the upload area is emptied', async (t) => {
  const { dir } = await buildFixtureRegistry(t);
  const uploadDir = tempDir(t, 'at1-uploads-');
  const s = await serve(t, { path: dir, token: TOKEN, limits: { uploadDir, requestTimeoutMs: 1000 } });
  const u = new URL(s.url);
  const lastLayer = readFileSync(join(EMBEDDED, 'code-lastlayer.safetensors'));
  const outcome = await new Promise<string>((resolve) => {
    const req = request({ host: u.hostname, port: u.port, path: '/v1/versions/stalled', method: 'PUT', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/octet-stream', 'content-length': String(lastLayer.length) } }, (res) => {
      res.resume();
      resolve(`status ${res.statusCode}`);
    });
    req.on('error', (e) => resolve(`closed (${(e as NodeJS.ErrnoException).code})`));
    req.write(lastLayer.subarray(0, 100_000)); // and never the rest
  });
  assert.match(outcome, /^status 408$|^closed \(ECONNRESET\)$/);
  assert.equal(await (await openRegistry(dir)).hasVersion('stalled'), false);
  for (let i = 0; i < 100 && readdirSync(uploadDir).length > 0; i++) await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(readdirSync(uploadDir), []);
});
