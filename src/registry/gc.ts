/**
 * gc: remove what no version needs — objects outside the reachable set
 * (leftovers of interrupted adds, versions removed by rm) and files in tmp/
 * (interrupted writes) — without ever removing what a running command
 * still needs (docs/FORMAT.md §8b):
 *
 * - **Writers.** gc holds the writer lock, so normally no add is between
 *   writing its objects and publishing its manifest. A writer whose lease
 *   was lost while it ran (it stalled past its lease) could still be there;
 *   so gc spares every unreachable object and temp file younger than a
 *   grace period (default 15 min, many leases long). Writers renew the
 *   modification time of every object they reuse (chunk-writer.ts), so an
 *   old orphan that an add has just deduplicated against counts as young;
 *   and a writer about to publish stores its manifest in `pending/` before
 *   its last lease check (Registry.publish), which gc reads as a manifest
 *   while it is younger than the grace period (FORMAT.md §8b).
 * - **Readers.** A reader takes a lease before it reads any manifest. A
 *   reader that started before the latest removal (rm, rebase) may hold a
 *   manifest that no longer exists or an object encoding that was replaced,
 *   and may need what they referenced: while such a reader's lease is live,
 *   no unreachable object is deleted (they are left for a later gc).
 *
 * It refuses to run when any manifest cannot be read, or a needed object's
 * header is damaged, because then it cannot know what is needed. Deleting
 * unneeded files in any order is safe, so an interrupted gc leaves a valid
 * registry and can simply be run again.
 */
import { At1Error } from '../errors.js';
import { ChunkReader } from './chunk-reader.js';
import { LOCKS_DIR, MAX_CLOCK_SKEW_MS, readerLeases, type Lease, type ReaderLease } from './lease.js';
import { reachable } from './reachability.js';
import type { Registry } from './registry.js';

/** Unreachable objects and temp files younger than this are kept: far longer than any lease. */
export const DEFAULT_GC_GRACE_MS = 15 * 60_000;
/** Written (replaced) by rm before it makes anything unreachable: the time of the latest removal. */
export const REMOVED_AT_KEY = `${LOCKS_DIR}/removed-at`;

export interface GcOptions {
  /** Keep unreachable objects younger than this (default: the registry's settings.gcGraceMs, 15 min). 0 only when no writer can be running. */
  graceMs?: number;
}

export interface GcResult {
  removedObjects: number;
  removedBytes: number;
  removedLeftovers: number;
  keptObjects: number;
  /** Unreachable objects kept because they are younger than the grace period. */
  keptYoung: number;
  /** Unreachable objects kept because a reader that started before the latest removal is still running. */
  keptForReaders: number;
  /** Those readers (pid, host, command), for the message. */
  readers: string[];
  /** Reader leases removed because they had ended (their process gone or their lease expired). */
  removedLeases: number;
}

function emptyResult(): GcResult {
  return { removedObjects: 0, removedBytes: 0, removedLeftovers: 0, keptObjects: 0, keptYoung: 0, keptForReaders: 0, readers: [], removedLeases: 0 };
}

/** Record that something is about to become unreachable (rm, rebase): readers older than this are protected. */
export async function markRemoval(reg: Registry): Promise<void> {
  await reg.backend.put(REMOVED_AT_KEY, new TextEncoder().encode(new Date().toISOString() + '\n'));
}

async function removedAt(reg: Registry): Promise<number> {
  try {
    const t = Date.parse(new TextDecoder().decode(await reg.backend.read(REMOVED_AT_KEY)).trim());
    return Number.isFinite(t) ? t : Date.now(); // unreadable: assume a removal just happened (the safe side)
  } catch (e) {
    if (e instanceof At1Error && e.code === 'E_NOT_FOUND') return 0;
    throw e;
  }
}

/**
 * Live reader leases that started before the latest removal (with the clock
 * skew allowance); ended leases are removed on the way.
 */
export async function protectingReaders(reg: Registry, result: GcResult): Promise<ReaderLease[]> {
  const since = await removedAt(reg);
  const out: ReaderLease[] = [];
  for (const l of await readerLeases(reg.backend)) {
    if (l.ended !== undefined) {
      await reg.backend.remove(l.key);
      result.removedLeases++;
    } else if (l.startedAtMs <= since + MAX_CLOCK_SKEW_MS) out.push(l);
  }
  result.readers = out.map((l) => `pid ${l.record.pid} on ${l.record.host} (${l.record.command})`);
  return out;
}

