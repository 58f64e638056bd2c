/**
 * The registry's writer lock: a `lock` key created exclusively, holding the
 * holder's pid, host, command and start time. Writers (init, add, rm, gc)
 * take it; readers never need it, because every write is an atomic
 * create of a new key and a version becomes visible only when its manifest
 * lands.
 *
 * A lock whose holder ran on this host and is no longer alive is stale and
 * is broken: re-read, check it is still the same stale lock, remove, retry.
 * (Between that check and the removal lies a window of microseconds in which
 * another breaker could replace it; both would then have seen the same dead
 * holder, and the exclusive create still admits only one of them.)
 */
import { hostname } from 'node:os';
import { At1Error } from '../errors.js';
import type { Backend } from '../store/backend.js';

export const LOCK_KEY = 'lock';

export interface LockInfo {
  pid: number;
  host: string;
  command: string;
  startedAt: string;
}

function describe(info: LockInfo | undefined): string {
  if (!info) return 'an unknown holder (unreadable lock file)';
  return `pid ${info.pid} on ${info.host} (${info.command}, since ${info.startedAt})`;
}

function parseLock(bytes: Uint8Array): LockInfo | undefined {
  try {
    const o = JSON.parse(new TextDecoder().decode(bytes)) as LockInfo;
    if (typeof o.pid === 'number' && typeof o.host === 'string') return o;
  } catch {
    /* fall through */
  }
  return undefined;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export function isStale(info: LockInfo | undefined): boolean {
  return info !== undefined && info.host === hostname() && !alive(info.pid);
}

export interface Lock {
  release(): Promise<void>;
}

export async function acquireLock(backend: Backend, command: string, waitMs = Number(process.env.AT1_LOCK_WAIT_MS ?? 5000)): Promise<Lock> {
  const me: LockInfo = { pid: process.pid, host: hostname(), command, startedAt: new Date().toISOString() };
  const bytes = new TextEncoder().encode(JSON.stringify(me) + '\n');
  const deadline = Date.now() + waitMs;
  let delay = 20;
  for (;;) {
    if (await backend.write(LOCK_KEY, bytes, { exclusive: true })) {
      return {
        release: async () => {
          await backend.remove(LOCK_KEY);
        },
      };
    }
    const held = await backend.read(LOCK_KEY).catch(() => undefined);
    if (held === undefined) continue; // released between our create and our read
    const info = parseLock(held);
    if (isStale(info)) {
      const again = await backend.read(LOCK_KEY).catch(() => undefined);
      if (again && Buffer.compare(again, held) === 0) await backend.remove(LOCK_KEY);
      continue;
    }
    if (Date.now() >= deadline) {
      throw new At1Error('E_LOCKED', `registry ${backend.location} is locked by ${describe(info)}; try again when it finishes`, { retryable: true });
    }
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 250);
  }
}
