/** Model directories as versions: sharded checkpoints round trip byte-exact, delta-coded across shards; hostile indexes are refused. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { add, At1Error, getVersion, initRegistry, verifyRegistry, type Registry } from '../src/index.js';
import { serializeSafetensors } from '../src/format/safetensors.js';
import { findTensor, readTensorBytes } from '../src/registry/tensor-access.js';
import { at1, EMBEDDED, readTensors, sha256File, tempDir, treeDigest } from './helpers.js';

/** Split a safetensors file into `n` shards (tensors dealt round-robin, rotated by `shift`) plus an index and side files. */
function shardedDir(dir: string, source: string, n: number, shift = 0, index?: (wm: Record<string, string>) => unknown): void {
  mkdirSync(dir, { recursive: true });
  const tensors = readTensors(source).sort((a, b) => (a.name < b.name ? -1 : 1));
  const weightMap: Record<string, string> = {};
  for (let s = 0; s < n; s++) {
    const file = `model-${String(s + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`;
    const mine = tensors.filter((_, i) => (i + shift) % n === s);
    for (const t of mine) weightMap[t.name] = file;
    writeFileSync(join(dir, file), serializeSafetensors(mine, { format: 'pt' }));
  }
  const total = tensors.reduce((a, t) => a + t.data.length, 0);
  writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify(index ? index(weightMap) : { metadata: { total_size: total }, weight_map: weightMap }, null, 2));
  for (const f of ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json']) copyFileSync(join(EMBEDDED, f), join(dir, f));
  writeFileSync(join(dir, 'README.md'), '# a fine-tune\n');
}

async function registry(t: Parameters<typeof tempDir>[0]): Promise<{ work: string; regDir: string; reg: Registry }> {
  const work = tempDir(t);
  const regDir = join(work, 'reg');
  const { registry: reg } = await initRegistry(regDir, join(EMBEDDED, 'base.safetensors'));
  return { work, regDir, reg };
}

test('a 3-shard checkpoint directory round trips byte-exact, delta-coded against the base across shards', async (t) => {
  const { work, reg } = await registry(t);
  const dir = join(work, 'checkpoint-25');
  shardedDir(dir, join(EMBEDDED, 'prose-step0025.safetensors'), 3);
  const r = await add(reg, dir);
  assert.equal(r.manifest.name, 'checkpoint-25');
  assert.equal(r.manifest.layout, 'directory');
  assert.equal(r.manifest.parent, 'base');
  assert.equal(r.manifest.files.length, 10);
  const raw = r.manifest.stats.rawBytes;
  assert.ok(r.storedBytes < 0.3 * raw, `stored ${r.storedBytes} of ${raw}: the shards are deltas against the base's tensors`);
  const out = join(work, 'restored');
  const g = await getVersion(reg, 'checkpoint-25', out);
  assert.equal(g.files!.length, 10);
  assert.equal(treeDigest(out), treeDigest(dir), 'every file byte-exact, nothing more');
  // Single tensors of a directory version are addressable like any other.
  const loc = await findTensor(reg, 'checkpoint-25', 'lm_head.weight');
  const want = readTensors(join(EMBEDDED, 'prose-step0025.safetensors')).find((x) => x.name === 'lm_head.weight')!.data;
  assert.deepEqual(Buffer.from(await readTensorBytes(reg, loc)), Buffer.from(want));
  assert.equal((await verifyRegistry(reg, undefined)).ok, true);
});

test('tensors that moved to other shards are still deltas against their relatives', async (t) => {
  const { work, reg } = await registry(t);
  const a = join(work, 'ckpt-a');
  const b = join(work, 'ckpt-b');
  shardedDir(a, join(EMBEDDED, 'prose-step0025.safetensors'), 3, 0);
  shardedDir(b, join(EMBEDDED, 'prose-step0050.safetensors'), 2, 1); // other shard count, other placement
  await add(reg, a);
  const rb = await add(reg, b);
  assert.equal(rb.manifest.parent, 'ckpt-a');
  assert.ok(rb.storedBytes < 0.3 * rb.manifest.stats.rawBytes, `stored ${rb.storedBytes}`);
  const out = join(work, 'out-b');
  await getVersion(reg, 'ckpt-b', out);
  assert.equal(treeDigest(out), treeDigest(b));
});

