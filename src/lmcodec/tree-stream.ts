/**
 * A directory as one byte stream, and back (docs/FORMAT.md §14.4): the
 * archive codes bytes, so a tree is flattened into records
 *
 *   u32 LE header length | header JSON {path, type, mode, size} | size bytes of data
 *
 * one per file and directory below the root, sorted by the UTF-8 bytes of
 * their paths (so a directory comes before everything in it). No times, no
 * owners: the same tree gives the same stream, hence the same archive.
 *
 * Reading a tree refuses what the stream cannot say faithfully (symbolic
 * links, devices, FIFOs, sockets, names that are not UTF-8) rather than
 * dropping it. Unpacking treats the stream as hostile: paths are checked
 * segment by segment, every entry's parent must be a directory already in
 * the stream, and everything is written into a temp directory beside the
 * destination that is renamed into place only when the whole stream is good.
 */
import { constants, type Stats } from 'node:fs';
import { chmod, lstat, mkdir, open, readdir, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { At1Error } from '../errors.js';
import { JsonNumber, StrictJsonError, describeJson, parseStrictJson, type JsonValue } from '../format/strict-json.js';
import { NAME_MAX_BYTES, fsyncDir, removeStaleTemps, tempNameFor } from '../util/atomic-file.js';
import { errnoOf, fsError } from '../util/fs-errors.js';
import { checkOutputPath } from '../util/output-path.js';

export interface TreeEntry {
  /** Relative path, '/'-separated, valid UTF-8, no empty, '.' or '..' segments. */
  path: string;
  type: 'file' | 'dir';
  /** Permission bits only (mode & 0o777). */
  mode: number;
  /** Bytes of data; 0 for a directory. */
  size: number;
}

export interface TreePlan {
  /** The directory scanned. */
  root: string;
  /** Every entry below the root, in stream order. */
  entries: TreeEntry[];
  /** Total stream length in bytes. */
  length: number;
}

/** Longest header a reader accepts: a 4096-byte path escaped at worst 6× is under this. */
export const TREE_MAX_HEADER_BYTES = 64 << 10;
/** Longest relative path, in UTF-8 bytes (Linux PATH_MAX). */
export const TREE_MAX_PATH_BYTES = 4096;
/** Size of the pieces files are read in. */
const PIECE_BYTES = 1 << 20;

const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** The header record of an entry: u32 LE length, then the JSON, keys in this fixed order. */
export function encodeTreeHeader(e: TreeEntry): Uint8Array {
  const json = utf8.encode(JSON.stringify({ path: e.path, type: e.type, mode: e.mode, size: e.size }));
  const out = new Uint8Array(4 + json.length);
  new DataView(out.buffer).setUint32(0, json.length, true);
  out.set(json, 4);
  return out;
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  return Buffer.compare(a, b);
}

function kindOf(st: Stats): string | undefined {
  if (st.isSymbolicLink()) return 'a symbolic link';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  if (!st.isFile() && !st.isDirectory()) return 'not a regular file or directory';
  return undefined;
}

function inputError(path: string, why: string): At1Error {
  return new At1Error('E_INPUT', `${path}: ${why}; a directory is archived only as regular files and directories`);
}

/**
 * Scan `dir` (which may itself be reached through a link) and plan its
 * stream. Refuses, with E_INPUT naming the path, a symbolic link, device,
 * FIFO or socket anywhere below it, a name that is not UTF-8, and a path
 * too long for the stream.
 */
export async function treeStreamPlan(dir: string): Promise<TreePlan> {
  let rootSt: Stats;
  try {
    rootSt = await stat(dir);
  } catch (e) {
    throw fsError(e, 'read the directory', dir);
  }
  if (!rootSt.isDirectory()) throw new At1Error('E_INPUT', `${dir}: not a directory`);
  const found: { entry: TreeEntry; key: Uint8Array }[] = [];
  const walk = async (abs: string, rel: string): Promise<void> => {
    let names: Buffer[];
    try {
      names = await readdir(abs, { encoding: 'buffer' });
    } catch (e) {
      throw fsError(e, 'read the directory', abs);
    }
    for (const raw of names) {
      let name: string;
      try {
        name = strictUtf8.decode(raw);
      } catch {
        throw inputError(join(abs, raw.toString('utf8')), 'the name is not valid UTF-8 (shown with replacement characters)');
      }
      const childAbs = join(abs, name);
      const childRel = rel === '' ? name : `${rel}/${name}`;
      if (name.includes('\0')) throw inputError(childAbs, 'the name contains a NUL byte');
      const key = utf8.encode(childRel);
      if (key.length > TREE_MAX_PATH_BYTES) throw inputError(childAbs, `the relative path is ${key.length} bytes, over the limit of ${TREE_MAX_PATH_BYTES}`);
      let st: Stats;
      try {
        st = await lstat(childAbs);
      } catch (e) {
        throw fsError(e, 'examine', childAbs);
      }
      const odd = kindOf(st);
      if (odd) throw inputError(childAbs, `it is ${odd}`);
      if (st.isDirectory()) {
        found.push({ entry: { path: childRel, type: 'dir', mode: st.mode & 0o777, size: 0 }, key });
        await walk(childAbs, childRel);
      } else {
        found.push({ entry: { path: childRel, type: 'file', mode: st.mode & 0o777, size: st.size }, key });
      }
    }
  };
  await walk(dir, '');
  found.sort((a, b) => compareBytes(a.key, b.key));
  let length = 0;
  for (const f of found) length += encodeTreeHeader(f.entry).length + f.entry.size;
  return { root: dir, entries: found.map((f) => f.entry), length };
}

/**
 * The stream of a plan, in pieces of at most 1 MiB of file data (memory:
 * one piece). A file whose size changed since the plan, or that is no longer
 * a regular file, stops the stream with E_INPUT naming it: the recorded
 * sizes and the archive's length must be the bytes actually read.
 */
export async function* treeStream(plan: TreePlan): AsyncGenerator<Uint8Array> {
  for (const e of plan.entries) {
    yield encodeTreeHeader(e);
    if (e.type !== 'file') continue;
    const abs = join(plan.root, ...e.path.split('/'));
    let fh: FileHandle;
    try {
      // O_NOFOLLOW: a file replaced by a link since the plan is refused, not followed; O_NONBLOCK: a FIFO cannot hang the open.
      fh = await open(abs, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    } catch (e2) {
      if (errnoOf(e2) === 'ELOOP') throw inputError(abs, 'it became a symbolic link while the directory was archived');
      throw fsError(e2, 'open', abs);
    }
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw inputError(abs, `it is now ${kindOf(st) ?? 'a directory'}`);
      if (st.size !== e.size) throw changed(abs, e.size, st.size);
      let done = 0;
      for (;;) {
        // One byte more than is left: reading past the planned end tells a file that grew.
        const want = Math.min(PIECE_BYTES, e.size - done + 1);
        const buf = new Uint8Array(want);
        let n: number;
        try {
          n = (await fh.read(buf, 0, want, done)).bytesRead;
        } catch (e2) {
          throw fsError(e2, 'read', abs);
        }
        if (n === 0) break;
        if (done + n > e.size) throw changed(abs, e.size, (await fh.stat()).size);
        done += n;
        yield buf.subarray(0, n);
      }
      if (done !== e.size) throw changed(abs, e.size, done);
    } finally {
      await fh.close().catch(() => undefined);
    }
  }
}

function changed(path: string, planned: number, now: number): At1Error {
  return new At1Error('E_INPUT', `${path} changed while the directory was archived (size was ${planned} bytes, now ${now}); archive a tree nobody is writing to`);
}

// ---------------------------------------------------------------------------
// Unpacking

export interface UnpackOptions {
  /** How the stream's source is named in messages (e.g. the archive path). */
  source?: string;
}

export interface UnpackResult {
  files: number;
  dirs: number;
  bytes: number;
}

/** Incremental parser state: the bytes of a header not yet complete, or the file being filled. */
interface Filling {
  entry: TreeEntry;
  fh: FileHandle | undefined;
  left: number;
  /** Small pieces are gathered here and written in one call: a stream cut into tiny chunks must not cost a system call each. */
  buf: Uint8Array;
  bufLen: number;
}

async function writeAll(f: Filling, data: Uint8Array, shownAs: string): Promise<void> {
  try {
    let w = 0;
    while (w < data.length) w += (await f.fh!.write(data, w, data.length - w)).bytesWritten;
  } catch (err) {
    throw fsError(err, 'write', shownAs);
  }
}

async function fillFile(f: Filling, piece: Uint8Array, shownAs: string): Promise<void> {
  if (f.bufLen === 0 && piece.length >= f.buf.length) return writeAll(f, piece, shownAs);
  let off = 0;
  while (off < piece.length) {
    const n = Math.min(piece.length - off, f.buf.length - f.bufLen);
    f.buf.set(piece.subarray(off, off + n), f.bufLen);
    f.bufLen += n;
    off += n;
    if (f.bufLen === f.buf.length) await flushFile(f, shownAs);
  }
}

async function flushFile(f: Filling, shownAs: string): Promise<void> {
  const n = f.bufLen;
  f.bufLen = 0;
  if (n > 0) await writeAll(f, f.buf.subarray(0, n), shownAs);
}

/**
 * Unpack a tree stream into `destDir`, which must not exist: everything is
 * written into a temp directory beside it, renamed into place only after the
 * whole stream parsed and every file was written and fsynced. A refused
 * stream or a failure removes the temp directory: `destDir` never appears
 * half made. E_CORRUPT names the source, the stream offset and the entry.
 */
export async function unpackTree(
  stream: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  destDir: string,
  opts: UnpackOptions = {},
): Promise<UnpackResult> {
  const source = opts.source ?? 'tree stream';
  const checked = await checkOutputPath(destDir, { kind: 'directory', label: 'output' });
  if (checked.existing !== 'none') throw new At1Error('E_EXISTS', `output ${destDir} already exists; a directory is unpacked as a new directory`);
  await removeStaleTemps(checked.path);
  const temp = tempNameFor(checked.path);
  try {
    await mkdir(temp, 0o777);
  } catch (e) {
    throw fsError(e, 'create a temporary directory beside', destDir);
  }
  const dirs: { abs: string; mode: number }[] = [];
  let current: Filling | undefined;
  try {
    const result = await unpackInto(stream, temp, source, dirs, (f) => (current = f));
    // Directory modes last and deepest first: a read-only directory must not stop its own contents from being written.
    for (let i = dirs.length - 1; i >= 0; i--) await chmod(dirs[i]!.abs, dirs[i]!.mode).catch((e: unknown) => Promise.reject(fsError(e, 'set the mode of', dirs[i]!.abs)));
    fsyncDir(temp);
    if (await lstat(checked.path).then(() => true, () => false)) throw new At1Error('E_EXISTS', `output ${destDir} was created by someone else during the unpack; nothing was replaced`);
    try {
      await rename(temp, checked.path);
    } catch (e) {
      throw fsError(e, 'move the unpacked directory into place at', destDir);
    }
    fsyncDir(dirname(checked.path));
    return result;
  } catch (e) {
    await current?.fh?.close().catch(() => undefined);
    // Make every directory writable again so rm can empty it.
    for (const d of dirs) await chmod(d.abs, 0o700).catch(() => undefined);
    await rm(temp, { recursive: true, force: true }).catch(() => undefined);
    throw e;
  }
}

async function unpackInto(
  stream: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  temp: string,
  source: string,
  dirs: { abs: string; mode: number }[],
  track: (f: Filling | undefined) => void,
): Promise<UnpackResult> {
  const result: UnpackResult = { files: 0, dirs: 0, bytes: 0 };
  /** Directories in the stream so far: every entry's parent must be one. Files seen, to name "under a file". */
  const dirSet = new Set<string>();
  const fileSet = new Set<string>();
  let prevKey: Uint8Array | undefined;
  let offset = 0; // stream offset of the first byte of `pending`
  let pending: Uint8Array = new Uint8Array(0);
  let filling: Filling | undefined;

  const bad = (at: number, why: string): never => {
    throw new At1Error('E_CORRUPT', `${source}: bad tree stream at byte ${at}: ${why}`);
  };

  const startEntry = async (e: TreeEntry, at: number): Promise<void> => {
    const key = utf8.encode(e.path);
    if (prevKey) {
      const c = compareBytes(prevKey, key);
      if (c === 0) bad(at, `duplicate path ${JSON.stringify(e.path)}`);
      if (c > 0) bad(at, `path ${JSON.stringify(e.path)} is out of order (entries are sorted by UTF-8 bytes)`);
    }
    prevKey = key;
    const slash = e.path.lastIndexOf('/');
    if (slash >= 0) {
      const parent = e.path.slice(0, slash);
      if (fileSet.has(parent)) bad(at, `${JSON.stringify(e.path)} is under ${JSON.stringify(parent)}, which is a file`);
      if (!dirSet.has(parent)) bad(at, `${JSON.stringify(e.path)}: its directory ${JSON.stringify(parent)} is not in the stream before it`);
    }
    const abs = join(temp, ...e.path.split('/'));
    if (e.type === 'dir') {
      dirSet.add(e.path);
      try {
        await mkdir(abs, 0o700);
      } catch (err) {
        throw fsError(err, 'create the directory', abs);
      }
      dirs.push({ abs, mode: e.mode });
      result.dirs++;
      return;
    }
    fileSet.add(e.path);
    let fh: FileHandle;
    try {
      fh = await open(abs, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    } catch (err) {
      throw fsError(err, 'create the file', abs);
    }
    filling = { entry: e, fh, left: e.size, buf: new Uint8Array(Math.min(e.size, PIECE_BYTES)), bufLen: 0 };
    track(filling);
    result.files++;
    if (e.size === 0) await endFile();
  };

  const endFile = async (): Promise<void> => {
    const f = filling!;
    const abs = join(temp, ...f.entry.path.split('/'));
    try {
      await flushFile(f, abs);
      await f.fh!.chmod(f.entry.mode);
      await f.fh!.sync();
      await f.fh!.close();
    } catch (err) {
      throw fsError(err, 'write', abs);
    } finally {
      f.fh = undefined;
    }
    filling = undefined;
    track(undefined);
  };

  for await (const chunk of stream) {
    let data: Uint8Array = chunk;
    while (data.length > 0) {
      if (filling) {
        const n = Math.min(filling.left, data.length);
        await fillFile(filling, data.subarray(0, n), join(temp, ...filling.entry.path.split('/')));
        filling.left -= n;
        result.bytes += n;
        offset += n;
        data = data.subarray(n);
        if (filling.left === 0) await endFile();
        continue;
      }
      // Gather a header: its 4 length bytes, then that many bytes of JSON.
      pending = concat(pending, data);
      data = new Uint8Array(0);
      while (!filling && pending.length >= 4) {
        const len = new DataView(pending.buffer, pending.byteOffset, 4).getUint32(0, true);
        if (len === 0 || len > TREE_MAX_HEADER_BYTES) bad(offset, `header length ${len} is not from 1 to ${TREE_MAX_HEADER_BYTES}`);
        if (pending.length < 4 + len) break;
        const entry = parseHeader(pending.subarray(4, 4 + len), (why) => bad(offset, why));
        const at = offset;
        offset += 4 + len;
        const rest = pending.subarray(4 + len);
        pending = new Uint8Array(0);
        await startEntry(entry, at);
        // Bytes after the header belong to this file's data (or to the next header).
        if (rest.length > 0) {
          data = rest;
          break;
        }
      }
    }
  }
  if (filling) bad(offset, `the stream ends inside the data of ${JSON.stringify(filling.entry.path)} (${filling.left} bytes missing)`);
  if (pending.length > 0) bad(offset, `the stream ends inside a header (${pending.length} trailing bytes)`);
  return result;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length === 0) return b;
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

function plainInt(v: JsonValue | undefined): number | undefined {
  return v instanceof JsonNumber && /^(?:0|[1-9][0-9]{0,15})$/.test(v.raw) && Number.isSafeInteger(Number(v.raw)) ? Number(v.raw) : undefined;
}

/** One header, strictly: exactly the four keys, a safe relative path, a known type, permission bits, a size (0 for a directory). */
export function parseHeader(bytes: Uint8Array, bad: (why: string) => never): TreeEntry {
  let text: string;
  try {
    text = strictUtf8.decode(bytes);
  } catch {
    return bad('a header is not valid UTF-8');
  }
  let v: JsonValue;
  try {
    v = parseStrictJson(text, { maxDepth: 2 });
  } catch (e) {
    if (e instanceof StrictJsonError) return bad(`a header is not strict JSON: ${e.message}`);
    throw e;
  }
  if (!(v instanceof Map)) return bad(`a header is ${describeJson(v)}, not an object`);
  for (const k of v.keys()) if (!['path', 'type', 'mode', 'size'].includes(k)) bad(`a header has an unknown field ${JSON.stringify(k)}`);
  const path = v.get('path');
  if (typeof path !== 'string') return bad(`a header's path is ${describeJson(path)}, not a string`);
  const why = pathProblem(path);
  if (why) bad(`path ${JSON.stringify(path)} ${why}`);
  const type = v.get('type');
  if (type !== 'file' && type !== 'dir') return bad(`${JSON.stringify(path)}: type is ${describeJson(type)}, not "file" or "dir"`);
  const mode = plainInt(v.get('mode'));
  if (mode === undefined || mode > 0o777) return bad(`${JSON.stringify(path)}: mode is missing or not permission bits (an integer from 0 to 511)`);
  const size = plainInt(v.get('size'));
  if (size === undefined) return bad(`${JSON.stringify(path)}: size is missing or not an integer from 0 to 2^53-1`);
  if (type === 'dir' && size !== 0) bad(`${JSON.stringify(path)}: a directory with size ${size}`);
  return { path, type, mode, size };
}

/** Why a stream path is unsafe or unusable, or undefined when it is fine. */
export function pathProblem(path: string): string | undefined {
  if (path.length === 0) return 'is empty';
  if (path.startsWith('/')) return 'is absolute';
  if (path.includes('\0')) return 'contains a NUL byte';
  if (/[\ud800-\udfff]/.test(path.replace(/[\ud800-\udbff][\udc00-\udfff]/g, ''))) return 'is not valid Unicode (a lone surrogate)';
  const bytes = utf8.encode(path).length;
  if (bytes > TREE_MAX_PATH_BYTES) return `is ${bytes} bytes, over the limit of ${TREE_MAX_PATH_BYTES}`;
  for (const seg of path.split('/')) {
    if (seg === '') return 'has an empty segment';
    if (seg === '.' || seg === '..') return `has a "${seg}" segment`;
    if (utf8.encode(seg).length > NAME_MAX_BYTES) return `has a name over ${NAME_MAX_BYTES} bytes`;
  }
  return undefined;
}
