/**
 * A Backend over a local directory. Every write goes to `tmp/` inside the
 * root (same file system, so rename is atomic), is fsynced, then renamed into
 * place (or hard-linked, for exclusive creates: link() fails with EEXIST
 * atomically, which is what content-addressed puts and the lock need), and
 * the destination directory is fsynced. Leftovers in `tmp/` come only from
 * interrupted writes and are never read; gc removes them.
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
import { mkdir, open, rename, link, unlink, lstat, readdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { At1Error } from '../errors.js';
import { checkKey, type Backend, type KeyInfo, type KeyStat, type WriteOptions } from './backend.js';
import { fsyncDir } from '../util/atomic-file.js';

export const TMP_DIR = 'tmp';

const { O_RDONLY, O_NOFOLLOW, O_NONBLOCK, O_WRONLY, O_CREAT, O_EXCL } = constants;
const READ_FLAGS = O_RDONLY | O_NOFOLLOW | O_NONBLOCK;
const CREATE_FLAGS = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW;

function isErrno(e: unknown, code: string): boolean {
  return typeof e === 'object' && e !== null && (e as NodeJS.ErrnoException).code === code;
}

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
    if (e instanceof At1Error) throw e;
    const code = (e as NodeJS.ErrnoException).code ?? 'unknown';
    throw new At1Error('E_IO', `could not ${what} ${key} in ${this.root}: ${code} ${(e as Error).message}`, { cause: e });
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

  /** Open a key's file for reading: no link followed, a regular file only. */
  private async openRead(key: string) {
    checkKey(key);
    try {
      if (!(await this.checkDirs(key, false))) this.notFound(key, undefined);
      const fh = await open(this.abs(key), READ_FLAGS);
      try {
        if ((await fh.stat()).isFile()) return fh;
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

  async read(key: string): Promise<Uint8Array> {
    const fh = await this.openRead(key);
    try {
      const b = await fh.readFile();
      return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
    } catch (e) {
      return this.ioError('read', key, e);
    } finally {
      await fh.close();
    }
  }

  async readRange(key: string, offset: number, length: number): Promise<Uint8Array> {
    const fh = await this.openRead(key);
    try {
      const out = new Uint8Array(length);
      let got = 0;
      while (got < length) {
        const { bytesRead } = await fh.read(out, got, length - got, offset + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      return got === length ? out : out.subarray(0, got);
    } catch (e) {
      return this.ioError('read', key, e);
    } finally {
      await fh.close();
    }
  }

  async size(key: string): Promise<number | undefined> {
    return (await this.stat(key))?.size;
  }

  async stat(key: string): Promise<KeyStat | undefined> {
    checkKey(key);
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
  async touch(key: string, expect?: Uint8Array): Promise<boolean> {
    let fh;
    try {
      fh = await this.openRead(key);
    } catch (e) {
      if (e instanceof At1Error && e.code === 'E_NOT_FOUND') return false;
      throw e;
    }
    try {
      if (expect !== undefined) {
        const b = await fh.readFile();
        if (b.length !== expect.length || Buffer.compare(b, expect) !== 0) return false;
      }
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

  /**
   * The temp file of a write can vanish before it is linked into place when
   * a gc run with no grace period sweeps tmp/ at that moment: the write is
   * then simply done again (a few times at most).
   */
  async write(key: string, data: Uint8Array, opts: WriteOptions = {}): Promise<boolean> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.writeOnce(key, data, opts);
      } catch (e) {
        if (!(e instanceof TempVanished)) throw e;
        if (attempt >= 3) this.ioError('write', key, e.original);
      }
    }
  }

  private async writeOnce(key: string, data: Uint8Array, opts: WriteOptions): Promise<boolean> {
    checkKey(key);
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
      if (opts.exclusive) {
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
      return this.ioError('write', key, e);
    } finally {
      if (created) await unlink(tmp).catch(() => undefined);
    }
  }

  async remove(key: string): Promise<void> {
    checkKey(key);
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

  async list(prefix: string): Promise<KeyInfo[]> {
    checkKey(prefix);
    const out: KeyInfo[] = [];
    const walk = async (rel: string): Promise<void> => {
      let entries;
      try {
        entries = await readdir(this.abs(rel), { withFileTypes: true });
      } catch (e) {
        if (isErrno(e, 'ENOENT')) return;
        this.ioError('list', rel, e);
      }
      for (const ent of entries) {
        const k = `${rel}/${ent.name}`;
        // dirent types come from lstat: links (to files or directories), devices and FIFOs are neither listed nor descended into
        if (ent.isDirectory()) await walk(k);
        else if (ent.isFile()) {
          const st = await lstat(this.abs(k)).catch(() => undefined);
          if (st?.isFile()) out.push({ key: k, size: st.size, mtimeMs: st.mtimeMs });
        }
      }
    };
    try {
      // the prefix itself (and every directory above it) must be a real directory; the walk checks below it
      if (!(await this.checkDirs(prefix, false, true))) return out;
    } catch (e) {
      this.ioError('list', prefix, e);
    }
    await walk(prefix);
    return out;
  }
}
