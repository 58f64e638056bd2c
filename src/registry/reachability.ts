/**
 * What the registry's manifests need: every object a manifest names, and
 * every object those reference, transitively. gc keeps exactly this set;
 * rm computes what a version alone holds; fsck checks the set is whole.
 *
 * Walks object headers only (one small range read per object), never
 * payloads. References must point to strictly shallower objects (FORMAT.md
 * §4), so the walk terminates even on a damaged store; problems found on
 * the way are collected, not thrown.
 */
import { At1Error } from '../errors.js';
import type { ObjectHeader } from '../format/object.js';
import type { ChunkReader } from './chunk-reader.js';
import { manifestDigests, type VersionManifest } from './manifest.js';

export interface ObjectProblem {
  object: string;
  kind: 'missing' | 'bad-header' | 'bad-reference';
  message: string;
}

export interface Reachable {
  /** Every needed object with its header (absent when unreadable). */
  objects: Map<string, ObjectHeader | undefined>;
  problems: ObjectProblem[];
}

export async function reachable(reader: ChunkReader, manifests: readonly VersionManifest[]): Promise<Reachable> {
  const objects = new Map<string, ObjectHeader | undefined>();
  const problems: ObjectProblem[] = [];
  const stack: string[] = [];
  for (const m of manifests) for (const d of manifestDigests(m)) stack.push(d);
  while (stack.length > 0) {
    const d = stack.pop()!;
    if (objects.has(d)) continue;
    let h: ObjectHeader | undefined;
    try {
      h = await reader.header(d);
    } catch (e) {
      const missing = e instanceof At1Error && e.code === 'E_NOT_FOUND';
      problems.push({ object: d, kind: missing ? 'missing' : 'bad-header', message: missing ? `object ${d} is missing` : (e as Error).message });
    }
    objects.set(d, h);
    for (const r of h?.refs ?? []) stack.push(r.digest);
  }
  // Depth order: a reference must be strictly shallower than the object naming it (no cycles).
  for (const [d, h] of objects) {
    for (const r of h?.refs ?? []) {
      const rh = objects.get(r.digest);
      if (rh && rh.depth >= h!.depth) problems.push({ object: d, kind: 'bad-reference', message: `object ${d} (depth ${h!.depth}) references ${r.digest} of depth ${rh.depth}: not shallower (a cycle or a damaged header)` });
    }
  }
  return { objects, problems };
}
