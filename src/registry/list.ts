/**
 * list: every version with its parent, raw size, the bytes it occupies on
 * disk and their ratio. A version's stored bytes are its manifest plus the
 * objects it was the first (oldest) version to reference: shared objects
 * count once, for the version that brought them, so the rows add up to
 * the family's total.
 */
import { manifestDigests } from './manifest.js';
import { serializeManifest } from './manifest.js';
import type { Registry } from './registry.js';

export interface VersionRow {
  name: string;
  parent: string | null;
  createdAt: string;
  rawBytes: number;
  storedBytes: number;
  ratio: number;
}

export interface FamilyListing {
  versions: VersionRow[];
  total: { versions: number; rawBytes: number; storedBytes: number; ratio: number; objects: number };
}

export async function listRegistry(reg: Registry): Promise<FamilyListing> {
  const manifests = await reg.manifests();
  const sizes = await reg.store.list();
  const seen = new Set<string>();
  const versions: VersionRow[] = [];
  let storedTotal = 0;
  for (const m of manifests) {
    let stored = serializeManifest(m).length;
    for (const d of manifestDigests(m)) {
      if (seen.has(d)) continue;
      seen.add(d);
      stored += sizes.get(d) ?? 0;
      // Objects reached only as references (a chunk whose tensor changed later) belong to the version that named them.
    }
    storedTotal += stored;
    versions.push({ name: m.name, parent: m.parent, createdAt: m.createdAt, rawBytes: m.stats.rawBytes, storedBytes: stored, ratio: stored / Math.max(1, m.stats.rawBytes) });
  }
  const rawBytes = versions.reduce((a, v) => a + v.rawBytes, 0);
  return { versions, total: { versions: versions.length, rawBytes, storedBytes: storedTotal, ratio: storedTotal / Math.max(1, rawBytes), objects: sizes.size } };
}
