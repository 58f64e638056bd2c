/**
 * Version manifests (docs/FORMAT.md, "Manifests"): one JSON document per
 * version at `versions/NAME.json`, written once, after all the objects it
 * names. A manifest read from disk is untrusted: `parseManifest` checks every
 * field's type and bound before anything uses it.
 */
import { At1Error } from '../errors.js';
import { dtypeInfo } from '../format/dtype.js';
import { isSha256Hex } from '../util/hash.js';
import { nameProblem } from './names.js';

export const MANIFEST_FORMAT = 'at1.version';
export const MANIFEST_FORMAT_VERSION = 1;
/**
 * The format version of a manifest that uses packs (docs/FORMAT.md §6):
 * builds before packs refuse it with E_UNSUPPORTED instead of misreading it.
 * A manifest without packs is still written as version 1 (serializeManifest),
 * so every build reads it.
 */
export const MANIFEST_PACKS_FORMAT_VERSION = 2;

/*
 * The limits a manifest's parser enforces. add checks its input against
 * these same constants and rule functions before it takes the lock or writes
 * anything (src/registry/model-dir.ts, checkManifestRules), so the writer can
 * never publish a manifest its own reader refuses.
 */

/** A tensor name, in UTF-16 code units (JavaScript string length). */
export const MAX_TENSOR_NAME_LENGTH = 65536;
/** A file path within a version, in UTF-16 code units. */
export const MAX_PATH_LENGTH = 1024;
/** One segment of a file path, in UTF-8 bytes: a restore must be able to create it (NAME_MAX on Linux and macOS). */
export const MAX_PATH_SEGMENT_BYTES = 255;
/** Characters no path segment may hold: a backslash and C0 control characters. */
export const PATH_SEGMENT_FORBIDDEN = /[\\\u0000-\u001f]/;

/** Why a tensor name is refused in a manifest, or undefined when it is acceptable. */
export function tensorNameProblem(name: string): string | undefined {
  if (name.length > MAX_TENSOR_NAME_LENGTH) return `tensor name of ${name.length} characters exceeds the ${MAX_TENSOR_NAME_LENGTH} limit`;
  return undefined;
}

/** Why a file path is refused in a manifest, or undefined when it is acceptable: relative, '/'-separated, no empty, '.' or '..' segment, bounded. */
export function pathProblem(path: string): string | undefined {
  if (path.length > MAX_PATH_LENGTH) return `path of ${path.length} characters exceeds the ${MAX_PATH_LENGTH} limit`;
  if (path.startsWith('/')) return 'it is absolute';
  for (const seg of path.split('/')) {
    if (seg === '' || seg === '.' || seg === '..') return `it has an empty, "." or ".." segment`;
    if (PATH_SEGMENT_FORBIDDEN.test(seg)) return 'it has a backslash or a control character';
    const bytes = Buffer.byteLength(seg, 'utf8');
    if (bytes > MAX_PATH_SEGMENT_BYTES) return `path segment of ${bytes} UTF-8 bytes exceeds the ${MAX_PATH_SEGMENT_BYTES} limit`;
  }
  return undefined;
}

export interface TensorEntry {
  name: string;
  dtype: string;
  shape: number[];
  /** Byte offset of the tensor's data from the start of the file's data section. */
  offset: number;
  length: number;
  /** SHA-256 of the tensor's raw bytes. */
  sha256: string;
  /** Object digests of the tensor's chunks, in order; each is the SHA-256 of that chunk's raw bytes. */
  chunks: string[];
}

export interface SafetensorsFile {
  kind: 'safetensors';
  /** Path of the file within the version ("model.safetensors" for a one-file version). */
  path: string;
  size: number;
  sha256: string;
  /** The header bytes (length prefix + JSON + padding), verbatim, as a blob. */
  header: BlobRef;
  /** Elements per chunk for this file's tensors (the last chunk of a tensor may be shorter). */
  chunkElements: number;
  /** In data order: tensor i+1 starts where tensor i ends. */
  tensors: TensorEntry[];
}

export interface BlobRef {
  size: number;
  sha256: string;
  chunkBytes: number;
  chunks: string[];
}

export interface BlobFile extends BlobRef {
  kind: 'blob';
  path: string;
}

export type FileEntry = SafetensorsFile | BlobFile;

