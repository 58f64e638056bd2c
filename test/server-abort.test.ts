/**
 * Clients that go away: a download abandoned mid-stream (worker-pool decode,
 * streamed response) leaves the server serving, with no stray rejection,
 * and its decode slot and reader lease released.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { family } from './helpers.js';
import { buildFixtureRegistry, serve } from './server-helpers.js';

test('an abandoned download: the server keeps serving, slots and leases are released', async (t) => {
  const stray: unknown[] = [];
  const onStray = (e: unknown): void => void stray.push(e);
  process.on('unhandledRejection', onStray);
  t.after(() => process.off('unhandledRejection', onStray));
  const { dir } = await buildFixtureRegistry(t);
  // Workers always (the pooled path of a large download), a tiny buffer limit (so every file streams), one decode slot.
  const s = await serve(t, { path: dir, settings: { workers: 'always' }, limits: { bufferBytes: 1024, maxConcurrentDecodes: 1, decodeQueueMs: 20_000 } });
  const v = family()[2]!;
  for (let i = 0; i < 3; i++) {
    const ac = new AbortController();
    const r = await fetch(`${s.url}/v1/versions/${v.name}/files/${v.file}`, { signal: ac.signal });
    const reader = r.body!.getReader();
    await reader.read(); // the first piece, then the client leaves
    ac.abort();
    await reader.cancel().catch(() => undefined);
  }
  // With one decode slot, this succeeds only if every abandoned response released its slot.
  const r = await fetch(`${s.url}/v1/versions/${v.name}/files/${v.file}`);
  assert.equal(r.status, 200);
  assert.equal(createHash('sha256').update(Buffer.from(await r.arrayBuffer())).digest('hex'), v.sha256);
  const metrics = await (await fetch(`${s.url}/metrics`)).text();
  assert.match(metrics, /^at1_decodes_in_flight 0$/m);
  assert.deepEqual(stray, []);
});
