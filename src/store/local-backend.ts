/**
 * A Backend over a local directory (the contract: backend.ts). Every write
 * goes to `tmp/` inside the root (same file system, so rename is atomic), is
 * fsynced, then made visible: `put` renames it into place, `create`
 * hard-links it (link() fails with EEXIST atomically, which is what
 * content-addressed puts and the lock need); then the destination directory
 * is fsynced. Leftovers in `tmp/` come only from interrupted writes and are
 * never read: `leftovers()` lists them, gc removes them, fsck reports them.
 * `touch(key, expect)` compares and renews through one descriptor (futimes);
 * modification times are the file system's. Reads: one open, one fstat (for
 * the size), one positioned read.
 *
 * Symbolic links below the root are never followed (docs/FORMAT.md §2:
 * nothing a file supplies may address outside the registry): a key whose
 * file, or any directory on its way down from the root, is a link is refused
 * with E_CORRUPT. Files are opened with O_NOFOLLOW (and O_NONBLOCK, so a FIFO
 * planted in the registry cannot block an open; anything but a regular file
 * is refused after the open); directories are checked with lstat, once each
 * per backend (a Set remembers those checked), so a read costs no extra
 * system call once its `objects/ab` directory has been seen. The root itself
 * may be a link (users do that): it is resolved once, here, with realpath.
 * Limits: a directory replaced by a link after it was checked is not noticed
 * (whoever can do that can rewrite the registry anyway), and a hard link to
 * an outside file is indistinguishable from a regular file.
 */
import { constants, realpathSync } from 'node:fs';
import { mkdir, open, opendir, rename, link, unlink, lstat, readdir, type FileHandle } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { At1Error } from '../errors.js';
import {
  checkAborted,
  checkKey,
  DEFAULT_PAGE_SIZE,
  shortRead,
  type Backend,
  type CallOptions,
  type Capabilities,
  type KeyInfo,
  type KeyStat,
  type ListOptions,
} from './backend.js';
import { fsyncDir } from '../util/atomic-file.js';
import { errnoOf, isRetryableErrno } from '../util/fs-errors.js';

export const TMP_DIR = 'tmp';

const { O_RDONLY, O_NOFOLLOW, O_NONBLOCK, O_WRONLY, O_CREAT, O_EXCL } = constants;
const READ_FLAGS = O_RDONLY | O_NOFOLLOW | O_NONBLOCK;
const CREATE_FLAGS = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW;

function isErrno(e: unknown, code: string): boolean {
  return errnoOf(e) === code;
}

/**
 * The At1Error for a failed file-system call on a key: E_IO, retryable when
 * the errno is transient (EAGAIN, EBUSY, EMFILE, ENFILE, EINTR, ETIMEDOUT,
 * EIO), permanent otherwise (EACCES, EROFS, ENOSPC, ENOTDIR…). ENOENT is
 * turned into E_NOT_FOUND by the callers, which know whether it means that.
 */
export function localIoError(e: unknown, what: string, key: string, root: string): At1Error {
  if (e instanceof At1Error) return e;
  const code = errnoOf(e);
  return new At1Error('E_IO', `could not ${what} ${key} in ${root}: ${code ?? 'unknown'} ${(e as Error).message}`, { cause: e, retryable: isRetryableErrno(code) });
}

function checkRange(key: string, offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
    throw new At1Error('E_INPUT', `bad range of ${key}: offset ${offset}, length ${length}`);
  }
}

/**
 * `n` bytes at `offset` in one positioned read (a regular file gives them at
 * once); continued only in the rare case the kernel returns fewer, and cut
 * short where the file ends.
 */