export interface VersionManifest {
  format: typeof MANIFEST_FORMAT;
  formatVersion: typeof MANIFEST_FORMAT_VERSION;
  name: string;
  /** The version this one is delta-coded against, or null for a standalone version. */
  parent: string | null;
  createdAt: string;
  /** 'file': one safetensors file; 'directory': a model directory (files keep their relative paths). */
  layout: 'file' | 'directory';
  files: FileEntry[];
  /** Bytes of the original version and bytes of the objects this version added when it was stored. */
  stats: { rawBytes: number; newObjectBytes: number; newObjects: number };
}

/* ---- validation of untrusted JSON ---- */

type Json = unknown;

class Checker {
  constructor(private readonly what: string) {}
  fail(path: string, msg: string): never {
    throw new At1Error('E_CORRUPT', `manifest ${this.what}: ${path} ${msg}`);
  }
  obj(v: Json, path: string): Record<string, Json> {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) this.fail(path, 'is not an object');
    return v as Record<string, Json>;
  }
  str(v: Json, path: string, max = 4096): string {
    if (typeof v !== 'string' || v.length > max) this.fail(path, 'is not a string of bounded length');
    return v;
  }
  int(v: Json, path: string): number {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) this.fail(path, 'is not a non-negative integer');
    return v;
  }
  digest(v: Json, path: string): string {
    if (!isSha256Hex(v)) this.fail(path, 'is not a SHA-256 digest');
    return v;
  }
  arr(v: Json, path: string): Json[] {
    if (!Array.isArray(v)) this.fail(path, 'is not an array');
    return v;
  }
  relPath(v: Json, path: string): string {
    const s = this.str(v, path, MAX_PATH_LENGTH);
    const why = pathProblem(s);
    if (why) this.fail(path, `is not a safe relative path (${why}): ${JSON.stringify(s)}`);
    return s;
  }
}

function ceilDiv(a: number, b: number): number {
  return Math.floor((a + b - 1) / b);
}

function parseBlobRef(c: Checker, o: Record<string, Json>, p: string): BlobRef {
  const size = c.int(o.size, `${p}.size`);
  const chunkBytes = c.int(o.chunkBytes, `${p}.chunkBytes`);
  if (chunkBytes === 0) c.fail(`${p}.chunkBytes`, 'is zero');
  const chunks = c.arr(o.chunks, `${p}.chunks`).map((d, i) => c.digest(d, `${p}.chunks[${i}]`));
  if (chunks.length !== ceilDiv(size, chunkBytes)) c.fail(`${p}.chunks`, `has ${chunks.length} entries for ${size} bytes`);
  return { size, sha256: c.digest(o.sha256, `${p}.sha256`), chunkBytes, chunks };
}

function parseTensor(c: Checker, v: Json, p: string, chunkElements: number): TensorEntry {
  const o = c.obj(v, p);
  const dtype = c.str(o.dtype, `${p}.dtype`, 16);
  const info = dtypeInfo(dtype);
  if (!info) c.fail(`${p}.dtype`, `is unknown: ${dtype}`);
  const shape = c.arr(o.shape, `${p}.shape`).map((d, i) => c.int(d, `${p}.shape[${i}]`));
  const length = c.int(o.length, `${p}.length`);
  const elements = shape.reduce((a, b) => a * BigInt(b), 1n);
  if (elements * BigInt(info.bits) !== BigInt(length) * 8n) c.fail(`${p}.length`, 'does not match dtype and shape');
  const chunks = c.arr(o.chunks, `${p}.chunks`).map((d, i) => c.digest(d, `${p}.chunks[${i}]`));
  const expected = elements === 0n ? 0 : ceilDiv(Number(elements), chunkElements);
  if (chunks.length !== expected) c.fail(`${p}.chunks`, `has ${chunks.length} entries, expected ${expected}`);
  return {
    name: c.str(o.name, `${p}.name`, MAX_TENSOR_NAME_LENGTH),
    dtype,
    shape,
    offset: c.int(o.offset, `${p}.offset`),
    length,
    sha256: c.digest(o.sha256, `${p}.sha256`),
    chunks,
  };
}

