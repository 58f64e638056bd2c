/**
 * What the S3 backend adds beyond the shared contract (store-conformance):
 * bounded requests in flight, retries ending in an error that names the
 * key, abort during backoff, a missing bucket, refused credentials, and the
 * location and settings parsing. Failures are real ones (a closed port, a
 * missing bucket, a wrong secret against radosgw), not simulated.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { At1Error } from '../src/errors.js';
import { openRegistry } from '../src/index.js';
import { backoffMs, RequestLimiter } from '../src/store/request-limiter.js';
import { S3Backend } from '../src/store/s3-backend.js';
import { parseS3Location, s3Settings } from '../src/store/s3-config.js';
import { REPO } from './helpers.js';
import { S3_SKIP, s3Location } from './s3-helpers.js';

/** For services that never get far enough to check them. */
const credentials = { accessKeyId: 'AT1TESTNOTUSED', secretAccessKey: 'not-used' };

/** A port on 127.0.0.1 that nothing listens on (bound, then closed). */
async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
  return port;
}

test('locations and settings: bucket and prefix parsed, bad ones refused, environment knobs checked', () => {
  assert.deepEqual(parseS3Location('s3://my-bucket'), { bucket: 'my-bucket', root: '' });
  assert.deepEqual(parseS3Location('s3://my-bucket/a/b/'), { bucket: 'my-bucket', root: 'a/b' });
  for (const bad of ['s3://', 's3://ab/x', 's3://UPPER/x', 's3://a..b/x', 's3://bucket/a/../b', 's3://bucket/a\\b']) {
    assert.throws(() => parseS3Location(bad), (e: unknown) => e instanceof At1Error && e.code === 'E_INPUT', bad);
  }
  const s = s3Settings({}, { AT1_S3_ENDPOINT: 'http://127.0.0.1:9000' });
  assert.equal(s.endpoint, 'http://127.0.0.1:9000');
  assert.equal(s.region, 'us-east-1', 'a custom endpoint without a region gets us-east-1');
  assert.equal(s.connections, 16);
  assert.equal(s3Settings({ endpoint: 'https://x.example' }, { AWS_ENDPOINT_URL: 'http://y' }).endpoint, 'https://x.example', '--endpoint wins');
  assert.equal(s3Settings({}, { AWS_ENDPOINT_URL_S3: 'http://s3only', AWS_ENDPOINT_URL: 'http://all' }).endpoint, 'http://s3only');
  assert.equal(s3Settings({}, {}).endpoint, undefined, 'AWS itself');
  assert.equal(s3Settings({}, {}).region, undefined, 'left to the SDK (config file, profile)');
  for (const [k, v] of [['AT1_S3_CONNECTIONS', '0'], ['AT1_S3_CONNECTIONS', 'many'], ['AT1_S3_ATTEMPTS', '-1'], ['AT1_S3_UNSAFE_SINGLE_WRITER', 'yes']] as const) {
    assert.throws(() => s3Settings({}, { [k]: v }), (e: unknown) => e instanceof At1Error && e.code === 'E_INPUT' && e.message.includes(k), `${k}=${v}`);
  }
});

test('backoff: full jitter below an exponential ceiling, capped', () => {
  const p = { attempts: 6, baseMs: 100, capMs: 5000 };
  assert.equal(backoffMs(p, 0, () => 0), 0);
  assert.equal(backoffMs(p, 0, () => 0.999), 99);
  assert.equal(backoffMs(p, 3, () => 0.999), 799);
  assert.equal(backoffMs(p, 20, () => 0.999), 4995, 'capped');
});

test('the limiter never runs more than its bound at once, and runs everything', async () => {
  const lim = new RequestLimiter(3);
  let now = 0;
  let most = 0;
  const out = await Promise.all(
    Array.from({ length: 20 }, (_, i) =>
      lim.run(async () => {
        most = Math.max(most, ++now);
        await new Promise((r) => setImmediate(r));
        now--;
        return i;
      }),
    ),
  );
  assert.equal(most, 3);
  assert.deepEqual(out, Array.from({ length: 20 }, (_, i) => i));
  assert.throws(() => new RequestLimiter(0), (e: unknown) => e instanceof At1Error && e.code === 'E_INPUT');
});

test('an unreachable service: retried, then an error naming the key, the location and the attempts (retryable)', async () => {
  const port = await closedPort();
  const b = new S3Backend('s3://some-bucket/reg', { endpoint: `http://127.0.0.1:${port}`, settings: { attempts: 3 }, retry: { baseMs: 5, capMs: 20 }, credentials });
  try {
    await assert.rejects(b.read('objects/ab/abcdef'), (e: unknown) => {
      assert.ok(e instanceof At1Error && e.code === 'E_IO', String(e));
      assert.equal(e.retryable, true);
      assert.match(e.message, /objects\/ab\/abcdef in s3:\/\/some-bucket\/reg/);
      assert.match(e.message, /ECONNREFUSED/);
      assert.match(e.message, /after 3 attempts/);
      return true;
    });
    // An abort during the backoff ends the call at once, as E_ABORTED.
    const slow = new S3Backend('s3://some-bucket/reg', { endpoint: `http://127.0.0.1:${port}`, settings: { attempts: 50 }, retry: { baseMs: 60_000, capMs: 60_000 }, credentials });
    const ac = new AbortController();
    const call = slow.read('versions/v.json', { signal: ac.signal });
    setTimeout(() => ac.abort(), 50);
    await assert.rejects(call, (e: unknown) => e instanceof At1Error && e.code === 'E_ABORTED' && /versions\/v\.json/.test(e.message));
    slow.destroy();
  } finally {
    b.destroy();
  }
});

