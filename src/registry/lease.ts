/**
 * Leases: the writer lock and reader leases (docs/FORMAT.md §8).
 *
 * A lease is a small record created exclusively and kept alive by its
 * holder renewing the key's modification time every `leaseMs / 4`. It is
 * **expired** when it has not been renewed for `leaseMs` plus a clock-skew
 * allowance — on any host, whatever its pid says. A pid proves death only
 * inside the PID namespace of the same boot of the same host
 * (util/host-identity.ts); that case ends a lease at once, every other case
 * waits for expiry. So a live writer in another container is never judged
 * dead, and a writer killed here is recovered at once.
 *
 * Ownership is a random token written into the record at creation. Only a
 * holder of the **end marker** `locks/end-<token>-<g>` (created exclusively)
 * may remove a lock holding that token, and it removes it only after
 * re-reading it and finding that token: two processes can never both remove
 * the same lock, and nobody can remove a newer lock by mistake. The holder
 * releasing its own lock goes through the same marker, so release removes
 * only its own token. A marker left by a process that died while ending a
 * lease is itself judged by the same rules, and the next generation `g + 1`
 * takes over.
 *
 * What leases cannot give (no lease can, without fencing by the storage):
 * a holder stalled for longer than its lease (SIGSTOP, a suspended VM) may
 * act late. Writers therefore check that they still hold the lock right
 * before publishing a manifest (`assertHeld`), and gc spares objects younger
 * than a grace period far longer than a lease (gc.ts).
 *
 * What the backend must give (store/backend.ts, Capabilities): exclusive
 * create (the lock, end markers, reader leases), conditional touch (renewal
 * only of one's own record) and modification times by the storage's clock;
 * a backend without the first two is refused (E_UNSUPPORTED) rather than
 * trusted. Local disk: link() and futimes(); S3: PUT If-None-Match: *,
 * If-Match on the ETag, LastModified.
 *
 * Keys: the writer lock is `lock` (the same key older builds create, so old
 * and new writers still exclude each other); end markers live in `locks/`,
 * reader leases in `leases/`. gc never sweeps `locks/`; it removes expired
 * reader leases and markers older than a day.
 */
import { randomBytes, createHash } from 'node:crypto';
import { hostname } from 'node:os';
import { At1Error } from '../errors.js';
import { requireLeaseCapabilities, type Backend } from '../store/backend.js';
import { hostIdentity, provenDead } from '../util/host-identity.js';

export const LOCK_KEY = 'lock';
export const LOCKS_DIR = 'locks';
export const LEASES_DIR = 'leases';
export const LEASE_FORMAT = 'at1.lease';

/** A lease not renewed for this long is expired (plus the skew allowance). */
export const DEFAULT_LEASE_MS = 30_000;
/** How long a writer waits for the lock before E_LOCKED. */
export const DEFAULT_LOCK_WAIT_MS = 5_000;
/** Clocks of hosts sharing a registry may differ by this much. */
export const MAX_CLOCK_SKEW_MS = 5_000;
/** Locks written by at1 0.1 carry no lease: they count as leases of this length from their modification time. */
export const LEGACY_LEASE_MS = 10 * 60_000;
/** End markers older than this are leftovers of crashes; the next holder removes them. */
export const MARKER_LEFTOVER_MS = 24 * 3600_000;
const MAX_MARKER_GENERATIONS = 16;

export interface LeaseRecord {
  format: typeof LEASE_FORMAT;
  kind: 'writer' | 'reader';
  token: string;
  command: string;
  pid: number;
  host: string;
  /** hostIdentity() of the holder: where its pid means something; null when unknown. */
  identity: string | null;
  startedAt: string;
  leaseMs: number;
  /** Reader leases: the versions being read. */
  versions?: string[];
}

export interface LeaseOptions {
  /** How long to wait for the writer lock (default 5 s; a Registry passes its settings.lockWaitMs). */
  waitMs?: number;
  /** Lease length (default 30 s; a Registry passes its settings.leaseMs). */
  leaseMs?: number;
}

export interface Lease {
  readonly token: string;
  readonly key: string;
  /** Throws E_LOCKED when the lease was lost (expired and taken over): the holder must not publish. */
  assertHeld(): Promise<void>;
  /** Stop renewing and remove the lease (only ours). Never throws: an unremoved lease simply expires. */
  release(): Promise<void>;
}

const encoder = new TextEncoder();

function skewAllowance(leaseMs: number): number {
  return Math.min(leaseMs, MAX_CLOCK_SKEW_MS);
}

function newRecord(kind: LeaseRecord['kind'], command: string, leaseMs: number, versions?: string[]): LeaseRecord {
  const r: LeaseRecord = {
    format: LEASE_FORMAT,
    kind,
    token: randomBytes(16).toString('hex'),
    command,
    pid: process.pid,
    host: hostname(),
    identity: hostIdentity(),
    startedAt: new Date().toISOString(),
    leaseMs,
  };
  if (versions) r.versions = versions;
  return r;
}

