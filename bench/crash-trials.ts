/**
 * Crash trials: run a registry command (add, rm --rebase, gc) in a child
 * process, SIGKILL it at a random moment, and check what the format
 * promises (docs/FORMAT.md §7): every version complete before the kill still
 * verifies; the interrupted version is either wholly there and verifiable,
 * or absent; fsck finds no damage; and the same command, run again, succeeds
 * (which also exercises stale-lock recovery: the killed writer's lock is
 * left behind).
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { add, initRegistry, Registry, verifyRegistry } from '../src/index.js';
import { fsckRegistry } from '../src/registry/fsck.js';
import { loadFamily, type FamilyVersion } from '../src/cli/family.js';

const BIN = fileURLToPath(new URL('../bin/at1.js', import.meta.url));

export interface TrialOutcome {
  op: 'add' | 'rm' | 'gc';
  killedAfterMs: number;
  /** The command had finished before the kill arrived. */
  finished: boolean;
  /** For add/rm: whether the version was present after the kill. */
  present?: boolean;
}

export interface TrialSummary {
  trials: number;
  byOp: Record<string, { trials: number; finishedBeforeKill: number; interrupted: number; presentAfter: number; absentAfter: number }>;
  violations: string[];
}

function runKilled(args: string[], killAfterMs: number): Promise<{ finished: boolean; code: number | null }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: 'ignore', env: { ...process.env, AT1_LOCK_WAIT_MS: '20000', AT1_WORKERS: '0' } });
    let finished = false;
    const timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      finished = signal === null;
      resolve({ finished, code });
    });
  });
}

function runToEnd(args: string[]): Promise<number | null> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], { stdio: 'ignore', env: { ...process.env, AT1_LOCK_WAIT_MS: '20000' } });
    child.on('exit', (code) => resolve(code));
  });
}

/** A deterministic PRNG so a failing trial can be replayed with the same seed. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

export async function crashTrials(opts: { familyDir: string; workDir: string; trials: number; maxKillMs: number; seed: number; log?: (s: string) => void }): Promise<TrialSummary> {
  const family = await loadFamily(opts.familyDir);
  const [base, ...rest] = family.versions as [FamilyVersion, ...FamilyVersion[]];
  const regDir = join(opts.workDir, 'reg');
  const { registry } = await initRegistry(regDir, join(opts.familyDir, base.file), { name: base.name });
  await add(registry, join(opts.familyDir, rest[0]!.file), { name: rest[0]!.name });
  const random = rng(opts.seed);
  const summary: TrialSummary = { trials: 0, byOp: {}, violations: [] };
  const tally = (o: TrialOutcome): void => {
    const b = (summary.byOp[o.op] ??= { trials: 0, finishedBeforeKill: 0, interrupted: 0, presentAfter: 0, absentAfter: 0 });
    b.trials++;
    if (o.finished) b.finishedBeforeKill++;
    else b.interrupted++;
    if (o.present === true) b.presentAfter++;
    if (o.present === false) b.absentAfter++;
  };
  for (let i = 0; i < opts.trials; i++) {
    const reg = await Registry.open(regDir);
    const present = await reg.versionNames();
    const absent = rest.filter((v) => !present.includes(v.name));
    const roll = random();
    const killAfterMs = Math.floor(random() * opts.maxKillMs);
    let op: TrialOutcome['op'];
    let target: string | undefined;
    let args: string[];
    if ((roll < 0.7 && absent.length > 0) || present.length <= 2) {
      const v = absent[Math.floor(random() * absent.length)]!;
      op = 'add';
      target = v.name;
      args = ['registry', 'add', regDir, join(opts.familyDir, v.file), '--name', v.name];
    } else if (roll < 0.85) {
      target = present.filter((n) => n !== base.name)[Math.floor(random() * (present.length - 1))]!;
      op = 'rm';
      args = ['registry', 'rm', regDir, target, '--rebase'];
    } else {
      op = 'gc';
      args = ['registry', 'gc', regDir];
    }
    const before = new Set(present);
    const { finished } = await runKilled(args, killAfterMs);
    const outcome: TrialOutcome = { op, killedAfterMs: killAfterMs, finished };
    // The promises of the format, checked after every kill.
    const after = await Registry.open(regDir);
    const names = await after.versionNames();
    const fsck = await fsckRegistry(regDir);
    if (fsck.status !== 'clean') summary.violations.push(`trial ${i} (${op} ${target ?? ''}, killed at ${killAfterMs} ms): fsck ${fsck.status}: ${fsck.problems.map((p) => p.message).join('; ')}`);
    const report = await verifyRegistry(after, undefined);
    if (!report.ok) summary.violations.push(`trial ${i} (${op} ${target ?? ''}): verify failed: ${JSON.stringify(report.versions.filter((v) => !v.ok))}`);
    for (const n of before) if (!names.includes(n) && !(op === 'rm' && n === target)) summary.violations.push(`trial ${i}: version ${n} disappeared after an interrupted ${op}`);
    if (target !== undefined) outcome.present = names.includes(target);
    // Finish the interrupted work: the same command must now succeed.
    if (op === 'add' && !outcome.present) {
      const code = await runToEnd(args);
      if (code !== 0) summary.violations.push(`trial ${i}: re-running the interrupted add of ${target} exited ${code}`);
    } else if (op === 'rm' && outcome.present) {
      const code = await runToEnd(args);
      if (code !== 0) summary.violations.push(`trial ${i}: re-running the interrupted rm of ${target} exited ${code}`);
    } else if (op === 'gc' && !finished) {
      const code = await runToEnd(args);
      if (code !== 0) summary.violations.push(`trial ${i}: re-running the interrupted gc exited ${code}`);
    }
    tally(outcome);
    summary.trials++;
    if ((i + 1) % 20 === 0) opts.log?.(`  ${i + 1}/${opts.trials} trials, ${summary.violations.length} violations`);
  }
  const final = await verifyRegistry(await Registry.open(regDir), undefined);
  if (!final.ok) summary.violations.push('final verify failed');
  return summary;
}

export interface RaceSummary {
  rounds: number;
  processes: Record<string, { runs: number; succeeded: number; refused: number }>;
  violations: string[];
}

interface RaceJob {
  kind: 'add' | 'gc' | 'gc-other-pidns' | 'get' | 'rm';
  target?: string;
  args: string[];
  out?: string;
  prefix?: string[];
}

function runJob(job: RaceJob): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const argv = [...(job.prefix ?? []), process.execPath, BIN, ...job.args];
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, AT1_LOCK_WAIT_MS: '120000', AT1_WORKERS: '0' } });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('exit', (code) => resolve({ code, stderr }));
  });
}

/**
 * Race trials: in each round, adds, gc (with no grace period, and, where
 * `unshare` works, from another PID namespace), rm --rebase and restores run
 * at once as separate processes. Whatever a process reports as done must
 * hold afterwards: an add that exited 0 left a version that verifies, a get
 * that exited 0 wrote the exact bytes, and no command ever lost a version
 * or produced an integrity failure; fsck stays clean.
 */
