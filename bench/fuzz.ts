/**
 * `npm run fuzz [-- --runs N] [--seed S] [--target NAME[,NAME…]] [--path P]`
 *
 * Runs every hostile-input target of test/fuzz-targets.ts (default 10,000
 * cases each, fixed seed, printed) and prints a table: target, cases, clean
 * errors by code, correct outputs, failures. Exits 1 on any failure.
 *
 * Each target runs in a worker thread. Before each case the worker writes the
 * case's index, start time and description to shared memory, and streams
 * every result to the main thread; the main thread is a watchdog: a case
 * still running after HANG_MS is a hang (a synchronous loop cannot be
 * interrupted from inside), so the worker is terminated, the case recorded
 * as a failure with its description, and a new worker resumes after it
 * (fast-check regenerates the same cases from the seed and skips the ones
 * already run). Cases that finish are held to CASE_TIME_LIMIT_MS (2 s) and a
 * memory budget by the runner itself.
 *
 * Replay one case: `npm run fuzz -- --target NAME --seed S --path P` (the
 * path is printed with each failure; a shrunk path replays the minimum).
 */
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { allTargets, CASE_TIME_LIMIT_MS, runTarget, type CaseResult, type FailureRecord, type RunStats } from '../test/fuzz-targets.js';

const DEFAULT_RUNS = 10_000;
const DEFAULT_SEED = 20261130;
/** A case running this long is a hang: the worker is terminated. */
const HANG_MS = 15_000;
const DESC_BYTES = 64 << 10;
/** Print the case count every this many cases (an end-to-end target runs for tens of minutes). */
const PROGRESS_EVERY = 1000;
/** Rows so far, for the partial table printed if the run is interrupted. */
const rowsSoFar: Row[] = [];
let current: Row | undefined;

interface Job {
  target: string;
  runs: number;
  seed: number;
  path?: string;
  skipBelow?: number;
  shared: SharedArrayBuffer;
}

type FromWorker =
  | { type: 'ready'; setupMs: number }
  | { type: 'result'; index: number; outcome?: CaseResult['outcome']; failure?: string; ms: number; growth: number }
  | { type: 'done'; stats: RunStats }
  | { type: 'error'; message: string };

// ------------------------------------------------------------------ worker side

/** Shared memory layout: Int32 [0] = running flag, [1] = case index, [2] = description length; Float64 [2] = start time (ms since epoch); bytes from 24. */
async function workerMain(job: Job): Promise<void> {
  const port = parentPort!;
  const i32 = new Int32Array(job.shared, 0, 4);
  const f64 = new Float64Array(job.shared, 16, 1);
  const desc = new Uint8Array(job.shared, 24, DESC_BYTES);
  const enc = new TextEncoder();
  const target = allTargets().find((t) => t.name === job.target);
  if (!target) {
    port.postMessage({ type: 'error', message: `no target ${job.target}` });
    return;
  }
  try {
    const t0 = performance.now();
    await target.setup();
    port.postMessage({ type: 'ready', setupMs: performance.now() - t0 } satisfies FromWorker);
    const stats = await runTarget(target, {
      runs: job.runs,
      seed: job.seed,
      path: job.path,
      skipBelow: job.skipBelow,
      onCase(index, describe) {
        const { written } = enc.encodeInto(describe().slice(0, DESC_BYTES / 4), desc);
        i32[1] = index;
        i32[2] = written;
        f64[0] = Date.now();
        Atomics.store(i32, 0, 1);
      },
      onCaseEnd() {
        Atomics.store(i32, 0, 0);
      },
      onResult(index, r) {
        port.postMessage({ type: 'result', index, outcome: r.outcome, failure: r.failure, ms: r.ms, growth: r.growth } satisfies FromWorker);
      },
    });
    // teardown before 'done': the main thread terminates the worker on 'done', which would cut a cleanup short
    await target.teardown().catch(() => undefined);
    port.postMessage({ type: 'done', stats } satisfies FromWorker);
  } catch (e) {
    await target.teardown().catch(() => undefined);
    port.postMessage({ type: 'error', message: e instanceof Error ? `${e.message}\n${e.stack ?? ''}` : String(e) } satisfies FromWorker);
  }
}

// ------------------------------------------------------------------ main side

interface Row {
  target: string;
  what: string;
  cases: number;
  ok: number;
  okNotes: Record<string, number>;
  errors: Record<string, number>;
  failures: number;
  records: FailureRecord[];
  ms: number;
  setupMs: number;
  slowestMs: number;
  maxGrowth: number;
}

function workerSource(): string {
  const tsx = import.meta.resolve('tsx/esm/api');
  const self = import.meta.url;
  return `const { workerData } = require('node:worker_threads');
import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(self)}); }).then((m) => m.startWorker(workerData));`;
}

