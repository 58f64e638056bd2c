/**
 * rm: remove a version. Objects are shared by content, so removing a
 * version never breaks another: whatever another version needs stays. But
 * when other versions are *encoded against* this one (their objects
 * reference chunks only this version names), removing it would keep those
 * chunks alive as hidden references and reclaim little; rm then refuses,
 * naming them, unless --rebase re-encodes each such object against the
 * reference's own reference (a shallower relative) or standalone, verifying
 * each new encoding before it atomically replaces the old one (same key,
 * same bytes). Dependents whose recorded parent was the removed version get
 * its parent instead. Only then is the manifest deleted and the objects it
 * alone needed are deleted — not while a reader that started before this rm
 * is still running (it may be reading this version, or an object encoding
 * the rebase replaced); those objects are then left for a later gc. Other
 * orphans are gc's business (with its grace period). Every step leaves a
 * valid registry, so an interrupted rm can be run again.
 */
import { At1Error } from '../errors.js';
import type { ObjectHeader } from '../format/object.js';
import { ChunkReader } from './chunk-reader.js';
import { encodeVerified, type Reference } from './chunk-writer.js';
import { markRemoval, sweep, type GcResult } from './gc.js';
import { manifestDigests, serializeManifest, type VersionManifest } from './manifest.js';
import { reachable } from './reachability.js';
import { manifestKey, type Registry } from './registry.js';

export interface RemoveOptions {
  rebase?: boolean;
}

export interface RemoveResult {
  removed: string;
  rebasedObjects: number;
  rebasedVersions: string[];
  /** Versions whose recorded parent was the removed one; they now name its parent. */
  reparented: string[];
  gc: GcResult;
}

/** Re-encode object `d` so it no longer references anything in `dropping`. */
async function rebaseObject(reg: Registry, reader: ChunkReader, d: string, h: ObjectHeader, dropping: Set<string>): Promise<void> {
  const { bytes } = await reader.read(d, h.rawLength);
  // Walk down the first reference's chain to the first chunk that stays.
  let ref: string | undefined = h.refs[0]?.digest;
  while (ref !== undefined && dropping.has(ref)) ref = (await reader.header(ref)).refs[0]?.digest;
  const refs: Reference[] = [];
  if (ref !== undefined) {
    const r = await reader.read(ref);
    refs.push({ digest: ref, dtype: r.header.dtype, bytes: r.bytes, depth: r.header.depth });
    const gp = r.header.refs[0];
    if (gp && !dropping.has(gp.digest)) {
      const g = await reader.read(gp.digest);
      refs.push({ digest: gp.digest, dtype: g.header.dtype, bytes: g.bytes, depth: g.header.depth });
    }
  }
  const { object, depth } = encodeVerified(bytes, h.dtype, refs, 'max');
  if (depth > h.depth) throw new Error(`rebase of ${d} would deepen its chain`); // cannot happen: the new references are shallower
  await reg.store.replace(d, object);
}

export async function removeVersion(reg: Registry, name: string, opts: RemoveOptions = {}): Promise<RemoveResult> {
  const lock = await reg.lock(`rm ${name}`);
  try {
    const manifests = await reg.manifests();
    const target = manifests.find((m) => m.name === name);
    if (!target) throw new At1Error('E_NOT_FOUND', `version ${JSON.stringify(name)} is not in registry ${reg.location}`);
    const others = manifests.filter((m) => m !== target);
    const othersDirect = new Set(others.flatMap(manifestDigests));
    const dropping = new Set(manifestDigests(target).filter((d) => !othersDirect.has(d)));
    const reader = new ChunkReader(reg.store);
    const { objects } = await reachable(reader, others);
    // What the registry needs now (the others' set plus the target's own chain: one header walk each, not two of everything);
    // after the removal, whatever of this is no longer needed is what rm made unreachable.
    const neededBefore = new Set([...objects.keys(), ...(await reachable(reader, [target])).objects.keys()]);
    const dependents: { d: string; h: ObjectHeader }[] = [];
    for (const [d, h] of objects) if (h && !dropping.has(d) && h.refs.some((r) => dropping.has(r.digest))) dependents.push({ d, h });
    const owners = new Map<string, string>();
    for (const m of others) for (const d of manifestDigests(m)) if (!owners.has(d)) owners.set(d, m.name);
    const dependentVersions = [...new Set(dependents.map((x) => owners.get(x.d) ?? '(references)'))].sort();
    if (dependents.length > 0 && !opts.rebase) {
      throw new At1Error('E_INPUT', `version ${name} is the reference of ${dependentVersions.join(', ')} (${dependents.length} objects are encoded against it); use --rebase to re-encode them against another relative first`);
    }
    // From here on, objects become unreachable: readers that started before now are protected (gc.ts).
    await lock.assertHeld();
    await markRemoval(reg);
    // Deepest first would not matter for correctness (each replacement keeps its bytes); shallow first keeps chains short.
    dependents.sort((a, b) => a.h.depth - b.h.depth);
    for (const { d, h } of dependents) await rebaseObject(reg, reader, d, h, dropping);
    const reparented: string[] = [];
    for (const m of others) {
      if (m.parent !== name) continue;
      const updated: VersionManifest = { ...m, parent: target.parent };
      await reg.backend.put(manifestKey(m.name), serializeManifest(updated)); // atomic replace: the only in-place manifest change
      reparented.push(m.name);
    }
    await lock.assertHeld();
    await reg.backend.remove(manifestKey(name));
    const gc = await sweep(reg, lock, { only: neededBefore });
    return { removed: name, rebasedObjects: dependents.length, rebasedVersions: dependentVersions, reparented, gc };
  } finally {
    await lock.release();
  }
}
