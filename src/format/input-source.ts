/**
 * Where the bytes of an input come from: a local file (opened once, read by
 * position through one handle) or bytes in memory (a server upload, an
 * object fetched from S3). Header parsing, reference choice and add all read
 * through one InputSource per input file, so a file is opened once per add.
 *
 * Reads are strict: `readRange` returns exactly `length` bytes or throws; a
 * short read (the file shrank under us) is an error naming the input, never
 * a silently shorter buffer.
 */
import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { At1Error } from '../errors.js';
import { fsCall, fsError } from '../util/fs-errors.js';

export interface ReadOptions {
  signal?: AbortSignal;
}

export interface InputSource {
  /** What to call the input in messages (a path, an upload's name). */
  readonly name: string;
  /** Its size in bytes, as it was when opened. */
  readonly size: number;
  /** Exactly `length` bytes from `offset`; a range past the end, or a short read, is an error naming the input. */
  readRange(offset: number, length: number, opts?: ReadOptions): Promise<Uint8Array>;
  /**
   * Throws E_INPUT when the input is no longer what was read (a file whose
   * size changed while it was read). Optional: an in-memory source cannot change.
   */
  checkUnchanged?(): Promise<void>;
  /** Release what the source holds (the file handle). Idempotent. */
  close(): Promise<void>;
}

function checkRange(name: string, size: number, offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    throw new At1Error('E_INPUT', `${name}: invalid read of ${length} bytes at ${offset}`);
  }
  if (offset + length > size) {
    throw new At1Error('E_INPUT', `${name}: a read of bytes [${offset}, ${offset + length}) runs past the end of the ${size}-byte input`);
  }
}

/**
 * Open a regular file for reading, once: every later read is a positioned
 * read on this handle. O_NONBLOCK, so a FIFO is refused instead of hanging
 * the open. A missing file is E_NOT_FOUND naming it; other failures are
 * fs-errors.ts errors naming the path.
 */
export async function openFileSource(path: string): Promise<InputSource> {
  let fh: FileHandle;
  try {
    fh = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') throw new At1Error('E_NOT_FOUND', `${path}: no such file`, { cause: e });
    throw fsError(e, 'open', path);
  }
  let size: number;
  try {
    const st = await fsCall('inspect', path, () => fh.stat());
    if (!st.isFile()) throw new At1Error('E_INPUT', `${path}: not a regular file`);
    size = st.size;
  } catch (e) {
    await fh.close().catch(() => undefined);
    throw e;
  }
  let closed: Promise<void> | undefined;
  return {
    name: path,
    size,
    async readRange(offset: number, length: number, opts: ReadOptions = {}): Promise<Uint8Array> {
      checkRange(path, size, offset, length);
      const buf = new Uint8Array(length);
      let got = 0;
      while (got < length) {
        opts.signal?.throwIfAborted();
        const { bytesRead } = await fsCall('read', path, () => fh.read(buf, got, length - got, offset + got));
        if (bytesRead === 0) throw new At1Error('E_INPUT', `${path} became shorter while it was being read (it ended at byte ${offset + got}, not ${size})`);
        got += bytesRead;
      }
      return buf;
    },
    async checkUnchanged(): Promise<void> {
      const now = await fsCall('inspect', path, () => fh.stat());
      if (now.size !== size) throw new At1Error('E_INPUT', `${path} changed size while it was being read; nothing was added`);
    },
    close(): Promise<void> {
      closed ??= fh.close().catch(() => undefined);
      return closed;
    },
  };
}

/** Bytes in memory as an input (not copied: the caller must not change them while they are read). */
export function bytesSource(bytes: Uint8Array, name: string): InputSource {
  return {
    name,
    size: bytes.length,
    async readRange(offset: number, length: number, opts: ReadOptions = {}): Promise<Uint8Array> {
      opts.signal?.throwIfAborted();
      checkRange(name, bytes.length, offset, length);
      return bytes.slice(offset, offset + length);
    },
    close: async () => undefined,
  };
}