/**
 * Unreachable objects younger than `cutoff`, and everything they reference
 * (an add that reuses an old orphan renews only that object's time; its
 * reference chain must survive with it).
 */
async function youngWithReferences(reg: Registry, stored: Map<string, { mtimeMs?: number }>, reachableSet: Map<string, unknown>, cutoff: number): Promise<Set<string>> {
  const reader = new ChunkReader(reg.store);
  const out = new Set<string>();
  const stack = [...stored].filter(([d, info]) => !reachableSet.has(d) && (info.mtimeMs ?? Infinity) > cutoff).map(([d]) => d);
  while (stack.length > 0) {
    const d = stack.pop()!;
    if (out.has(d) || reachableSet.has(d)) continue;
    out.add(d);
    const h = await reader.header(d).catch(() => undefined); // a damaged young object protects nothing beyond itself
    for (const r of h?.refs ?? []) stack.push(r.digest);
  }
  return out;
}

export interface SweepOptions extends GcOptions {
  /** rm: delete only these objects (what it made unreachable), whatever their age; leave other orphans to gc. */
  only?: ReadonlySet<string>;
}

/** The sweep itself; the caller holds the writer lock `lease`. */
export async function sweep(reg: Registry, lease: Lease, opts: SweepOptions = {}): Promise<GcResult> {
  const graceMs = opts.graceMs ?? reg.settings.gcGraceMs;
  const manifests = await reg.manifests(); // throws on any unreadable manifest: never guess what is live
  // Manifests a writer is about to publish (stalled after its last lease check, FORMAT.md §8b) are needed too, while younger than the grace period.
  const pending = await reg.pendingManifests();
  const live = pending.filter((p) => p.ageMs < graceMs);
  const unreadable = live.find((p) => p.error !== undefined);
  if (unreadable) throw new At1Error('E_CORRUPT', `gc stopped: the pending manifest ${unreadable.key} does not parse (${unreadable.error}); a writer may be publishing it. Run gc again after the grace period, or remove it if no writer is running`);
  const roots = [...manifests, ...live.flatMap((p) => (p.manifest ? [p.manifest] : []))];
  const { objects, problems } = await reachable(new ChunkReader(reg.store), roots);
  const broken = problems.filter((p) => p.kind === 'bad-header');
  if (broken.length > 0) {
    // A damaged header hides what that object references: deleting now could remove something still needed.
    throw new At1Error('E_CORRUPT', `gc stopped: ${broken.length} needed object(s) have damaged headers (first: ${broken[0]!.message}); run 'at1 registry fsck' first`);
  }
  const result = emptyResult();
  const readers = await protectingReaders(reg, result);
  await lease.assertHeld(); // a gc whose lease was lost must not delete: another writer may be mid-add
  const now = Date.now();
  const stored = await reg.store.listWithTimes();
  const young = opts.only ? new Set<string>() : await youngWithReferences(reg, stored, objects, now - graceMs);
  for (const [d, info] of stored) {
    if (objects.has(d)) {
      result.keptObjects++;
      continue;
    }
    if (opts.only && !opts.only.has(d)) continue;
    if (readers.length > 0) {
      result.keptForReaders++;
      continue;
    }
    if (young.has(d)) {
      result.keptYoung++;
      continue;
    }
    await reg.store.remove(d);
    result.removedObjects++;
    result.removedBytes += info.size;
  }
  if (!opts.only) {
    // A pending record older than the grace period is the leftover of a writer that died while publishing.
    for (const p of pending) {
      if (p.ageMs < graceMs) continue;
      await reg.backend.remove(p.key);
      result.removedLeftovers++;
    }
    for await (const { key, mtimeMs } of reg.backend.leftovers()) {
      if (now - (mtimeMs ?? now) < graceMs) continue;
      await reg.backend.removeLeftover(key);
      result.removedLeftovers++;
    }
  }
  return result;
}

export async function gcRegistry(reg: Registry, opts: GcOptions = {}): Promise<GcResult> {
  const lock = await reg.lock('gc');
  try {
    return await sweep(reg, lock, opts);
  } finally {
    await lock.release();
  }
}