export async function raceTrials(opts: { familyDir: string; workDir: string; rounds: number; seed: number; pidNamespaces: boolean; log?: (s: string) => void }): Promise<RaceSummary> {
  const family = await loadFamily(opts.familyDir);
  const [base, ...rest] = family.versions as [FamilyVersion, ...FamilyVersion[]];
  const regDir = join(opts.workDir, 'race-reg');
  await initRegistry(regDir, join(opts.familyDir, base.file), { name: base.name });
  const random = rng(opts.seed);
  const pick = <T>(xs: T[]): T => xs[Math.floor(random() * xs.length)]!;
  const summary: RaceSummary = { rounds: 0, processes: {}, violations: [] };
  const sha = new Map(family.versions.map((v) => [v.name, v.sha256]));
  for (let i = 0; i < opts.rounds; i++) {
    const reg = await Registry.open(regDir);
    const present = await reg.versionNames();
    const absent = rest.filter((v) => !present.includes(v.name));
    const jobs: RaceJob[] = [];
    for (const v of [...absent].sort(() => random() - 0.5).slice(0, 2)) jobs.push({ kind: 'add', target: v.name, args: ['registry', 'add', regDir, join(opts.familyDir, v.file), '--name', v.name] });
    jobs.push({ kind: 'gc', args: ['registry', 'gc', regDir, '--grace', '0'] });
    if (opts.pidNamespaces) jobs.push({ kind: 'gc-other-pidns', args: ['registry', 'gc', regDir, '--grace', '0'], prefix: ['unshare', '--pid', '--fork', '--mount-proc'] });
    for (let r = 0; r < 2; r++) {
      const v = pick(present);
      jobs.push({ kind: 'get', target: v, args: ['registry', 'get', regDir, v, '--out', join(opts.workDir, `out-${i}-${r}.safetensors`)], out: join(opts.workDir, `out-${i}-${r}.safetensors`) });
    }
    const removable = present.filter((n) => n !== base.name);
    if (removable.length >= 3 && random() < 0.4) jobs.push({ kind: 'rm', target: pick(removable), args: ['registry', 'rm', regDir, '', '--rebase'] });
    for (const j of jobs) if (j.kind === 'rm') j.args[3] = j.target!;
    const results = await Promise.all(jobs.map(runJob));
    const after = await Registry.open(regDir);
    const names = await after.versionNames();
    for (const [k, j] of jobs.entries()) {
      const { code, stderr } = results[k]!;
      const p = (summary.processes[j.kind] ??= { runs: 0, succeeded: 0, refused: 0 });
      p.runs++;
      if (code === 0) p.succeeded++;
      else p.refused++;
      const what = `round ${i}: ${j.kind} ${j.target ?? ''}`;
      if (/E_INTEGRITY|integrity: FAIL|does not match|is missing from/.test(stderr)) summary.violations.push(`${what}: ${stderr.trim().split('\n')[0]}`);
      if (code === 0 && j.kind === 'add' && !names.includes(j.target!)) summary.violations.push(`${what}: exited 0 but the version is absent`);
      if (code === 0 && j.kind === 'get') {
        const { createHash } = await import('node:crypto');
        const { readFile } = await import('node:fs/promises');
        const got = createHash('sha256').update(await readFile(j.out!)).digest('hex');
        if (got !== sha.get(j.target!)) summary.violations.push(`${what}: exited 0 but wrote bytes with SHA-256 ${got}`);
      }
      if (code !== 0 && j.kind !== 'get' && j.kind !== 'rm') summary.violations.push(`${what}: exited ${code}: ${stderr.trim().split('\n')[0]}`);
    }
    for (const n of present) if (!names.includes(n) && !jobs.some((j) => j.kind === 'rm' && j.target === n)) summary.violations.push(`round ${i}: version ${n} disappeared`);
    const fsck = await fsckRegistry(regDir);
    if (fsck.status !== 'clean') summary.violations.push(`round ${i}: fsck ${fsck.status}: ${fsck.problems.map((p) => p.message).join('; ')}`);
    const report = await verifyRegistry(after, undefined);
    if (!report.ok) summary.violations.push(`round ${i}: verify failed: ${JSON.stringify(report.versions.filter((v) => !v.ok))}`);
    summary.rounds++;
    if ((i + 1) % 10 === 0) opts.log?.(`  ${i + 1}/${opts.rounds} race rounds, ${summary.violations.length} violations`);
  }
  return summary;
}
