/**
 * Where a command may write outside the registry (`get --out`, `tensor get
 * --out`). One check, made before anything is decoded or written, refuses
 * with E_INPUT and a message naming the path and the reason:
 *
 * - a path inside the registry being read, or inside any at1 registry (a
 *   directory on the way up holding `at1-registry.json`), resolved through
 *   links: the real path of the nearest existing ancestor, plus the rest;
 * - a device, FIFO or socket (whether named directly or through a link):
 *   an atomic rename would replace the node with a regular file;
 * - a missing parent directory, a parent that is not a directory, or one
 *   this process cannot create files in (access W_OK | X_OK);
 * - a final name over 255 bytes of UTF-8 (the file-system limit), or none;
 * - for a file: an existing directory; for a model directory: a symbolic
 *   link at `out` (its target would be replaced only after the whole
 *   restore ran), or anything but a missing path or an empty directory.
 *
 * - a symbolic link at `out` (a rename would replace the link, not its
 *   target; `/dev/stdout` is such a link), and anything under /dev (but
 *   /dev/shm), /proc or /sys.
 *
 * An existing regular file is replaced atomically (the documented
 * behaviour). The check cannot exclude a path changed by someone else
 * between the check and the write.
 */
import { constants, type Stats } from 'node:fs';
import { access, lstat, readdir, realpath, stat } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve, isAbsolute, sep } from 'node:path';
import { At1Error } from '../errors.js';
import { errnoOf, fsError } from './fs-errors.js';
import { NAME_MAX_BYTES } from './atomic-file.js';

/** The file that makes a directory an at1 registry (registry/config.ts CONFIG_KEY; util/ does not import registry/). */
export const REGISTRY_MARKER = 'at1-registry.json';

export interface OutputCheck {
  /** 'file': one file is written to `out`; 'directory': a new directory is renamed into place at `out`. */
  kind: 'file' | 'directory';
  /** The root of the registry being read, when it is a local directory. */
  registryRoot?: string;
  /** How the path is named in messages (default `--out`). */
  label?: string;
}

export interface CheckedOutput {
  /** `out` made absolute (links in it not resolved: the rename replaces the last component itself). */
  path: string;
  /** Where that is with every link of its parent resolved. */
  realPath: string;
  /** What is there now: nothing, a regular file (replaced), or an empty directory (replaced; directories only). */
  existing: 'none' | 'file' | 'empty-directory';
}

/** The real path of `p`: realpath of its nearest existing ancestor, plus the components below that do not exist yet. */
export async function resolveThroughLinks(p: string): Promise<string> {
  let cur = resolve(p);
  const rest: string[] = [];
  for (;;) {
    try {
      return join(await realpath(cur), ...rest.reverse());
    } catch {
      const up = dirname(cur);
      if (up === cur) return join(cur, ...rest.reverse());
      rest.push(basename(cur));
      cur = up;
    }
  }
}

function isInside(child: string, parent: string): boolean {
  const r = relative(parent, child);
  return r === '' || (!isAbsolute(r) && r.split(sep)[0] !== '..');
}

/** The nearest directory at or above `dir` that holds an at1 registry, if any. */
async function enclosingRegistry(dir: string): Promise<string | undefined> {
  let cur = dir;
  for (;;) {
    if (await lstat(join(cur, REGISTRY_MARKER)).then(() => true, () => false)) return cur;
    const up = dirname(cur);
    if (up === cur) return undefined;
    cur = up;
  }
}

function special(st: Stats): string | undefined {
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isSocket()) return 'a socket';
  return undefined;
}

async function lstatOrNone(p: string, what: string): Promise<Stats | undefined> {
  try {
    return await lstat(p);
  } catch (e) {
    if (errnoOf(e) === 'ENOENT') return undefined;
    throw refusal(what, p, fsError(e, 'examine', p).message);
  }
}

function refusal(label: string, out: string, why: string): At1Error {
  return new At1Error('E_INPUT', `${label} ${out}: ${why}`);
}

