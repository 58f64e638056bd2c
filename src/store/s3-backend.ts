/**
 * A Backend over an S3-compatible bucket (the contract: backend.ts; how S3
 * gives each promise: docs/FORMAT.md §12 and §15), with the AWS SDK v3.
 * Location `s3://bucket/prefix`: every key lives at `prefix/key`.
 *
 * - `create`: PUT with `If-None-Match: *` (412: the key exists).
 * - `put`: a plain PUT, atomic on every S3 service.
 * - `touch(key, expect)`: GET the value and its ETag, compare, then re-PUT
 *   the same bytes with `If-Match: <ETag>`: the storage sets LastModified,
 *   and the PUT fails (412) if anyone replaced or removed the key since the
 *   GET, so a holder never renews another holder's lease. (A copy onto
 *   itself with `x-amz-copy-source-if-match` is not safe: radosgw 16
 *   ignores that condition.) Without `expect` (an object reused by dedup,
 *   which may be megabytes) it is a server-side copy onto itself.
 * - `stat` reads LastModified from a one-key listing, not from HEAD:
 *   listings carry milliseconds, the HTTP Last-Modified header only seconds.
 * - Reads are GETs, ranged ones with `Range:`; a range past the end (416)
 *   is an empty read-up-to.
 * - `leftovers` are incomplete multipart uploads under the prefix (at1's own
 *   writes are single PUTs and leave none; other tools' may).
 *
 * Before its first conditional write a backend checks, once, that the
 * service honours conditional writes (a probe key under `locks/`), and
 * refuses to write (E_UNSUPPORTED) when it does not, unless the user opted
 * into the single-writer mode. Requests run through a limiter (16 in flight
 * by default) and are retried with jittered backoff on throttling, 5xx and
 * connection errors; the last failure names the key.
 */
