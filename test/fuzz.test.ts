/**
 * Hostile-input fuzzing on every `npm test`: a few hundred cases per parser
 * target and a few dozen per end-to-end target (each of those restores and
 * verifies a whole registry, ~0.3 s a case), from a fixed seed, so the suite
 * stays under ~20 s and is reproducible. `npm run fuzz` runs the same targets
 * (test/fuzz-targets.ts) 10,000 cases each, with a hang watchdog.
 *
 * A failure prints its input, its shrunk minimum and the command that
 * replays it. Bugs already reported whose fix is outside the files this suite
 * owns are listed in KNOWN: a case hitting one is reported as a todo, not a
 * failure, until the fix lands (then the entry should go).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { allTargets, runTarget, type FailureRecord } from './fuzz-targets.js';

const SEED = 20261130;

const RUNS: Record<string, number> = {
  safetensors: 300,
  'object-header': 300,
  'codec-payloads': 300,
  'codec-kernels': 300,
  'objects-e2e': 12,
  'manifest-parse': 150,
  'manifest-e2e': 40,
  'shard-index': 200,
};

// Bugs the fuzzer found are fixed where they were (delta-core.ts rebuild16 bounds, manifest.ts layout and
// path checks); a known-but-unfixed bug would be listed here and reported as a todo.
const KNOWN: { targets: string[]; match: RegExp; what: string }[] = [];

function report(target: string, f: FailureRecord): string {
  const lines = [`case ${f.index}: ${f.message}`, `input: ${f.input.slice(0, 1500)}`, `replay: npm run fuzz -- --target ${target} --seed ${SEED} --path ${f.path}`];
  if (f.minimised) {
    lines.push(`minimised (${f.minimised.shrinks} shrinks): ${f.minimised.message}`, `minimised input: ${f.minimised.input.slice(0, 1500)}`);
    lines.push(`replay the minimum: npm run fuzz -- --target ${target} --seed ${SEED} --path ${f.minimised.path}`);
  }
  return lines.join('\n');
}

for (const target of allTargets()) {
  const runs = RUNS[target.name] ?? 100;
  test(`fuzz ${target.name} (${runs} cases, seed ${SEED}): ${target.what}`, async (t) => {
    await target.setup();
    try {
      const s = await runTarget(target, { runs, seed: SEED, shrinkBudget: 25 });
      t.diagnostic(`${s.cases} cases: ${s.ok} correct outputs, clean errors ${JSON.stringify(s.errors)}, ${s.failures} failures, ${(s.ms / 1000).toFixed(1)} s`);
      assert.equal(s.cases, runs);
      const unknown: FailureRecord[] = [];
      for (const f of s.failureRecords) {
        const k = KNOWN.find((x) => x.targets.includes(target.name) && (x.match.test(f.message) || x.match.test(f.minimised?.message ?? '')));
        if (k) await t.test(`known bug: ${k.what}`, { todo: 'reported; the fix is outside this suite' }, () => assert.fail(report(target.name, f)));
        else unknown.push(f);
      }
      assert.equal(unknown.length, 0, unknown.map((f) => report(target.name, f)).join('\n\n'));
      // every case ended in one of the allowed ways, and the mutations reached past the first checks
      assert.ok(Object.keys(s.errors).length > 0, 'mutated inputs produce clean errors');
    } finally {
      await target.teardown();
    }
  });
}
