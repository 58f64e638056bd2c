/**
 * Version manifests (docs/FORMAT.md, "Manifests"): one JSON document per
 * version at `versions/NAME.json`, written once, after all the objects it
 * names. A manifest read from disk is untrusted: `parseManifest` checks every
 * field's type and bound before anything uses it.
 */
import { At1Error } from '../errors.js';
import { dtypeInfo } from '../format/dtype.js';
import { describeJson } from '../format/strict-json.js';
import { isSha256Hex } from '../util/hash.js';
import { nameProblem } from './names.js';
import { sketchable, type TensorSketch, type VersionSketch } from './sketch.js';
import { dtypeBits } from '../format/dtype.js';

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
  /** Object digests of the tensor's chunks, in order; each is the SHA-256 of that chunk's raw bytes. Empty for a packed tensor. */
  chunks: string[];
  /** A packed tensor (formatVersion 2): [index into its file's `packs`, byte offset of its bytes in that pack]. */
  pack?: [number, number];
}

/**
 * A pack (formatVersion 2): the bytes of a file's small tensors of one dtype,
 * concatenated in data order, stored like one tensor of `length` bytes of
 * `dtype`: chunk i covers elements [i·C, min((i+1)·C, n)) with C the file's
 * chunkElements, so pack chunks are coded with the same codecs, and against
 * the parent's pack, as tensor chunks are.
 */
export interface PackRef {
  dtype: string;
  /** Bytes: the sum of the lengths of the tensors in it. */
  length: number;
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
  /** formatVersion 2 only, and only when some tensor is packed: at most one pack per dtype. */
  packs?: PackRef[];
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
  formatVersion: typeof MANIFEST_FORMAT_VERSION | typeof MANIFEST_PACKS_FORMAT_VERSION;
  name: string;
  /** The version this one is delta-coded against, or null for a standalone version. */
  parent: string | null;
  createdAt: string;
  /** 'file': one safetensors file; 'directory': a model directory (files keep their relative paths). */
  layout: 'file' | 'directory';
  files: FileEntry[];
  /** Bytes of the original version and bytes of the objects this version added when it was stored. */
  stats: { rawBytes: number; newObjectBytes: number; newObjects: number };
  /** Sampled values of a few tensors (sketch.ts): how later adds rank this version as a reference without decoding it. Optional: older manifests have none. */
  sketch?: VersionSketch;
}

/** At most this many tensors in a sketch, each of at most this many base64 characters (256 F32 values). */
export const MAX_SKETCH_TENSORS = 64;
const MAX_SKETCH_CHARS = 1368;

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

/**
 * Arrays are checked element by element and then kept as they are (not
 * copied): a manifest of 2^18 tensors then costs one tree, not two.
 */
function intArray(c: Checker, v: Json, p: string): number[] {
  const a = c.arr(v, p);
  for (let i = 0; i < a.length; i++) c.int(a[i], `${p}[${i}]`);
  return a as number[];
}

function digestArray(c: Checker, v: Json, p: string): string[] {
  const a = c.arr(v, p);
  for (let i = 0; i < a.length; i++) c.digest(a[i], `${p}[${i}]`);
  return a as string[];
}

/** `packs`: whether the manifest's format version has packs (2); a version 1 manifest is read exactly as before packs existed. */
function parseTensor(c: Checker, v: Json, p: string, chunkElements: number, packs = false): TensorEntry {
  const o = c.obj(v, p);
  const dtype = c.str(o.dtype, `${p}.dtype`, 16);
  const info = dtypeInfo(dtype);
  if (!info) c.fail(`${p}.dtype`, `is unknown: ${dtype}`);
  const shape = intArray(c, o.shape, `${p}.shape`);
  const length = c.int(o.length, `${p}.length`);
  const elements = shape.reduce((a, b) => a * BigInt(b), 1n);
  if (elements * BigInt(info.bits) !== BigInt(length) * 8n) c.fail(`${p}.length`, 'does not match dtype and shape');
  const chunks = digestArray(c, o.chunks, `${p}.chunks`);
  const packed = packs && o.pack !== undefined;
  const expected = elements === 0n || packed ? 0 : ceilDiv(Number(elements), chunkElements);
  if (chunks.length !== expected) c.fail(`${p}.chunks`, `has ${chunks.length} entries, expected ${expected}${packed ? ' (the tensor is packed)' : ''}`);
  const t: TensorEntry = {
    name: c.str(o.name, `${p}.name`, MAX_TENSOR_NAME_LENGTH),
    dtype: info.name, // the table's string, shared by every tensor of the dtype
    shape,
    offset: c.int(o.offset, `${p}.offset`),
    length,
    sha256: c.digest(o.sha256, `${p}.sha256`),
    chunks,
  };
  if (packed) {
    const at = intArray(c, o.pack, `${p}.pack`);
    if (at.length !== 2) c.fail(`${p}.pack`, 'is not [pack index, byte offset]');
    if (length === 0) c.fail(`${p}.pack`, 'is set on an empty tensor');
    t.pack = at as [number, number];
  }
  return t;
}

