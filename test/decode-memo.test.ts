/**
 * Each object decoded at most once per operation (chunk-reader.ts DecodeMemo):
 * on a chain of checkpoints coded with the trajectory codec (two references
 * per chunk), a restore, a verify of every version and the reference reads of
 * an add read each object from the store at most once, and restores stay
 * byte-exact. Without the memo, depth 8 read its grandparents again and again
 * (Fibonacci-like).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { add, getVersion, initRegistry, openRegistry, verifyRegistry } from '../src/index.js';
import { writeChain } from '../bench/synthetic.js';
import { sha256File, tempDir } from './helpers.js';

const FLOAT_TRAJ = 12;

test('restore, verify and add decode each object of a depth-8 trajectory chain once', async (t) => {
  const work = tempDir(t);
  const paths = Array.from({ length: 10 }, (_, i) => join(work, `ckpt-${i}.safetensors`));
  // A small model (8 tensors of 32K elements, 2 chunks each) moving with momentum, as a training run's checkpoints do.
  const shapes = Array.from({ length: 8 }, (_, i) => ({ name: `layers.${i}.weight`, shape: [128, 256] as [number, number] }));
  writeChain(paths, shapes, 2e-4, 5, 0.9);
  const { registry } = await initRegistry(join(work, 'reg'), paths[0]!, { maxChainDepth: 8, chunkElements: 1 << 14 });
  for (const p of paths.slice(1, 9)) await add(registry, p);

  // The chain is what the memo is for: trajectory objects at depth 2..8.
  const depths = new Map<number, number>();
  let traj = 0;
  for (const d of (await registry.store.list()).keys()) {
    const h = await registry.reader.header(d);
    depths.set(h.depth, (depths.get(h.depth) ?? 0) + 1);
    if (h.codec === FLOAT_TRAJ) traj++;
  }
  assert.equal(Math.max(...depths.keys()), 8, 'the chain reaches depth 8');
  assert.ok(traj > 0, 'objects use the two-reference trajectory codec');

  // A fresh registry object for each operation: no cache from an earlier call hides a decode.
  for (const [i, p] of paths.slice(0, 9).entries()) {
    const reg = await openRegistry(join(work, 'reg'));
    const counts = reg.store.countReadsPerObject();
    const out = join(work, `out-${i}`);
    await getVersion(reg, `ckpt-${i}`, out);
    assert.equal(sha256File(out), sha256File(p), `ckpt-${i} restores byte-exact`);
    const worst = Math.max(...counts.values());
    assert.equal(worst, 1, `get ckpt-${i}: every object decoded once (worst ${worst})`);
  }

  const reg = await openRegistry(join(work, 'reg'));
  const counts = reg.store.countReadsPerObject();
  const report = await verifyRegistry(reg, undefined);
  assert.equal(report.ok, true);
  assert.equal(Math.max(...counts.values()), 1, 'verify of every version: each object decoded once');
  assert.equal(counts.size, (await reg.store.list()).size, 'and every object was decoded');

  // The add of the next checkpoint reads its references (parent and grandparent chunks, chains below them) once each.
  counts.clear();
  const r = await add(reg, paths[9]!, { parent: 'ckpt-8' });
  assert.equal(r.manifest.parent, 'ckpt-8');
  assert.equal(Math.max(...counts.values()), 1, 'add: each reference object decoded once');
  await getVersion(reg, 'ckpt-9', join(work, 'out-9'));
  assert.equal(sha256File(join(work, 'out-9')), sha256File(paths[9]!));
});
