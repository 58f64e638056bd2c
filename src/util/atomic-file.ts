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

/** Writes kept in flight at once: the caller hashes the next piece while the kernel copies this one. */
const MAX_PENDING_WRITES = 4;
/** Start flushing to disk every this many bytes, in the background, so the final fsync has little left to do. */
const EARLY_FLUSH_BYTES = 256 << 20;

export class AtomicFileWriter {
  private position = 0;
  private done = false;
  private pending: Promise<void>[] = [];
  private flushing: Promise<void> | undefined;
  private flushedAt = 0;
  private failure: unknown;
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

  /**
   * Queue `data` at the current end of the file. Returns once the write is
   * under way (at most MAX_PENDING_WRITES in flight); `data` must not be
   * modified afterwards. Errors surface on a later write or on commit.
   */
  async write(data: Uint8Array): Promise<void> {
    if (this.failure) throw this.failure;
    const at = this.position;
    this.position += data.length;
    const p = this.writeAt(data, at).catch((e: unknown) => {
      this.failure ??= e;
    });
    this.pending.push(p);
    if (this.pending.length >= MAX_PENDING_WRITES) await this.pending.shift();
    if (!this.flushing && this.position - this.flushedAt >= EARLY_FLUSH_BYTES) {
      this.flushedAt = this.position;
      this.flushing = this.fh.datasync().then(
        () => void (this.flushing = undefined),
        (e: unknown) => void (this.failure ??= e),
      );
    }
    if (this.failure) throw this.failure;
  }

  private async writeAt(data: Uint8Array, at: number): Promise<void> {
    let off = 0;
    while (off < data.length) off += (await this.fh.write(data, off, data.length - off, at + off)).bytesWritten;
  }

  get bytesWritten(): number {
    return this.position;
  }

  /** fsync, close, rename into place, fsync the directory. */
  async commit(): Promise<void> {
    await Promise.all(this.pending);
    await this.flushing;
    if (this.failure) throw this.failure;
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
    await Promise.allSettled([...this.pending, this.flushing]);
    await this.fh.close().catch(() => undefined);
    await unlink(this.tempPath).catch(() => undefined);
  }
}
