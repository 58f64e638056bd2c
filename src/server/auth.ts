/**
 * Bearer tokens for writes. The token is read from a file at start; a
 * request's token is compared in constant time (both sides hashed to 32
 * bytes first, so neither the length nor the first differing byte leaks
 * through timing). No token file: the server is read-only and writes are
 * 405 whatever the request carries.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { At1Error } from '../index.js';
import { HttpError } from './http-errors.js';

export function readTokenFile(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new At1Error('E_NOT_FOUND', `--token-file ${path}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  const token = text.trim();
  if (token.length < 16) throw new At1Error('E_INPUT', `--token-file ${path}: the token must be at least 16 characters (it is ${token.length})`);
  if (/\s/.test(token)) throw new At1Error('E_INPUT', `--token-file ${path}: the token must be one line without spaces`);
  return token;
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

/** Throws the HttpError a write without the right token gets: 405 (read-only server), 401 (no token), 403 (wrong token). */
export function checkWriteAuth(token: string | undefined, authorization: string | undefined): void {
  if (token === undefined) throw new HttpError(405, 'E_READ_ONLY', 'this server is read-only (started without --token-file)', undefined, { allow: 'GET, HEAD' });
  const m = authorization === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(authorization);
  if (!m) throw new HttpError(401, 'E_UNAUTHORIZED', 'writes need Authorization: Bearer <token>', undefined, { 'www-authenticate': 'Bearer realm="at1"' });
  if (!timingSafeEqual(digest(m[1]!), digest(token))) throw new HttpError(403, 'E_FORBIDDEN', 'the bearer token is not the one this server accepts');
}