/**
 * Parse a lease record. Locks of at1 0.1 ({pid, host, command, startedAt})
 * and unreadable bytes still get a token (derived from the bytes), so they
 * can be ended through the marker protocol like any other.
 */
export function parseLease(bytes: Uint8Array): LeaseRecord & { legacy?: boolean; unreadable?: boolean } {
  const derived = 'x' + createHash('sha256').update(bytes).digest('hex').slice(0, 31);
  let o: Record<string, unknown> | undefined;
  try {
    o = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes)) as Record<string, unknown>;
  } catch {
    o = undefined;
  }
  if (o && o.format === LEASE_FORMAT && typeof o.token === 'string' && /^[0-9a-f]{32}$/.test(o.token) && typeof o.leaseMs === 'number' && Number.isSafeInteger(o.leaseMs) && o.leaseMs > 0) {
    return {
      format: LEASE_FORMAT,
      kind: o.kind === 'reader' ? 'reader' : 'writer',
      token: o.token,
      command: typeof o.command === 'string' ? o.command : '?',
      pid: typeof o.pid === 'number' ? o.pid : -1,
      host: typeof o.host === 'string' ? o.host : '?',
      identity: typeof o.identity === 'string' ? o.identity : null,
      startedAt: typeof o.startedAt === 'string' ? o.startedAt : '',
      leaseMs: o.leaseMs,
      versions: Array.isArray(o.versions) ? o.versions.filter((v): v is string => typeof v === 'string') : undefined,
    };
  }
  const legacy = o !== undefined && typeof o.pid === 'number' && typeof o.host === 'string';
  return {
    format: LEASE_FORMAT,
    kind: 'writer',
    token: derived,
    command: legacy && typeof o!.command === 'string' ? o!.command : '?',
    pid: legacy ? (o!.pid as number) : -1,
    host: legacy ? (o!.host as string) : '?',
    identity: null,
    startedAt: legacy && typeof o!.startedAt === 'string' ? o!.startedAt : '',
    leaseMs: LEGACY_LEASE_MS,
    legacy,
    unreadable: !legacy,
  };
}

/** Why a lease is over, or undefined while it is live. `ageMs`: time since its last renewal. */
export function leaseEnded(r: LeaseRecord, ageMs: number): string | undefined {
  if (provenDead(r)) return `its holder (pid ${r.pid}) has exited`;
  if (ageMs > r.leaseMs + skewAllowance(r.leaseMs)) return `its lease expired ${Math.round((ageMs - r.leaseMs) / 1000)} s ago`;
  return undefined;
}

function describe(r: LeaseRecord, ageMs: number): string {
  const who = (r as { unreadable?: boolean }).unreadable ? 'an unreadable lock file' : `pid ${r.pid} on ${r.host} (${r.command}, since ${r.startedAt})`;
  const left = Math.max(0, r.leaseMs + skewAllowance(r.leaseMs) - ageMs);
  return `${who}; its lease was renewed ${(ageMs / 1000).toFixed(1)} s ago and expires in ${(left / 1000).toFixed(1)} s unless renewed`;
}

async function readRecord(backend: Backend, key: string): Promise<{ record: ReturnType<typeof parseLease>; bytes: Uint8Array; ageMs: number } | undefined> {
  const st = await backend.stat(key);
  if (!st) return undefined;
  let bytes: Uint8Array;
  try {
    bytes = await backend.read(key);
  } catch (e) {
    if (e instanceof At1Error && e.code === 'E_NOT_FOUND') return undefined;
    throw e;
  }
  return { record: parseLease(bytes), bytes, ageMs: Date.now() - st.mtimeMs };
}

function markerKey(token: string, generation: number): string {
  return `${LOCKS_DIR}/end-${token}-${generation}`;
}

/**
 * End the lease `token` held at `key`: take the end marker, re-read, remove
 * only if the key still holds that token, drop the marker. Returns false when
 * another live process is ending it (it will finish the job).
 */
async function endLease(backend: Backend, key: string, token: string, leaseMs: number): Promise<boolean> {
  const mine = newRecord('writer', `end ${token}`, leaseMs);
  const bytes = encoder.encode(JSON.stringify(mine) + '\n');
  for (let g = 1; g <= MAX_MARKER_GENERATIONS; g++) {
    const marker = markerKey(token, g);
    if (await backend.create(marker, bytes)) {
      try {
        const cur = await readRecord(backend, key);
        if (cur && cur.record.token === token) await backend.remove(key);
      } finally {
        await backend.remove(marker);
      }
      return true;
    }
    const other = await readRecord(backend, marker);
    if (other && leaseEnded(other.record, other.ageMs) === undefined) return false; // a live process is ending it
    // that marker's holder died while ending the lease: the next generation takes over
  }
  throw new At1Error('E_CORRUPT', `${backend.location}: ${MAX_MARKER_GENERATIONS} dead end markers for lease ${token} in ${LOCKS_DIR}/; remove them by hand`);
}