function parsePack(c: Checker, v: Json, p: string, chunkElements: number): PackRef {
  const o = c.obj(v, p);
  const dtype = c.str(o.dtype, `${p}.dtype`, 16);
  const info = dtypeInfo(dtype);
  if (!info) c.fail(`${p}.dtype`, `is unknown: ${dtype}`);
  const length = c.int(o.length, `${p}.length`);
  if (length === 0 || length > Number.MAX_SAFE_INTEGER / 8 || (length * 8) % info.bits !== 0) c.fail(`${p}.length`, `is not a positive whole number of ${dtype} elements`);
  const chunks = digestArray(c, o.chunks, `${p}.chunks`);
  const expected = ceilDiv((length * 8) / info.bits, chunkElements);
  if (chunks.length !== expected) c.fail(`${p}.chunks`, `has ${chunks.length} entries, expected ${expected}`);
  return { dtype: info.name, length, chunks };
}

/** Each pack is exactly its tensors, in data order, back to back: every pack byte belongs to one tensor of the pack's dtype. */
function checkPacks(c: Checker, p: string, packs: PackRef[], tensors: TensorEntry[]): void {
  const filled = packs.map(() => 0);
  const dtypes = new Set<string>();
  for (const [i, k] of packs.entries()) {
    if (dtypes.has(k.dtype)) c.fail(`${p}.packs[${i}]`, `is a second pack of ${k.dtype}`);
    dtypes.add(k.dtype);
  }
  for (const t of tensors) {
    if (!t.pack) continue;
    const [i, at] = t.pack;
    const k = packs[i];
    if (!k) c.fail(`${p}.tensors`, `${JSON.stringify(t.name)} names pack ${i}, which does not exist`);
    if (k.dtype !== t.dtype) c.fail(`${p}.tensors`, `${JSON.stringify(t.name)} is ${t.dtype} but pack ${i} is ${k.dtype}`);
    if (at !== filled[i]) c.fail(`${p}.tensors`, `${JSON.stringify(t.name)} sits at byte ${at} of pack ${i}; the pack's tensors must follow one another in data order (expected ${filled[i]})`);
    filled[i] = at + t.length;
  }
  for (const [i, k] of packs.entries()) if (filled[i] !== k.length) c.fail(`${p}.packs[${i}].length`, `is ${k.length}, but its tensors hold ${filled[i]} bytes`);
}

/** Packed tensors of parsed manifests, with the file whose packs they sit in (see packHome). */
const PACK_HOMES = new WeakMap<TensorEntry, SafetensorsFile>();

/**
 * The file a packed tensor of a parsed manifest belongs to, so a caller
 * holding only the tensor (a relative found by name) can reach its pack.
 * Undefined for unpacked tensors and for entries not made by parseManifest.
 */
export function packHome(t: TensorEntry): SafetensorsFile | undefined {
  return PACK_HOMES.get(t);
}

/** A packed tensor's pack and byte offset in it, or undefined when `t` is not packed. */
export function packOf(f: SafetensorsFile, t: TensorEntry): { pack: PackRef; offset: number } | undefined {
  if (!t.pack) return undefined;
  const pack = f.packs?.[t.pack[0]];
  if (!pack) throw new At1Error('E_CORRUPT', `tensor ${JSON.stringify(t.name)} of ${f.path} names pack ${t.pack[0]}, which the file does not have`);
  return { pack, offset: t.pack[1] };
}

