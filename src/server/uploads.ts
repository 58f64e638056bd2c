/**
 * Upload bodies land in a temporary area before anything touches the
 * registry: a safetensors body as one file, a tar body extracted into a
 * model directory (regular files and folders only; absolute paths, `..`,
 * links and devices refused). The byte limit is enforced as bytes arrive,
 * so an oversized or endless body is cut off without filling the disk.
 */
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { HttpError, badRequest } from './http-errors.js';

export interface UploadArea {
  dir: string;
  remove(): Promise<void>;
}

export async function uploadArea(base: string | undefined): Promise<UploadArea> {
  const dir = await mkdtemp(join(base ?? tmpdir(), 'at1-upload-'));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

/** A pass-through that fails with 413 once more than `max` bytes went through it. */
function byteLimit(max: number): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      seen += chunk.length;
      if (seen > max) cb(new HttpError(413, 'E_TOO_LARGE', `the upload exceeds the ${max}-byte limit; nothing was added`));
      else cb(null, chunk);
    },
  });
}

/** Write the body to `path`, at most `max` bytes. */
export async function receiveFile(body: Readable, path: string, max: number): Promise<void> {
  await pipeline(body, byteLimit(max), createWriteStream(path, { flags: 'wx' }));
}

/** Why a tar entry's name is refused, or undefined when it may be extracted. */
export function tarPathProblem(name: string): string | undefined {
  const clean = name.replace(/^\.\/+/, '').replace(/\/+$/, '');
  if (clean === '' || clean === '.') return undefined; // the archive's root
  if (clean.startsWith('/')) return 'it is absolute';
  if (/[\\\u0000-\u001f]/.test(clean)) return 'it has a backslash or a control character';
  for (const seg of clean.split('/')) if (seg === '' || seg === '.' || seg === '..') return 'it has an empty, "." or ".." segment';
  return undefined;
}

/**
 * Extract a tar body into `dir` (which exists), at most `max` bytes of
 * archive. A refused entry stops the extraction; the rest of the body is
 * then read and dropped (within the byte limit and the request timeout),
 * so the client gets the 400 instead of a connection reset mid-upload.
 */
export async function receiveTar(body: Readable, dir: string, max: number): Promise<number> {
  const extract = tar.extract();
  const limiter = byteLimit(max);
  body.pipe(limiter);
  const done = pipeline(limiter, extract);
  let files = 0;
  try {
    for await (const entry of extract) {
      const h = entry.header;
      const why = tarPathProblem(h.name);
      if (why) throw badRequest(`tar entry ${JSON.stringify(h.name)} refused: ${why}; nothing was added`);
      const rel = h.name.replace(/^\.\/+/, '').replace(/\/+$/, '');
      if (h.type === 'directory') {
        if (rel !== '' && rel !== '.') await mkdir(join(dir, rel), { recursive: true });
        entry.resume();
        continue;
      }
      if (h.type !== 'file' && h.type !== 'contiguous-file') throw badRequest(`tar entry ${JSON.stringify(h.name)} is a ${h.type}: only regular files and folders are accepted; nothing was added`);
      const target = join(dir, rel);
      await mkdir(dirname(target), { recursive: true });
      await pipeline(entry, createWriteStream(target, { flags: 'wx' })).catch((e: NodeJS.ErrnoException) => {
        if (e.code === 'EEXIST') throw badRequest(`tar entry ${JSON.stringify(h.name)} appears twice; nothing was added`);
        throw e;
      });
      files++;
    }
    await done;
  } catch (e) {
    done.catch(() => undefined);
    body.unpipe(limiter);
    limiter.destroy();
    if (!(e instanceof HttpError && e.status === 413)) body.resume(); // drain: the answer is sent once the body is in
    throw e;
  }
  if (files === 0) throw badRequest('the tar body holds no files; nothing was added');
  return files;
}
