/**
 * Who this process is, precisely enough to tell whether another process
 * record (a lock holder, a temp file's writer) could be checked with
 * `kill(pid, 0)`. A pid means something only inside one PID namespace of
 * one boot of one host: containers sharing a host name, or a host that
 * rebooted, reuse pids. So the identity is the host name plus the boot id
 * plus the PID namespace (Linux: /proc/sys/kernel/random/boot_id and the
 * inode of /proc/self/ns/pid); where those cannot be read, the identity is
 * unknown and pid checks are never used (callers fall back to time alone).
 */
import { readFileSync, readlinkSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { hostname } from 'node:os';

function readOr(fn: () => string): string | undefined {
  try {
    return fn().trim();
  } catch {
    return undefined;
  }
}

let cached: string | null | undefined;

/** A short stable string for (host, boot, PID namespace), or null when it cannot be known. */
export function hostIdentity(): string | null {
  if (cached !== undefined) return cached;
  const boot = readOr(() => readFileSync('/proc/sys/kernel/random/boot_id', 'utf8'));
  const pidns = readOr(() => readlinkSync('/proc/self/ns/pid'));
  cached = boot && pidns ? createHash('sha256').update(`${hostname()}\0${boot}\0${pidns}`).digest('hex').slice(0, 16) : null;
  return cached;
}

/** Whether `pid` is a live process. Meaningful only when the record's identity equals hostIdentity(). */
export function pidAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * True only when the record was made in this very PID namespace of this boot
 * and its process is gone: the one case in which a pid proves death.
 * Anything else (another host, another container, unknown identity, a live
 * or reused pid) is "not proven dead".
 */
export function provenDead(record: { identity?: string | null; pid?: number }): boolean {
  const me = hostIdentity();
  return me !== null && record.identity === me && typeof record.pid === 'number' && !pidAlive(record.pid);
}
