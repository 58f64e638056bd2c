/**
 * File-system failures as typed errors. Every errno that reaches a user is
 * turned into an At1Error whose message names the path and says what went
 * wrong in words (disk full, permission denied, name too long…), so the CLI
 * never has to print a stack trace. Callers pass what they were doing
 * ("write", "open", "create directory") and the path they were doing it to.
 */
import { At1Error, type ErrorCode } from '../errors.js';

const WORDS: Record<string, { code: ErrorCode; words: string }> = {
  ENOSPC: { code: 'E_IO', words: 'no space left on the device (disk full)' },
  EDQUOT: { code: 'E_IO', words: 'disk quota exceeded' },
  EIO: { code: 'E_IO', words: 'an I/O error from the device' },
  EROFS: { code: 'E_IO', words: 'the file system is read-only' },
  EMFILE: { code: 'E_IO', words: 'too many open files (raise ulimit -n)' },
  ENFILE: { code: 'E_IO', words: 'too many open files on the system' },
  EACCES: { code: 'E_INPUT', words: 'permission denied' },
  EPERM: { code: 'E_INPUT', words: 'operation not permitted' },
  ENAMETOOLONG: { code: 'E_INPUT', words: 'the file name is too long for the file system' },
  ENOTDIR: { code: 'E_INPUT', words: 'a component of the path is not a directory' },
  EISDIR: { code: 'E_INPUT', words: 'it is a directory' },
  EILSEQ: { code: 'E_INPUT', words: 'the file name is not valid in this file system (illegal byte sequence)' },
  ELOOP: { code: 'E_INPUT', words: 'too many symbolic links (or a link where none is allowed)' },
  ENOENT: { code: 'E_NOT_FOUND', words: 'no such file or directory' },
  EEXIST: { code: 'E_EXISTS', words: 'it already exists' },
  ENOTEMPTY: { code: 'E_EXISTS', words: 'the directory is not empty' },
  EXDEV: { code: 'E_INPUT', words: 'it is on another file system' },
  EBUSY: { code: 'E_IO', words: 'the resource is busy' },
  ETXTBSY: { code: 'E_IO', words: 'the file is busy' },
  EAGAIN: { code: 'E_IO', words: 'the resource is temporarily unavailable' },
  EINTR: { code: 'E_IO', words: 'interrupted by a signal' },
  ETIMEDOUT: { code: 'E_IO', words: 'the operation timed out' },
};

export function errnoOf(e: unknown): string | undefined {
  return typeof e === 'object' && e !== null && typeof (e as NodeJS.ErrnoException).code === 'string' ? (e as NodeJS.ErrnoException).code : undefined;
}

export function isErrno(e: unknown, code: string): boolean {
  return errnoOf(e) === code;
}

/** Errors worth retrying as they are (transient device or resource trouble). */
const RETRYABLE = new Set(['EAGAIN', 'EBUSY', 'EMFILE', 'ENFILE', 'EIO', 'EINTR', 'ETIMEDOUT', 'ETXTBSY']);

/** Whether a failed call with this errno may succeed if simply tried again. */
export function isRetryableErrno(errno: string | undefined): boolean {
  return errno !== undefined && RETRYABLE.has(errno);
}

/**
 * The At1Error for a failed file-system call: `action` says what was being
 * done ("write", "open", "create directory"), `path` to what. An At1Error
 * passes through unchanged, so wrapping twice is harmless.
 */
export function fsError(e: unknown, action: string, path: string): At1Error {
  if (e instanceof At1Error) return e;
  const errno = errnoOf(e);
  const known = errno ? WORDS[errno] : undefined;
  const why = known ? `${known.words} (${errno})` : errno ? `${errno}: ${(e as Error).message}` : e instanceof Error ? e.message : String(e);
  return new At1Error(known?.code ?? 'E_IO', `could not ${action} ${path}: ${why}`, { cause: e, retryable: isRetryableErrno(errno) });
}

/** Run a file-system call, turning any failure into fsError(action, path). */
export async function fsCall<T>(action: string, path: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw fsError(e, action, path);
  }
}
