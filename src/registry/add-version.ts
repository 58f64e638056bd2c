/**
 * Adding a version (docs/FORMAT.md, "Write order"): validate the input
 * completely before taking the lock; under the lock, store every chunk
 * (objects first), then publish the manifest. Until the manifest lands the
 * version does not exist; an interruption leaves only unreferenced objects,
 * which gc removes and a retried add reuses.
 *
 * The input is read once, chunk by chunk, so memory stays bounded by a
 * chunk and its reference chain, whatever the model's size.
 */
import { open, stat, type FileHandle } from 'node:fs/promises';
import { basename } from 'node:path';
import { At1Error } from '../errors.js';
import type { Level } from '../codec/types.js';
import { readSafetensorsHeader, type SafetensorsHeader } from '../format/safetensors.js';
import { newSha256, sha256Hex } from '../util/hash.js';
import { BLOB_CHUNK_BYTES } from './config.js';
import { storeChunk } from './chunk-writer.js';
import { chooseParent, refsForChunk, tensorsByName, type ParentEstimate } from './reference.js';
import { blobChunks, dtypeBits, elementCount, tensorChunks } from './geometry.js';
import { MANIFEST_FORMAT, MANIFEST_FORMAT_VERSION, type BlobRef, type SafetensorsFile, type TensorEntry, type VersionManifest } from './manifest.js';
import { checkVersionName, defaultNameFor } from './names.js';
import type { ProgressFn } from './progress.js';
import type { Registry } from './registry.js';

export interface AddOptions {
  name?: string;
  /** Version to delta-code against; default: the base. */
  parent?: string;
  level?: Level;
  onProgress?: ProgressFn;
}

export interface AddResult {
  manifest: VersionManifest;
  /** How the parent was chosen: the sampled estimate per candidate (empty when --parent was given). */
  estimates: ParentEstimate[];
  /** Bytes of new objects plus the manifest. */
  storedBytes: number;
}

interface Counters {
  newObjectBytes: number;
  newObjects: number;
}

async function readExactly(fh: FileHandle, length: number, position: number, file: string): Promise<Uint8Array> {
  const buf = new Uint8Array(length);
  let got = 0;
  while (got < length) {
    const { bytesRead } = await fh.read(buf, got, length - got, position + got);
    if (bytesRead === 0) throw new At1Error('E_INPUT', `${file} became shorter while it was being read`);
    got += bytesRead;
  }
  return buf;
}

/** Store bytes as a blob: plain zstd chunks, deduplicated like everything else. */
export async function storeBlob(reg: Registry, bytes: Uint8Array, level: Level, counters: Counters): Promise<BlobRef> {
  const chunks: string[] = [];
  for (const span of blobChunks(bytes.length, BLOB_CHUNK_BYTES)) {
    const r = await storeChunk(reg.store, bytes.subarray(span.offset, span.offset + span.length), 'U8', [], level);
    counters.newObjectBytes += r.written;
    counters.newObjects += r.written > 0 ? 1 : 0;
    chunks.push(r.digest);
  }
  return { size: bytes.length, sha256: sha256Hex(bytes), chunkBytes: BLOB_CHUNK_BYTES, chunks };
}

async function storeSafetensors(
  reg: Registry,
  path: string,
  relPath: string,
  header: SafetensorsHeader,
  parent: VersionManifest | undefined,
  level: Level,
  counters: Counters,
  progress: (n: number) => void,
): Promise<SafetensorsFile> {
  const chunkElements = reg.config.chunkElements;
  const related = tensorsByName(parent);
  const fileHash = newSha256().update(header.headerBytes);
  const headerRef = await storeBlob(reg, header.headerBytes, level, counters);
  progress(header.headerBytes.length);
  const tensors: TensorEntry[] = [];
  const fh = await open(path, 'r');
  try {
    for (const t of header.tensors) {
      const elements = elementCount(t.shape);
      const spans = tensorChunks(elements, dtypeBits(t.dtype), chunkElements);
      const rel = related.get(t.name);
      const usable = rel && rel.chunkElements === chunkElements && elementCount(rel.t.shape) === elements ? rel.t : undefined;
      const tensorHash = newSha256();
      const chunks: string[] = [];
      for (const span of spans) {
        const raw = await readExactly(fh, span.length, header.dataStart + t.begin + span.offset, path);
        tensorHash.update(raw);
        fileHash.update(raw);
        const refs = await refsForChunk(reg.reader, usable?.chunks[span.index], reg.config.maxChainDepth);
        const r = await storeChunk(reg.store, raw, t.dtype, refs, level);
        counters.newObjectBytes += r.written;
        counters.newObjects += r.written > 0 ? 1 : 0;
        chunks.push(r.digest);
        progress(span.length);
      }
      tensors.push({ name: t.name, dtype: t.dtype, shape: t.shape, offset: t.begin, length: t.end - t.begin, sha256: tensorHash.digest('hex'), chunks });
    }
  } finally {
    await fh.close();
  }
  const after = await stat(path);
  if (after.size !== header.fileSize) throw new At1Error('E_INPUT', `${path} changed size while it was being read; nothing was added`);
  return { kind: 'safetensors', path: relPath, size: header.fileSize, sha256: fileHash.digest('hex'), header: headerRef, chunkElements, tensors };
}

/**
 * Add a one-file version. `parentName`: a version to code against, null for
 * a standalone version (init's base), undefined to choose the nearest
 * relative. The caller holds no lock; this takes it.
 */
export async function addVersion(reg: Registry, path: string, opts: AddOptions & { parentName: string | null | undefined }): Promise<AddResult> {
  const st = await stat(path).catch(() => undefined);
  if (!st) throw new At1Error('E_NOT_FOUND', `${path} does not exist`);
  if (st.isDirectory()) throw new At1Error('E_INPUT', `${path} is a directory; model directories as versions are not supported yet — add the .safetensors file`);
  const name = opts.name ?? defaultNameFor(path);
  checkVersionName(name);
  const header = await readSafetensorsHeader(path); // every format rule checked before anything is written
  const level = opts.level ?? reg.config.level;
  const lock = await reg.lock(`add ${name}`);
  try {
    if (await reg.hasVersion(name)) throw new At1Error('E_EXISTS', `version ${JSON.stringify(name)} already exists in ${reg.location}; choose another --name`);
    let estimates: ParentEstimate[] = [];
    let parentName = opts.parentName;
    if (parentName === undefined) ({ parent: parentName, estimates } = await chooseParent(reg, path, header, level));
    const parent = parentName === null ? undefined : await reg.manifest(parentName);
    const counters: Counters = { newObjectBytes: 0, newObjects: 0 };
    let done = 0;
    const label = `add ${name}`;
    const progress = (n: number): void => {
      done += n;
      opts.onProgress?.({ label, done, total: header.fileSize, unit: 'bytes' });
    };
    const file = await storeSafetensors(reg, path, basename(path), header, parent, level, counters, progress);
    const manifest: VersionManifest = {
      format: MANIFEST_FORMAT,
      formatVersion: MANIFEST_FORMAT_VERSION,
      name,
      parent: parent?.name ?? null,
      createdAt: new Date().toISOString(),
      layout: 'file',
      files: [file],
      stats: { rawBytes: header.fileSize, ...counters },
    };
    const manifestBytes = await reg.publish(manifest);
    return { manifest, estimates, storedBytes: counters.newObjectBytes + manifestBytes };
  } finally {
    await lock.release();
  }
}