function parseFile(c: Checker, v: Json, p: string): FileEntry {
  const o = c.obj(v, p);
  const path = c.relPath(o.path, `${p}.path`);
  if (o.kind === 'blob') return { kind: 'blob', path, ...parseBlobRef(c, o, p) };
  if (o.kind !== 'safetensors') c.fail(`${p}.kind`, 'is neither "blob" nor "safetensors"');
  const chunkElements = c.int(o.chunkElements, `${p}.chunkElements`);
  if (chunkElements === 0 || chunkElements % 8 !== 0) c.fail(`${p}.chunkElements`, 'is not a positive multiple of 8');
  const header = parseBlobRef(c, c.obj(o.header, `${p}.header`), `${p}.header`);
  const tensors = c.arr(o.tensors, `${p}.tensors`).map((t, i) => parseTensor(c, t, `${p}.tensors[${i}]`, chunkElements));
  let at = 0;
  for (const t of tensors) {
    if (t.offset !== at) c.fail(`${p}.tensors`, `are not contiguous at ${JSON.stringify(t.name)}`);
    at += t.length;
  }
  const size = c.int(o.size, `${p}.size`);
  if (size !== header.size + at) c.fail(`${p}.size`, 'does not equal header plus tensor bytes');
  return { kind: 'safetensors', path, size, sha256: c.digest(o.sha256, `${p}.sha256`), header, chunkElements, tensors };
}

/** Parse and check an untrusted manifest. `expectedName` is the name its key says it has. */
export function parseManifest(bytes: Uint8Array, expectedName: string): VersionManifest {
  let json: Json;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (e) {
    throw new At1Error('E_CORRUPT', `manifest ${expectedName}: not valid UTF-8 JSON (${(e as Error).message})`);
  }
  const c = new Checker(expectedName);
  const o = c.obj(json, '(root)');
  if (o.format !== MANIFEST_FORMAT) c.fail('format', `is not ${MANIFEST_FORMAT}`);
  if (o.formatVersion !== MANIFEST_FORMAT_VERSION) {
    throw new At1Error('E_UNSUPPORTED', `manifest ${expectedName}: format version ${String(o.formatVersion)} is not supported by this build`);
  }
  const name = c.str(o.name, 'name', 256);
  if (name !== expectedName || nameProblem(name)) c.fail('name', `is ${JSON.stringify(name)}, expected ${JSON.stringify(expectedName)}`);
  const parent = o.parent === null ? null : c.str(o.parent, 'parent', 256);
  if (parent !== null && nameProblem(parent)) c.fail('parent', 'is not a valid version name');
  if (o.layout !== 'file' && o.layout !== 'directory') c.fail('layout', 'is neither "file" nor "directory"');
  const files = c.arr(o.files, 'files').map((f, i) => parseFile(c, f, `files[${i}]`));
  if (files.length === 0) c.fail('files', 'is empty');
  if (new Set(files.map((f) => f.path)).size !== files.length) c.fail('files', 'has a path twice');
  // No file may sit where another file's directory would have to be ("x" and "x/y"): a restore could not create both.
  const paths = new Set(files.map((f) => f.path));
  for (const f of files) {
    const segs = f.path.split('/');
    for (let i = 1; i < segs.length; i++) if (paths.has(segs.slice(0, i).join('/'))) c.fail('files', `has ${JSON.stringify(segs.slice(0, i).join('/'))} both as a file and as the directory of ${JSON.stringify(f.path)}`);
  }
  // A one-file version is exactly one safetensors file: restore writes files[0] and verify checks all, so they must be the same thing.
  if (o.layout === 'file' && (files.length !== 1 || files[0]!.kind !== 'safetensors')) c.fail('files', 'of a "file" version must be exactly one safetensors file');
  const s = c.obj(o.stats, 'stats');
  return {
    format: MANIFEST_FORMAT,
    formatVersion: MANIFEST_FORMAT_VERSION,
    name,
    parent,
    createdAt: c.str(o.createdAt, 'createdAt', 64),
    layout: o.layout as VersionManifest["layout"],
    files,
    stats: { rawBytes: c.int(s.rawBytes, 'stats.rawBytes'), newObjectBytes: c.int(s.newObjectBytes, 'stats.newObjectBytes'), newObjects: c.int(s.newObjects, 'stats.newObjects') },
  };
}

export function serializeManifest(m: VersionManifest): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(m) + '\n');
}

/** Every object digest a manifest names directly (not the references inside objects). */
export function manifestDigests(m: VersionManifest): string[] {
  const out: string[] = [];
  for (const f of m.files) {
    if (f.kind === 'blob') out.push(...f.chunks);
    else {
      out.push(...f.header.chunks);
      for (const t of f.tensors) out.push(...t.chunks);
    }
  }
  return out;
}
