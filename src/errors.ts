/**
 * Typed errors. Every error at1 raises on purpose is an At1Error with a stable
 * `code`; the CLI prints its message and exits non-zero. `retryable` says
 * whether trying again could help (a held lock, a transient I/O fault), as in
 * huggingface.js: callers decide on retries, not on message text.
 */
export type ErrorCode =
  | 'E_SAFETENSORS' // an input file breaks a safetensors rule
  | 'E_INPUT' // a bad argument: name, path, option
  | 'E_NOT_FOUND' // a version, tensor, file or registry that does not exist
  | 'E_EXISTS' // a name already taken, a registry already there
  | 'E_INTEGRITY' // stored data does not match its SHA-256
  | 'E_CORRUPT' // stored data cannot be parsed (object or manifest)
  | 'E_LOCKED' // another writer holds the registry lock
  | 'E_UNSUPPORTED' // a format or codec version this build does not know, or a backend not built
  | 'E_ABORTED' // the caller's AbortSignal fired
  | 'E_IO'; // the file system failed

export class At1Error extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;
  constructor(code: ErrorCode, message: string, opts: { retryable?: boolean; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = 'At1Error';
    this.code = code;
    this.retryable = opts.retryable ?? false;
  }
}

/** Stored bytes whose digest does not match; names what failed, down to the tensor. */
export class IntegrityError extends At1Error {
  constructor(
    message: string,
    readonly where: { version?: string; file?: string; tensor?: string; object?: string },
  ) {
    super('E_INTEGRITY', message);
    this.name = 'IntegrityError';
  }
}

/**
 * The storage refused the credentials this call (S3: 403). Permanent. A
 * reader with a read-only credential cannot take a reader lease; it reads
 * without one (registry.ts), so catching this class is how it tells.
 */
export class AccessDeniedError extends At1Error {
  constructor(message: string, opts: { cause?: unknown } = {}) {
    super('E_IO', message, { ...opts, retryable: false });
    this.name = 'AccessDeniedError';
  }
}
