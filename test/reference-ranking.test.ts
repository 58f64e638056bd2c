/**
 * Reference choice by recorded sketches (reference.ts, sketch.ts): every
 * version is ranked without decoding it, only the best few are tried with
 * the real codecs, the choice is deterministic, and versions written before
 * sketches existed are still ranked (from their stored chunks).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { add, initRegistry, openFileSource, openRegistry, parseManifest, readSafetensorsHeaderFrom, type Registry } from '../src/index.js';
import { chooseParent, readSamples, TRIAL_CANDIDATES } from '../src/registry/reference.js';
import { EMBEDDED, tempDir } from './helpers.js';

async function choose(reg: Registry, file: string): Promise<Awaited<ReturnType<typeof chooseParent>>> {
  const input = await openFileSource(file);
  try {
    const header = await readSafetensorsHeaderFrom(input);
    const samples = await readSamples([{ input, header }], reg.config.chunkElements);
    return await chooseParent(reg, samples, reg.config.level);
  } finally {
    await input.close();
  }
}

test('every version ranked by its recorded sketch, the best few tried, the same choice every time', async (t) => {
  const work = tempDir(t);
  const dir = join(work, 'reg');
  const { registry } = await initRegistry(dir, join(EMBEDDED, 'base.safetensors'));
  for (const n of ['code-lora', 'prose-step0025', 'code-lastlayer']) await add(registry, join(EMBEDDED, `${n}.safetensors`), { parent: 'base' });
  for (const m of await registry.manifests()) {
    assert.ok(m.sketch && m.sketch.tensors.length > 0 && m.sketch.tensors.length <= 8, `${m.name} has a sketch`);
  }
  const target = join(EMBEDDED, 'prose-step0050.safetensors');

  // Ranking reads no object: only the tried versions' chunks are decoded.
  const reg = await openRegistry(dir);
  const reads = reg.store.countReadsPerObject();
  const first = await choose(reg, target);
  assert.equal(first.ranking.length, 4, 'all four versions ranked');
  assert.equal(first.ranking[0]!.name, 'prose-step0025', 'the sketch ranks the previous checkpoint first');
  assert.equal(first.estimates.length, 1 + TRIAL_CANDIDATES, 'standalone plus the best three tried');
  assert.equal(first.parent, 'prose-step0025');
  const untried = first.ranking.slice(TRIAL_CANDIDATES).map((r) => r.name);
  const chunksOf = async (name: string): Promise<string[]> => (await reg.manifest(name)).files.flatMap((f) => (f.kind === 'safetensors' ? f.tensors.flatMap((x) => x.chunks) : []));
  const elsewhere = new Set((await Promise.all(first.ranking.slice(0, TRIAL_CANDIDATES).map((r) => chunksOf(r.name)))).flat());
  const own = (await chunksOf(untried[0]!)).filter((d) => !elsewhere.has(d)); // a LoRA's untouched chunks are the base's own objects
  assert.ok(own.length > 0);
  assert.ok(own.every((d) => !reads.has(d)), `no object of the untried ${untried[0]} was read`);

  // Deterministic: a fresh registry object chooses the same, ranked the same.
  const again = await choose(await openRegistry(dir), target);
  assert.deepEqual(again.ranking, first.ranking);
  assert.deepEqual(again.estimates, first.estimates);
});

test('versions without a recorded sketch (older manifests) are ranked from their stored chunks', async (t) => {
  const work = tempDir(t);
  const dir = join(work, 'reg');
  const { registry } = await initRegistry(dir, join(EMBEDDED, 'base.safetensors'));
  for (const n of ['code-lora', 'prose-step0025']) await add(registry, join(EMBEDDED, `${n}.safetensors`), { parent: 'base' });
  const withSketch = await choose(registry, join(EMBEDDED, 'prose-step0050.safetensors'));
  for (const n of ['base', 'code-lora', 'prose-step0025']) {
    const p = join(dir, 'versions', `${n}.json`);
    const m = JSON.parse(readFileSync(p, 'utf8')) as Record<string, unknown>;
    delete m.sketch;
    writeFileSync(p, JSON.stringify(m) + '\n');
  }
  const reg = await openRegistry(dir);
  assert.equal((await reg.manifest('base')).sketch, undefined);
  const without = await choose(reg, join(EMBEDDED, 'prose-step0050.safetensors'));
  assert.equal(without.parent, withSketch.parent);
  assert.deepEqual(without.ranking.map((r) => r.name), withSketch.ranking.map((r) => r.name));
  const r = await add(reg, join(EMBEDDED, 'prose-step0050.safetensors'));
  assert.equal(r.manifest.parent, 'prose-step0025');
});

test('a malformed sketch makes the manifest unreadable, naming the field', async (t) => {
  const dir = join(tempDir(t), 'reg');
  await initRegistry(dir, join(EMBEDDED, 'base.safetensors'));
  const m = JSON.parse(readFileSync(join(dir, 'versions', 'base.json'), 'utf8')) as Record<string, unknown>;
  assert.equal(parseManifest(new TextEncoder().encode(JSON.stringify(m)), 'base').sketch?.tensors.length, 8);
  const bad = (sketch: unknown): string => {
    try {
      parseManifest(new TextEncoder().encode(JSON.stringify({ ...m, sketch })), 'base');
      return 'accepted';
    } catch (e) {
      return (e as Error).message;
    }
  };
  assert.match(bad({ tensors: [{ name: 't', dtype: 'I8', start: 0, step: 1, values: '' }] }), /sketch\.tensors\[0\]\.dtype/);
  assert.match(bad({ tensors: [{ name: 't', dtype: 'BF16', start: 0, step: 1, values: 'AAA' }] }), /sketch\.tensors\[0\]\.values/);
  assert.match(bad({ tensors: 'x' }), /sketch\.tensors/);
});
