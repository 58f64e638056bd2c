/**
 * `npm run torture [-- --trials N] [--family DIR] [--seed S] [--max-kill-ms MS]`
 *
 * Kills registry commands with SIGKILL at random moments and checks the
 * registry after each (bench/crash-trials.ts). Prints the outcomes per
 * operation; exits non-zero on any violation.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { EMBEDDED_FAMILY_DIR } from '../src/cli/family.js';
import { table } from '../src/cli/output.js';
import { spawnSync } from 'node:child_process';
import { crashTrials, raceTrials } from './crash-trials.js';

const { values } = parseArgs({
  options: {
    trials: { type: 'string', default: '200' },
    family: { type: 'string', default: EMBEDDED_FAMILY_DIR },
    seed: { type: 'string', default: '20261130' },
    'max-kill-ms': { type: 'string', default: '3000' },
    'race-rounds': { type: 'string', default: '200' },
  },
});
const canUnshare = spawnSync('unshare', ['--pid', '--fork', '--mount-proc', 'true']).status === 0;
const work = await mkdtemp(join(tmpdir(), 'at1-torture-'));
try {
  console.log(`crash trials: ${values.trials} (seed ${values.seed}), family ${values.family}, kill after 0..${values['max-kill-ms']} ms`);
  const s = await crashTrials({ familyDir: values.family, workDir: work, trials: Number(values.trials), maxKillMs: Number(values['max-kill-ms']), seed: Number(values.seed), log: (m) => console.error(m) });
  const rows = [['operation', 'trials', 'killed mid-run', 'finished before the kill', 'version present after', 'version absent after']];
  for (const [op, b] of Object.entries(s.byOp)) rows.push([op, String(b.trials), String(b.interrupted), String(b.finishedBeforeKill), op === 'gc' ? '-' : String(b.presentAfter), op === 'gc' ? '-' : String(b.absentAfter)]);
  console.log(table(rows, [false, true, true, true, true, true]));
  console.log(`violations: ${s.violations.length}`);
  for (const v of s.violations) console.log(`  ${v}`);

  console.log(`\nrace trials: ${values['race-rounds']} rounds of concurrent add, gc --grace 0${canUnshare ? ' (also from another PID namespace)' : ''}, rm --rebase and get`);
  const r = await raceTrials({ familyDir: values.family, workDir: work, rounds: Number(values['race-rounds']), seed: Number(values.seed), pidNamespaces: canUnshare, log: (m) => console.error(m) });
  const rrows = [['process', 'runs', 'exited 0', 'refused (not found, locked)']];
  for (const [k, b] of Object.entries(r.processes)) rrows.push([k, String(b.runs), String(b.succeeded), String(b.refused)]);
  console.log(table(rrows, [false, true, true, true]));
  console.log(`rounds: ${r.rounds}, violations: ${r.violations.length}`);
  for (const v of r.violations) console.log(`  ${v}`);
  process.exitCode = s.violations.length === 0 && r.violations.length === 0 ? 0 : 1;
} finally {
  await rm(work, { recursive: true, force: true });
}