/** Renewal loop and ownership checks shared by writer and reader leases. */
function holdLease(backend: Backend, key: string, record: LeaseRecord, bytes: Uint8Array): Lease {
  let lost: string | undefined;
  let released = false;
  let lastRenewal = Date.now();
  const renew = async (): Promise<void> => {
    if (released || lost) return;
    try {
      if (await backend.touch(key, bytes)) lastRenewal = Date.now();
      else lost = `${key} no longer holds this process's lease (it expired and was taken over)`;
    } catch {
      /* a failed renewal is retried at the next tick; assertHeld checks the age */
    }
  };
  const timer = setInterval(() => void renew(), Math.max(50, Math.floor(record.leaseMs / 4)));
  timer.unref();
  return {
    token: record.token,
    key,
    async assertHeld(): Promise<void> {
      await renew();
      if (!lost && Date.now() - lastRenewal > record.leaseMs) lost = `the lease was not renewed for ${Date.now() - lastRenewal} ms (longer than its ${record.leaseMs} ms)`;
      if (!lost && (await backend.stat(markerKey(record.token, 1)))) lost = 'another process is ending this lease';
      if (lost) throw new At1Error('E_LOCKED', `lost the registry lock of ${backend.location}: ${lost}; nothing was published`, { retryable: true });
    },
    async release(): Promise<void> {
      if (released) return;
      released = true;
      clearInterval(timer);
      await endLease(backend, key, record.token, record.leaseMs).catch(() => undefined);
    },
  };
}

/** Remove end markers left by crashes long ago (they block nothing, but should not pile up). */
async function sweepOldMarkers(backend: Backend): Promise<void> {
  const now = Date.now();
  for await (const k of backend.list(LOCKS_DIR)) {
    if (k.mtimeMs !== undefined && now - k.mtimeMs > MARKER_LEFTOVER_MS) await backend.remove(k.key).catch(() => undefined);
  }
}

/** Take the registry's writer lock, waiting up to `waitMs` for a live holder; an ended lease is broken safely. */
export async function acquireWriterLease(backend: Backend, command: string, opts: LeaseOptions = {}): Promise<Lease> {
  requireLeaseCapabilities(backend);
  const waitMs = opts.waitMs ?? DEFAULT_LOCK_WAIT_MS;
  const leaseMs = opts.leaseMs ?? DEFAULT_LEASE_MS;
  const record = newRecord('writer', command, leaseMs);
  const bytes = encoder.encode(JSON.stringify(record) + '\n');
  const deadline = Date.now() + waitMs;
  let delay = 20;
  for (;;) {
    if (await backend.create(LOCK_KEY, bytes)) {
      await sweepOldMarkers(backend).catch(() => undefined);
      return holdLease(backend, LOCK_KEY, record, bytes);
    }
    const held = await readRecord(backend, LOCK_KEY);
    if (!held) continue; // released between our create and our read
    if (leaseEnded(held.record, held.ageMs) !== undefined) {
      if (await endLease(backend, LOCK_KEY, held.record.token, held.record.leaseMs)) continue;
    } else if (Date.now() >= deadline) {
      throw new At1Error('E_LOCKED', `registry ${backend.location} is locked by ${describe(held.record, held.ageMs)}; try again when it finishes`, { retryable: true });
    }
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 250);
  }
}

/**
 * Announce a reader: gc and rm never delete what a reader that started
 * before their change may still need (gc.ts). Taken before the reader reads
 * any manifest.
 */
export async function takeReaderLease(backend: Backend, command: string, versions: string[], opts: LeaseOptions = {}): Promise<Lease> {
  const leaseMs = opts.leaseMs ?? DEFAULT_LEASE_MS;
  requireLeaseCapabilities(backend);
  const record = newRecord('reader', command, leaseMs, versions);
  const bytes = encoder.encode(JSON.stringify(record) + '\n');
  const key = `${LEASES_DIR}/${record.token}.json`;
  if (!(await backend.create(key, bytes))) throw new At1Error('E_IO', `reader lease ${key} exists already (a random token collided?)`);
  return holdLease(backend, key, record, bytes);
}

export interface ReaderLease {
  key: string;
  record: LeaseRecord;
  /** When the reader started, by its own clock. */
  startedAtMs: number;
  ended: string | undefined;
}

/** Every reader lease, live or ended. */
export async function readerLeases(backend: Backend): Promise<ReaderLease[]> {
  const out: ReaderLease[] = [];
  for await (const { key } of backend.list(LEASES_DIR)) {
    const r = await readRecord(backend, key);
    if (!r) continue;
    const t = Date.parse(r.record.startedAt);
    out.push({ key, record: r.record, startedAtMs: Number.isFinite(t) ? t : 0, ended: leaseEnded(r.record, r.ageMs) });
  }
  return out;
}

/** What a reader holds when it could not take a lease (a read-only credential): nothing to renew or release. */
export const NO_LEASE: Lease = Object.freeze({
  token: '',
  key: '',
  async assertHeld(): Promise<void> {},
  async release(): Promise<void> {},
});
