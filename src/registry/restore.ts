/**
 * Restoring versions. Bytes come out in file order as verified chunks; each
 * tensor's SHA-256 is checked when its last chunk has been produced and the
 * whole file's SHA-256 at the end. A consumer that writes to disk (getVersion)
 * publishes the file only after the final check, so a failed restore leaves
 * no output file behind.
 */
import { stat } from 'node:fs/promises';
import { At1Error, IntegrityError } from '../errors.js';
import { AtomicFileWriter } from '../util/atomic-file.js';
import { newSha256 } from '../util/hash.js';
import type { BlobRef, FileEntry, TensorEntry, VersionManifest } from './manifest.js';
import { blobChunks, dtypeBits, elementCount, tensorChunks } from './geometry.js';
import type { ProgressFn } from './progress.js';
import type { Registry } from './registry.js';
import type { ChunkReader } from './chunk-reader.js';

export interface Where {
  version: string;
  file: string;
}

/** Wrap any failure while decoding a tensor into an IntegrityError that names version, file and tensor. */
export function tensorFailure(e: unknown, where: Where, tensor: string): IntegrityError {
  const why = e instanceof Error ? e.message : String(e);
  return new IntegrityError(`version ${where.version}, tensor ${JSON.stringify(tensor)}: ${why}`, { ...where, tensor });
}

export async function* readBlob(reader: ChunkReader, blob: BlobRef, label: string): AsyncGenerator<Uint8Array> {
  const hash = newSha256();
  const spans = blobChunks(blob.size, blob.chunkBytes);
  for (const span of spans) {
    const { bytes } = await reader.read(blob.chunks[span.index]!, span.length);
    hash.update(bytes);
    yield bytes;
  }
  if (hash.digest('hex') !== blob.sha256) throw new IntegrityError(`${label} does not match its SHA-256`, {});
}

/** A tensor's raw bytes, chunk by chunk, verified chunk by chunk and as a whole. */
export async function* readTensor(reader: ChunkReader, t: TensorEntry, chunkElements: number, where: Where): AsyncGenerator<Uint8Array> {
  const hash = newSha256();
  try {
    for (const span of tensorChunks(elementCount(t.shape), dtypeBits(t.dtype), chunkElements)) {
      const { bytes } = await reader.read(t.chunks[span.index]!, span.length);
      hash.update(bytes);
      yield bytes;
    }
  } catch (e) {
    throw tensorFailure(e, where, t.name);
  }
  if (hash.digest('hex') !== t.sha256) throw tensorFailure(new Error('bytes do not match the recorded SHA-256'), where, t.name);
}

/** One file of a version, in file order, fully verified by the time the generator returns. */
export async function* readFile(reg: Registry, m: VersionManifest, f: FileEntry): AsyncGenerator<Uint8Array> {
  const where = { version: m.name, file: f.path };
  const hash = newSha256();
  const parts = f.kind === 'blob' ? readBlob(reg.reader, f, `version ${m.name}, file ${f.path}`) : safetensorsParts(reg, m, f, where);
  for await (const p of parts) {
    hash.update(p);
    yield p;
  }
  if (hash.digest('hex') !== f.sha256) throw new IntegrityError(`version ${m.name}, file ${f.path}: the restored file does not match its SHA-256`, where);
}

async function* safetensorsParts(reg: Registry, m: VersionManifest, f: Extract<FileEntry, { kind: 'safetensors' }>, where: Where): AsyncGenerator<Uint8Array> {
  yield* readBlob(reg.reader, f.header, `version ${m.name}, file ${f.path}, safetensors header`);
  for (const t of f.tensors) yield* readTensor(reg.reader, t, f.chunkElements, where);
}

/** A one-file version as a verified byte stream (for servers and pipes); the last read throws if any check fails. */
export async function* streamVersion(reg: Registry, name: string): AsyncGenerator<Uint8Array> {
  const m = await reg.manifest(name);
  if (m.layout !== 'file' || m.files.length !== 1) throw new At1Error('E_UNSUPPORTED', `version ${name} is a model directory; stream its files one by one`);
  yield* readFile(reg, m, m.files[0]!);
}

export interface GetOptions {
  onProgress?: ProgressFn;
}

export interface GetResult {
  name: string;
  out: string;
  bytes: number;
  sha256: string;
}

/** Restore a one-file version to `out`, atomically: the file appears only when every check passed. */
export async function getVersion(reg: Registry, name: string, out: string, opts: GetOptions = {}): Promise<GetResult> {
  const m = await reg.manifest(name);
  if (m.layout !== 'file' || m.files.length !== 1) throw new At1Error('E_UNSUPPORTED', `version ${name} is a model directory; this build restores one-file versions only`);
  const f = m.files[0]!;
  const st = await stat(out).catch(() => undefined);
  if (st?.isDirectory()) throw new At1Error('E_INPUT', `--out ${out} is a directory; give a file name`);
  const w = await AtomicFileWriter.create(out);
  try {
    for await (const part of readFile(reg, m, f)) {
      await w.write(part);
      opts.onProgress?.({ label: `get ${name}`, done: w.bytesWritten, total: f.size, unit: 'bytes' });
    }
    await w.commit();
  } catch (e) {
    await w.abort();
    throw e;
  }
  return { name, out, bytes: f.size, sha256: f.sha256 };
}
