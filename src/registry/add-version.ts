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
import { fsCall, fsError, isErrno } from '../util/fs-errors.js';
import { BLOB_CHUNK_BYTES } from './config.js';
import { storeChunk, type StoredChunk } from './chunk-writer.js';
import { POOL_THRESHOLD_BYTES } from './chunk-source.js';
import { defaultPoolSize, WorkerPool } from './worker-pool.js';
import { LocalBackend } from '../store/local-backend.js';
import { orderedMap } from '../util/ordered-map.js';
import { chooseParent, refsForChunk, tensorsByName, type ParentEstimate } from './reference.js';
import { blobChunks, dtypeBits, elementCount, tensorChunks, type ChunkSpan } from './geometry.js';
import { MANIFEST_FORMAT, MANIFEST_FORMAT_VERSION, parseManifest, serializeManifest, type BlobFile, type BlobRef, type FileEntry, type SafetensorsFile, type TensorEntry, type VersionManifest } from './manifest.js';
import { checkManifestRules, planModelDir, type PlannedFile } from './model-dir.js';
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
    const { bytesRead } = await fsCall('read', file, () => fh.read(buf, got, length - got, position + got));
    if (bytesRead === 0) throw new At1Error('E_INPUT', `${file} became shorter while it was being read`);
    got += bytesRead;
  }
  return buf;
}

/** Store bytes as a blob: plain zstd chunks, deduplicated like everything else. */
export async function storeBlob(reg: Registry, bytes: Uint8Array, level: Level, counters: Counters): Promise<BlobRef> {
  const chunks: string[] = [];
  for (const span of blobChunks(bytes.length, BLOB_CHUNK_BYTES)) {
    const r = await storeChunk(reg.store, bytes.subarray(span.offset, span.offset + span.length), 'U8', [], level, reg.reader);
    counters.newObjectBytes += r.written;
    counters.newObjects += r.written > 0 ? 1 : 0;
    chunks.push(r.digest);
  }
  return { size: bytes.length, sha256: sha256Hex(bytes), chunkBytes: BLOB_CHUNK_BYTES, chunks };
}

/** Where new chunks are encoded and stored: in-process, or on worker threads for large inputs. */
interface ChunkSink {
  store(raw: Uint8Array, dtype: string, parentChunk: string | undefined): Promise<StoredChunk>;
  readonly window: number;
  close(): Promise<void>;
}

function chunkSink(reg: Registry, level: Level, totalBytes: number): ChunkSink {
  const mode = process.env.AT1_WORKERS;
  const pooled = (mode === '1' || (mode !== '0' && totalBytes >= POOL_THRESHOLD_BYTES)) && reg.backend instanceof LocalBackend;
  if (!pooled) {
    return {
      store: async (raw, dtype, parentChunk) => storeChunk(reg.store, raw, dtype, await refsForChunk(reg.reader, parentChunk, reg.config.maxChainDepth), level, reg.reader),
      window: 1,
      close: async () => undefined,
    };
  }
  const pool = new WorkerPool({ root: (reg.backend as LocalBackend).root, maxChainDepth: reg.config.maxChainDepth }, defaultPoolSize('encode'));
  return {
    store: async (raw, dtype, parentChunk) => {
      const r = await pool.run({ kind: 'encode', raw, dtype, parentChunk, level }, [raw.buffer as ArrayBuffer]);
      if (r.kind !== 'stored') throw new Error('unexpected worker reply');
      return r;
    },
    window: 6,
    close: () => pool.close(),
  };
}

interface ChunkJob {
  tensor: number;
  span: ChunkSpan;
  parentChunk: string | undefined;
}