async function readAt(fh: FileHandle, offset: number, n: number): Promise<Uint8Array> {
  const buf = Buffer.allocUnsafe(n);
  let got = 0;
  while (got < n) {
    const { bytesRead } = await fh.read(buf, got, n - got, offset + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return new Uint8Array(buf.buffer, buf.byteOffset, got);
}

const LOCAL_CAPABILITIES: Capabilities = Object.freeze({ exclusiveCreate: true, atomicReplace: true, conditionalTouch: true, suggestedConnections: 8 });

/** The root's real path; a root that does not exist yet is taken as given (made absolute). */
function realRoot(root: string): string {
  try {
    return realpathSync(root);
  } catch {
    return resolve(root);
  }
}

/** A write's own temp file disappeared before it was linked into place (see LocalBackend.write). */
class TempVanished extends Error {
  constructor(readonly original: unknown) {
    super('temp file vanished');
  }
}

export class LocalBackend implements Backend {
  readonly capabilities = LOCAL_CAPABILITIES;
  /** The root with any link in it resolved: every path below is built from this. */
  private readonly base: string;
  /** Directories (relative, e.g. `objects/ab`) already seen to be real directories, not links. */
  private readonly checkedDirs = new Set<string>();

  constructor(readonly root: string) {
    this.base = realRoot(root);
  }

  get location(): string {
    return this.root;
  }

  private abs(rel: string): string {
    return join(this.base, ...rel.split('/'));
  }

  /** The directory holding a key's file. */
  private dirOf(key: string): string {
    const i = key.lastIndexOf('/');
    return i < 0 ? this.base : this.abs(key.slice(0, i));
  }

  private notFound(key: string, e: unknown): never {
    throw new At1Error('E_NOT_FOUND', `${key} is missing from ${this.root}`, { cause: e });
  }

  private ioError(what: string, key: string, e: unknown): never {
    throw localIoError(e, what, key, this.root);
  }

  /** Refuse `key` because `rel` (the key itself, or a directory on its way) is a symbolic link. */
  private linkRefused(key: string, rel: string): never {
    const what = rel === key ? key : `${key}: ${rel}`;
    throw new At1Error('E_CORRUPT', `${what} in ${this.root} is a symbolic link; a registry never follows links`);
  }

  /**
   * Check every directory between the root and the key's file: a link is
   * refused, a missing one is created when `create` (one level at a time, so
   * mkdir never follows a link either) and otherwise reported as `false`.
   * Something that is neither (a file where a directory should be) is left to
   * the open that follows, which fails with ENOTDIR.
   */
  private async checkDirs(key: string, create: boolean, withLast = false, forKey = key): Promise<boolean> {
    const segs = key.split('/');
    let rel = '';
    for (let i = 0; i < (withLast ? segs.length : segs.length - 1); i++) {
      rel = rel === '' ? segs[i]! : `${rel}/${segs[i]!}`;
      if (this.checkedDirs.has(rel)) continue;
      let st = await lstat(this.abs(rel)).catch((e: unknown) => (isErrno(e, 'ENOENT') ? undefined : Promise.reject(e)));
      if (!st && create) {
        await mkdir(this.abs(rel)).catch((e: unknown) => (isErrno(e, 'EEXIST') ? undefined : Promise.reject(e)));
        st = await lstat(this.abs(rel));
      }
      if (!st) return false;
      if (st.isSymbolicLink()) this.linkRefused(forKey, rel);
      if (!st.isDirectory()) return true;
      this.checkedDirs.add(rel);
    }
    return true;
  }

  /** Open a key's file for reading: no link followed, a regular file only; its size from the same fstat. */
  private async openRead(key: string, what: string, signal: AbortSignal | undefined): Promise<{ fh: FileHandle; size: number }> {
    checkKey(key);
    checkAborted(signal, what, key, this.root);
    try {
      if (!(await this.checkDirs(key, false))) this.notFound(key, undefined);
      const fh = await open(this.abs(key), READ_FLAGS);
      try {
        const st = await fh.stat();
        if (st.isFile()) return { fh, size: st.size };
      } catch (e) {
        await fh.close();
        throw e;
      }
      await fh.close();
      throw new At1Error('E_CORRUPT', `${key} in ${this.root} is not a regular file`);
    } catch (e) {
      if (isErrno(e, 'ENOENT')) this.notFound(key, e);
      if (isErrno(e, 'ELOOP')) this.linkRefused(key, key);
      this.ioError('open', key, e);
    }
  }

  /**
   * One read of the whole file, sized by the fstat the open already made
   * (not readFile's loop of growing buffers): objects are large and many.
   */
  async read(key: string, opts: CallOptions = {}): Promise<Uint8Array> {
    const { fh, size } = await this.openRead(key, 'read', opts.signal);
    try {
      checkAborted(opts.signal, 'read', key, this.root);
      return await readAt(fh, 0, size);
    } catch (e) {
      return this.ioError('read', key, e);
    } finally {
      await fh.close();
    }
  }

  async readRange(key: string, offset: number, length: number, opts: CallOptions = {}): Promise<Uint8Array> {
    checkRange(key, offset, length);
    const out = await this.readUpTo(key, offset, length, opts);
    if (out.length !== length) throw shortRead(this.root, key, offset, length, out.length);
    return out;
  }

  async readUpTo(key: string, offset: number, length: number, opts: CallOptions = {}): Promise<Uint8Array> {
    checkRange(key, offset, length);
    const { fh, size } = await this.openRead(key, 'read', opts.signal);
    try {
      checkAborted(opts.signal, 'read', key, this.root);
      return await readAt(fh, offset, Math.max(0, Math.min(length, size - offset)));
    } catch (e) {
      return this.ioError('read', key, e);
    } finally {
      await fh.close();
    }
  }

  async size(key: string, opts: CallOptions = {}): Promise<number | undefined> {
    return (await this.stat(key, opts))?.size;
  }

  async stat(key: string, opts: CallOptions = {}): Promise<KeyStat | undefined> {
    checkKey(key);
    checkAborted(opts.signal, 'stat', key, this.root);
    try {
      if (!(await this.checkDirs(key, false))) return undefined;
      const st = await lstat(this.abs(key));
      if (st.isSymbolicLink()) this.linkRefused(key, key);
      return { size: st.size, mtimeMs: st.mtimeMs };
    } catch (e) {
      if (isErrno(e, 'ENOENT')) return undefined;
      this.ioError('stat', key, e);
    }
  }

  /**
   * Renew the modification time through an open descriptor, after comparing
   * the bytes read through that same descriptor: the file touched is the
   * file compared, even if the name is replaced meanwhile. Afterwards the
   * name must still lead to that file (same inode), or the touch reports
   * false: the key no longer holds those bytes.
   */
  async touch(key: string, expect?: Uint8Array, opts: CallOptions = {}): Promise<boolean> {
    let opened;
    try {
      opened = await this.openRead(key, 'touch', opts.signal);
    } catch (e) {
      if (e instanceof At1Error && e.code === 'E_NOT_FOUND') return false;
      throw e;
    }
    const { fh, size } = opened;
    try {
      if (expect !== undefined) {
        if (size !== expect.length) return false;
        const b = await readAt(fh, 0, size);
        if (Buffer.compare(b, expect) !== 0) return false;
      }
      checkAborted(opts.signal, 'touch', key, this.root);
      const now = new Date();
      await fh.utimes(now, now);
      const [a, b] = await Promise.all([fh.stat(), lstat(this.abs(key)).catch(() => undefined)]);
      return b !== undefined && a.ino === b.ino && a.dev === b.dev;
    } catch (e) {
      return this.ioError('touch', key, e);
    } finally {
      await fh.close();
    }
  }

  /** Exclusive create: link() of a finished temp file fails with EEXIST atomically. */
  create(key: string, data: Uint8Array, opts: CallOptions = {}): Promise<boolean> {
    return this.write(key, data, true, opts.signal);
  }

  /** Atomic replace: rename() of a finished temp file over the name. */
  async put(key: string, data: Uint8Array, opts: CallOptions = {}): Promise<void> {
    await this.write(key, data, false, opts.signal);
  }

  /**
   * The temp file of a write can vanish before it is linked into place when
   * a gc run with no grace period sweeps tmp/ at that moment: the write is
   * then simply done again (a few times at most).
   */
  private async write(key: string, data: Uint8Array, exclusive: boolean, signal: AbortSignal | undefined): Promise<boolean> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.writeOnce(key, data, exclusive, signal);
      } catch (e) {
        if (!(e instanceof TempVanished)) throw e;
        if (attempt >= 3) this.ioError('write', key, e.original);
      }
    }
  }

  private async writeOnce(key: string, data: Uint8Array, exclusive: boolean, signal: AbortSignal | undefined): Promise<boolean> {
    checkKey(key);
    const what = exclusive ? 'create' : 'put';
    checkAborted(signal, what, key, this.root);
    const dest = this.abs(key);
    const tmpKey = `${TMP_DIR}/${process.pid}-${randomBytes(8).toString('hex')}`;
    const tmp = this.abs(tmpKey);
    let created = false;
    const prepare = async () => {
      if (this.checkedDirs.size === 0) await mkdir(this.base, { recursive: true }); // a root that does not exist yet
      await this.checkDirs(tmpKey, true, false, key);
      await this.checkDirs(key, true);
      return open(tmp, CREATE_FLAGS, 0o644);
    };
    try {
      // a directory checked earlier may have been removed since (ENOENT): check and create afresh, once
      const fh = await prepare().catch((e: unknown) => (isErrno(e, 'ENOENT') ? (this.checkedDirs.clear(), prepare()) : Promise.reject(e)));
      created = true;
      try {
        let off = 0;
        while (off < data.length) off += (await fh.write(data, off, data.length - off, off)).bytesWritten;
        await fh.sync();
      } finally {
        await fh.close();
      }
      checkAborted(signal, what, key, this.root); // the last moment before the write becomes visible
      if (exclusive) {
        try {
          await link(tmp, dest); // creates the name itself: never writes through a link at dest
        } catch (e) {
          if (isErrno(e, 'ENOENT')) throw new TempVanished(e);
          if (!isErrno(e, 'EEXIST')) throw e;
          // It existed when link() ran: that is the answer, even if it is gone by now (a released lock, a gc'd object).
          if ((await lstat(dest).catch(() => undefined))?.isSymbolicLink()) this.linkRefused(key, key);
          return false;
        }
      } else {
        // rename would replace a link at dest (not write through it), but a link there is damage: refuse it
        if ((await lstat(dest).catch(() => undefined))?.isSymbolicLink()) this.linkRefused(key, key);
        await rename(tmp, dest).catch((e: unknown) => Promise.reject(isErrno(e, 'ENOENT') ? new TempVanished(e) : e));
        created = false;
      }
      fsyncDir(this.dirOf(key));
      return true;
    } catch (e) {
      if (e instanceof TempVanished) throw e;
      return this.ioError(what, key, e);
    } finally {
      if (created) await unlink(tmp).catch(() => undefined);
    }
  }

  async remove(key: string, opts: CallOptions = {}): Promise<void> {
    checkKey(key);
    checkAborted(opts.signal, 'remove', key, this.root);
    try {
      if (!(await this.checkDirs(key, false))) return;
      if ((await lstat(this.abs(key))).isSymbolicLink()) this.linkRefused(key, key);
      await unlink(this.abs(key));
      fsyncDir(this.dirOf(key));
    } catch (e) {
      if (isErrno(e, 'ENOENT')) return;
      this.ioError('remove', key, e);
    }
  }

  /**
   * A depth-first walk with streaming directory reads (opendir, `pageSize`
   * entries buffered at a time), so a listing of a million objects never
   * holds them in one array; the signal is checked at every directory and
   * every page of entries.
   */
  async *list(prefix: string, opts: ListOptions = {}): AsyncGenerator<KeyInfo> {
    checkKey(prefix);
    const { signal } = opts;
    const bufferSize = Math.max(1, Math.min(opts.pageSize ?? DEFAULT_PAGE_SIZE, 1024));
    checkAborted(signal, 'list', prefix, this.root);
    try {
      // the prefix itself (and every directory above it) must be a real directory; the walk checks below it
      if (!(await this.checkDirs(prefix, false, true))) return;
    } catch (e) {
      this.ioError('list', prefix, e);
    }
    const pending = [prefix];
    while (pending.length > 0) {
      const rel = pending.pop()!;
      checkAborted(signal, 'list', rel, this.root);
      let dir;
      try {
        dir = await opendir(this.abs(rel), { bufferSize });
      } catch (e) {
        if (isErrno(e, 'ENOENT') || (rel === prefix && isErrno(e, 'ENOTDIR'))) continue; // removed since it was seen; or the prefix is a key, not a folder
        this.ioError('list', rel, e);
      }
      let n = 0;
      try {
        for await (const ent of dir) {
          if (++n % bufferSize === 0) checkAborted(signal, 'list', rel, this.root);
          const k = `${rel}/${ent.name}`;
          // dirent types come from lstat: links (to files or directories), devices and FIFOs are neither listed nor descended into
          if (ent.isDirectory()) pending.push(k);
          else if (ent.isFile()) {
            const st = await lstat(this.abs(k)).catch(() => undefined);
            if (st?.isFile()) yield { key: k, size: st.size, mtimeMs: st.mtimeMs };
          }
        }
      } catch (e) {
        this.ioError('list', rel, e);
      }
    }
  }

  /** Every entry of the root directory, of any kind (an empty folder, a link and a FIFO count too). */
  async *topLevel(opts: CallOptions = {}): AsyncGenerator<string> {
    checkAborted(opts.signal, 'list', '/', this.root);
    let names: string[];
    try {
      names = await readdir(this.base);
    } catch (e) {
      if (isErrno(e, 'ENOENT')) return;
      this.ioError('list', '/', e);
    }
    yield* names;
  }

  /** Temp files of interrupted writes: tmp/ holds nothing else, and nothing in it is ever read. */
  leftovers(opts: ListOptions = {}): AsyncGenerator<KeyInfo> {
    return this.list(TMP_DIR, opts);
  }

  async removeLeftover(key: string, opts: CallOptions = {}): Promise<void> {
    const rest = key.startsWith(`${TMP_DIR}/`) ? key.slice(TMP_DIR.length + 1) : '';
    if (rest === '' || rest.includes('/')) throw new At1Error('E_INPUT', `${key} is not a leftover of ${this.root} (those are files in ${TMP_DIR}/)`);
    await this.remove(key, opts);
  }
}