test('requests in flight are bounded by the connections setting', { skip: S3_SKIP }, async (t) => {
  const b = new S3Backend(s3Location(t, 'bounded'), { settings: { connections: 4 } });
  t.after(() => b.destroy());
  await b.put('k', new TextEncoder().encode('shared'));
  let now = 0;
  let most = 0;
  const send = b.client.send.bind(b.client) as (...a: unknown[]) => Promise<unknown>;
  (b.client as unknown as { send: (...a: unknown[]) => Promise<unknown> }).send = async (...a: unknown[]) => {
    most = Math.max(most, ++now);
    try {
      return await send(...a);
    } finally {
      now--;
    }
  };
  const got = await Promise.all(Array.from({ length: 40 }, () => b.read('k')));
  for (const g of got) assert.equal(new TextDecoder().decode(g), 'shared');
  assert.equal(most, 4, 'never more than 4 requests at once, and 4 were used');
});

test('a missing bucket is named as such; refused credentials are an access-denied error (exit 4), never retried', { skip: S3_SKIP }, async (t) => {
  const loc = s3Location(t, 'errors');
  await assert.rejects(openRegistry('s3://no-such-bucket-for-at1/reg'), (e: unknown) => e instanceof At1Error && e.code === 'E_INPUT' && /bucket no-such-bucket-for-at1 does not exist/.test(e.message));
  const r = spawnSync(process.execPath, [join(REPO, 'bin/at1.js'), 'registry', 'list', loc], { encoding: 'utf8', env: { ...process.env, AWS_SECRET_ACCESS_KEY: 'wrong-secret' } });
  assert.equal(r.status, 4, r.stderr);
  assert.match(r.stderr, /access denied/);
  assert.match(r.stderr, /at1-registry\.json/);
  const missing = spawnSync(process.execPath, [join(REPO, 'bin/at1.js'), 'registry', 'list', loc], { encoding: 'utf8' });
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /is not an at1 registry/);
});

test('--endpoint on the command line, anywhere after the command, picks the service over AWS_ENDPOINT_URL', { skip: S3_SKIP }, async (t) => {
  const loc = s3Location(t, 'endpoint');
  const real = process.env.AWS_ENDPOINT_URL!;
  const dead = `http://127.0.0.1:${await closedPort()}`;
  const run = (...args: string[]) => spawnSync(process.execPath, [join(REPO, 'bin/at1.js'), ...args], { encoding: 'utf8', env: { ...process.env, AWS_ENDPOINT_URL: dead, AT1_S3_ATTEMPTS: '1' } });
  const init = run('registry', 'init', join(REPO, 'fixtures/tinystories/code-lora.safetensors'), loc, '--level', 'fast', '--endpoint', real);
  assert.equal(init.status, 0, init.stderr);
  const list = run('registry', 'list', loc, '--json', '--endpoint', real);
  assert.equal(list.status, 0, list.stderr);
  assert.deepEqual((JSON.parse(list.stdout) as { versions: { name: string }[] }).versions.map((v) => v.name), ['code-lora']);
  const without = run('registry', 'list', loc);
  assert.equal(without.status, 4, 'without --endpoint it goes to AWS_ENDPOINT_URL, where nothing listens');
  assert.match(without.stderr, /ECONNREFUSED/);
});

test('a service that accepts connections and never answers: a timeout, retried, then an error naming the key', async (t) => {
  const sockets: import('node:net').Socket[] = [];
  const silent = createServer((sock) => void sockets.push(sock)); // reads the request, says nothing
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  t.after(() => {
    for (const s of sockets) s.destroy();
    silent.close();
  });
  const port = (silent.address() as { port: number }).port;
  const b = new S3Backend('s3://some-bucket/reg', { endpoint: `http://127.0.0.1:${port}`, settings: { attempts: 2 }, retry: { baseMs: 5, capMs: 10 }, requestTimeoutMs: 300, credentials });
  t.after(() => b.destroy());
  await assert.rejects(b.read('versions/v.json'), (e: unknown) => {
    assert.ok(e instanceof At1Error && e.code === 'E_IO', String(e));
    assert.equal(e.retryable, true);
    assert.match(e.message, /versions\/v\.json in s3:\/\/some-bucket\/reg/);
    assert.match(e.message, /after 2 attempts/);
    return true;
  });
  assert.equal(sockets.length >= 2, true, 'each attempt reached the server');
});