export function startWorker(job: Job): Promise<void> {
  return workerMain(job);
}

/** Run one target in workers, restarting after a hang; returns the aggregated row. */
async function runInWorkers(name: string, what: string, runs: number, seed: number, path: string | undefined): Promise<Row> {
  const row: Row = { target: name, what, cases: 0, ok: 0, okNotes: {}, errors: {}, failures: 0, records: [], ms: 0, setupMs: 0, slowestMs: 0, maxGrowth: 0 };
  current = row;
  const t0 = performance.now();
  let skipBelow = 0;
  for (;;) {
    const shared = new SharedArrayBuffer(24 + DESC_BYTES);
    const i32 = new Int32Array(shared, 0, 4);
    const f64 = new Float64Array(shared, 16, 1);
    const desc = new Uint8Array(shared, 24, DESC_BYTES);
    const job: Job = { target: name, runs, seed, path, skipBelow, shared };
    const w = new Worker(workerSource(), { eval: true, workerData: job });
    let lastIndex = skipBelow - 1;
    const result = await new Promise<{ kind: 'done'; stats: RunStats } | { kind: 'hang'; index: number; desc: string; ms: number } | { kind: 'error'; message: string }>((resolve) => {
      const timer = setInterval(() => {
        if (Atomics.load(i32, 0) !== 1) return;
        const running = Date.now() - f64[0]!;
        if (running > HANG_MS) {
          const d = new TextDecoder().decode(desc.slice(0, i32[2]!));
          clearInterval(timer);
          void w.terminate();
          resolve({ kind: 'hang', index: i32[1]!, desc: d, ms: running });
        }
      }, 250);
      w.on('message', (m: FromWorker) => {
        if (m.type === 'ready') row.setupMs += m.setupMs;
        else if (m.type === 'result') {
          lastIndex = m.index;
          row.cases++;
          if (row.cases % PROGRESS_EVERY === 0) process.stdout.write(`${row.cases} `);
          row.slowestMs = Math.max(row.slowestMs, m.ms);
          row.maxGrowth = Math.max(row.maxGrowth, m.growth);
          if (m.failure !== undefined) row.failures++;
          else if (m.outcome?.ok) {
            row.ok++;
            if (m.outcome.note) row.okNotes[m.outcome.note] = (row.okNotes[m.outcome.note] ?? 0) + 1;
          } else if (m.outcome) row.errors[m.outcome.code] = (row.errors[m.outcome.code] ?? 0) + 1;
        } else if (m.type === 'done') {
          clearInterval(timer);
          resolve({ kind: 'done', stats: m.stats });
        } else {
          clearInterval(timer);
          resolve({ kind: 'error', message: m.message });
        }
      });
      w.on('error', (e) => {
        clearInterval(timer);
        resolve({ kind: 'error', message: `worker died: ${e instanceof Error ? `${e.message}\n${e.stack ?? ''}` : String(e)}` });
      });
      w.on('exit', (code) => {
        clearInterval(timer);
        resolve({ kind: 'error', message: `worker exited with code ${code} after case ${lastIndex}` });
      });
    });
    if (result.kind === 'done') {
      row.records.push(...result.stats.failureRecords);
      await w.terminate();
      break;
    }
    if (result.kind === 'hang') {
      if (result.index < 0) {
        // while shrinking an earlier failure (already counted): note it and stop
        row.records.push({ index: result.index, signature: 'hang', message: `a shrinking replay ran ${(result.ms / 1000).toFixed(1)} s: a hang`, input: result.desc, path: '-' });
        break;
      }
      row.cases++;
      row.failures++;
      row.records.push({ index: result.index, signature: 'hang', message: `no result after ${(result.ms / 1000).toFixed(1)} s: a hang`, input: result.desc, path: String(result.index) });
      skipBelow = result.index + 1;
      if (path !== undefined || skipBelow >= runs) break;
      continue;
    }
    // the worker crashed (out of memory, a native abort): record it and resume after the last finished case + 1
    await w.terminate();
    row.cases++;
    row.failures++;
    row.records.push({ index: lastIndex + 1, signature: 'worker-crash', message: result.message, input: '(see the message)', path: String(lastIndex + 1) });
    skipBelow = lastIndex + 2;
    if (path !== undefined || skipBelow >= runs || row.records.filter((r) => r.signature === 'worker-crash').length >= 3) break;
  }
  row.ms = performance.now() - t0;
  current = undefined;
  return row;
}

function fmtCodes(m: Record<string, number>): string {
  const e = Object.entries(m).sort((a, b) => b[1] - a[1]);
  return e.length === 0 ? '-' : e.map(([k, v]) => `${k} ${v}`).join(', ');
}

