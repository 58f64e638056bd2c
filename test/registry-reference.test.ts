/** Reference choice: the nearest relative by default, --parent when given, and chains never deeper than the registry allows. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { add, getVersion, initRegistry, verifyRegistry } from '../src/index.js';
import { llamaShapes, writeChain } from '../bench/synthetic.js';
import { EMBEDDED, sha256File, tempDir } from './helpers.js';

test('without --parent, each version is coded against its nearest relative', async (t) => {
  const work = tempDir(t);
  const { registry } = await initRegistry(join(work, 'reg'), join(EMBEDDED, 'base.safetensors'));
  const parents: Record<string, string | null> = {};
  for (const name of ['prose-step0025', 'code-lora', 'prose-step0050', 'code-lastlayer']) {
    const r = await add(registry, join(EMBEDDED, `${name}.safetensors`));
    parents[name] = r.manifest.parent;
    assert.ok(r.estimates.length >= 2, 'every candidate was estimated');
  }
  // The checkpoint at step 50 is nearest to step 25, not to the base it was trained from originally.
  assert.deepEqual(parents, { 'prose-step0025': 'base', 'code-lora': 'base', 'prose-step0050': 'prose-step0025', 'code-lastlayer': 'base' });
});

test('--parent overrides the automatic choice', async (t) => {
  const work = tempDir(t);
  const { registry } = await initRegistry(join(work, 'reg'), join(EMBEDDED, 'base.safetensors'));
  await add(registry, join(EMBEDDED, 'prose-step0025.safetensors'));
  const r = await add(registry, join(EMBEDDED, 'prose-step0050.safetensors'), { parent: 'base' });
  assert.equal(r.manifest.parent, 'base');
  assert.deepEqual(r.estimates, []);
});

test('a long checkpoint chain stays within the chain-depth bound and restores byte-exact', async (t) => {
  const work = tempDir(t);
  const paths = Array.from({ length: 8 }, (_, i) => join(work, `ckpt-${i}.safetensors`));
  writeChain(paths, llamaShapes(3e5), 3e-4, 11);
  const { registry } = await initRegistry(join(work, 'reg'), paths[0]!, { maxChainDepth: 2, chunkElements: 1 << 14 });
  for (const p of paths.slice(1)) await add(registry, p);
  let deepest = 0;
  for (const d of (await registry.store.list()).keys()) deepest = Math.max(deepest, (await registry.reader.header(d)).depth);
  assert.equal(deepest, 2, 'chains reach the bound and never pass it');
  for (const [i, p] of paths.entries()) {
    const out = join(work, `out-${i}`);
    await getVersion(registry, `ckpt-${i}`, out);
    assert.equal(sha256File(out), sha256File(p), `ckpt-${i}`);
  }
  assert.equal((await verifyRegistry(registry, undefined)).ok, true);
});
