/**
 * fsck: is the registry whole? Structure (always): the configuration and
 * every manifest parse; parents exist and form no cycle; every object a
 * manifest needs exists, has a valid header of the length the manifest
 * expects, respects the depth bound and references only shallower objects.
 * Data (--read-data): every needed object is decoded and re-hashed against
 * its name. Also reported, not counted as damage: orphans (objects nothing
 * needs) and leftovers of interrupted writes in tmp/ — gc removes both.
 *
 * Status: 'clean' (exit 0), 'damaged' (exit 1: some version cannot be
 * restored as recorded), 'unusable' (exit 2: not a readable registry).
 */
import { At1Error } from '../errors.js';
import { ChunkReader } from './chunk-reader.js';
import { parseManifest, type VersionManifest } from './manifest.js';
import { reachable } from './reachability.js';
import { manifestKey, openRegistry, PENDING_DIR, type Registry } from './registry.js';
import { blobChunks, dtypeBits, elementCount, tensorChunks } from './geometry.js';
import { packChunks } from './packs.js';
import type { ProgressFn } from './progress.js';
import type { RegistrySettings } from './settings.js';

export interface FsckProblem {
  kind: string;
  version?: string;
  tensor?: string;
  object?: string;
  message: string;
}

export interface FsckReport {
  status: 'clean' | 'damaged' | 'unusable';
  versions: number;
  objects: { needed: number; stored: number; orphans: number; orphanBytes: number; checkedData: number };
  leftovers: string[];
  /** Files that are neither manifests (in versions/) nor objects (in objects/): ignored by every command, reported here. */
  strays: string[];
  problems: FsckProblem[];
}

export interface FsckOptions {
  readData?: boolean;
  onProgress?: ProgressFn;
  /** Run-time settings of the registry opened (lease timings). */
  settings?: Partial<RegistrySettings>;
}

/** Expected raw length of every chunk a manifest names (digest -> length), with what it belongs to. */
function expectedChunks(m: VersionManifest): Map<string, { length: number; tensor?: string }> {
  const out = new Map<string, { length: number; tensor?: string }>();
  for (const f of m.files) {
    const blob = f.kind === 'blob' ? f : f.header;
    for (const s of blobChunks(blob.size, blob.chunkBytes)) out.set(blob.chunks[s.index]!, { length: s.length });
    if (f.kind !== 'safetensors') continue;
    for (const t of f.tensors) {
      if (t.pack) continue; // its bytes are in a pack chunk, below
      for (const s of tensorChunks(elementCount(t.shape), dtypeBits(t.dtype), f.chunkElements)) out.set(t.chunks[s.index]!, { length: s.length, tensor: t.name });
    }
    // A pack chunk is named by the first tensor whose bytes it holds.
    const firstTensor = (f.packs ?? []).map((k) => new Array<string | undefined>(k.chunks.length));
    for (const t of f.tensors) {
      if (!t.pack) continue;
      const [i, at] = t.pack;
      const chunkBytes = (f.chunkElements * dtypeBits(t.dtype)) / 8;
      const names = firstTensor[i]!;
      for (let j = Math.floor(at / chunkBytes); j * chunkBytes < at + t.length && j < names.length; j++) names[j] ??= t.name;
    }
    for (const [i, k] of (f.packs ?? []).entries()) {
      for (const s of packChunks(k, f.chunkElements)) out.set(k.chunks[s.index]!, { length: s.length, tensor: firstTensor[i]![s.index] });
    }
  }
  return out;
}

/**
 * Why an unreachable object is damaged, or undefined: its header must parse,
 * and with `readData` it must decode to its name. An orphan whose references
 * are gone (an interrupted gc deletes in any order) cannot be decoded, but
 * that is not damage: nothing can use it, and dedup verifies before reuse.
 */
async function orphanProblem(reader: ChunkReader, d: string, readData: boolean): Promise<string | undefined> {
  try {
    const h = await reader.header(d);
    if (readData) await reader.read(d, h.rawLength);
    return undefined;
  } catch (e) {
    if (e instanceof At1Error && e.code === 'E_NOT_FOUND') return undefined; // a reference gone, or the orphan itself
    return e instanceof Error ? e.message : String(e);
  }
}

/**
 * Check a registry: an open one, or a location (a path, file://, memory:NAME)
 * opened here, so a registry whose configuration cannot be read is reported
 * as 'unusable' rather than thrown.
 */