function table(rows: Row[]): string {
  const head = ['target', 'cases', 'clean errors by code', 'correct outputs', 'failures', 'time', 'slowest', 'max growth'];
  const body = rows.map((r) => [
    r.target,
    String(r.cases),
    fmtCodes(r.errors),
    String(r.ok),
    String(r.failures),
    `${(r.ms / 1000).toFixed(1)} s`,
    `${r.slowestMs.toFixed(0)} ms`,
    `${(r.maxGrowth / 2 ** 20).toFixed(1)} MiB`,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]): string => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  return [line(head), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...body.map(line)].join('\n');
}

function parseArgs(argv: string[]): { runs: number; seed: number; targets: string[] | undefined; path: string | undefined } {
  let runs = DEFAULT_RUNS;
  let seed = DEFAULT_SEED;
  let targets: string[] | undefined;
  let path: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const v = argv[i + 1];
    const num = (): number => {
      const n = Number(v);
      if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${a} needs a non-negative integer, got ${v}`);
      i++;
      return n;
    };
    if (a === '--runs') runs = num();
    else if (a === '--seed') seed = num();
    else if (a === '--target') (targets = (v ?? '').split(',').filter(Boolean)), i++;
    else if (a === '--path') (path = v), i++;
    else if (a === '--help' || a === '-h') {
      console.log('npm run fuzz [-- --runs N] [--seed S] [--target NAME[,NAME…]] [--path P]');
      console.log(`targets: ${allTargets().map((t) => t.name).join(', ')}`);
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  return { runs, seed, targets, path };
}

async function main(): Promise<void> {
  const { runs, seed, targets, path } = parseArgs(process.argv.slice(2));
  const all = allTargets();
  const chosen = targets ? all.filter((t) => targets.includes(t.name)) : all;
  if (targets && chosen.length !== targets.length) throw new Error(`unknown target in ${targets.join(',')}; known: ${all.map((t) => t.name).join(', ')}`);
  console.log(`at1 fuzz: seed ${seed}, ${path !== undefined ? `replaying path ${path}` : `${runs} cases per target`}; per-case limit ${CASE_TIME_LIMIT_MS} ms, hang watchdog ${HANG_MS / 1000} s`);
  const rows = rowsSoFar;
  const interrupted = (sig: string): void => {
    console.log(`\n\ninterrupted (${sig}); results so far (seed ${seed}):\n${table(current ? [...rows, current] : rows)}`);
    process.exit(1);
  };
  process.once('SIGINT', () => interrupted('SIGINT'));
  process.once('SIGTERM', () => interrupted('SIGTERM'));
  for (const t of chosen) {
    process.stdout.write(`  ${t.name}: ${t.what} … `);
    const row = await runInWorkers(t.name, t.what, runs, seed, path);
    rows.push(row);
    console.log(`${row.cases} cases in ${(row.ms / 1000).toFixed(1)} s (setup ${(row.setupMs / 1000).toFixed(1)} s), ${row.failures} failures`);
  }
  console.log(`\n${table(rows)}\n`);
  for (const r of rows) {
    const notes = Object.entries(r.okNotes);
    if (notes.length > 0) console.log(`${r.target} correct outputs: ${notes.map(([k, v]) => `${k} ${v}`).join(', ')}`);
  }
  const failed = rows.filter((r) => r.failures > 0);
  for (const r of failed) {
    console.log(`\n${r.target}: ${r.failures} failures, ${r.records.length} distinct:`);
    for (const f of r.records) {
      console.log(`  - case ${f.index}: ${f.message}`);
      console.log(`    input: ${f.input.slice(0, 2000)}`);
      console.log(`    replay: npm run fuzz -- --target ${r.target} --seed ${seed} --path ${f.path}`);
      if (f.minimised) {
        console.log(`    minimised (${f.minimised.shrinks} shrinks): ${f.minimised.message}`);
        console.log(`    minimised input: ${f.minimised.input.slice(0, 2000)}`);
        console.log(`    replay minimum: npm run fuzz -- --target ${r.target} --seed ${seed} --path ${f.minimised.path}`);
      }
    }
  }
  console.log(failed.length === 0 ? `\nno failures (seed ${seed})` : `\nFAILURES in ${failed.map((r) => r.target).join(', ')} (seed ${seed})`);
  process.exitCode = failed.length === 0 ? 0 : 1;
}

if (isMainThread && process.argv[1] && import.meta.url.endsWith(process.argv[1].replace(/.*[\\/]/, ''))) {
  main().catch((e: unknown) => {
    console.error(`fuzz: ${e instanceof Error ? e.message : String(e)}`);
    process.exitCode = 2;
  });
} else if (!isMainThread && workerData === undefined) {
  throw new Error('bench/fuzz.ts started as a worker without a job');
}