test('a one-file model directory (model.safetensors + config) round trips', async (t) => {
  const { work, reg } = await registry(t);
  const dir = join(work, 'lora-merged');
  mkdirSync(dir);
  copyFileSync(join(EMBEDDED, 'code-lora.safetensors'), join(dir, 'model.safetensors'));
  copyFileSync(join(EMBEDDED, 'config.json'), join(dir, 'config.json'));
  await add(reg, dir);
  const out = join(work, 'out');
  await getVersion(reg, 'lora-merged', out);
  assert.equal(sha256File(join(out, 'model.safetensors')), sha256File(join(EMBEDDED, 'code-lora.safetensors')));
  assert.deepEqual(readdirSync(out).sort(), ['config.json', 'model.safetensors']);
});

test('hostile indexes and directories are refused, naming the problem, registry untouched', async (t) => {
  const { work, regDir, reg } = await registry(t);
  const before = treeDigest(regDir);
  const src = join(EMBEDDED, 'prose-step0025.safetensors');
  const cases: [string, (wm: Record<string, string>) => unknown, RegExp][] = [
    ['dotdot', (wm) => ({ weight_map: { ...wm, 'lm_head.weight': '../model-00001-of-00003.safetensors' } }), /'\.\.' segment/],
    ['absolute', (wm) => ({ weight_map: { ...wm, 'lm_head.weight': '/etc/model.safetensors' } }), /absolute path/],
    ['scheme', (wm) => ({ weight_map: { ...wm, 'lm_head.weight': 's3://bucket/model.safetensors' } }), /scheme/],
    ['missing-from-shard', (wm) => ({ weight_map: { ...wm, 'model.norm.weight': 'model-00001-of-00003.safetensors', ...(wm['model.norm.weight'] === 'model-00001-of-00003.safetensors' ? { 'model.norm.weight': 'model-00002-of-00003.safetensors' } : {}) } }), /missing from its shard/],
    ['not-in-index', (wm) => ({ weight_map: Object.fromEntries(Object.entries(wm).filter(([k]) => k !== 'lm_head.weight')) }), /not in the index/],
  ];
  for (const [name, index, why] of cases) {
    const dir = join(work, name);
    shardedDir(dir, src, 3, 0, index);
    await assert.rejects(add(reg, dir), (e: unknown) => e instanceof At1Error && why.test(e.message), name);
  }
  // A tensor listed twice: a duplicate key in weight_map.
  const dup = join(work, 'dup');
  shardedDir(dup, src, 3);
  const text = readFileSync(join(dup, 'model.safetensors.index.json'), 'utf8').replace('"weight_map": {', '"weight_map": {\n    "lm_head.weight": "model-00001-of-00003.safetensors",');
  writeFileSync(join(dup, 'model.safetensors.index.json'), text);
  await assert.rejects(add(reg, dup), /"lm_head\.weight" is listed twice/);
  // A symbolic link is never followed.
  const linked = join(work, 'linked');
  shardedDir(linked, src, 3);
  symlinkSync('/etc/hostname', join(linked, 'notes.txt'));
  await assert.rejects(add(reg, linked), /symbolic link/);
  // No safetensors at all.
  const empty = join(work, 'not-a-model');
  mkdirSync(empty);
  writeFileSync(join(empty, 'config.json'), '{}');
  await assert.rejects(add(reg, empty), /no \.safetensors file/);
  assert.equal(treeDigest(regDir), before);
});

test('CLI: get of a directory version refuses a non-empty --out and leaves it alone', async (t) => {
  const { work, regDir, reg } = await registry(t);
  const dir = join(work, 'ck');
  shardedDir(dir, join(EMBEDDED, 'code-lastlayer.safetensors'), 2);
  await add(reg, dir);
  const out = join(work, 'busy');
  mkdirSync(out);
  writeFileSync(join(out, 'mine.txt'), 'keep');
  const r = at1('registry', 'get', regDir, 'ck', '--out', out);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /not an empty directory/);
  assert.deepEqual(readdirSync(out), ['mine.txt']);
  const ok = at1('registry', 'get', regDir, 'ck', '--out', join(work, 'fresh'));
  assert.equal(ok.status, 0, ok.stderr);
  assert.equal(treeDigest(join(work, 'fresh')), treeDigest(dir));
  assert.equal(existsSync(join(work, 'fresh.at1-tmp')), false);
});
