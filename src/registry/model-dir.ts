/**
 * A model directory as a version: every regular file under it, with its
 * path. `.safetensors` files are stored tensor by tensor (deduplicated and
 * delta-coded against the relative's tensors of the same name, whatever
 * shard they sit in); every other file (config, tokenizer, README, index)
 * is stored as a blob. Restores recreate the directory byte for byte.
 *
 * Refused: symbolic links and special files (nothing outside the directory
 * is ever read), file names that are not valid UTF-8, a directory without
 * any .safetensors file, and a sharded index that does not match its shards.
 * Skipped, and reported: `.git` and `.cache` folders (version-control and
 * download metadata, not the model).
 *
 * Planning finishes before anything is written: every entry is read and
 * checked, and every file is opened once (so an unreadable file is reported
 * here, naming it, and not after a part of the model was stored). Every
 * file-system failure becomes a typed At1Error naming the path.
 */
import { constants } from 'node:fs';
import { lstat, open, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { At1Error } from '../errors.js';
import { INDEX_SUFFIX, parseShardIndex } from '../format/hf-index.js';
import { openFileSource, type InputSource } from '../format/input-source.js';
import { readSafetensorsHeaderFrom, type SafetensorsHeader } from '../format/safetensors.js';
import { fsCall } from '../util/fs-errors.js';
import { pathProblem, PATH_SEGMENT_FORBIDDEN, tensorNameProblem } from './manifest.js';

export const SKIPPED_DIRS = new Set(['.git', '.cache']);

export interface PlannedFile {
  /** Relative path with '/' separators. */
  path: string;
  abs: string;
  size: number;
  /** Present for .safetensors files, validated. */
  header?: SafetensorsHeader;
  /** For .safetensors files: the input their header was read from, kept open for the add to read the tensors (closePlannedFiles). */
  input?: InputSource;
}

/** Close the inputs planning opened (idempotent). */
export async function closePlannedFiles(files: readonly PlannedFile[]): Promise<void> {
  await Promise.all(files.map((f) => f.input?.close()));
}

export interface DirPlan {
  files: PlannedFile[];
  skipped: string[];
}

/** What a file name in a model directory may not hold: the manifest's rule (backslash, C0 controls), and DEL as well. */
function badSegment(name: string): boolean {
  return PATH_SEGMENT_FORBIDDEN.test(name) || name.includes('\u007f');
}

/** Strict UTF-8; ignoreBOM keeps a leading U+FEFF in the name (by default TextDecoder would silently drop it and name another file). */
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** A file name as text, for a message: valid UTF-8 sequences as they are, every other byte (and control characters) as \xNN. */
export function escapeName(bytes: Uint8Array): string {
  let out = '';
  let i = 0;
  while (i < bytes.length) {
    let n = 0;
    for (let len = 1; len <= 4 && i + len <= bytes.length; len++) {
      try {
        const ch = UTF8.decode(bytes.subarray(i, i + len));
        if ([...ch].length === 1) {
          n = len;
          out += /[\u0000-\u001f\u007f\\]/.test(ch) ? `\\x${bytes[i]!.toString(16).padStart(2, '0')}` : ch;
          break;
        }
      } catch {
        // not a whole character yet (or never): try one byte longer
      }
    }
    if (n === 0) {
      out += `\\x${bytes[i]!.toString(16).padStart(2, '0')}`;
      n = 1;
    }
    i += n;
  }
  return out;
}

/** Entry names of a directory, as raw bytes decoded strictly: a name that is not UTF-8 cannot be stored (manifests are JSON text) and is refused. */
async function entryNames(dir: string): Promise<string[]> {
  const raw = await fsCall('read the directory', dir, () => readdir(dir, { encoding: 'buffer' }));
  const names: string[] = [];
  for (const b of raw) {
    try {
      names.push(UTF8.decode(b));
    } catch {
      throw new At1Error('E_INPUT', `${dir}: the file name "${escapeName(b)}" is not valid UTF-8; rename it (at1 stores names as UTF-8 text); nothing was added`);
    }
  }
  return names.sort((a, b) => (a < b ? -1 : 1));
}

async function walk(root: string, rel: string, out: PlannedFile[], skipped: string[]): Promise<void> {
  for (const name of await entryNames(join(root, rel))) {
    const path = rel ? `${rel}/${name}` : name;
    const abs = join(root, path);
    if (badSegment(name)) throw new At1Error('E_INPUT', `${abs}: file names with control characters or backslashes are refused`);
    const st = await fsCall('inspect', abs, () => lstat(abs));
    if (st.isSymbolicLink()) throw new At1Error('E_INPUT', `${abs} is a symbolic link; at1 does not follow links out of a model directory (copy the file in instead)`);
    if (st.isDirectory()) {
      if (SKIPPED_DIRS.has(name)) skipped.push(path + '/');
      else await walk(root, path, out, skipped);
    } else if (st.isFile()) out.push({ path, abs, size: st.size });
    else throw new At1Error('E_INPUT', `${abs} is not a regular file (a FIFO, socket or device); nothing was added`);
  }
}

/**
 * Open a file for reading and close it again: proves, before anything is
 * written, that the add will be able to read it (permissions, and that it is
 * still a regular file). O_NONBLOCK so that a FIFO swapped in cannot block.
 */
async function checkOpenable(abs: string): Promise<void> {
  const fh = await fsCall('open', abs, () => open(abs, constants.O_RDONLY | constants.O_NONBLOCK));
  try {
    const st = await fsCall('inspect', abs, () => fh.stat());
    if (!st.isFile()) throw new At1Error('E_INPUT', `${abs} is not a regular file; nothing was added`);
  } finally {
    await fh.close();
  }
}

function abbreviated(s: string, max = 60): string {
  return JSON.stringify(s.length > max ? s.slice(0, max) + '…' : s);
}

/**
 * Every limit the manifest parser enforces on what a file contributes (its
 * path; its tensor names), checked with the parser's own rule functions
 * (manifest.ts) before the lock and any write: add never stores what its own
 * reader would refuse. Throws E_INPUT naming the file.
 */
export function checkManifestRules(files: readonly PlannedFile[]): void {
  for (const f of files) {
    const pathWhy = pathProblem(f.path);
    if (pathWhy) throw new At1Error('E_INPUT', `${f.abs}: the path ${abbreviated(f.path)} cannot be stored: ${pathWhy}; nothing was added`);
    for (const t of f.header?.tensors ?? []) {
      const why = tensorNameProblem(t.name);
      if (why) throw new At1Error('E_INPUT', `${f.abs}: ${why} (tensor ${abbreviated(t.name)}); nothing was added`);
    }
  }
}

/** Every tensor name must be in exactly the shard the index names, and every shard tensor in the index. */
function checkIndex(indexPath: string, indexAbs: string, indexBytes: Uint8Array, files: PlannedFile[]): void {
  const index = parseShardIndex(indexBytes, indexAbs);
  const byPath = new Map(files.map((f) => [f.path, f]));
  const indexDir = indexPath.includes('/') ? indexPath.slice(0, indexPath.lastIndexOf('/') + 1) : '';
  const listed = new Set<string>();
  const namesOf = new Map<PlannedFile, Set<string>>(); // tensor names per shard, built once: a lookup per index entry, not a scan
  for (const [tensor, shard] of index.weightMap) {
    const f = byPath.get(indexDir + shard);
    if (!f?.header) throw new At1Error('E_INPUT', `${indexAbs}: shard ${JSON.stringify(shard)} (of tensor ${JSON.stringify(tensor)}) is not in the directory`);
    let names = namesOf.get(f);
    if (!names) namesOf.set(f, (names = new Set(f.header.tensors.map((t) => t.name))));
    if (!names.has(tensor)) throw new At1Error('E_INPUT', `${indexAbs}: tensor ${JSON.stringify(tensor)} is missing from its shard ${shard}`);
    listed.add(indexDir + shard);
  }
  const shardOf = new Map<string, string>();
  for (const path of listed) {
    for (const t of byPath.get(path)!.header!.tensors) {
      const other = shardOf.get(t.name);
      if (other) throw new At1Error('E_INPUT', `tensor ${JSON.stringify(t.name)} is in two shards: ${other} and ${path}`);
      shardOf.set(t.name, path);
      if (index.weightMap.get(t.name) === undefined) throw new At1Error('E_INPUT', `${indexAbs}: tensor ${JSON.stringify(t.name)} of shard ${path} is not in the index`);
    }
  }
}

export async function planModelDir(dir: string): Promise<DirPlan> {
  const files: PlannedFile[] = [];
  const skipped: string[] = [];
  await walk(dir, '', files, skipped);
  try {
    for (const f of files) {
      if (f.path.endsWith('.safetensors')) {
        f.input = await openFileSource(f.abs); // one source per shard, opened once: header here, tensors in the add
        f.header = await readSafetensorsHeaderFrom(f.input);
      } else await checkOpenable(f.abs);
    }
    if (!files.some((f) => f.header)) throw new At1Error('E_INPUT', `${dir} holds no .safetensors file: not a model directory`);
    for (const f of files) if (f.path.endsWith(INDEX_SUFFIX)) checkIndex(f.path, f.abs, new Uint8Array(await fsCall('read', f.abs, () => readFile(f.abs))), files);
  } catch (e) {
    await closePlannedFiles(files);
    throw e;
  }
  return { files, skipped };
}
