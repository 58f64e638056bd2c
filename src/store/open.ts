/**
 * Choosing a backend by location: the only place above the backends that
 * names one. Locations:
 * - a plain path (`models/reg`, `/srv/reg`): a local directory;
 * - `file:///srv/reg`: the same, as a URL;
 * - `memory:NAME`: a named in-process memory store (tests, embedding): every
 *   open of one name in a process sees the same keys;
 * - `s3://bucket/prefix`: an S3-compatible bucket (s3-backend.ts); the
 *   endpoint from `endpoint`, AT1_S3_ENDPOINT or the AWS variables, the
 *   credentials from the AWS SDK's chain. Any other `scheme://` is refused
 *   with E_UNSUPPORTED.
 * A local directory whose name starts with `memory:` is reached as
 * `./memory:…`.
 */
import { stat } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { At1Error } from '../errors.js';
import type { Backend } from './backend.js';
import { LocalBackend } from './local-backend.js';
import { MemoryBackend } from './memory-backend.js';
import { S3Backend } from './s3-backend.js';

export interface OpenBackendOptions {
  /**
   * 'existing' (the default): a local directory must exist (E_NOT_FOUND,
   * or E_INPUT when it is not a directory). 'create': it may be missing (the
   * first write makes it) but must not be anything other than a directory.
   */
  mode?: 'existing' | 'create';
  /** What the location should hold, for messages ('registry': "registry X does not exist"). */
  what?: string;
  /** S3: the service's endpoint (the CLI's --endpoint); otherwise AT1_S3_ENDPOINT, AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, or AWS itself. */
  endpoint?: string;
}

const SCHEME = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\//;

export async function openBackend(location: string, opts: OpenBackendOptions = {}): Promise<Backend> {
  if (location.startsWith('memory:')) {
    const name = location.slice('memory:'.length);
    if (name === '') throw new At1Error('E_INPUT', `memory location ${JSON.stringify(location)} needs a name: memory:NAME`);
    return new MemoryBackend(name);
  }
  const scheme = SCHEME.exec(location)?.[1]?.toLowerCase();
  if (scheme === 's3') return new S3Backend(location, { endpoint: opts.endpoint });
  if (scheme !== undefined && scheme !== 'file') throw new At1Error('E_UNSUPPORTED', `${location}: unknown storage scheme ${scheme}:// (known: a path, file://, s3://bucket/prefix, memory:NAME)`);
  let dir = location;
  if (scheme === 'file') {
    try {
      dir = fileURLToPath(location);
    } catch (e) {
      throw new At1Error('E_INPUT', `${location} is not a valid file:// URL: ${(e as Error).message}`, { cause: e });
    }
  }
  const st = await stat(dir).catch(() => undefined);
  if (opts.mode === 'create') {
    if (st && !st.isDirectory()) throw new At1Error('E_INPUT', `${dir} exists and is not a directory`);
  } else {
    if (!st) throw new At1Error('E_NOT_FOUND', `${opts.what ?? 'directory'} ${dir} does not exist`);
    if (!st.isDirectory()) throw new At1Error('E_INPUT', `${dir} is not a directory${opts.what ? `, so not a ${opts.what}` : ''}`);
  }
  return new LocalBackend(dir);
}
