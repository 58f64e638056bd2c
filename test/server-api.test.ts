/**
 * `at1 serve`, the v1 API on the fixture family: listings, tensors and files
 * byte-exact, Range edge cases, validators and conditional requests,
 * validation of names and paths, limits, a damaged object, /metrics.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync, cpSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { listRegistry, openRegistry, tensorsOf } from '../src/index.js';
import { EMBEDDED, family, readTensors } from './helpers.js';
import { buildFixtureRegistry, serve, TEST_CHUNK_ELEMENTS } from './server-helpers.js';

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** A raw request (fetch would normalise `..` away): status, headers, body. */
function raw(url: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = request({ host: u.hostname, port: u.port, path, method: 'GET', headers }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** The metric's value summed over all label sets. */
function metric(text: string, name: string): number {
  return text
    .split('\n')
    .filter((l) => l.startsWith(name + ' ') || l.startsWith(name + '{'))
    .reduce((a, l) => a + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
}

test('v1 API on the fixture family', async (t) => {
  const { dir, reg } = await buildFixtureRegistry(t);
  const s = await serve(t, { path: dir });
  const get = (p: string, init?: RequestInit): Promise<Response> => fetch(s.url + p, init);
  const fixture = Object.fromEntries(family().map((v) => [v.name, readFileSync(join(EMBEDDED, v.file))]));

  await t.test('GET /v1/versions: every version with its parent and sizes, as the registry lists them', async () => {
    const r = await get('/v1/versions');
    assert.equal(r.status, 200);
    const body = (await r.json()) as { repo: string; versions: { name: string; parent: string | null; rawBytes: number; storedBytes: number; commit: string }[]; total: { rawBytes: number; storedBytes: number; savedBytes: number } };
    assert.equal(body.repo, 'local/fam');
    const listing = await listRegistry(reg);
    assert.deepEqual(body.versions.map((v) => [v.name, v.parent, v.rawBytes, v.storedBytes]), listing.versions.map((v) => [v.name, v.parent, v.rawBytes, v.storedBytes]));
    for (const v of family()) assert.equal(body.versions.find((x) => x.name === v.name)?.parent, v.parent);
    assert.equal(body.total.savedBytes, listing.total.rawBytes - listing.total.storedBytes);
    assert.ok(body.versions.every((v) => /^[0-9a-f]{40}$/.test(v.commit)));
  });

  await t.test('GET /v1/versions/{name}: files and tensors with dtype, shape and SHA-256 of the real file', async () => {
    const r = await get('/v1/versions/code-lora');
    const v = (await r.json()) as { files: { path: string; size: number; sha256: string }[]; tensors: { name: string; dtype: string; shape: number[]; sha256: string; storedBytes: number; codec: string }[] };
    assert.deepEqual(v.files.map((f) => [f.path, f.size, f.sha256]), [['code-lora.safetensors', fixture['code-lora']!.length, sha(fixture['code-lora']!)]]);
    const want = readTensors(join(EMBEDDED, 'code-lora.safetensors'));
    assert.equal(v.tensors.length, want.length);
    for (const w of want) {
      const got = v.tensors.find((x) => x.name === w.name)!;
      assert.equal(got.dtype, w.dtype);
      assert.deepEqual(got.shape, w.shape);
      assert.equal(got.sha256, sha(w.data));
      assert.ok(got.codec.length > 0 && got.storedBytes >= 0);
    }
  });

  await t.test('stored bytes split into new and shared: a tensor unchanged from the parent adds nothing', async () => {
    const v = (await (await get('/v1/versions/code-lastlayer')).json()) as { storedBytes: number; tensors: { name: string; sha256: string; storedBytes: number; newBytes: number; packed: boolean }[] };
    const base = new Map(readTensors(join(EMBEDDED, 'base.safetensors')).map((x) => [x.name, sha(x.data)]));
    const unchanged = v.tensors.filter((x) => !x.packed && base.get(x.name) === x.sha256);
    const changed = v.tensors.filter((x) => !x.packed && base.get(x.name) !== x.sha256);
    assert.ok(unchanged.length > 0 && changed.length > 0);
    for (const x of unchanged) assert.equal(x.newBytes, 0, `${x.name} is base's`);
    for (const x of changed) assert.ok(x.newBytes > 0 && x.newBytes === x.storedBytes, `${x.name} was stored by this version`);
    assert.ok(v.tensors.reduce((a, x) => a + x.newBytes, 0) <= v.storedBytes);
  });

  await t.test('every tensor of every version is served byte-exact, with ETag and Repr-Digest', async () => {
    for (const v of family()) {
      for (const w of readTensors(join(EMBEDDED, v.file))) {
        const r = await get(`/v1/versions/${v.name}/tensors/${encodeURIComponent(w.name)}`);
        assert.equal(r.status, 200, `${v.name} ${w.name}`);
        const body = new Uint8Array(await r.arrayBuffer());
        assert.ok(Buffer.from(body).equals(Buffer.from(w.data)), `${v.name} ${w.name} bytes`);
        assert.equal(r.headers.get('etag'), `"${sha(w.data)}"`);
        assert.equal(r.headers.get('repr-digest'), `sha-256=:${createHash('sha256').update(w.data).digest('base64')}:`);
        assert.equal(r.headers.get('x-at1-dtype'), w.dtype);
      }
    }
  });

  const lm = readTensors(join(EMBEDDED, 'prose-step0050.safetensors')).find((x) => x.name === 'lm_head.weight')!.data;
  const lmUrl = '/v1/versions/prose-step0050/tensors/lm_head.weight';
  const chunkBytes = TEST_CHUNK_ELEMENTS * 2; // BF16
  const ranged = async (range: string, init: Record<string, string> = {}): Promise<{ r: Response; body: Buffer }> => {
    const r = await get(lmUrl, { headers: { range, ...init } });
    return { r, body: Buffer.from(await r.arrayBuffer()) };
  };

  await t.test('Range: first byte, last byte, across a chunk boundary, suffix, open-ended', async () => {
    assert.ok(lm.length > 4 * chunkBytes, 'lm_head spans several chunks');
    const cases: [string, number, number][] = [
      ['bytes=0-0', 0, 1],
      [`bytes=${lm.length - 1}-${lm.length - 1}`, lm.length - 1, lm.length],
      [`bytes=${chunkBytes - 3}-${chunkBytes + 2}`, chunkBytes - 3, chunkBytes + 3],
      [`bytes=${chunkBytes - 1}-${3 * chunkBytes}`, chunkBytes - 1, 3 * chunkBytes + 1],
      ['bytes=-100', lm.length - 100, lm.length],
      [`bytes=-${lm.length + 50}`, 0, lm.length],
      [`bytes=${lm.length - 10}-`, lm.length - 10, lm.length],
      [`bytes=${lm.length - 10}-${lm.length + 1000}`, lm.length - 10, lm.length],
    ];
    for (const [h, start, end] of cases) {
      const { r, body } = await ranged(h);
      assert.equal(r.status, 206, h);
      assert.equal(r.headers.get('content-range'), `bytes ${start}-${end - 1}/${lm.length}`, h);
      assert.equal(r.headers.get('content-length'), String(end - start), h);
      assert.ok(body.equals(Buffer.from(lm.subarray(start, end))), `${h} bytes`);
      assert.equal(r.headers.get('etag'), `"${sha(lm)}"`, 'the ETag names the whole representation');
    }
  });

  await t.test('Range: unsatisfiable → 416 with Content-Range bytes */SIZE; malformed → ignored (200)', async () => {
    for (const h of [`bytes=${lm.length}-`, `bytes=${lm.length + 5}-${lm.length + 9}`, 'bytes=-0']) {
      const { r, body } = await ranged(h);
      assert.equal(r.status, 416, h);
      assert.equal(r.headers.get('content-range'), `bytes */${lm.length}`);
      assert.equal((JSON.parse(body.toString()) as { error: { code: string } }).error.code, 'E_RANGE');
    }
    for (const h of ['bytes=5-2', 'items=0-1', 'bytes=abc']) {
      const { r, body } = await ranged(h);
      assert.equal(r.status, 200, h);
      assert.ok(body.equals(Buffer.from(lm)));
    }
  });

  await t.test('Range: several ranges → multipart/byteranges with each part exact', async () => {
    const { r, body } = await ranged(`bytes=0-9, ${chunkBytes - 5}-${chunkBytes + 4}, -7`);
    assert.equal(r.status, 206);
    const m = /^multipart\/byteranges; boundary=(.+)$/.exec(r.headers.get('content-type') ?? '');
    assert.ok(m, 'multipart content type');
    assert.equal(Number(r.headers.get('content-length')), body.length);
    const parts = body.toString('latin1').split(`--${m[1]}`).slice(1, -1);
    const want: [number, number][] = [[0, 10], [chunkBytes - 5, chunkBytes + 5], [lm.length - 7, lm.length]];
    assert.equal(parts.length, 3);
    for (const [i, p] of parts.entries()) {
      const [head, data] = p.replace(/^\r\n/, '').split('\r\n\r\n');
      assert.match(head!, new RegExp(`content-range: bytes ${want[i]![0]}-${want[i]![1] - 1}/${lm.length}`));
      assert.ok(Buffer.from(data!.replace(/\r\n$/, ''), 'latin1').equals(Buffer.from(lm.subarray(want[i]![0], want[i]![1]))), `part ${i}`);
    }
    const { r: many } = await ranged('bytes=' + Array.from({ length: 17 }, (_, i) => `${i * 10}-${i * 10 + 1}`).join(','));
    assert.equal(many.status, 416, 'more ranges than the limit are refused');
  });

  await t.test('a small range decodes only the chunks it touches', async () => {
    const before = metric(await (await get('/metrics')).text(), 'at1_decoded_chunks_total');
    await ranged(`bytes=${5 * chunkBytes + 10}-${5 * chunkBytes + 20}`);
    const mid = metric(await (await get('/metrics')).text(), 'at1_decoded_chunks_total');
    assert.equal(mid - before, 1, 'one chunk for a range inside one chunk');
    await ranged(`bytes=${chunkBytes - 1}-${chunkBytes}`);
    const after = metric(await (await get('/metrics')).text(), 'at1_decoded_chunks_total');
    assert.equal(after - mid, 2, 'two chunks for a range across one boundary');
  });

  await t.test('a range of a file decodes only the chunks it overlaps', async () => {
    const file = fixture['prose-step0050']!;
    const n = Number(file.readBigUInt64LE(0));
    const header = JSON.parse(file.subarray(8, 8 + n).toString()) as Record<string, { data_offsets: [number, number] }>;
    const at = 8 + n + header['lm_head.weight']!.data_offsets[0] + 2 * chunkBytes; // chunk 2 of lm_head
    const before = metric(await (await get('/metrics')).text(), 'at1_decoded_chunks_total');
    const r = await get('/v1/versions/prose-step0050/files/prose-step0050.safetensors', { headers: { range: `bytes=${at + 10}-${at + 99}` } });
    assert.ok(Buffer.from(await r.arrayBuffer()).equals(file.subarray(at + 10, at + 100)));
    const after = metric(await (await get('/metrics')).text(), 'at1_decoded_chunks_total');
    assert.equal(after - before, 1, 'one tensor chunk, no header chunk, nothing else of the file');
  });

  await t.test('If-None-Match → 304; If-Range with another ETag → the whole tensor', async () => {
    const etag = `"${sha(lm)}"`;
    const r = await get(lmUrl, { headers: { 'if-none-match': etag } });
    assert.equal(r.status, 304);
    assert.equal((await r.arrayBuffer()).byteLength, 0);
    assert.equal((await get(lmUrl, { headers: { 'if-none-match': '"0000", W/' + etag } })).status, 304);
    assert.equal((await get(lmUrl, { headers: { 'if-none-match': '"other"' } })).status, 200);
    const { r: stale, body } = await ranged('bytes=0-9', { 'if-range': '"stale"' });
    assert.equal(stale.status, 200);
    assert.equal(body.length, lm.length);
    const { r: fresh } = await ranged('bytes=0-9', { 'if-range': etag });
    assert.equal(fresh.status, 206);
  });

  await t.test('files: whole safetensors reconstructed byte-exact, ranges over header and tensors, HEAD', async () => {
    for (const v of family()) {
      const r = await get(`/v1/versions/${v.name}/files/${v.file}`);
      assert.equal(r.status, 200);
      const body = Buffer.from(await r.arrayBuffer());
      assert.equal(sha(body), v.sha256, `${v.name} reconstructed file`);
      assert.equal(r.headers.get('etag'), `"${v.sha256}"`);
    }
    const file = fixture['prose-step0025']!;
    const headerLen = Number(file.readBigUInt64LE(0)) + 8;
    for (const [a, b] of [[0, 7], [headerLen - 4, headerLen + 4], [headerLen + 1000, headerLen + 300000], [file.length - 33, file.length - 1]] as [number, number][]) {
      const r = await get('/v1/versions/prose-step0025/files/prose-step0025.safetensors', { headers: { range: `bytes=${a}-${b}` } });
      assert.equal(r.status, 206);
      assert.ok(Buffer.from(await r.arrayBuffer()).equals(file.subarray(a, b + 1)), `file bytes ${a}-${b}`);
    }
    const head = await get('/v1/versions/base/files/base.safetensors', { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), String(fixture.base!.length));
    assert.equal(head.headers.get('accept-ranges'), 'bytes');
    const side = await get('/v1/versions/code-lora-dir/files/tokenizer/special_tokens_map.json');
    assert.ok(Buffer.from(await side.arrayBuffer()).equals(readFileSync(join(EMBEDDED, 'special_tokens_map.json'))), 'a side file in a sub-folder, as stored');
  });

  await t.test('not found, bad names and traversal attempts: JSON errors with the right status', async () => {
    const cases: [string, number, string][] = [
      ['/v1/versions/nope', 404, 'E_NOT_FOUND'],
      ['/v1/versions/base/tensors/no.such.tensor', 404, 'E_NOT_FOUND'],
      ['/v1/versions/base/files/other.safetensors', 404, 'E_NOT_FOUND'],
      ['/v1/versions/bad%20name', 400, 'E_INPUT'],
      ['/v1/versions/base/files/../../at1-registry.json', 400, 'E_INPUT'],
      ['/v1/versions/base/files/%2e%2e/%2E%2E/at1-registry.json', 400, 'E_INPUT'],
      ['/v1/versions/..%2f..%2fetc/files/passwd', 400, 'E_INPUT'],
      ['/v1/versions/base/files/a%5c..%5cb', 400, 'E_INPUT'],
      ['/v1/versions/base/files/x%00', 400, 'E_INPUT'],
      ['/v1/versions/base/files/%zz', 400, 'E_INPUT'],
      ['/v1/nothing', 404, 'E_NOT_FOUND'],
    ];
    for (const [path, status, code] of cases) {
      const r = await raw(s.url, path);
      assert.equal(r.status, status, path);
      assert.equal((JSON.parse(r.body.toString()) as { error: { code: string; message: string } }).error.code, code, path);
    }
  });

  await t.test('limits: an oversized header block is refused (431); a read-only server refuses writes (405)', async () => {
    const r = await raw(s.url, '/v1/versions', { 'x-big': 'a'.repeat(20_000) });
    assert.equal(r.status, 431);
    const put = await get('/v1/versions/new', { method: 'PUT', body: 'x' });
    assert.equal(put.status, 405);
    assert.equal(((await put.json()) as { error: { code: string } }).error.code, 'E_READ_ONLY');
  });

  await t.test('GET /v1/diff: relative L2 change and fraction of elements changed, per tensor, as computed from the fixture bytes', async () => {
    const d = (await (await get('/v1/diff?a=base&b=code-lastlayer')).json()) as { tensors: { name: string; status: string; relL2: number | null; fractionChanged: number | null }[]; summary: { changed: number; same: number } };
    const a = new Map(readTensors(join(EMBEDDED, 'base.safetensors')).map((x) => [x.name, x.data]));
    const bf16 = (b: Uint8Array, i: number): number => new Float32Array(new Uint32Array([(b[2 * i]! | (b[2 * i + 1]! << 8)) << 16]).buffer)[0]!;
    let changed = 0;
    for (const x of readTensors(join(EMBEDDED, 'code-lastlayer.safetensors'))) {
      const y = a.get(x.name)!;
      const n = x.data.length / 2;
      let num = 0;
      let den = 0;
      let diff = 0;
      for (let i = 0; i < n; i++) {
        const u = bf16(y, i);
        const v = bf16(x.data, i);
        num += (v - u) ** 2;
        den += u * u;
        if (u !== v) diff++;
      }
      const got = d.tensors.find((z) => z.name === x.name)!;
      assert.equal(got.status, diff > 0 ? 'changed' : 'same', x.name);
      assert.ok(Math.abs(got.relL2! - Math.sqrt(num / den)) <= 1e-9 * Math.max(1, Math.sqrt(num / den)), `${x.name} relL2 ${got.relL2} vs ${Math.sqrt(num / den)}`);
      assert.equal(got.fractionChanged, diff / n, x.name);
      if (diff > 0) changed++;
    }
    assert.equal(d.summary.changed, changed);
    assert.equal((await get('/v1/diff?a=base')).status, 400);
    assert.equal((await get('/v1/diff?a=base&b=nope')).status, 404);
  });

  await t.test('GET /v1/verify: server-sent progress, then integrity: PASS (SHA-256)', async () => {
    const r = await get('/v1/verify?version=prose-step0050');
    assert.match(r.headers.get('content-type') ?? '', /^text\/event-stream/);
    const events = (await r.text()).trim().split('\n\n').map((e) => ({ event: /^event: (.+)$/m.exec(e)![1], data: JSON.parse(/^data: (.+)$/m.exec(e)![1]!) as Record<string, unknown> }));
    assert.equal(events[0]!.event, 'start');
    assert.ok(events.some((e) => e.event === 'progress'));
    const result = events[events.length - 1]!;
    assert.equal(result.event, 'result');
    assert.equal(result.data.line, 'integrity: PASS (SHA-256)');
    assert.equal(result.data.ok, true);
  });

  await t.test('/metrics: Prometheus text with requests, bytes served, verify failures and decode time', async () => {
    const r = await get('/metrics');
    assert.match(r.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const text = await r.text();
    assert.ok(metric(text, 'at1_http_requests_total') > 50);
    assert.ok(metric(text, 'at1_http_bytes_served_total') > 5 * 1314168, 'at least the five files');
    assert.ok(metric(text, 'at1_decode_seconds_total') > 0);
    assert.equal(metric(text, 'at1_verify_failures_total'), 0);
    assert.match(text, /# TYPE at1_http_requests_total counter/);
    assert.match(text, /at1_http_requests_total\{method="GET",route="\/v1\/versions\/:name\/tensors\/\*",status="206"\} \d+/);
  });
});

test('a damaged object: 500 E_INTEGRITY naming the tensor, or an aborted transfer once streaming began; never wrong bytes', async (t) => {
  const { dir, root } = await buildFixtureRegistry(t, 'damaged');
  // The object of lm_head's chunk 3 in base: flip a byte of its payload.
  const reg = await openRegistry(dir);
  const m = await reg.manifest('base');
  const loc = tensorsOf(m).find((l) => l.tensor.name === 'lm_head.weight')!;
  const digest = loc.tensor.chunks[3]!;
  const objDir = join(dir, 'objects', digest.slice(0, 2));
  const objFile = readdirSync(objDir).find((f) => f.startsWith(digest))!;
  const bytes = readFileSync(join(objDir, objFile));
  bytes[bytes.length - 5]! ^= 0x5a;
  writeFileSync(join(objDir, objFile), bytes);
  cpSync(dir, join(root, 'copy-unused'), { recursive: true }); // the fixture is damaged only here

  const s = await serve(t, { path: dir, limits: { bufferBytes: 64 * 1024 } });
  const r = await fetch(`${s.url}/v1/versions/base/tensors/lm_head.weight`, { headers: { range: `bytes=${3 * 32768 - 100}-${3 * 32768 + 100}` } }); // under the buffer limit: checked before the status line
  assert.equal(r.status, 500);
  const e = ((await r.json()) as { error: { code: string; message: string } }).error;
  assert.equal(e.code, 'E_INTEGRITY');
  assert.match(e.message, /lm_head\.weight/);
  assert.match(e.message, /chunk 3/);

  // A range that avoids the damaged chunk is still served (it decodes only its own chunks).
  const ok = await fetch(`${s.url}/v1/versions/base/tensors/lm_head.weight`, { headers: { range: 'bytes=0-99' } });
  assert.equal(ok.status, 206);

  // The whole file is larger than the buffer limit: it streams, and the connection is cut at the damaged chunk.
  const f = await fetch(`${s.url}/v1/versions/base/files/base.safetensors`);
  assert.equal(f.status, 200);
  const want = readFileSync(join(EMBEDDED, 'base.safetensors'));
  let got = Buffer.alloc(0);
  await assert.rejects(async () => {
    for await (const c of f.body!) got = Buffer.concat([got, Buffer.from(c as Uint8Array)]);
  }, 'the client sees a failed transfer');
  assert.ok(got.length < want.length);
  assert.ok(got.equals(want.subarray(0, got.length)), 'every byte that was sent is right');

  // Verify over SSE names the damaged tensor.
  const v = await (await fetch(`${s.url}/v1/verify?version=base`)).text();
  const result = JSON.parse(/event: result\ndata: (.+)/.exec(v)![1]!) as { ok: boolean; line: string; failures: { tensor?: string }[] };
  assert.equal(result.ok, false);
  assert.match(result.line, /^integrity: FAIL/);
  assert.deepEqual(result.failures.map((f) => f.tensor), ['lm_head.weight']);

  const metrics = await (await fetch(`${s.url}/metrics`)).text();
  assert.ok(metric(metrics, 'at1_verify_failures_total') >= 3);
});