async function storeSafetensors(
  reg: Registry,
  path: string,
  relPath: string,
  header: SafetensorsHeader,
  related: ReturnType<typeof tensorsByName>,
  level: Level,
  counters: Counters,
  progress: (n: number) => void,
): Promise<SafetensorsFile> {
  const chunkElements = reg.config.chunkElements;
  const fileHash = newSha256().update(header.headerBytes);
  const headerRef = await storeBlob(reg, header.headerBytes, level, counters);
  progress(header.headerBytes.length);
  const jobs: ChunkJob[] = [];
  const chunkLists: string[][] = [];
  for (const [i, t] of header.tensors.entries()) {
    const elements = elementCount(t.shape);
    const rel = related.get(t.name);
    const usable = rel && rel.chunkElements === chunkElements && elementCount(rel.t.shape) === elements ? rel.t : undefined;
    const spans = tensorChunks(elements, dtypeBits(t.dtype), chunkElements);
    for (const span of spans) jobs.push({ tensor: i, span, parentChunk: usable?.chunks[span.index] });
    chunkLists.push(new Array<string>(spans.length));
  }
  const hashes = header.tensors.map(() => newSha256());
  const fh = await fsCall('open', path, () => open(path, 'r'));
  const sink = chunkSink(reg, level, header.fileSize);
  const pending: { job: ChunkJob; stored: Promise<StoredChunk> }[] = [];
  const settle = async (): Promise<void> => {
    const { job, stored } = pending.shift()!;
    const r = await stored;
    counters.newObjectBytes += r.written;
    counters.newObjects += r.written > 0 ? 1 : 0;
    chunkLists[job.tensor]![job.span.index] = r.digest;
    progress(job.span.length);
  };
  try {
    // Reads run a few chunks ahead; hashing happens in file order; encoding runs `sink.window` chunks deep.
    const reads = orderedMap(jobs, async (job) => ({ job, raw: await readExactly(fh, job.span.length, header.dataStart + header.tensors[job.tensor]!.begin + job.span.offset, path) }), 3);
    for await (const { job, raw } of reads) {
      hashes[job.tensor]!.update(raw);
      fileHash.update(raw);
      const stored = sink.store(raw, header.tensors[job.tensor]!.dtype, job.parentChunk);
      stored.catch(() => undefined); // awaited in settle(), in order
      pending.push({ job, stored });
      if (pending.length >= sink.window) await settle();
    }
    while (pending.length > 0) await settle();
  } finally {
    await Promise.allSettled(pending.map((p) => p.stored));
    await sink.close();
    await fh.close();
  }
  const after = await fsCall('inspect', path, () => stat(path));
  if (after.size !== header.fileSize) throw new At1Error('E_INPUT', `${path} changed size while it was being read; nothing was added`);
  const tensors: TensorEntry[] = header.tensors.map((t, i) => ({
    name: t.name,
    dtype: t.dtype,
    shape: t.shape,
    offset: t.begin,
    length: t.end - t.begin,
    sha256: hashes[i]!.digest('hex'),
    chunks: chunkLists[i]!,
  }));
  return { kind: 'safetensors', path: relPath, size: header.fileSize, sha256: fileHash.digest('hex'), header: headerRef, chunkElements, tensors };
}

/** A side file (config, tokenizer, index, README…) stored as a blob, read in chunks. */
async function storeBlobFile(reg: Registry, f: PlannedFile, level: Level, counters: Counters, progress: (n: number) => void): Promise<BlobFile> {
  const hash = newSha256();
  const chunks: string[] = [];
  const fh = await fsCall('open', f.abs, () => open(f.abs, 'r'));
  try {
    for (const span of blobChunks(f.size, BLOB_CHUNK_BYTES)) {
      const raw = await readExactly(fh, span.length, span.offset, f.abs);
      hash.update(raw);
      const r = await storeChunk(reg.store, raw, 'U8', [], level, reg.reader);
      counters.newObjectBytes += r.written;
      counters.newObjects += r.written > 0 ? 1 : 0;
      chunks.push(r.digest);
      progress(span.length);
    }
  } finally {
    await fh.close();
  }
  if ((await fsCall('inspect', f.abs, () => stat(f.abs))).size !== f.size) throw new At1Error('E_INPUT', `${f.abs} changed size while it was being read; nothing was added`);
  return { kind: 'blob', path: f.path, size: f.size, sha256: hash.digest('hex'), chunkBytes: BLOB_CHUNK_BYTES, chunks };
}

