/**
 * A Backend over a local directory. Every write goes to `tmp/` inside the
 * root (same file system, so rename is atomic), is fsynced, then renamed into
 * place (or hard-linked, for exclusive creates: link() fails with EEXIST
 * atomically, which is what content-addressed puts and the lock need), and
 * the destination directory is fsynced. Leftovers in `tmp/` come only from
 * interrupted writes and are never read; gc removes them.
 */
import { mkdir, open, readFile, rename, link, unlink, stat, readdir } from 'node:fs/promises';
import { join, dirname } from 'node:path';
import { randomBytes } from 'node:crypto';
import { At1Error } from '../errors.js';
import { checkKey, type Backend, type KeyInfo, type WriteOptions } from './backend.js';
import { fsyncDir } from '../util/atomic-file.js';

export const TMP_DIR = 'tmp';

function isErrno(e: unknown, code: string): boolean {
  return typeof e === 'object' && e !== null && (e as NodeJS.ErrnoException).code === code;
}

export class LocalBackend implements Backend {
  constructor(readonly root: string) {}

  get location(): string {
    return this.root;
  }

  private path(key: string): string {
    checkKey(key);
    return join(this.root, ...key.split('/'));
  }

  private notFound(key: string, e: unknown): never {
    throw new At1Error('E_NOT_FOUND', `${key} is missing from ${this.root}`, { cause: e });
  }

  private ioError(what: string, key: string, e: unknown): never {
    const code = (e as NodeJS.ErrnoException).code ?? 'unknown';
    throw new At1Error('E_IO', `could not ${what} ${key} in ${this.root}: ${code} ${(e as Error).message}`, { cause: e });
  }

  async read(key: string): Promise<Uint8Array> {
    try {
      const b = await readFile(this.path(key));
      return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
    } catch (e) {
      if (isErrno(e, 'ENOENT')) this.notFound(key, e);
      if (e instanceof At1Error) throw e;
      this.ioError('read', key, e);
    }
  }

  async readRange(key: string, offset: number, length: number): Promise<Uint8Array> {
    let fh;
    try {
      fh = await open(this.path(key), 'r');
    } catch (e) {
      if (isErrno(e, 'ENOENT')) this.notFound(key, e);
      if (e instanceof At1Error) throw e;
      this.ioError('open', key, e);
    }
    try {
      const out = new Uint8Array(length);
      let got = 0;
      while (got < length) {
        const { bytesRead } = await fh.read(out, got, length - got, offset + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
      return got === length ? out : out.subarray(0, got);
    } finally {
      await fh.close();
    }
  }

  async size(key: string): Promise<number | undefined> {
    try {
      return (await stat(this.path(key))).size;
    } catch (e) {
      if (isErrno(e, 'ENOENT')) return undefined;
      if (e instanceof At1Error) throw e;
      this.ioError('stat', key, e);
    }
  }

  async write(key: string, data: Uint8Array, opts: WriteOptions = {}): Promise<boolean> {
    const dest = this.path(key);
    const tmpDir = join(this.root, TMP_DIR);
    const tmp = join(tmpDir, `${process.pid}-${randomBytes(8).toString('hex')}`);
    try {
      await mkdir(tmpDir, { recursive: true });
      await mkdir(dirname(dest), { recursive: true });
      const fh = await open(tmp, 'wx', 0o644);
      try {
        let off = 0;
        while (off < data.length) off += (await fh.write(data, off, data.length - off, off)).bytesWritten;
        await fh.sync();
      } finally {
        await fh.close();
      }
      if (opts.exclusive) {
        try {
          await link(tmp, dest);
        } catch (e) {
          if (isErrno(e, 'EEXIST')) return false;
          throw e;
        } finally {
          await unlink(tmp).catch(() => undefined);
        }
      } else {
        await rename(tmp, dest);
      }
      fsyncDir(dirname(dest));
      return true;
    } catch (e) {
      await unlink(tmp).catch(() => undefined);
      if (e instanceof At1Error) throw e;
      this.ioError('write', key, e);
    }
  }

  async remove(key: string): Promise<void> {
    try {
      await unlink(this.path(key));
      fsyncDir(dirname(this.path(key)));
    } catch (e) {
      if (isErrno(e, 'ENOENT')) return;
      if (e instanceof At1Error) throw e;
      this.ioError('remove', key, e);
    }
  }

  async list(prefix: string): Promise<KeyInfo[]> {
    const out: KeyInfo[] = [];
    const walk = async (rel: string): Promise<void> => {
      let entries;
      try {
        entries = await readdir(join(this.root, ...rel.split('/')), { withFileTypes: true });
      } catch (e) {
        if (isErrno(e, 'ENOENT')) return;
        this.ioError('list', rel, e);
      }
      for (const ent of entries) {
        const k = `${rel}/${ent.name}`;
        if (ent.isDirectory()) await walk(k);
        else if (ent.isFile()) {
          // symlinks and devices are never followed or listed
          const st = await stat(join(this.root, ...k.split('/'))).catch(() => undefined);
          if (st) out.push({ key: k, size: st.size });
        }
      }
    };
    checkKey(prefix);
    await walk(prefix);
    return out;
  }
}
