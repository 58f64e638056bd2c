/** Bulk add: `at1 registry add DIR FILE1 FILE2 …` adds each file as its own version, in order, and stops cleanly at a bad file. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { naturalCompare } from '../src/index.js';
import { at1, EMBEDDED, sha256File, tempDir } from './helpers.js';

test('natural order: digit runs compare as numbers, the same everywhere', () => {
  const names = ['checkpoint-1000', 'checkpoint-500', 'checkpoint-50', 'checkpoint-0500a', 'checkpoint-2', 'ckpt', 'checkpoint-500-b'];
  assert.deepEqual([...names].sort(naturalCompare), ['checkpoint-2', 'checkpoint-50', 'checkpoint-500', 'checkpoint-500-b', 'checkpoint-0500a', 'checkpoint-1000', 'ckpt']);
});

test('bulk add: versions in natural order, a bad file in the middle stops the run and leaves the ones before it', async (t) => {
  const work = tempDir(t);
  const reg = join(work, 'reg');
  const src = (n: string): string => join(EMBEDDED, `${n}.safetensors`);
  const f = (n: number): string => join(work, `checkpoint-${n}.safetensors`);
  copyFileSync(src('prose-step0025'), f(5));
  copyFileSync(src('prose-step0050'), f(10));
  writeFileSync(f(20), readFileSync(src('code-lora')).subarray(0, 5000)); // truncated: its header promises more bytes than there are
  copyFileSync(src('code-lora'), f(40));
  assert.equal(at1('registry', 'init', src('base'), reg).status, 0);

  // Given out of order (as a shell glob sorts them: 10, 20, 40, 5); added 5, 10, then 20 fails; 40 is not attempted.
  const r = at1('registry', 'add', reg, f(10), f(20), f(40), f(5));
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /version "checkpoint-20" \(.*checkpoint-20\.safetensors, 3 of 4\)/);
  assert.match(r.stderr, /the 2 versions added before it \(checkpoint-5, checkpoint-10\) stay; 1 after it not attempted/);
  const added = r.stdout.trim().split('\n');
  assert.equal(added.length, 2);
  assert.match(added[0]!, /^\[1\/4\] added checkpoint-5 \(parent base\)/);
  assert.match(added[1]!, /^\[2\/4\] added checkpoint-10 \(parent checkpoint-5\)/);

  const list = JSON.parse(at1('registry', 'list', reg, '--json').stdout) as { versions: { name: string }[] };
  assert.deepEqual(list.versions.map((v) => v.name), ['base', 'checkpoint-5', 'checkpoint-10']);
  assert.equal(at1('registry', 'verify', reg).status, 0);
  assert.equal(at1('registry', 'fsck', reg).status, 0);

  // Fixed and run again over the same files: the existing versions are skipped, the rest added; every version restores byte-exact.
  copyFileSync(src('code-lastlayer'), f(20));
  const again = at1('registry', 'add', reg, f(10), f(20), f(40), f(5), '--skip-existing', '--json');
  assert.equal(again.status, 0, again.stderr);
  const j = JSON.parse(again.stdout) as { versions: { name: string; parent: string }[]; skipped: { name: string }[] };
  assert.deepEqual(j.versions.map((v) => v.name), ['checkpoint-20', 'checkpoint-40']);
  assert.deepEqual(j.skipped.map((v) => v.name), ['checkpoint-5', 'checkpoint-10']);
  for (const n of [5, 10, 20, 40]) {
    const out = join(work, `out-${n}`);
    assert.equal(at1('registry', 'get', reg, `checkpoint-${n}`, '--out', out).status, 0);
    assert.equal(sha256File(out), sha256File(f(n)));
  }
});

test('bulk add: --order mtime, and refusals before anything is added', async (t) => {
  const work = tempDir(t);
  const reg = join(work, 'reg');
  const a = join(work, 'b-first.safetensors');
  const b = join(work, 'a-second.safetensors');
  copyFileSync(join(EMBEDDED, 'prose-step0025.safetensors'), a);
  copyFileSync(join(EMBEDDED, 'prose-step0050.safetensors'), b);
  utimesSync(a, new Date('2026-01-01T00:00:00Z'), new Date('2026-01-01T00:00:00Z'));
  utimesSync(b, new Date('2026-01-02T00:00:00Z'), new Date('2026-01-02T00:00:00Z'));
  assert.equal(at1('registry', 'init', join(EMBEDDED, 'base.safetensors'), reg).status, 0);

  // Two files with one stem, and --name with several files: refused, nothing added.
  const dup = join(work, 'sub');
  const same = at1('registry', 'add', reg, a, join(EMBEDDED, 'prose-step0025.safetensors'), join(dup, 'b-first.safetensors'));
  assert.equal(same.status, 2);
  assert.match(same.stderr, /would both be version "b-first"; nothing was added/);
  const named = at1('registry', 'add', reg, a, b, '--name', 'x');
  assert.equal(named.status, 2);
  assert.match(named.stderr, /--name and --parent apply to one FILE/);
  assert.equal((JSON.parse(at1('registry', 'list', reg, '--json').stdout) as { versions: unknown[] }).versions.length, 1);

  const r = at1('registry', 'add', reg, b, a, '--order', 'mtime', '--json');
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout) as { versions: { name: string; parent: string }[] };
  assert.deepEqual(j.versions.map((v) => [v.name, v.parent]), [['b-first', 'base'], ['a-second', 'b-first']]);
});
