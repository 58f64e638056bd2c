/**
 * A child process for the lease tests (test/leases.test.ts, bench/crash-trials.ts):
 *   hold DIR MS          take the writer lock, print "held", keep it MS ms, release
 *   contend DIR LOG MS   take the writer lock, append "enter <pid> <t>" and
 *                        "exit <pid> <t>" to LOG around MS ms of holding it
 * Uses the library's lease exactly as at1's writers do.
 */
import { appendFileSync } from 'node:fs';
import { LocalBackend } from '../../src/store/local-backend.js';
import { acquireWriterLease } from '../../src/registry/lease.js';

const [mode, dir, a, b] = process.argv.slice(2);
const backend = new LocalBackend(dir!);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

if (mode === 'hold') {
  const lease = await acquireWriterLease(backend, 'test hold');
  process.stdout.write('held\n');
  await sleep(Number(a));
  await lease.release();
} else if (mode === 'contend') {
  const lease = await acquireWriterLease(backend, 'test contend', { waitMs: 60_000 });
  appendFileSync(a!, `enter ${process.pid} ${performance.timeOrigin + performance.now()}\n`);
  await sleep(Number(b));
  appendFileSync(a!, `exit ${process.pid} ${performance.timeOrigin + performance.now()}\n`);
  await lease.release();
} else {
  process.stderr.write(`usage: lease-holder hold|contend …\n`);
  process.exit(2);
}