export async function fsckRegistry(target: Registry | string, opts: FsckOptions = {}): Promise<FsckReport> {
  const report: FsckReport = { status: 'clean', versions: 0, objects: { needed: 0, stored: 0, orphans: 0, orphanBytes: 0, checkedData: 0 }, leftovers: [], strays: [], problems: [] };
  let reg: Registry;
  try {
    reg = typeof target === 'string' ? await openRegistry(target, { settings: opts.settings }) : target;
  } catch (e) {
    report.status = 'unusable';
    report.problems.push({ kind: 'config', message: (e as Error).message });
    return report;
  }
  // A reader lease: a concurrent rm or gc leaves alone what this check is reading (FORMAT.md §8b).
  return reg.reading('fsck', [], () => checkRegistry(reg, report, opts));
}

async function checkRegistry(reg: Registry, report: FsckReport, opts: FsckOptions): Promise<FsckReport> {
  // Manifests: each parsed on its own, so one bad manifest names itself and does not hide the rest.
  const manifests: VersionManifest[] = [];
  const { names, strays } = await reg.versionFiles();
  report.strays = [...strays, ...(await reg.store.strays())];
  for (const name of names) {
    try {
      manifests.push(parseManifest(await reg.backend.read(manifestKey(name)), name));
    } catch (e) {
      report.problems.push({ kind: 'manifest', version: name, message: e instanceof At1Error ? e.message : String(e) });
    }
  }
  report.versions = manifests.length;
  const byName = new Map(manifests.map((m) => [m.name, m]));
  for (const m of manifests) {
    if (m.parent !== null && !byName.has(m.parent)) report.problems.push({ kind: 'parent', version: m.name, message: `version ${m.name} names parent ${m.parent}, which does not exist` });
    const seen = new Set<string>([m.name]);
    for (let p = m.parent; p !== null; p = byName.get(p)?.parent ?? null) {
      if (seen.has(p)) {
        report.problems.push({ kind: 'parent-cycle', version: m.name, message: `the parents of ${m.name} form a cycle through ${p}` });
        break;
      }
      seen.add(p);
    }
  }
  // Objects: presence, headers, lengths, depths, reference order.
  const reader = new ChunkReader(reg.store); // its own: nothing decoded earlier is trusted
  const { objects, problems } = await reachable(reader, manifests);
  report.objects.needed = objects.size;
  const owners = new Map<string, { version: string; tensor?: string; length: number }>();
  for (const m of manifests) for (const [d, e] of expectedChunks(m)) if (!owners.has(d)) owners.set(d, { version: m.name, ...e });
  for (const p of problems) report.problems.push({ kind: p.kind, object: p.object, version: owners.get(p.object)?.version, tensor: owners.get(p.object)?.tensor, message: p.message });
  for (const [d, h] of objects) {
    if (!h) continue;
    const own = owners.get(d);
    if (own && h.rawLength !== own.length) report.problems.push({ kind: 'length', object: d, version: own.version, tensor: own.tensor, message: `object ${d} holds ${h.rawLength} bytes, version ${own.version} expects ${own.length}` });
    if (h.depth > reg.config.maxChainDepth) report.problems.push({ kind: 'depth', object: d, message: `object ${d} has chain depth ${h.depth}, above the registry's bound ${reg.config.maxChainDepth}` });
  }
  if (opts.readData) {
    let done = 0;
    for (const [d, h] of objects) {
      if (!h) continue;
      try {
        await reader.read(d, h.rawLength);
      } catch (e) {
        const own = owners.get(d);
        report.problems.push({ kind: 'data', object: d, version: own?.version, tensor: own?.tensor, message: (e as Error).message });
      }
      report.objects.checkedData++;
      opts.onProgress?.({ label: 'fsck --read-data', done: ++done, total: objects.size, unit: 'objects' });
    }
  }
  const stored = await reg.store.list();
  report.objects.stored = stored.size;
  for (const [d, size] of stored) {
    if (objects.has(d)) continue;
    report.objects.orphans++;
    report.objects.orphanBytes += size;
    // An orphan is harmless only while it is what its name says: a damaged one is damage (it once fooled dedup).
    const bad = await orphanProblem(reader, d, opts.readData === true);
    if (bad) report.problems.push({ kind: 'orphan', object: d, message: `orphan object ${d} is damaged: ${bad}; 'at1 registry gc' removes it` });
  }
  for await (const { key } of reg.backend.leftovers()) report.leftovers.push(key);
  // A pending manifest is a writer publishing right now, or (once older than gc's grace period) the leftover of one that died doing so.
  for await (const { key } of reg.backend.list(PENDING_DIR)) report.leftovers.push(key);
  if (report.problems.length > 0) report.status = 'damaged';
  return report;
}
