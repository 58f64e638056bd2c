/**
 * Atomic file output: write to a temporary name beside the target, fsync,
 * rename over the target, fsync the directory. A crash or an error leaves
 * either the old target (or nothing) and at most a temp file whose name
 * says what it is; `abort()` removes the temp file.
 */
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { openSync, fsyncSync, closeSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { randomBytes } from 'node:crypto';

export function tempNameFor(target: string): string {
  return join(dirname(target), `.${basename(target)}.at1-tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
}

/** fsync a directory so a rename inside it survives a power cut. Best effort where the OS refuses. */
export function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    /* some file systems do not allow fsync on directories; the rename is still atomic */
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

export class AtomicFileWriter {
  private position = 0;
  private done = false;
  private constructor(
    readonly target: string,
    readonly tempPath: string,
    private readonly fh: FileHandle,
  ) {}

  static async create(target: string): Promise<AtomicFileWriter> {
    const tempPath = tempNameFor(target);
    const fh = await open(tempPath, 'wx', 0o644);
    return new AtomicFileWriter(target, tempPath, fh);
  }

  async write(data: Uint8Array): Promise<void> {
    let off = 0;
    while (off < data.length) {
      const { bytesWritten } = await this.fh.write(data, off, data.length - off, this.position);
      off += bytesWritten;
      this.position += bytesWritten;
    }
  }

  get bytesWritten(): number {
    return this.position;
  }

  /** fsync, close, rename into place, fsync the directory. */
  async commit(): Promise<void> {
    await this.fh.sync();
    await this.fh.close();
    await rename(this.tempPath, this.target);
    this.done = true;
    fsyncDir(dirname(this.target));
  }

  /** Drop the temp file; safe to call after a failed write or twice. */
  async abort(): Promise<void> {
    if (this.done) return;
    this.done = true;
    await this.fh.close().catch(() => undefined);
    await unlink(this.tempPath).catch(() => undefined);
  }
}
