/**
 * What `at1 serve` is started with, and the limits that keep one client
 * from starving the others. Every limit has a default a team server can
 * run with; the CLI exposes the ones an operator tunes.
 */
import type { RegistrySettings } from '../index.js';

export interface ServeOptions {
  /** A registry, or a folder whose sub-folders are registries. */
  path: string;
  host?: string;
  port?: number;
  /** `ORG/NAME` for a single registry (default `local/<directory name>`). */
  repo?: string;
  /** The bearer token writes need; undefined: the server is read-only (405 on writes). */
  token?: string;
  settings?: Partial<RegistrySettings>;
  /** One JSON line per request on stderr. */
  jsonLogs?: boolean;
  limits?: Partial<Limits>;
}

export interface Limits {
  /** Largest request header block (bytes); larger gets 431 from Node's parser. */
  maxHeaderBytes: number;
  /** Largest upload body (bytes) for PUT; larger gets 413 and nothing is added. */
  maxUploadBytes: number;
  /** Largest JSON body (paths-info) in bytes. */
  maxJsonBytes: number;
  /** Time to receive a whole request, body included (ms): a stalled upload is cut off. */
  requestTimeoutMs: number;
  /** Responses decoding at once; more wait for a slot. */
  maxConcurrentDecodes: number;
  /** How long a request waits for a decode slot before a 503 (ms). */
  decodeQueueMs: number;
  /**
   * Responses up to this many bytes are decoded and checked completely
   * before the status line is sent, so a damaged object gives a clean 500;
   * larger ones stream, and a failure mid-stream aborts the connection.
   */
  bufferBytes: number;
  /** Ranges one multipart/byteranges request may ask for; more are refused with 416 naming the limit. */
  maxRanges: number;
  /** Where uploads are written before they are added (default: the OS temp dir). */
  uploadDir?: string;
}

export const DEFAULT_LIMITS: Limits = {
  maxHeaderBytes: 16 * 1024,
  maxUploadBytes: 64 * 1024 ** 3,
  maxJsonBytes: 1024 * 1024,
  requestTimeoutMs: 30 * 60 * 1000,
  maxConcurrentDecodes: 8,
  decodeQueueMs: 30_000,
  bufferBytes: 8 * 1024 * 1024,
  maxRanges: 16,
};
