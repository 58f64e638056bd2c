/**
 * Restoring versions to files: getVersion writes a version out, a file or
 * a model directory, and publishes it only after every check passed, so a
 * failed restore leaves no output behind; streamVersion hands a one-file
 * version to a pipe or a server. Decoding and checking is the shared
 * pipeline of decode-pipeline.ts.
 */
import { mkdir, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { At1Error } from '../errors.js';
import { AtomicFileWriter, fsyncDir, removeStaleTemps, tempNameFor } from '../util/atomic-file.js';
import { fsCall } from '../util/fs-errors.js';
import { checkOutputPath } from '../util/output-path.js';
import type { VersionManifest } from './manifest.js';
import type { ProgressFn } from './progress.js';
import type { Registry } from './registry.js';
import { chunkSource, type ChunkSource } from './chunk-source.js';
import { readFile, readFileResults } from './decode-pipeline.js';

/** A one-file version as a verified byte stream (for servers and pipes); the last read throws if any check fails. */
export function streamVersion(reg: Registry, name: string): AsyncGenerator<Uint8Array> {
  return reg.readingStream(`stream ${name}`, [name], async function* () {
    const m = await reg.manifest(name);
    if (m.layout !== 'file' || m.files.length !== 1) throw new At1Error('E_UNSUPPORTED', `version ${name} is a model directory; stream its files one by one`);
    yield* readFile(reg, m, m.files[0]!);
  });
}

/**
 * A restore decodes into a ring of buffers (no allocation per chunk) and
 * lends each chunk's buffer to its write until the write has it; writes in
 * flight overlap the next chunks' decoding and hashing.
 */
const RING = { reuseBuffers: true, lentSlots: AtomicFileWriter.maxPendingWrites } as const;

export interface GetOptions {
  onProgress?: ProgressFn;
}

export interface GetResult {
  name: string;
  out: string;
  bytes: number;
  /** SHA-256 of the file (one-file versions). */
  sha256?: string;
  /** Every file restored, with its SHA-256 (model directories). */
  files?: { path: string; bytes: number; sha256: string }[];
}

/**
 * Restore a version: a one-file version to the file `out`, a model
 * directory to the directory `out` (which must not exist or be empty). Both
 * are atomic: the file or directory appears only when every check passed.
 */
export async function getVersion(reg: Registry, name: string, out: string, opts: GetOptions = {}): Promise<GetResult> {
  // Under a reader lease from before the manifest is read: gc and rm then leave everything this restore needs (FORMAT.md §8b).
  return reg.reading(`get ${name}`, [name], () => getUnderLease(reg, name, out, opts));
}

async function getUnderLease(reg: Registry, name: string, out: string, opts: GetOptions): Promise<GetResult> {
  const m = await reg.manifest(name);
  if (m.layout === 'directory') return getDirectory(reg, m, out, opts);
  const f = m.files[0]!;
  // Every output check before anything is decoded; then leftovers of interrupted restores of this same target.
  const checked = await checkOutputPath(out, { kind: 'file', registryRoot: reg.location });
  await removeStaleTemps(checked.path);
  const w = await AtomicFileWriter.create(out);
  let source: ChunkSource | undefined;
  try {
    source = chunkSource(reg.reader.withMemo(), f.size, reg.settings); // one memo per restore: each object decoded once
    for await (const part of readFileResults(m, f, source, RING)) {
      const { copied } = await w.writeLent(part.bytes);
      part.lend?.(copied); // its buffer goes back to the ring once the write has it
      opts.onProgress?.({ label: `get ${name}`, done: w.bytesWritten, total: f.size, unit: 'bytes' });
    }
    await w.commit();
  } catch (e) {
    await w.abort();
    throw e;
  } finally {
    await source?.close();
  }
  return { name, out, bytes: f.size, sha256: f.sha256 };
}

/**
 * Restore a model directory into a temporary sibling of `out` (named as
 * tempNameFor names files, so interrupted ones are found and removed the
 * same way), then rename it into place: over nothing, or over an empty
 * directory (rename(2) replaces an empty directory atomically).
 */
async function getDirectory(reg: Registry, m: VersionManifest, out: string, opts: GetOptions): Promise<GetResult> {
  const checked = await checkOutputPath(out, { kind: 'directory', registryRoot: reg.location });
  await removeStaleTemps(checked.path);
  const total = m.files.reduce((a, f) => a + f.size, 0);
  const tmp = tempNameFor(checked.path);
  await fsCall('create the temporary directory for', out, () => mkdir(tmp));
  let source: ChunkSource | undefined;
  let done = 0;
  try {
    source = chunkSource(reg.reader.withMemo(), total, reg.settings);
    for (const f of m.files) {
      const target = join(tmp, ...f.path.split('/')); // paths were checked when the manifest was parsed: relative, no '..'
      const shown = join(out, ...f.path.split('/'));
      await fsCall('create the directory for', shown, () => mkdir(dirname(target), { recursive: true }));
      const w = await AtomicFileWriter.create(target, shown);
      try {
        for await (const part of readFileResults(m, f, source, RING)) {
          const { copied } = await w.writeLent(part.bytes);
          part.lend?.(copied);
          done += part.bytes.length;
          opts.onProgress?.({ label: `get ${m.name}`, done, total, unit: 'bytes' });
        }
        await w.commit();
      } catch (e) {
        await w.abort();
        throw e;
      }
    }
    await fsCall('move the restored directory into place at', out, () => rename(tmp, checked.path));
    fsyncDir(dirname(checked.path));
  } catch (e) {
    await rm(tmp, { recursive: true, force: true }).catch(() => undefined);
    throw e;
  } finally {
    await source?.close();
  }
  return { name: m.name, out, bytes: total, files: m.files.map((f) => ({ path: f.path, bytes: f.size, sha256: f.sha256 })) };
}