import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { randomBytes } from 'node:crypto';
import {
  AbortMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  ListPartsCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { At1Error, AccessDeniedError } from '../errors.js';
import { checkAborted, checkKey, DEFAULT_PAGE_SIZE, shortRead, type Backend, type CallOptions, type Capabilities, type KeyInfo, type KeyStat, type ListOptions } from './backend.js';
import { backoffMs, DEFAULT_RETRY, RequestLimiter, sleep, type RetryPolicy } from './request-limiter.js';
import { parseS3Location, s3Settings, type S3Location, type S3Settings } from './s3-config.js';

// The SDK warns on every process start that its releases after January 2027 need Node 22; the version in the lock file supports Node 20.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

/** An S3 failure after the last attempt: the HTTP status and S3 error code, for callers that expect some (412, 404, 416). */
export class S3CallError extends At1Error {
  constructor(
    code: 'E_NOT_FOUND' | 'E_INPUT' | 'E_IO',
    message: string,
    readonly status: number | undefined,
    readonly s3Code: string | undefined,
    opts: { retryable: boolean; cause: unknown },
  ) {
    super(code, message, opts);
    this.name = 'S3CallError';
  }
}

const RETRYABLE_CODES = new Set([
  'SlowDown',
  'Throttling',
  'ThrottlingException',
  'RequestLimitExceeded',
  'TooManyRequestsException',
  'RequestTimeout',
  'RequestTimeoutException',
  'InternalError',
  'ServiceUnavailable',
  'ConditionalRequestConflict', // AWS: a concurrent conditional write to the same key is in progress
  'TimeoutError',
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'ENOTCONN',
  'UND_ERR_SOCKET',
]);

interface RawError {
  name?: string;
  code?: string;
  Code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
  $response?: { statusCode?: number };
}

function statusOf(e: RawError): number | undefined {
  return e.$metadata?.httpStatusCode ?? e.$response?.statusCode;
}

function codeOf(e: RawError): string | undefined {
  return e.Code ?? (e.name && e.name !== 'Error' && e.name !== 'S3ServiceException' ? e.name : undefined) ?? e.code;
}

export function isRetryableS3(e: unknown): boolean {
  const r = e as RawError;
  const status = statusOf(r);
  if (status !== undefined && (status >= 500 || status === 429)) return true;
  return [codeOf(r), r.code, r.name].some((c) => c !== undefined && RETRYABLE_CODES.has(c));
}

const isAbort = (e: unknown): boolean => (e as RawError)?.name === 'AbortError';

/** Bytes of a GET body, whole. */
async function bodyBytes(body: unknown): Promise<Uint8Array> {
  const b = body as { transformToByteArray?: () => Promise<Uint8Array> } | undefined;
  if (!b?.transformToByteArray) return new Uint8Array(0);
  return b.transformToByteArray();
}

const equalBytes = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && Buffer.compare(a, b) === 0;

export interface S3BackendOptions {
  endpoint?: string;
  /** Overrides the environment's settings (tests, benches). */
  settings?: Partial<S3Settings>;
  retry?: Partial<RetryPolicy>;
  /** Explicit credentials (library callers, tests); default: the SDK's chain (environment, profile, files, roles). */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** A request whose socket stays silent this long fails (retryably); default 2 min. Connecting: 10 s. */
  requestTimeoutMs?: number;
}

const REQUEST_TIMEOUT_MS = 120_000;
const CONNECT_TIMEOUT_MS = 10_000;

export class S3Backend implements Backend {
  readonly capabilities: Capabilities;
  readonly bucket: string;
  readonly root: string;
  readonly settings: S3Settings;
  readonly client: S3Client;
  private readonly limiter: RequestLimiter;
  private readonly retry: RetryPolicy;
  private conditional: Promise<void> | undefined;
  /** radosgw 16 matches If-Match only against the bare ETag; AWS documents the quoted form. Found by the probe. */
  private ifMatchQuoted = true;

  constructor(location: S3Location | string, opts: S3BackendOptions = {}) {
    const loc = typeof location === 'string' ? parseS3Location(location) : location;
    this.bucket = loc.bucket;
    this.root = loc.root;
    this.settings = { ...s3Settings({ endpoint: opts.endpoint }), ...opts.settings };
    this.retry = { ...DEFAULT_RETRY, attempts: this.settings.attempts, ...opts.retry };
    this.limiter = new RequestLimiter(this.settings.connections);
    this.capabilities = Object.freeze({ exclusiveCreate: true, atomicReplace: true, conditionalTouch: true, suggestedConnections: this.settings.connections });
    const agent = { keepAlive: true, maxSockets: this.settings.connections };
    this.client = new S3Client({
      endpoint: this.settings.endpoint,
      forcePathStyle: this.settings.endpoint !== undefined,
      region: this.settings.region,
      credentials: opts.credentials,
      // Flexible checksums on every PUT break streamed uploads on radosgw (and other non-AWS services): only where an API requires one.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      maxAttempts: 1, // retries are ours (request()), so that the last error can name the key
      // A service that stops answering must not hang a command: silence is a (retryable) timeout.
      requestHandler: {
        httpAgent: new HttpAgent(agent),
        httpsAgent: new HttpsAgent(agent),
        connectionTimeout: Math.min(CONNECT_TIMEOUT_MS, opts.requestTimeoutMs ?? CONNECT_TIMEOUT_MS),
        requestTimeout: opts.requestTimeoutMs ?? REQUEST_TIMEOUT_MS,
        throwOnRequestTimeout: true, // (the SDK only warns otherwise)
      },
    });
  }

  get location(): string {
    return `s3://${this.bucket}${this.root ? '/' + this.root : ''}`;
  }

  private full(key: string): string {
    return this.root ? `${this.root}/${key}` : key;
  }

  private rel(full: string): string | undefined {
    if (!this.root) return full;
    return full.startsWith(this.root + '/') ? full.slice(this.root.length + 1) : undefined;
  }

  private begin(what: string, key: string, signal: AbortSignal | undefined): void {
    checkKey(key);
    checkAborted(signal, what, key, this.location);
  }

  /**
   * One S3 call through the limiter, retried on retryable failures with
   * jittered backoff; `expected` statuses (404, 412, 416…) are thrown at once
   * as S3CallError for the caller to read. Abort is E_ABORTED.
   */
  private async request<T>(what: string, key: string, signal: AbortSignal | undefined, fn: (abortSignal: AbortSignal | undefined) => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      checkAborted(signal, what, key, this.location);
      try {
        return await this.limiter.run(() => {
          checkAborted(signal, what, key, this.location);
          return fn(signal);
        });
      } catch (e) {
        if (e instanceof At1Error) throw e;
        if (isAbort(e) || signal?.aborted) throw new At1Error('E_ABORTED', `${what} ${key} in ${this.location} aborted`, { cause: e });
        const retryable = isRetryableS3(e);
        if (retryable && attempt < this.retry.attempts) {
          try {
            await sleep(backoffMs(this.retry, attempt - 1), signal);
          } catch (abort) {
            throw new At1Error('E_ABORTED', `${what} ${key} in ${this.location} aborted`, { cause: abort });
          }
          continue;
        }
        throw this.failure(e, what, key, attempt, retryable);
      }
    }
  }

  private failure(e: unknown, what: string, key: string, attempts: number, retryable: boolean): At1Error {
    const r = e as RawError;
    const status = statusOf(r);
    const s3Code = codeOf(r);
    const tries = attempts > 1 ? ` (after ${attempts} attempts)` : '';
    const detail = `${s3Code ?? 'error'}${status ? ` (HTTP ${status})` : ''}${r.message && r.message !== s3Code ? `: ${r.message}` : ''}`;
    // A missing bucket is a wrong location (exit 2), not a missing key: callers that treat E_NOT_FOUND as "absent" must not swallow it.
    if (s3Code === 'NoSuchBucket') return new S3CallError('E_INPUT', `bucket ${this.bucket} does not exist (${what} ${key} in ${this.location})`, status, s3Code, { retryable: false, cause: e });
    if (status === 404 && s3Code !== 'NoSuchUpload') return new S3CallError('E_NOT_FOUND', `${key} is missing from ${this.location}`, status, s3Code, { retryable: false, cause: e });
    if (status === 403 || s3Code === 'AccessDenied') {
      return new AccessDeniedError(`could not ${what} ${key} in ${this.location}: access denied (${detail}); check the credentials' permissions on bucket ${this.bucket}`, { cause: e });
    }
    return new S3CallError('E_IO', `could not ${what} ${key} in ${this.location}: ${detail}${tries}`, status, s3Code, { retryable, cause: e });
  }

  private static statusIs(e: unknown, ...statuses: number[]): boolean {
    return e instanceof S3CallError && e.status !== undefined && statuses.includes(e.status);
  }

  async read(key: string, opts: CallOptions = {}): Promise<Uint8Array> {
    this.begin('read', key, opts.signal);
    return this.request('read', key, opts.signal, async (abortSignal) => {
      const r = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.full(key) }), { abortSignal });
      const bytes = await bodyBytes(r.Body);
      // A connection cut mid-body must not pass for a short object.
      if (r.ContentLength !== undefined && bytes.length !== r.ContentLength) throw Object.assign(new Error(`body of ${bytes.length} bytes, expected ${r.ContentLength}`), { code: 'ECONNRESET' });
      return bytes;
    });
  }

  async readRange(key: string, offset: number, length: number, opts: CallOptions = {}): Promise<Uint8Array> {
    const out = await this.readUpTo(key, offset, length, opts);
    if (out.length !== length) throw shortRead(this.location, key, offset, length, out.length);
    return out;
  }

  async readUpTo(key: string, offset: number, length: number, opts: CallOptions = {}): Promise<Uint8Array> {
    this.begin('read', key, opts.signal);
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
      throw new At1Error('E_INPUT', `bad range of ${key}: offset ${offset}, length ${length}`);
    }
    if (length === 0) {
      if ((await this.size(key, opts)) === undefined) throw new At1Error('E_NOT_FOUND', `${key} is missing from ${this.location}`);
      return new Uint8Array(0);
    }
    try {
      return await this.request('read', key, opts.signal, async (abortSignal) => {
        const r = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.full(key), Range: `bytes=${offset}-${offset + length - 1}` }), { abortSignal });
        const bytes = await bodyBytes(r.Body);
        if (r.ContentLength !== undefined && bytes.length !== r.ContentLength) throw Object.assign(new Error(`body of ${bytes.length} bytes, expected ${r.ContentLength}`), { code: 'ECONNRESET' });
        // A service that ignores Range answers 200 with the whole object.
        return r.ContentRange === undefined ? bytes.slice(offset, offset + length) : bytes;
      });
    } catch (e) {
      if (S3Backend.statusIs(e, 416)) return new Uint8Array(0); // the range starts at or past the end of an existing object
      throw e;
    }
  }

  async size(key: string, opts: CallOptions = {}): Promise<number | undefined> {
    this.begin('stat', key, opts.signal);
    try {
      const h = await this.request('stat', key, opts.signal, (abortSignal) => this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: this.full(key) }), { abortSignal }));
      return h.ContentLength ?? 0;
    } catch (e) {
      if (e instanceof S3CallError && e.code === 'E_NOT_FOUND') return undefined;
      throw e;
    }
  }

  /** From a one-key listing: listings give LastModified to the millisecond, HEAD only to the second. */
  async stat(key: string, opts: CallOptions = {}): Promise<KeyStat | undefined> {
    this.begin('stat', key, opts.signal);
    const full = this.full(key);
    const r = await this.request('stat', key, opts.signal, (abortSignal) =>
      this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: full, MaxKeys: 1 }), { abortSignal }),
    );
    const first = r.Contents?.[0]; // the key itself sorts before every longer key it prefixes
    if (!first || first.Key !== full) return undefined;
    return { size: first.Size ?? 0, mtimeMs: first.LastModified?.getTime() ?? Date.now() };
  }

  async touch(key: string, expect?: Uint8Array, opts: CallOptions = {}): Promise<boolean> {
    this.begin('touch', key, opts.signal);
    if (expect === undefined) return this.touchCopy(key, opts.signal);
    await this.requireConditionalWrites(opts.signal);
    let current: { bytes: Uint8Array; etag: string | undefined };
    try {
      current = await this.request('touch', key, opts.signal, async (abortSignal) => {
        const r = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key: this.full(key) }), { abortSignal });
        return { bytes: await bodyBytes(r.Body), etag: r.ETag };
      });
    } catch (e) {
      if (e instanceof S3CallError && e.code === 'E_NOT_FOUND') return false;
      throw e;
    }
    if (!equalBytes(current.bytes, expect)) return false;
    const ifMatch = !this.conditionalOk || current.etag === undefined ? undefined : this.etagForm(current.etag);
    try {
      await this.request('touch', key, opts.signal, (abortSignal) =>
        this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: this.full(key), Body: expect, IfMatch: ifMatch, ContentType: 'application/octet-stream' }), { abortSignal }),
      );
      return true;
    } catch (e) {
      if (S3Backend.statusIs(e, 412, 404, 409)) return false; // replaced or removed since the GET: not ours to renew
      throw e;
    }
  }

  /** Renew an object's LastModified without sending its bytes: a server-side copy onto itself. */
  private async touchCopy(key: string, signal: AbortSignal | undefined): Promise<boolean> {
    const source = `${this.bucket}/${this.full(key).split('/').map(encodeURIComponent).join('/')}`;
    try {
      await this.request('touch', key, signal, (abortSignal) =>
        this.client.send(new CopyObjectCommand({ Bucket: this.bucket, Key: this.full(key), CopySource: source, MetadataDirective: 'REPLACE', ContentType: 'application/octet-stream' }), { abortSignal }),
      );
      return true;
    } catch (e) {
      if (e instanceof S3CallError && e.code === 'E_NOT_FOUND') return false;
      throw e;
    }
  }

  private etagForm(etag: string): string {
    const bare = etag.replace(/^"|"$/g, '');
    return this.ifMatchQuoted ? `"${bare}"` : bare;
  }

  async create(key: string, data: Uint8Array, opts: CallOptions = {}): Promise<boolean> {
    this.begin('create', key, opts.signal);
    await this.requireConditionalWrites(opts.signal);
    if (this.settings.unsafeSingleWriter && !this.conditionalOk) {
      if ((await this.size(key, opts)) !== undefined) return false;
      await this.put(key, data, opts);
      return true;
    }
    let attempts = 0;
    try {
      await this.request('create', key, opts.signal, (abortSignal) => {
        attempts++;
        return this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: this.full(key), Body: data, IfNoneMatch: '*', ContentType: 'application/octet-stream' }), { abortSignal });
      });
      return true;
    } catch (e) {
      if (!S3Backend.statusIs(e, 412)) throw e;
      // A retried create may have landed the first time (the answer was lost): the key then holds our bytes, and the create was ours.
      if (attempts > 1) {
        const now = await this.read(key, opts).catch(() => undefined);
        if (now && equalBytes(now, data)) return true;
      }
      return false;
    }
  }

  async put(key: string, data: Uint8Array, opts: CallOptions = {}): Promise<void> {
    this.begin('put', key, opts.signal);
    await this.request('put', key, opts.signal, (abortSignal) =>
      this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: this.full(key), Body: data, ContentType: 'application/octet-stream' }), { abortSignal }),
    );
  }

  async remove(key: string, opts: CallOptions = {}): Promise<void> {
    this.begin('remove', key, opts.signal);
    try {
      await this.request('remove', key, opts.signal, (abortSignal) => this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.full(key) }), { abortSignal }));
    } catch (e) {
      if (e instanceof S3CallError && e.code === 'E_NOT_FOUND') return;
      throw e;
    }
  }

  async *list(prefix: string, opts: ListOptions = {}): AsyncGenerator<KeyInfo> {
    this.begin('list', prefix, opts.signal);
    const maxKeys = Math.min(1000, Math.max(1, opts.pageSize ?? DEFAULT_PAGE_SIZE));
    let token: string | undefined;
    do {
      const page = await this.request('list', prefix, opts.signal, (abortSignal) =>
        this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.full(prefix) + '/', MaxKeys: maxKeys, ContinuationToken: token }), { abortSignal }),
      );
      for (const o of page.Contents ?? []) {
        const key = o.Key === undefined ? undefined : this.rel(o.Key);
        if (key === undefined || !validKey(key)) continue; // written by another tool under a name no backend call could address
        yield { key, size: o.Size ?? 0, mtimeMs: o.LastModified?.getTime() };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  async *topLevel(opts: CallOptions = {}): AsyncGenerator<string> {
    checkAborted(opts.signal, 'list', '/', this.location);
    const prefix = this.root ? this.root + '/' : '';
    let token: string | undefined;
    do {
      const page = await this.request('list', '/', opts.signal, (abortSignal) =>
        this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: prefix, Delimiter: '/', ContinuationToken: token }), { abortSignal }),
      );
      for (const p of page.CommonPrefixes ?? []) if (p.Prefix) yield p.Prefix.slice(prefix.length).replace(/\/$/, '');
      for (const o of page.Contents ?? []) if (o.Key) yield o.Key.slice(prefix.length);
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  /** Incomplete multipart uploads under the prefix, as `multipart/<upload id>/<key>`, sized by their uploaded parts. */
  async *leftovers(opts: ListOptions = {}): AsyncGenerator<KeyInfo> {
    checkAborted(opts.signal, 'list', 'leftovers', this.location);
    let keyMarker: string | undefined;
    let uploadMarker: string | undefined;
    for (;;) {
      const page = await this.request('list', 'leftovers', opts.signal, (abortSignal) =>
        this.client.send(
          new ListMultipartUploadsCommand({ Bucket: this.bucket, Prefix: this.root ? this.root + '/' : undefined, KeyMarker: keyMarker, UploadIdMarker: uploadMarker, MaxUploads: Math.min(1000, opts.pageSize ?? 1000) }),
          { abortSignal },
        ),
      );
      for (const u of page.Uploads ?? []) {
        const key = u.Key === undefined ? undefined : this.rel(u.Key);
        if (key === undefined || u.UploadId === undefined || !validKey(key)) continue;
        const size = await this.uploadedBytes(u.Key!, u.UploadId, key, opts.signal);
        yield { key: `multipart/${encodeURIComponent(u.UploadId)}/${key}`, size, mtimeMs: u.Initiated?.getTime() };
      }
      if (!page.IsTruncated) return;
      keyMarker = page.NextKeyMarker;
      uploadMarker = page.NextUploadIdMarker;
    }
  }

  private async uploadedBytes(fullKey: string, uploadId: string, key: string, signal: AbortSignal | undefined): Promise<number> {
    let total = 0;
    let marker: string | undefined;
    for (;;) {
      const parts = await this.request('list', key, signal, (abortSignal) =>
        this.client.send(new ListPartsCommand({ Bucket: this.bucket, Key: fullKey, UploadId: uploadId, PartNumberMarker: marker }), { abortSignal }),
      );
      for (const p of parts.Parts ?? []) total += p.Size ?? 0;
      if (!parts.IsTruncated) return total;
      marker = parts.NextPartNumberMarker;
    }
  }

  async removeLeftover(key: string, opts: CallOptions = {}): Promise<void> {
    this.begin('remove', key, opts.signal);
    const m = /^multipart\/([^/]+)\/(.+)$/.exec(key);
    if (!m) throw new At1Error('E_INPUT', `${key} is not a leftover of ${this.location} (leftovers are multipart/<upload id>/<key>)`);
    const uploadId = decodeURIComponent(m[1]!);
    try {
      await this.request('remove', key, opts.signal, (abortSignal) =>
        this.client.send(new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: this.full(m[2]!), UploadId: uploadId }), { abortSignal }),
      );
    } catch (e) {
      if (e instanceof S3CallError && (e.s3Code === 'NoSuchUpload' || (e.code === 'E_NOT_FOUND'))) return;
      throw e;
    }
  }

  /** Leave an incomplete multipart upload, as an interrupted upload of another tool would (tests). Returns its leftover key. */
  async plantLeftover(name: string, data: Uint8Array): Promise<string> {
    const key = `tmp/${name}`;
    checkKey(key);
    const up = await this.client.send(new CreateMultipartUploadCommand({ Bucket: this.bucket, Key: this.full(key) }));
    await this.client.send(new UploadPartCommand({ Bucket: this.bucket, Key: this.full(key), UploadId: up.UploadId!, PartNumber: 1, Body: data }));
    return `multipart/${encodeURIComponent(up.UploadId!)}/${key}`;
  }

  private conditionalOk = false;

  /**
   * Once per backend, before its first conditional write: prove that the
   * service honours If-None-Match: * and If-Match on PUT (a service that
   * ignored them would let two writers overwrite each other's versions and
   * leases). Refuses to write (E_UNSUPPORTED) when it does not, unless the
   * user chose the single-writer mode.
   */
  private requireConditionalWrites(signal: AbortSignal | undefined): Promise<void> {
    this.conditional ??= this.probeConditionalWrites(signal).catch((e: unknown) => {
      this.conditional = undefined; // a failed probe (network, abort) is tried again by the next write
      throw e;
    });
    return this.conditional;
  }

  private async probeConditionalWrites(signal: AbortSignal | undefined): Promise<void> {
    const key = `locks/conditional-write-probe-${randomBytes(8).toString('hex')}`;
    const put = (body: string, cond: { IfNoneMatch?: string; IfMatch?: string }): Promise<{ ok: boolean; etag?: string; why?: string }> =>
      this.request('probe', key, signal, (abortSignal) => this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key: this.full(key), Body: body, ...cond }), { abortSignal })).then(
        (r) => ({ ok: true, etag: r.ETag }),
        (e: unknown) => {
          if (S3Backend.statusIs(e, 412)) return { ok: false };
          if (e instanceof AccessDeniedError) throw e;
          if (e instanceof S3CallError && !e.retryable) return { ok: false, why: (e as Error).message };
          throw e;
        },
      );
    let problem: string | undefined;
    try {
      const first = await put('probe 1', { IfNoneMatch: '*' });
      if (!first.ok) problem = `a PUT with If-None-Match: * of a new key failed${first.why ? `: ${first.why}` : ''}`;
      else if ((await put('probe 2', { IfNoneMatch: '*' })).ok) problem = 'a PUT with If-None-Match: * replaced an existing key';
      else if ((await put('probe 3', { IfMatch: '"00000000000000000000000000000000"' })).ok) problem = 'a PUT with If-Match on a wrong ETag replaced the key';
      else {
        const etag = (first.etag ?? '').replace(/^"|"$/g, '');
        if ((await put('probe 1', { IfMatch: `"${etag}"` })).ok) this.ifMatchQuoted = true;
        else if ((await put('probe 1', { IfMatch: etag })).ok) this.ifMatchQuoted = false;
        else problem = 'a PUT with If-Match on the current ETag was refused';
      }
    } finally {
      await this.request('remove', key, undefined, (abortSignal) => this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.full(key) }), { abortSignal })).catch(() => undefined);
    }
    if (problem === undefined) {
      this.conditionalOk = true;
      return;
    }
    if (this.settings.unsafeSingleWriter) return;
    throw new At1Error(
      'E_UNSUPPORTED',
      `${this.location}: the service does not honour conditional writes (${problem}), so two writers could overwrite each other's versions and locks; ` +
        'writes are refused. If you can guarantee that one writer at a time uses this registry, set AT1_S3_UNSAFE_SINGLE_WRITER=1 (docs/FORMAT.md §15)',
    );
  }

  /** Close the connection pool (tests, benches; a CLI process simply exits). */
  destroy(): void {
    this.client.destroy();
  }
}

function validKey(key: string): boolean {
  try {
    checkKey(key);
    return true;
  } catch {
    return false;
  }
}
