/**
 * The chain policy (reference.ts skipTarget / codingRelatives, FORMAT.md §5):
 * linear up to the depth bound, base-3 skip-deltas beyond; no chain ever
 * exceeds the bound, and the choice is a pure function of the position.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { add, getVersion, initRegistry, openRegistry } from '../src/index.js';
import { codingRelatives, skipTarget } from '../src/registry/reference.js';
import { writeChain } from '../bench/synthetic.js';
import { sha256File, tempDir } from './helpers.js';

test('skipTarget: the parent up to the bound, then the ancestor n - 3^p', () => {
  const targets = Array.from({ length: 30 }, (_, i) => skipTarget(i + 1, 8));
  assert.deepEqual(targets.slice(0, 8), [0, 1, 2, 3, 4, 5, 6, 7]);
  assert.deepEqual(targets.slice(8), [0, 9, 10, 9, 12, 13, 12, 15, 16, 9, 18, 19, 18, 21, 22, 21, 24, 25, 0, 27, 28, 27]);
  assert.deepEqual(Array.from({ length: 30 }, (_, i) => skipTarget(i + 1, 8)), targets, 'deterministic');
  // With the bound, every position up to 160 needs at most 8 links (two per base-3 digit at most).
  const depth = [0];
  for (let n = 1; n <= 160; n++) depth[n] = depth[skipTarget(n, 8)]! + 1;
  assert.ok(Math.max(...depth) <= 8, `deepest ${Math.max(...depth)}`);
});

test('a run of 20 checkpoints under a bound of 3: chains within the bound, skip-delta bases as planned, restores byte-exact', async (t) => {
  const work = tempDir(t);
  const paths = Array.from({ length: 21 }, (_, i) => join(work, `ckpt-${String(i).padStart(2, '0')}.safetensors`));
  const shapes = Array.from({ length: 4 }, (_, i) => ({ name: `layers.${i}.weight`, shape: [128, 256] as [number, number] }));
  writeChain(paths, shapes, 2e-4, 3, 0.9);
  const dir = join(work, 'reg');
  const { registry } = await initRegistry(dir, paths[0]!, { maxChainDepth: 3, chunkElements: 1 << 14 });
  for (const p of paths.slice(1)) await add(registry, p);

  const reg = await openRegistry(dir);
  const manifests = await reg.manifests();
  for (const [i, m] of manifests.entries()) {
    if (i === 0) continue;
    assert.equal(m.parent, `ckpt-${String(i - 1).padStart(2, '0')}`, 'the nearest relative is the previous checkpoint');
    // The version's chunks were coded against the policy's base: what codingRelatives says for its parent, now and every time.
    const parent = manifests[i - 1]!;
    const { base } = codingRelatives(parent, manifests.slice(0, i), 3);
    assert.equal(base, `ckpt-${String(skipTarget(i, 3)).padStart(2, '0')}`);
  }
  let deepest = 0;
  for (const d of (await reg.store.list()).keys()) deepest = Math.max(deepest, (await reg.reader.header(d)).depth);
  assert.ok(deepest <= 3, `deepest chain ${deepest} within the bound 3`);
  for (const i of [3, 9, 17, 20]) {
    const out = join(work, `out-${i}`);
    await getVersion(reg, `ckpt-${String(i).padStart(2, '0')}`, out);
    assert.equal(sha256File(out), sha256File(paths[i]!));
  }
});
