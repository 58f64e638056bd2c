/**
 * Where an S3 backend points and how it talks: `s3://bucket/prefix`
 * locations, the endpoint, and the knobs users set through the environment
 * (docs/FORMAT.md §15). Credentials and region come from the AWS SDK's own
 * chain (AWS_ACCESS_KEY_ID…, AWS_PROFILE, ~/.aws/config and credentials,
 * instance roles), so at1 reads no secret itself.
 */
import { At1Error } from '../errors.js';
import { checkKey } from './backend.js';

export interface S3Location {
  bucket: string;
  /** Key prefix of the registry inside the bucket, without leading or trailing `/`; '' for the bucket's root. */
  root: string;
}

const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

/** Parse `s3://bucket/prefix` (the prefix may be empty or end with `/`). */
export function parseS3Location(location: string): S3Location {
  const m = /^s3:\/\/([^/]*)\/?(.*)$/i.exec(location);
  if (!m) throw new At1Error('E_INPUT', `${location} is not an s3://bucket/prefix location`);
  const bucket = m[1]!;
  if (!BUCKET.test(bucket) || bucket.includes('..')) {
    throw new At1Error('E_INPUT', `${location}: ${JSON.stringify(bucket)} is not a valid bucket name (3–63 characters: lower-case letters, digits, '.', '-')`);
  }
  const root = m[2]!.replace(/\/+$/, '');
  if (root !== '') {
    try {
      checkKey(root);
    } catch {
      throw new At1Error('E_INPUT', `${location}: the prefix ${JSON.stringify(root)} has an empty, '.' or '..' segment, a backslash or a control character`);
    }
  }
  return { bucket, root };
}

export interface S3Settings {
  /** Custom endpoint (RGW, MinIO, R2…): path-style addressing is used with it. Undefined: AWS's own endpoints. */
  endpoint: string | undefined;
  /** Region; undefined lets the SDK find it (AWS_REGION, the config file); 'us-east-1' with a custom endpoint when none is set. */
  region: string | undefined;
  /** Requests in flight per backend (AT1_S3_CONNECTIONS, default 16). */
  connections: number;
  /** Attempts per request, the first included (AT1_S3_ATTEMPTS, default 6). */
  attempts: number;
  /**
   * AT1_S3_UNSAFE_SINGLE_WRITER=1: write even where the service ignores or
   * refuses conditional writes (If-None-Match / If-Match). The user then
   * promises that one writer at a time uses the registry; see FORMAT.md §15.
   */
  unsafeSingleWriter: boolean;
}

function positiveInt(env: NodeJS.ProcessEnv, name: string, dflt: number, max: number): number {
  const v = env[name];
  if (v === undefined || v === '') return dflt;
  if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > max) throw new At1Error('E_INPUT', `${name}=${JSON.stringify(v)}: expected a whole number from 1 to ${max}`);
  return Number(v);
}

/** The settings for a backend, from explicit options over the environment. */
export function s3Settings(opts: { endpoint?: string } = {}, env: NodeJS.ProcessEnv = process.env): S3Settings {
  const endpoint = opts.endpoint || env.AT1_S3_ENDPOINT || env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL || undefined;
  if (endpoint !== undefined) {
    let u: URL;
    try {
      u = new URL(endpoint);
    } catch {
      throw new At1Error('E_INPUT', `S3 endpoint ${JSON.stringify(endpoint)} is not a URL (expected e.g. http://127.0.0.1:7480)`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new At1Error('E_INPUT', `S3 endpoint ${endpoint}: expected http:// or https://`);
  }
  const unsafe = env.AT1_S3_UNSAFE_SINGLE_WRITER;
  if (unsafe !== undefined && unsafe !== '' && unsafe !== '0' && unsafe !== '1') throw new At1Error('E_INPUT', `AT1_S3_UNSAFE_SINGLE_WRITER=${JSON.stringify(unsafe)}: expected 1 or 0`);
  return {
    endpoint,
    region: env.AWS_REGION || env.AWS_DEFAULT_REGION || (endpoint !== undefined ? 'us-east-1' : undefined),
    connections: positiveInt(env, 'AT1_S3_CONNECTIONS', 16, 1024),
    attempts: positiveInt(env, 'AT1_S3_ATTEMPTS', 6, 100),
    unsafeSingleWriter: unsafe === '1',
  };
}