function parseFile(c: Checker, v: Json, p: string, version: number = MANIFEST_FORMAT_VERSION): FileEntry {
  const o = c.obj(v, p);
  const path = c.relPath(o.path, `${p}.path`);
  if (o.kind === 'blob') return { kind: 'blob', path, ...parseBlobRef(c, o, p) };
  if (o.kind !== 'safetensors') c.fail(`${p}.kind`, 'is neither "blob" nor "safetensors"');
  const chunkElements = c.int(o.chunkElements, `${p}.chunkElements`);
  if (chunkElements === 0 || chunkElements % 8 !== 0) c.fail(`${p}.chunkElements`, 'is not a positive multiple of 8');
  const header = parseBlobRef(c, c.obj(o.header, `${p}.header`), `${p}.header`);
  const withPacks = version >= MANIFEST_PACKS_FORMAT_VERSION;
  let packs: PackRef[] | undefined;
  if (withPacks && o.packs !== undefined) {
    const raw = c.arr(o.packs, `${p}.packs`);
    if (raw.length === 0) c.fail(`${p}.packs`, 'is empty (a file without packs has no "packs")');
    packs = raw.map((k, i) => parsePack(c, k, `${p}.packs[${i}]`, chunkElements));
  }
  const raw = c.arr(o.tensors, `${p}.tensors`);
  const tensors: TensorEntry[] = new Array<TensorEntry>(raw.length);
  for (let i = 0; i < raw.length; i++) {
    tensors[i] = parseTensor(c, raw[i], `${p}.tensors[${i}]`, chunkElements, withPacks);
    raw[i] = null; // the JSON object is no longer needed: keep one record per tensor, not two
  }
  let at = 0;
  for (const t of tensors) {
    if (t.offset !== at) c.fail(`${p}.tensors`, `are not contiguous at ${JSON.stringify(t.name)}`);
    at += t.length;
  }
  const size = c.int(o.size, `${p}.size`);
  if (size !== header.size + at) c.fail(`${p}.size`, 'does not equal header plus tensor bytes');
  const sha256 = c.digest(o.sha256, `${p}.sha256`);
  if (!packs) {
    if (tensors.some((t) => t.pack)) c.fail(`${p}.tensors`, 'name a pack, but the file has no "packs"');
    return { kind: 'safetensors', path, size, sha256, header, chunkElements, tensors };
  }
  checkPacks(c, p, packs, tensors);
  const file: SafetensorsFile = { kind: 'safetensors', path, size, sha256, header, chunkElements, packs, tensors };
  for (const t of tensors) if (t.pack) PACK_HOMES.set(t, file);
  return file;
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
  if (o.formatVersion !== MANIFEST_FORMAT_VERSION && o.formatVersion !== MANIFEST_PACKS_FORMAT_VERSION) {
    throw new At1Error('E_UNSUPPORTED', `manifest ${expectedName}: format version ${describeJson(o.formatVersion)} is not supported by this build`);
  }
  const declared = o.formatVersion as VersionManifest['formatVersion'];
  const name = c.str(o.name, 'name', 256);
  if (name !== expectedName || nameProblem(name)) c.fail('name', `is ${JSON.stringify(name)}, expected ${JSON.stringify(expectedName)}`);
  const parent = o.parent === null ? null : c.str(o.parent, 'parent', 256);
  if (parent !== null && nameProblem(parent)) c.fail('parent', 'is not a valid version name');
  if (o.layout !== 'file' && o.layout !== 'directory') c.fail('layout', 'is neither "file" nor "directory"');
  const files = c.arr(o.files, 'files').map((f, i) => parseFile(c, f, `files[${i}]`, declared));
  // The version its content needs (a version-2 manifest without packs reads as version 1): what serializeManifest writes back.
  const formatVersion = manifestFormatVersion({ files });
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
  const sketch = o.sketch === undefined ? undefined : parseSketch(c, o.sketch);
  return {
    format: MANIFEST_FORMAT,
    formatVersion,
    name,
    parent,
    createdAt: c.str(o.createdAt, 'createdAt', 64),
    layout: o.layout as VersionManifest["layout"],
    files,
    stats: { rawBytes: c.int(s.rawBytes, 'stats.rawBytes'), newObjectBytes: c.int(s.newObjectBytes, 'stats.newObjectBytes'), newObjects: c.int(s.newObjects, 'stats.newObjects') },
    ...(sketch ? { sketch } : {}),
  };
}

function parseSketch(c: Checker, v: Json): VersionSketch {
  const o = c.obj(v, 'sketch');
  const list = c.arr(o.tensors, 'sketch.tensors');
  if (list.length > MAX_SKETCH_TENSORS) c.fail('sketch.tensors', `has ${list.length} entries (at most ${MAX_SKETCH_TENSORS})`);
  const tensors = list.map((t, i): TensorSketch => {
    const p = `sketch.tensors[${i}]`;
    const e = c.obj(t, p);
    const dtype = c.str(e.dtype, `${p}.dtype`, 16);
    if (!sketchable(dtype)) c.fail(`${p}.dtype`, `is not F32, F16 or BF16: ${dtype}`);
    const values = c.str(e.values, `${p}.values`, MAX_SKETCH_CHARS);
    const bytes = Buffer.from(values, 'base64');
    if (bytes.toString('base64') !== values || bytes.length % (dtypeBits(dtype) / 8) !== 0) c.fail(`${p}.values`, 'is not base64 of whole values');
    const step = c.int(e.step, `${p}.step`);
    if (step === 0) c.fail(`${p}.step`, 'is zero');
    return { name: c.str(e.name, `${p}.name`), dtype, start: c.int(e.start, `${p}.start`), step, values };
  });
  return { tensors };
}

/** The lowest format version that can express `m`: 2 when a file has packs, else 1 (readable by every build). */
export function manifestFormatVersion(m: Pick<VersionManifest, 'files'>): VersionManifest['formatVersion'] {
  return m.files.some((f) => f.kind === 'safetensors' && f.packs !== undefined && f.packs.length > 0) ? MANIFEST_PACKS_FORMAT_VERSION : MANIFEST_FORMAT_VERSION;
}

/** The manifest's bytes, with the format version its content needs (manifestFormatVersion), whatever `m.formatVersion` says. */
export function serializeManifest(m: VersionManifest): Uint8Array {
  return new TextEncoder().encode(JSON.stringify({ ...m, formatVersion: manifestFormatVersion(m) }) + '\n');
}

/** Every object digest a manifest names directly (not the references inside objects). */
export function manifestDigests(m: VersionManifest): string[] {
  const out: string[] = [];
  for (const f of m.files) {
    if (f.kind === 'blob') out.push(...f.chunks);
    else {
      out.push(...f.header.chunks);
      for (const k of f.packs ?? []) out.push(...k.chunks);
      for (const t of f.tensors) for (const d of t.chunks) out.push(d);
    }
  }
  return out;
}
