import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { add, getVersion, initRegistry, verifyRegistry, IntegrityError, type Registry } from '../src/index.js';
import { objectKey } from '../src/store/object-store.js';
import { at1, EMBEDDED, tempDir } from './helpers.js';

const TENSOR = 'model.layers.0.mlp.up_proj.weight';

async function registryWithFineTune(t: Parameters<typeof tempDir>[0]): Promise<{ work: string; regDir: string; registry: Registry }> {
  const work = tempDir(t);
  const regDir = join(work, 'reg');
  const { registry } = await initRegistry(regDir, join(EMBEDDED, 'base.safetensors'));
  await add(registry, join(EMBEDDED, 'prose-step0025.safetensors'));
  return { work, regDir, registry };
}

/** Flip one byte in the middle of the object holding `tensor`'s first chunk in `version`. */
async function flipByteOf(registry: Registry, regDir: string, version: string, tensor: string): Promise<string> {
  const m = await registry.manifest(version);
  const f = m.files[0]!;
  assert.equal(f.kind, 'safetensors');
  const t = f.kind === 'safetensors' ? f.tensors.find((x) => x.name === tensor)! : undefined;
  const digest = t!.chunks[0]!;
  const path = join(regDir, ...objectKey(digest).split('/'));
  const bytes = readFileSync(path);
  bytes[Math.floor(bytes.length * 0.6)]! ^= 0x10;
  writeFileSync(path, bytes);
  return digest;
}

test('one flipped byte in an object: verify fails naming the version and the tensor', async (t) => {
  const { regDir, registry } = await registryWithFineTune(t);
  await flipByteOf(registry, regDir, 'prose-step0025', TENSOR);
  const report = await verifyRegistry(registry, 'prose-step0025');
  assert.equal(report.ok, false);
  const failures = report.versions[0]!.failures;
  assert.equal(failures.length, 1, JSON.stringify(failures));
  assert.equal(failures[0]!.tensor, TENSOR);
  assert.equal(failures[0]!.version, 'prose-step0025');
  // The other version does not share that object and stays intact.
  assert.equal((await verifyRegistry(registry, 'base')).ok, true);
});

test('a damaged base object fails every version whose tensor depends on it, each named', async (t) => {
  const { regDir, registry } = await registryWithFineTune(t);
  await flipByteOf(registry, regDir, 'base', TENSOR);
  const report = await verifyRegistry(registry, undefined);
  assert.equal(report.ok, false);
  for (const v of report.versions) {
    assert.deepEqual(v.failures.map((f) => f.tensor), [TENSOR], `${v.version}: ${JSON.stringify(v.failures)}`);
  }
});

test('get refuses a damaged version and leaves no output file', async (t) => {
  const { work, regDir, registry } = await registryWithFineTune(t);
  await flipByteOf(registry, regDir, 'prose-step0025', TENSOR);
  const out = join(work, 'out.safetensors');
  await assert.rejects(getVersion(registry, 'prose-step0025', out), (e: unknown) => {
    assert.ok(e instanceof IntegrityError);
    assert.equal(e.where.tensor, TENSOR);
    assert.match(e.message, /prose-step0025/);
    return true;
  });
  assert.equal(existsSync(out), false);
  assert.deepEqual(readdirSync(work), ['reg'], 'no temp file left behind');
});

test('CLI: verify prints FAIL with the tensor and exits 1; get exits non-zero with no output', async (t) => {
  const { work, regDir, registry } = await registryWithFineTune(t);
  const ok = at1('registry', 'verify', regDir);
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /^integrity: PASS \(SHA-256\)$/m);
  await flipByteOf(registry, regDir, 'prose-step0025', TENSOR);
  const bad = at1('registry', 'verify', regDir, 'prose-step0025');
  assert.equal(bad.status, 1);
  assert.match(bad.stdout, /^integrity: FAIL$/m);
  assert.ok(bad.stdout.includes(`tensor "${TENSOR}"`), bad.stdout);
  const json = at1('registry', 'verify', regDir, '--json');
  assert.equal(json.status, 1);
  const parsed = JSON.parse(json.stdout) as { integrity: string; versions: { version: string; failures: { tensor?: string }[] }[] };
  assert.equal(parsed.integrity, 'FAIL');
  assert.equal(parsed.versions.find((v) => v.version === 'prose-step0025')!.failures[0]!.tensor, TENSOR);
  const out = join(work, 'x.safetensors');
  const get = at1('registry', 'get', regDir, 'prose-step0025', '--out', out);
  assert.notEqual(get.status, 0);
  assert.ok(get.stderr.includes(TENSOR), get.stderr);
  assert.equal(existsSync(out), false);
});

test('a truncated or deleted object is reported, not crashed on', async (t) => {
  const { regDir, registry } = await registryWithFineTune(t);
  const m = await registry.manifest('prose-step0025');
  const f = m.files[0]!;
  const tensors = f.kind === 'safetensors' ? f.tensors : [];
  const [a, b] = [tensors.find((x) => x.name === TENSOR)!, tensors.find((x) => x.name === 'lm_head.weight')!];
  const pa = join(regDir, ...objectKey(a.chunks[0]!).split('/'));
  writeFileSync(pa, readFileSync(pa).subarray(0, 30));
  const { rmSync } = await import('node:fs');
  rmSync(join(regDir, ...objectKey(b.chunks[0]!).split('/')));
  const report = await verifyRegistry(registry, 'prose-step0025');
  assert.deepEqual(report.versions[0]!.failures.map((x) => x.tensor).sort(), ['lm_head.weight', TENSOR].sort());
});