/** What an add reads: one safetensors file, or every file of a model directory. Validated completely before any write. */
async function planSource(path: string): Promise<{ layout: 'file' | 'directory'; files: PlannedFile[] }> {
  const st = await stat(path).catch((e: unknown) => {
    if (isErrno(e, 'ENOENT')) return undefined;
    throw fsError(e, 'inspect', path);
  });
  if (!st) throw new At1Error('E_NOT_FOUND', `${path} does not exist`);
  let plan: { layout: 'file' | 'directory'; files: PlannedFile[] };
  if (st.isDirectory()) plan = { layout: 'directory', files: (await planModelDir(path)).files };
  else if (!st.isFile()) throw new At1Error('E_INPUT', `${path} is neither a regular file nor a directory; nothing was added`);
  else {
    const header = await readSafetensorsHeader(path); // every format rule checked before anything is written
    plan = { layout: 'file', files: [{ path: basename(path), abs: path, size: header.fileSize, header }] };
  }
  checkManifestRules(plan.files); // every limit the manifest parser enforces, checked before the lock and any write
  return plan;
}

/**
 * Add a version: a safetensors file or a model directory. `parentName`: a
 * version to code against, null for a standalone version (init's base),
 * undefined to choose the nearest relative. The caller holds no lock; this
 * takes it.
 */
export async function addVersion(reg: Registry, path: string, opts: AddOptions & { parentName: string | null | undefined }): Promise<AddResult> {
  const name = opts.name ?? defaultNameFor(path);
  checkVersionName(name);
  const source = await planSource(path);
  const level = opts.level ?? reg.config.level;
  const total = source.files.reduce((a, f) => a + f.size, 0);
  const lock = await reg.lock(`add ${name}`);
  try {
    if (await reg.hasVersion(name)) throw new At1Error('E_EXISTS', `version ${JSON.stringify(name)} already exists in ${reg.location}; choose another --name`);
    let estimates: ParentEstimate[] = [];
    let parentName = opts.parentName;
    const tensorFiles = source.files.filter((f): f is PlannedFile & { header: SafetensorsHeader } => f.header !== undefined);
    if (parentName === undefined) ({ parent: parentName, estimates } = await chooseParent(reg, tensorFiles, level));
    const parent = parentName === null ? undefined : await reg.manifest(parentName);
    const related = tensorsByName(parent); // by tensor name across all the parent's files: a tensor that moved shard still finds its relative
    const counters: Counters = { newObjectBytes: 0, newObjects: 0 };
    let done = 0;
    const label = `add ${name}`;
    const progress = (n: number): void => {
      done += n;
      opts.onProgress?.({ label, done, total, unit: 'bytes' });
    };
    const files: FileEntry[] = [];
    for (const f of source.files) {
      files.push(f.header ? await storeSafetensors(reg, f.abs, f.path, f.header, related, level, counters, progress) : await storeBlobFile(reg, f, level, counters, progress));
    }
    const manifest: VersionManifest = {
      format: MANIFEST_FORMAT,
      formatVersion: MANIFEST_FORMAT_VERSION,
      name,
      parent: parent?.name ?? null,
      createdAt: new Date().toISOString(),
      layout: source.layout,
      files,
      stats: { rawBytes: total, ...counters },
    };
    // Second line of defence: the manifest must pass the very parser every later reader uses, or nothing is published.
    try {
      parseManifest(serializeManifest(manifest), manifest.name);
    } catch (e) {
      throw new At1Error('E_IO', `internal error: the manifest built for ${JSON.stringify(name)} fails the manifest parser (${(e as Error).message}); nothing was published (please report this)`, { cause: e });
    }
    const manifestBytes = await reg.publish(manifest);
    return { manifest, estimates, storedBytes: counters.newObjectBytes + manifestBytes };
  } finally {
    await lock.release();
  }
}
