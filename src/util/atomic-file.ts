/**
 * Atomic file output: write to a temporary name beside the target, fsync,
 * rename over the target, fsync the directory. A crash or an error leaves
 * either the old target (or nothing) and at most a temp file whose name
 * says what it is; `abort()` removes the temp file.
 *
 * Temp names (files, and the directories a model-directory restore builds):
 *   .PREFIX.at1-tmp-HASH8-IDENTITY-PID-RAND8
 * PREFIX is the target's base name cut (by UTF-8 bytes, never inside a
 * character) so the whole name fits in 255 bytes; HASH8 is the first 8 hex
 * of the SHA-256 of the full base name, so a temp is tied to its target even
 * when PREFIX was cut; IDENTITY is hostIdentity() (or `none`) and PID the
 * writer's pid, so a later restore can tell a temp whose writer is proven
 * dead (removeStaleTemps) from one a live writer may still be filling.
 */
import { lstat, open, readdir, rename, rm, unlink, type FileHandle } from 'node:fs/promises';
import { openSync, fsyncSync, closeSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import { fsError } from './fs-errors.js';
import { hostIdentity, provenDead } from './host-identity.js';

/** The longest file name (one path segment) Linux and macOS file systems accept, in bytes. */
export const NAME_MAX_BYTES = 255;
const TEMP_MARK = '.at1-tmp-';
/** The identity written when hostIdentity() is unknown: such temps are never proven dead, only old. */
const NO_IDENTITY = 'none';
/** A temp whose writer cannot be proven dead is removed only once untouched this long. */
export const ABANDONED_AFTER_MS = 24 * 60 * 60 * 1000;
/** pid and identity fields at their longest: pids fit in 10 digits, identities are 16 hex. */
const SUFFIX_MAX_BYTES = TEMP_MARK.length + 8 + 1 + 16 + 1 + 10 + 1 + 8;

/** The longest prefix of `s` that is at most `maxBytes` bytes of UTF-8, cut between characters. */
export function truncateUtf8(s: string, maxBytes: number): string {
  let bytes = 0;
  let out = '';
  for (const ch of s) {
    const n = Buffer.byteLength(ch, 'utf8');
    if (bytes + n > maxBytes) break;
    bytes += n;
    out += ch;
  }
  return out;
}

function hash8(name: string): string {
  return createHash('sha256').update(name, 'utf8').digest('hex').slice(0, 8);
}

/** The part of a temp name before the writer's identity: `.PREFIX.at1-tmp-HASH8-`, the same for every writer of one target. */
function tempStem(name: string): string {
  return `.${truncateUtf8(name, NAME_MAX_BYTES - 1 - SUFFIX_MAX_BYTES)}${TEMP_MARK}${hash8(name)}-`;
}

/**
 * A temp name beside `target`, at most 255 bytes whatever the target's
 * length. `writer` is for tests that plant the temp a given process would
 * have left; by default it is this process.
 */
export function tempNameFor(target: string, writer: { pid?: number; identity?: string | null } = {}): string {
  const identity = writer.identity === undefined ? hostIdentity() : writer.identity;
  const pid = writer.pid ?? process.pid;
  return join(dirname(target), `${tempStem(basename(target))}${identity ?? NO_IDENTITY}-${pid}-${randomBytes(4).toString('hex')}`);
}

/** The writer a temp name records, when `name` is a temp of the target named `targetName`. */
export function parseTempName(name: string, targetName: string): { identity: string | null; pid: number } | undefined {
  const stem = tempStem(targetName);
  if (!name.startsWith(stem)) return undefined;
  const m = /^([0-9a-f]{16}|none)-(\d{1,10})-[0-9a-f]{8}$/.exec(name.slice(stem.length));
  if (!m) return undefined;
  return { identity: m[1] === NO_IDENTITY ? null : m[1]!, pid: Number(m[2]) };
}

/** The newest modification time in a tree (a temp directory's files are written long after it was made), without following links. */
async function newestMtime(path: string, depth = 0): Promise<number> {
  const st = await lstat(path);
  let t = st.mtimeMs;
  if (st.isDirectory() && depth < 16) {
    for (const e of await readdir(path)) t = Math.max(t, await newestMtime(join(path, e), depth + 1).catch(() => 0));
  }
  return t;
}

/**
 * Remove temps (files or directories) left beside `target` by earlier
 * writes of that same target that were interrupted: those whose writer is
 * proven dead (same host identity, pid gone), and those of another (or an
 * unknown) host untouched for ABANDONED_AFTER_MS. A temp whose writer may be
 * alive is never touched, nor anything that is not a temp of this target.
 * Best effort: returns the paths removed, never throws.
 */
export async function removeStaleTemps(target: string, now = Date.now()): Promise<string[]> {
  const dir = dirname(target);
  const name = basename(target);
  const me = hostIdentity();
  const removed: string[] = [];
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch {
    return removed;
  }
  for (const e of entries) {
    const writer = parseTempName(e, name);
    if (!writer) continue;
    const path = join(dir, e);
    try {
      let stale: boolean;
      if (me !== null && writer.identity === me) stale = provenDead(writer);
      else stale = now - (await newestMtime(path)) > ABANDONED_AFTER_MS;
      if (!stale) continue;
      await rm(path, { recursive: true, force: true });
      removed.push(path);
    } catch {
      /* vanished meanwhile, or not ours to remove: leave it */
    }
  }
  return removed;
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
    /** The path named in error messages. */
    readonly shownAs: string,
  ) {}

  /**
   * Open a temp beside `target`. Every file-system failure, here and later,
   * is an At1Error (fsError) naming `shownAs`: the target, or where it will
   * end up when it is written inside a temporary directory.
   */
  static async create(target: string, shownAs = target): Promise<AtomicFileWriter> {
    const tempPath = tempNameFor(target);
    let fh: FileHandle;
    try {
      fh = await open(tempPath, 'wx', 0o644);
    } catch (e) {
      throw fsError(e, 'create a temporary file to write', shownAs);
    }
    return new AtomicFileWriter(target, tempPath, fh, shownAs);
  }

  /**
   * Queue `data` at the current end of the file. Returns once the write is
   * under way (at most MAX_PENDING_WRITES in flight); `data` must not be
   * modified afterwards. Errors surface on a later write or on commit.
   */
  async write(data: Uint8Array): Promise<void> {
    await this.writeLent(data);
  }

  /**
   * As `write`, for a caller that lends `data` and reuses its buffer later
   * (a restore's ring of decode buffers): `copied` settles once the write
   * has finished with `data` (done or failed; a failure surfaces as with
   * `write`), and only then may the caller change it.
   */
  async writeLent(data: Uint8Array): Promise<{ copied: Promise<void> }> {
    if (this.failure) throw this.failure;
    const at = this.position;
    this.position += data.length;
    const p = this.writeAt(data, at).catch((e: unknown) => {
      this.failure ??= fsError(e, 'write', this.shownAs);
    });
    this.pending.push(p);
    if (this.pending.length >= MAX_PENDING_WRITES) await this.pending.shift();
    if (!this.flushing && this.position - this.flushedAt >= EARLY_FLUSH_BYTES) {
      this.flushedAt = this.position;
      this.flushing = this.fh.datasync().then(
        () => void (this.flushing = undefined),
        (e: unknown) => void (this.failure ??= fsError(e, 'write', this.shownAs)),
      );
    }
    if (this.failure) throw this.failure;
    return { copied: p };
  }

  /** Writes in flight at most (a caller lending buffers keeps this many more). */
  static readonly maxPendingWrites = MAX_PENDING_WRITES;

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
    try {
      await this.fh.sync();
    } catch (e) {
      throw fsError(e, 'write', this.shownAs);
    }
    try {
      await this.fh.close();
    } catch (e) {
      throw fsError(e, 'write', this.shownAs);
    }
    try {
      await rename(this.tempPath, this.target);
    } catch (e) {
      throw fsError(e, 'move the finished file into place at', this.shownAs);
    }
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
