/**
 * list: every version with its parent, raw size, the bytes it occupies on
 * disk and their ratio. A version's stored bytes are its manifest plus the
 * objects it was the first (oldest) version to reference: shared objects
 * count once, for the version that brought them, so the rows add up to
 * the family's total. A manifest's bytes are its size as stored.
 */
import { manifestDigests } from './manifest.js';
import { manifestKey, type Registry } from './registry.js';

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

/** What list keeps of a manifest once it is parsed: its row's fields and the digests it names, 32 bytes each. */
interface Summary {
  name: string;
  parent: string | null;
  createdAt: string;
  rawBytes: number;
  manifestBytes: number;
  digests: Buffer;
}

/**
 * Manifests are read one at a time (each parsed, checked, reduced to a
 * Summary and dropped), so memory holds one manifest however many versions
 * of however many tensors the registry has, plus the digest set that the
 * attribution needs anyway.
 */
export async function listRegistry(reg: Registry): Promise<FamilyListing> {
  const summaries: Summary[] = [];
  for (const name of await reg.versionNames()) {
    const m = await reg.manifest(name);
    const digests = manifestDigests(m);
    const packed = Buffer.allocUnsafe(digests.length * 32);
    for (const [i, d] of digests.entries()) packed.write(d, i * 32, 32, 'hex');
    const manifestBytes = (await reg.backend.size(manifestKey(name))) ?? 0;
    summaries.push({ name: m.name, parent: m.parent, createdAt: m.createdAt, rawBytes: m.stats.rawBytes, manifestBytes, digests: packed });
  }
  // Oldest first (ties by name), as Registry.manifests orders them: shared objects count for the version that brought them.
  summaries.sort((a, b) => (a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : a.name < b.name ? -1 : 1));
  const sizes = await reg.store.list();
  const seen = new Set<string>();
  const versions: VersionRow[] = [];
  let storedTotal = 0;
  for (const v of summaries) {
    let stored = v.manifestBytes;
    for (let at = 0; at < v.digests.length; at += 32) {
      const d = v.digests.toString('hex', at, at + 32);
      if (seen.has(d)) continue;
      seen.add(d);
      stored += sizes.get(d) ?? 0;
      // Objects reached only as references (a chunk whose tensor changed later) belong to the version that named them.
    }
    storedTotal += stored;
    versions.push({ name: v.name, parent: v.parent, createdAt: v.createdAt, rawBytes: v.rawBytes, storedBytes: stored, ratio: stored / Math.max(1, v.rawBytes) });
  }
  const rawBytes = versions.reduce((a, v) => a + v.rawBytes, 0);
  return { versions, total: { versions: versions.length, rawBytes, storedBytes: storedTotal, ratio: storedTotal / Math.max(1, rawBytes), objects: sizes.size } };
}
