/**
 * What the server says about versions: the listing, one version's files and
 * tensors (with stored bytes and the codec that won each tensor), the
 * commit id the Hub routes use, and revisions resolved to versions.
 *
 * A version's commit id is the first 40 hex digits of the SHA-256 of its
 * manifest as stored: it names exactly that version's content, looks like
 * a git commit to Hub clients (which cache snapshots under it), and a
 * client may pass it back as the revision.
 */
import { codecById, manifestDigests, manifestKey, nameProblem, parseManifest, tensorObjects, tensorsOf, tensorStoredBytes, type FamilyListing, type Registry, type VersionManifest } from '../index.js';
import { createHash } from 'node:crypto';
import { notFound } from './http-errors.js';

export interface TensorRow {
  name: string;
  file: string;
  dtype: string;
  shape: number[];
  bytes: number;
  sha256: string;
  storedBytes: number;
  /** Of storedBytes, what this version was the first to store (objects no older version names); the rest is shared with older versions. */
  newBytes: number;
  ratio: number;
  /** The codec holding most of the tensor's stored bytes. */
  codec: string;
  /** Stored bytes per codec. */
  codecs: Record<string, number>;
  packed: boolean;
}

export interface VersionDetail {
  name: string;
  parent: string | null;
  createdAt: string;
  layout: 'file' | 'directory';
  commit: string;
  rawBytes: number;
  storedBytes: number;
  ratio: number;
  files: { path: string; kind: 'safetensors' | 'blob'; size: number; sha256: string; tensors: number }[];
  tensors: TensorRow[];
}

interface CachedManifest {
  size: number;
  mtimeMs: number;
  m: VersionManifest;
  commit: string;
}

/**
 * Parsed manifests, per registry, checked against the stored file's size
 * and mtime on every use (one stat instead of a read and a parse per
 * request). A manifest is rewritten in place only when rm re-parents it,
 * which changes its mtime; its tensors and their digests never change.
 */
const manifestCache = new WeakMap<Registry, Map<string, CachedManifest>>();
const MANIFEST_CACHE_ENTRIES = 1024;

async function cachedManifest(reg: Registry, name: string): Promise<CachedManifest | undefined> {
  if (nameProblem(name) !== undefined) return undefined;
  const key = manifestKey(name);
  const st = await reg.backend.stat(key);
  if (!st) return undefined;
  let per = manifestCache.get(reg);
  if (!per) manifestCache.set(reg, (per = new Map()));
  const hit = per.get(name);
  if (hit && hit.size === st.size && hit.mtimeMs === st.mtimeMs) return hit;
  let bytes: Uint8Array;
  try {
    bytes = await reg.backend.read(key);
  } catch (e) {
    if ((e as { code?: string }).code === 'E_NOT_FOUND') return undefined; // removed between the stat and the read
    throw e;
  }
  const entry = { size: st.size, mtimeMs: st.mtimeMs, m: parseManifest(bytes, name), commit: createHash('sha256').update(bytes).digest('hex').slice(0, 40) };
  if (per.size >= MANIFEST_CACHE_ENTRIES) per.clear();
  per.set(name, entry);
  return entry;
}

export async function commitOf(reg: Registry, name: string): Promise<string> {
  const c = await cachedManifest(reg, name);
  if (!c) throw notFound(`version ${JSON.stringify(name)} is not in this repository`, 'RevisionNotFound');
  return c.commit;
}

const COMMIT = /^[0-9a-f]{40}$/;

/**
 * A revision as a version name: the name itself, a commit id, or `main` /
 * `HEAD` (the newest version, as a Hub repository's default branch is its
 * latest state). 404 RevisionNotFound otherwise.
 */
export async function resolveRevision(reg: Registry, rev: string): Promise<string> {
  if (nameProblem(rev) === undefined && (await reg.hasVersion(rev))) return rev;
  if (rev === 'main' || rev === 'HEAD') {
    const all = await reg.manifests();
    const newest = all[all.length - 1];
    if (newest) return newest.name;
  } else if (COMMIT.test(rev)) {
    for (const name of await reg.versionNames()) if ((await commitOf(reg, name)) === rev) return name;
  }
  throw notFound(`revision ${JSON.stringify(rev)} is not a version of this repository`, 'RevisionNotFound');
}

/** The manifest of a version that must exist: 404 RevisionNotFound naming it otherwise. */
export async function manifestOf(reg: Registry, name: string): Promise<VersionManifest> {
  const c = await cachedManifest(reg, name);
  if (!c) throw notFound(`version ${JSON.stringify(name)} is not in this repository`, 'RevisionNotFound');
  return c.m;
}

/** Codec names of objects, cached by digest and stored size (a rebase re-encodes an object in place, changing both codec and size). */
export class CodecCache {
  private readonly names = new Map<string, string>();

  async codecOf(reg: Registry, digest: string, size: number): Promise<string> {
    const key = `${digest}:${size}`;
    let name = this.names.get(key);
    if (name === undefined) {
      const h = await reg.reader.header(digest);
      name = codecById(h.codec, `object ${digest}`).name;
      if (this.names.size > 1_000_000) this.names.clear();
      this.names.set(key, name);
    }
    return name;
  }
}

export async function versionDetail(reg: Registry, m: VersionManifest, listing: FamilyListing, codecs: CodecCache): Promise<VersionDetail> {
  const sizes = await reg.store.list();
  const row = listing.versions.find((v) => v.name === m.name);
  // Objects an older version already named count as shared, as `list` attributes them (oldest first).
  const older = new Set<string>();
  for (const v of listing.versions) {
    if (v.name === m.name) break;
    for (const d of manifestDigests(await reg.manifest(v.name))) older.add(d);
  }
  const newSizes = new Map([...sizes].filter(([d]) => !older.has(d)));
  const tensors: TensorRow[] = [];
  for (const loc of tensorsOf(m)) {
    const t = loc.tensor;
    const storedBytes = tensorStoredBytes(loc, sizes);
    const newBytes = tensorStoredBytes(loc, newSizes);
    const by: Record<string, number> = {};
    for (const d of tensorObjects(loc)) {
      const size = sizes.get(d) ?? 0;
      const c = await codecs.codecOf(reg, d, size);
      by[c] = (by[c] ?? 0) + size;
    }
    const codec = Object.entries(by).sort((a, b) => b[1] - a[1])[0]?.[0] ?? 'none';
    tensors.push({ name: t.name, file: loc.file.path, dtype: t.dtype, shape: t.shape, bytes: t.length, sha256: t.sha256, storedBytes, newBytes, ratio: storedBytes / Math.max(1, t.length), codec, codecs: by, packed: t.pack !== undefined });
  }
  return {
    name: m.name,
    parent: m.parent,
    createdAt: m.createdAt,
    layout: m.layout,
    commit: await commitOf(reg, m.name),
    rawBytes: m.stats.rawBytes,
    storedBytes: row?.storedBytes ?? 0,
    ratio: row?.ratio ?? 0,
    files: m.files.map((f) => ({ path: f.path, kind: f.kind, size: f.size, sha256: f.sha256, tensors: f.kind === 'safetensors' ? f.tensors.length : 0 })),
    tensors,
  };
}

