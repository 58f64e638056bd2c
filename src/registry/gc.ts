/**
 * gc: remove what no version needs — objects outside the reachable set
 * (leftovers of interrupted adds, versions removed by rm) and files in tmp/
 * (interrupted writes). It holds the writer lock, so no add is in flight
 * whose objects are not yet named by a manifest; and it refuses to run
 * when any manifest cannot be read, because then it cannot know what is
 * needed. Deleting unneeded files in any order is safe, so an interrupted
 * gc leaves a valid registry and can simply be run again.
 */
import { At1Error } from '../errors.js';
import { TMP_DIR } from '../store/local-backend.js';
import { ChunkReader } from './chunk-reader.js';
import { reachable } from './reachability.js';
import type { Registry } from './registry.js';

export interface GcResult {
  removedObjects: number;
  removedBytes: number;
  removedLeftovers: number;
  keptObjects: number;
}

/** The sweep itself; the caller holds the lock. */
export async function sweep(reg: Registry): Promise<GcResult> {
  const manifests = await reg.manifests(); // throws on any unreadable manifest: never guess what is live
  const { objects, problems } = await reachable(new ChunkReader(reg.store), manifests);
  const broken = problems.filter((p) => p.kind === 'bad-header');
  if (broken.length > 0) {
    // A damaged header hides what that object references: deleting now could remove something still needed.
    throw new At1Error('E_CORRUPT', `gc stopped: ${broken.length} needed object(s) have damaged headers (first: ${broken[0]!.message}); run 'at1 registry fsck' first`);
  }
  const result: GcResult = { removedObjects: 0, removedBytes: 0, removedLeftovers: 0, keptObjects: 0 };
  for (const [d, size] of await reg.store.list()) {
    if (objects.has(d)) {
      result.keptObjects++;
      continue;
    }
    await reg.store.remove(d);
    result.removedObjects++;
    result.removedBytes += size;
  }
  for (const { key } of await reg.backend.list(TMP_DIR)) {
    await reg.backend.remove(key);
    result.removedLeftovers++;
  }
  return result;
}

export async function gcRegistry(reg: Registry): Promise<GcResult> {
  const lock = await reg.lock('gc');
  try {
    return await sweep(reg);
  } finally {
    await lock.release();
  }
}
