/**
 * Errors as HTTP: every failure the API reports is JSON
 * `{ "error": { "code", "message" } }` with the status its code calls for;
 * the Hub-compatible routes answer as the Hub does instead (`X-Error-Code`
 * and `{ "error": message }`), since that is what its clients parse.
 */
import { At1Error } from '../index.js';

/** Hub error codes its clients branch on (huggingface_hub reads X-Error-Code). */
export type HubErrorCode = 'RepoNotFound' | 'RevisionNotFound' | 'EntryNotFound';

export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly hub?: HubErrorCode,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

export function notFound(message: string, hub: HubErrorCode): HttpError {
  return new HttpError(404, 'E_NOT_FOUND', message, hub);
}

export function badRequest(message: string): HttpError {
  return new HttpError(400, 'E_INPUT', message);
}

const STATUS: Record<string, number> = {
  E_NOT_FOUND: 404,
  E_INPUT: 400,
  E_SAFETENSORS: 400,
  E_EXISTS: 409,
  E_LOCKED: 503,
  E_INTEGRITY: 500,
  E_CORRUPT: 500,
  E_UNSUPPORTED: 500,
  E_ABORTED: 499,
  E_IO: 500,
};

/** Any thrown value as an HttpError: At1Errors keep their code; anything else is an internal error. */
export function toHttpError(e: unknown): HttpError {
  if (e instanceof HttpError) return e;
  if (e instanceof At1Error) {
    // A stored object that cannot be decoded (E_CORRUPT) and one that decodes to the wrong bytes (E_INTEGRITY) are one failure to a client: the stored data is damaged.
    if (e.code === 'E_CORRUPT') return new HttpError(500, 'E_INTEGRITY', e.message);
    const headers: Record<string, string> = e.code === 'E_LOCKED' ? { 'retry-after': '1' } : {};
    return new HttpError(STATUS[e.code] ?? 500, e.code, e.message, undefined, headers);
  }
  // fastify's own errors (a body too large, a malformed JSON body) carry a statusCode.
  const fe = e as { statusCode?: unknown; code?: unknown; message?: unknown };
  if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    return new HttpError(fe.statusCode, fe.statusCode === 413 ? 'E_TOO_LARGE' : 'E_INPUT', String(fe.message ?? 'bad request'));
  }
  return new HttpError(500, 'E_INTERNAL', `internal error: ${e instanceof Error ? e.message : String(e)}`);
}

export function jsonErrorBody(e: HttpError): { error: { code: string; message: string } } {
  return { error: { code: e.code, message: e.message } };
}