/** Check `out` as described above; throws At1Error E_INPUT (E_EXISTS for a non-empty directory) or returns what is there. */
export async function checkOutputPath(out: string, opts: OutputCheck): Promise<CheckedOutput> {
  const label = opts.label ?? '--out';
  const no = (why: string): never => {
    throw refusal(label, out, why);
  };
  if (out === '') no('the path is empty');
  if (out.includes('\0')) no('the path contains a NUL byte');
  const path = resolve(out);
  const name = basename(path);
  if (name === '' || path === dirname(path)) no('it names no file (the root directory)');
  if (opts.kind === 'file' && /[\\/]$/.test(out)) no('it ends with a slash, but this version is one file: give a file name');
  const nameBytes = Buffer.byteLength(name, 'utf8');
  if (nameBytes > NAME_MAX_BYTES) no(`the name ${JSON.stringify(name.length > 40 ? `${name.slice(0, 40)}…` : name)} is ${nameBytes} bytes of UTF-8; file systems allow at most ${NAME_MAX_BYTES}`);

  // Inside a registry? Where the rename lands: the parent's real path plus the name.
  const parent = dirname(path);
  const realParent = await resolveThroughLinks(parent);
  const realPath = join(realParent, name);
  if (opts.registryRoot !== undefined) {
    const root = await resolveThroughLinks(opts.registryRoot);
    if (isInside(realPath, root)) no(`it is inside the registry ${opts.registryRoot} being read; writing there could overwrite the registry's own files (manifests, objects, configuration, lock) or be deleted by gc. Write outside the registry`);
  }
  const other = await enclosingRegistry(realParent);
  if (other !== undefined) no(`it is inside the at1 registry ${other}; writing there could damage it. Write outside any registry`);

  // What is there now.
  const l = await lstatOrNone(path, label);
  let existing: CheckedOutput['existing'] = 'none';
  if (l) {
    const followed = l.isSymbolicLink() ? await stat(path).catch(() => undefined) : l;
    const kindNow = special(l) ?? (followed ? special(followed) : undefined);
    if (kindNow) no(`it is ${kindNow}${l.isSymbolicLink() ? ' (through a symbolic link)' : ''}; at1 writes only regular files and directories and will not replace it`);
    if (opts.kind === 'directory') {
      if (l.isSymbolicLink()) no('it is a symbolic link; a model directory is restored as a new directory: give a path that does not exist or an empty directory');
      if (!l.isDirectory() || (await readdir(path).catch((e: unknown) => no(fsError(e, 'read', path).message))).length > 0) {
        throw new At1Error('E_EXISTS', `${label} ${out} exists and is not an empty directory; a model directory is restored as a new directory`);
      }
      existing = 'empty-directory';
    } else {
      if (followed?.isDirectory()) no('it is a directory; give a file name');
      // An atomic rename would replace the link itself, not its target: surprising at best, and at /dev/stdout
      // (a link to the caller's output) it would replace a system file. Refused; the user names the target.
      if (l.isSymbolicLink()) no(`it is a symbolic link${followed ? '' : ' to nothing that can be written'}; at1 writes by atomic rename, which would replace the link itself, not its target: give the target's path, or remove the link`);
      existing = 'file';
    }
  }

  // Pseudo file systems: nothing at1 writes belongs there, and replacing a node there can break the system (/dev/shm, a plain tmpfs, is fine).
  for (const sys of ['/dev', '/proc', '/sys']) if (isInside(realPath, sys) && !isInside(realPath, '/dev/shm')) no(`it is inside ${sys}, a system directory; at1 writes only regular files elsewhere (to stream a version, use a path of your own)`);
  // The parent must exist, be a directory, and let this process create and rename files in it.
  let ps: Stats;
  try {
    ps = await stat(parent);
  } catch (e) {
    const errno = errnoOf(e);
    if (errno === 'ENOENT') no(`the directory ${parent} does not exist`);
    if (errno === 'ENOTDIR') no(`a component of ${parent} is not a directory`);
    no(fsError(e, 'examine', parent).message);
  }
  if (!ps!.isDirectory()) no(`${parent} is not a directory`);
  try {
    await access(parent, constants.W_OK | constants.X_OK);
  } catch (e) {
    no(fsError(e, 'create files in the directory', parent).message);
  }
  return { path, realPath, existing };
}
