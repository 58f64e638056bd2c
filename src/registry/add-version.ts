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
import { readSafetensorsHeaderFrom, type SafetensorsHeader } from '../format/safetensors.js';
import { openFileSource, type InputSource } from '../format/input-source.js';
import { newSha256, sha256Hex } from '../util/hash.js';
import { fsCall, fsError, isErrno } from '../util/fs-errors.js';
import { BLOB_CHUNK_BYTES } from './config.js';
import { storeChunk, storeEncoded, type StoredChunk } from './chunk-writer.js';
import { isRemote, wantsPool } from './chunk-source.js';
import { pooledDecoder } from './chunk-decoder.js';
import { defaultPoolSize, WorkerPool } from './worker-pool.js';
import { parallelMap } from '../util/parallel-map.js';
import { chooseParent, codingRelatives, readSamples, refsForChunk, tensorsByName, versionSketch, type ParentEstimate } from './reference.js';
import { blobChunks, dtypeBits, elementCount, tensorChunks, type ChunkSpan } from './geometry.js';
import { MANIFEST_FORMAT, manifestFormatVersion, packHome, packOf, parseManifest, serializeManifest, type BlobFile, type BlobRef, type FileEntry, type PackRef, type SafetensorsFile, type TensorEntry, type VersionManifest } from './manifest.js';
import { PACK_MIN_TENSORS, packElements } from './packs.js';
import { checkManifestRules, closePlannedFiles, planModelDir, type PlannedFile } from './model-dir.js';
import { checkVersionName, defaultNameFor } from './names.js';
import type { ProgressFn } from './progress.js';
import type { Registry } from './registry.js';

export interface AddOptions {
  name?: string;
  /** Version to delta-code against; default: the base. */
  parent?: string;
  level?: Level;
  onProgress?: ProgressFn;
  /**
   * Read the safetensors file from this source instead of opening `path`
   * (an upload in memory, an object on S3); `path` then only names it (the
   * stored file name is its basename, the default version name its stem).
   * The caller owns the source: add reads it and leaves it open.
   */
  input?: InputSource;
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

/** `refReader`: the add's reader, whose memo decodes each reference object once for the whole add. */
function chunkSink(reg: Registry, level: Level, totalBytes: number, refReader = reg.reader): ChunkSink {
  if (!wantsPool(totalBytes, reg.settings)) {
    return {
      store: async (raw, dtype, parentChunk) => storeChunk(reg.store, raw, dtype, await refsForChunk(refReader, parentChunk, reg.config.maxChainDepth), level, refReader),
      // On an object store a chunk's requests (its reference's GET, the create, a dedup proof) are round trips: keep a few chunks going so they overlap the encoding.
      window: isRemote(reg.reader) ? 4 : 1,
      close: async () => undefined,
    };
  }
  // Workers hash and encode; this thread reads the references, proves dedup candidates and writes objects.
  const pool = new WorkerPool(defaultPoolSize('encode', reg.settings.threads));
  const reader = refReader.withDecoder(pooledDecoder(pool, pool.size));
  return {
    store: async (raw, dtype, parentChunk) => {
      const refs = await refsForChunk(reader, parentChunk, reg.config.maxChainDepth);
      const d = await pool.run({ kind: 'digest', raw }, [raw.buffer as ArrayBuffer]);
      if (d.kind !== 'digested') throw new Error(`unexpected worker reply ${d.kind}`);
      const encode = async (): Promise<{ object: Uint8Array; codec: string }> => {
        // The references are copied, not transferred: the reader's cache may hold them.
        const e = await pool.run({ kind: 'encode', raw: d.raw, dtype, refs, level }, [d.raw.buffer as ArrayBuffer]);
        if (e.kind !== 'encoded') throw new Error(`unexpected worker reply ${e.kind}`);
        return e;
      };
      return storeEncoded(reg.store, d.digest, d.raw.length, encode, reader);
    },
    window: isRemote(reg.reader) ? 8 : 6,
    close: () => pool.close(),
  };
}

/** SHA-256 of no bytes: the digest of every empty tensor. */
const EMPTY_SHA256 = sha256Hex(new Uint8Array(0));

/** Consecutive packed tensors are read from the input in runs of up to this many bytes, not one read each. */
const RUN_BYTES = 1 << 20;

/** One pack being written: its tensors' bytes are copied into `buf` (one chunk) and stored chunk by chunk. */
interface PackWriter {
  dtype: string;
  length: number;
  /** Bytes of every chunk but the last: chunkElements elements of the dtype. */
  chunkBytes: number;
  /** The parent's pack chunks this pack is coded against, when the two line up (same first tensor, same element count). */
  parentChunks: string[] | undefined;
  chunks: string[];
  /** The chunk being filled, and how many of its bytes are; bytes of the pack in chunks already submitted; the next chunk's index. */
  buf: Uint8Array | undefined;
  filled: number;
  written: number;
  next: number;
}

interface PackPlan {
  packs: PackWriter[];
  /** Per tensor (header order): its pack, or -1 when it is chunked on its own. */
  packOf: Int32Array;
  /** Per tensor: its byte offset in its pack. */
  packAt: Float64Array;
}

/**
 * Which tensors are packed (docs/FORMAT.md §6): non-empty tensors of at most
 * `maxBytes` (settings.packBytes) bytes, grouped by dtype, when a dtype has at least
 * PACK_MIN_TENSORS of them. A tensor whose parent namesake is chunked on its
 * own with the same element count stays unpacked, so a registry written
 * before packs keeps delta-coding (and deduplicating) its small tensors
 * instead of starting a pack from nothing. A pack is coded against the
 * parent's pack that holds the parent tensor named as the pack's first
 * tensor, when that pack has as many elements (a bf16 copy of an f32 model
 * lines up element for element, as its tensors do).
 */
function planPacks(header: SafetensorsHeader, related: ReturnType<typeof tensorsByName>, chunkElements: number, maxBytes: number): PackPlan {
  const n = header.tensors.length;
  const plan: PackPlan = { packs: [], packOf: new Int32Array(n).fill(-1), packAt: new Float64Array(n) };
  if (maxBytes === 0) return plan;
  const candidates = new Map<string, number[]>();
  for (const [i, t] of header.tensors.entries()) {
    const length = t.end - t.begin;
    if (length === 0 || length > maxBytes) continue;
    const rel = related.get(t.name);
    if (rel && !rel.t.pack && rel.t.chunks.length > 0 && rel.chunkElements === chunkElements && elementCount(rel.t.shape) === elementCount(t.shape)) continue;
    let list = candidates.get(t.dtype);
    if (!list) candidates.set(t.dtype, (list = []));
    list.push(i);
  }
  for (const [dtype, members] of candidates) {
    if (members.length < PACK_MIN_TENSORS) continue;
    const index = plan.packs.length;
    let length = 0;
    for (const i of members) {
      plan.packOf[i] = index;
      plan.packAt[i] = length;
      length += header.tensors[i]!.end - header.tensors[i]!.begin;
    }
    const bits = dtypeBits(dtype);
    let parentChunks: string[] | undefined;
    const rel = related.get(header.tensors[members[0]!]!.name);
    const home = rel?.t.pack ? packHome(rel.t) : undefined;
    const theirs = home ? packOf(home, rel!.t)?.pack : undefined;
    if (theirs && rel!.chunkElements === chunkElements && packElements(theirs) === (length * 8) / bits) parentChunks = theirs.chunks;
    plan.packs.push({ dtype, length, chunkBytes: (chunkElements * bits) / 8, parentChunks, chunks: [], buf: undefined, filled: 0, written: 0, next: 0 });
  }
  return plan;
}

/** What is read from the input, in file order: one chunk of an unpacked tensor, or a run of packed (and empty) tensors. */
type ReadJob = { kind: 'chunk'; tensor: number; span: ChunkSpan; parentChunk: string | undefined; last: boolean } | { kind: 'run'; first: number; end: number; begin: number; length: number };

function* readJobs(header: SafetensorsHeader, plan: PackPlan, related: ReturnType<typeof tensorsByName>, chunkElements: number): Generator<ReadJob> {
  let run: Extract<ReadJob, { kind: 'run' }> | undefined;
  for (const [i, t] of header.tensors.entries()) {
    const length = t.end - t.begin;
    if (plan.packOf[i]! >= 0 || length === 0) {
      if (run && run.length + length <= RUN_BYTES) {
        run.end = i + 1;
        run.length += length;
        continue;
      }
      if (run) yield run;
      run = length === 0 ? undefined : { kind: 'run', first: i, end: i + 1, begin: t.begin, length };
      continue;
    }
    if (run) yield run;
    run = undefined;
    const elements = elementCount(t.shape);
    const rel = related.get(t.name);
    const usable = rel && rel.chunkElements === chunkElements && elementCount(rel.t.shape) === elements ? rel.t : undefined;
    const spans = tensorChunks(elements, dtypeBits(t.dtype), chunkElements);
    for (const span of spans) yield { kind: 'chunk', tensor: i, span, parentChunk: usable?.chunks[span.index], last: span.index === spans.length - 1 };
  }
  if (run) yield run;
}

/**
 * One safetensors file, read once in file order: each unpacked tensor's
 * chunks and each pack's chunks are stored as they fill, so memory holds a
 * few chunks in flight and one chunk per pack being filled, plus a record
 * per tensor (its digest and chunk list), whatever the tensor count.
 */
async function storeSafetensors(
  reg: Registry,
  input: InputSource,
  relPath: string,
  header: SafetensorsHeader,
  related: ReturnType<typeof tensorsByName>,
  level: Level,
  counters: Counters,
  progress: (n: number) => void,
  refReader = reg.reader,
): Promise<SafetensorsFile> {
  const chunkElements = reg.config.chunkElements;
  const fileHash = newSha256().update(header.headerBytes);
  const headerRef = await storeBlob(reg, header.headerBytes, level, counters);
  progress(header.headerBytes.length);
  const n = header.tensors.length;
  const plan = planPacks(header, related, chunkElements, reg.settings.packBytes);
  const digests: string[] = new Array<string>(n).fill(EMPTY_SHA256);
  const chunkLists: string[][] = new Array<string[]>(n);
  const sink = chunkSink(reg, level, header.fileSize, refReader);
  const pending: { stored: Promise<StoredChunk>; done: (r: StoredChunk) => void }[] = [];
  const settle = async (): Promise<void> => {
    const { stored, done } = pending.shift()!;
    const r = await stored;
    counters.newObjectBytes += r.written;
    counters.newObjects += r.written > 0 ? 1 : 0;
    done(r);
  };
  const submit = async (raw: Uint8Array, dtype: string, parentChunk: string | undefined, done: (r: StoredChunk) => void): Promise<void> => {
    const stored = sink.store(raw, dtype, parentChunk); // may take (transfer) raw's buffer: hash before
    stored.catch(() => undefined); // awaited in settle(), in order
    pending.push({ stored, done });
    if (pending.length >= sink.window) await settle();
  };
  /** Append a packed tensor's bytes to its pack, storing each pack chunk as it fills. */
  const toPack = async (k: PackWriter, bytes: Uint8Array): Promise<void> => {
    for (let at = 0; at < bytes.length; ) {
      if (!k.buf) {
        k.buf = new Uint8Array(Math.min(k.chunkBytes, k.length - k.written));
        k.filled = 0;
      }
      const take = Math.min(bytes.length - at, k.buf.length - k.filled);
      k.buf.set(bytes.subarray(at, at + take), k.filled);
      k.filled += take;
      at += take;
      if (k.filled === k.buf.length) {
        const raw = k.buf;
        k.buf = undefined;
        k.written += raw.length;
        const slot = k.next++;
        await submit(raw, k.dtype, k.parentChunks?.[slot], (r) => {
          k.chunks[slot] = r.digest;
        });
      }
    }
  };
  let tensorHash = newSha256();
  try {
    // Reads run a few jobs ahead; hashing happens in file order; encoding runs `sink.window` chunks deep.
    const reads = parallelMap(
      readJobs(header, plan, related, chunkElements),
      async (job) => {
        const begin = job.kind === 'chunk' ? header.tensors[job.tensor]!.begin + job.span.offset : job.begin;
        const length = job.kind === 'chunk' ? job.span.length : job.length;
        return { job, raw: await input.readRange(header.dataStart + begin, length) };
      },
      3,
    );
    for await (const { job, raw } of reads) {
      fileHash.update(raw);
      if (job.kind === 'run') {
        for (let i = job.first; i < job.end; i++) {
          const t = header.tensors[i]!;
          if (t.end === t.begin) continue;
          const bytes = raw.subarray(t.begin - job.begin, t.end - job.begin);
          digests[i] = sha256Hex(bytes);
          await toPack(plan.packs[plan.packOf[i]!]!, bytes);
        }
        progress(raw.length);
        continue;
      }
      const i = job.tensor;
      if (job.span.index === 0) {
        tensorHash = newSha256();
        chunkLists[i] = new Array<string>(tensorChunks(elementCount(header.tensors[i]!.shape), dtypeBits(header.tensors[i]!.dtype), chunkElements).length);
      }
      tensorHash.update(raw);
      if (job.last) digests[i] = tensorHash.digest('hex');
      const span = job.span;
      await submit(raw, header.tensors[i]!.dtype, job.parentChunk, (r) => {
        chunkLists[i]![span.index] = r.digest;
        progress(span.length);
      });
    }
    while (pending.length > 0) await settle();
  } finally {
    await Promise.allSettled(pending.map((p) => p.stored));
    await sink.close();
  }
  await input.checkUnchanged?.(); // a file that changed size while it was read: nothing is added
  const tensors: TensorEntry[] = new Array<TensorEntry>(n);
  for (let i = 0; i < n; i++) {
    const t = header.tensors[i]!;
    const e: TensorEntry = { name: t.name, dtype: t.dtype, shape: t.shape, offset: t.begin, length: t.end - t.begin, sha256: digests[i]!, chunks: chunkLists[i] ?? [] };
    if (plan.packOf[i]! >= 0) e.pack = [plan.packOf[i]!, plan.packAt[i]!];
    tensors[i] = e;
  }
  const file: SafetensorsFile = { kind: 'safetensors', path: relPath, size: header.fileSize, sha256: fileHash.digest('hex'), header: headerRef, chunkElements, tensors };
  if (plan.packs.length === 0) return file;
  const packs: PackRef[] = plan.packs.map((k) => ({ dtype: k.dtype, length: k.length, chunks: k.chunks }));
  return { kind: 'safetensors', path: relPath, size: header.fileSize, sha256: file.sha256, header: headerRef, chunkElements, packs, tensors };
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

/**
 * What an add reads: one safetensors file, or every file of a model
 * directory. Validated completely before any write. Each safetensors file's
 * input is opened once, here, and read again by the add: close the plan
 * (closePlan) when done with it.
 */
export interface SourcePlan {
  layout: 'file' | 'directory';
  files: PlannedFile[];
}

function inputOf(f: PlannedFile): InputSource {
  if (!f.input) throw new At1Error('E_INPUT', `internal error: ${f.abs} was planned without its input open; nothing was added (please report this)`);
  return f.input;
}

export function closePlan(plan: SourcePlan): Promise<void> {
  return closePlannedFiles(plan.files);
}

/** The plan for one safetensors file read from `input` (named `path`); every format rule checked before anything is written. */
export async function planInput(input: InputSource, path: string): Promise<SourcePlan> {
  const header = await readSafetensorsHeaderFrom(input);
  const plan: SourcePlan = { layout: 'file', files: [{ path: basename(path), abs: input.name, size: header.fileSize, header, input }] };
  checkManifestRules(plan.files);
  return plan;
}

export async function planSource(path: string): Promise<SourcePlan> {
  const st = await stat(path).catch((e: unknown) => {
    if (isErrno(e, 'ENOENT')) return undefined;
    throw fsError(e, 'inspect', path);
  });
  if (!st) throw new At1Error('E_NOT_FOUND', `${path} does not exist`);
  let plan: { layout: 'file' | 'directory'; files: PlannedFile[] };
  if (st.isDirectory()) plan = { layout: 'directory', files: (await planModelDir(path)).files };
  else if (!st.isFile()) throw new At1Error('E_INPUT', `${path} is neither a regular file nor a directory; nothing was added`);
  else {
    const input = await openFileSource(path); // opened once: the header here, the tensors in the add
    try {
      return await planInput(input, path);
    } catch (e) {
      await input.close();
      throw e;
    }
  }
  try {
    checkManifestRules(plan.files); // every limit the manifest parser enforces, checked before the lock and any write
  } catch (e) {
    await closePlan(plan);
    throw e;
  }
  return plan;
}

/**
 * Add a version: a safetensors file or a model directory. `parentName`: a
 * version to code against, null for a standalone version (init's base),
 * undefined to choose the nearest relative. The caller holds no lock; this
 * takes it.
 */
export async function addVersion(reg: Registry, path: string, opts: AddOptions & { parentName: string | null | undefined; plan?: SourcePlan }): Promise<AddResult> {
  const name = opts.name ?? defaultNameFor(path);
  checkVersionName(name);
  const ownPlan = opts.plan === undefined ? (opts.input ? await planInput(opts.input, path) : await planSource(path)) : undefined;
  const source = opts.plan ?? ownPlan!;
  try {
    return await addPlanned(reg, name, source, opts);
  } finally {
    if (ownPlan && !opts.input) await closePlan(ownPlan); // what this add opened; a caller's plan or input stays the caller's
  }
}

async function addPlanned(reg: Registry, name: string, source: SourcePlan, opts: AddOptions & { parentName: string | null | undefined }): Promise<AddResult> {
  const level = opts.level ?? reg.config.level;
  const total = source.files.reduce((a, f) => a + f.size, 0);
  const lock = await reg.lock(`add ${name}`);
  try {
    if (await reg.hasVersion(name)) throw new At1Error('E_EXISTS', `version ${JSON.stringify(name)} already exists in ${reg.location}; choose another --name`);
    let estimates: ParentEstimate[] = [];
    let parentName = opts.parentName;
    const tensorFiles = source.files.filter((f): f is PlannedFile & { header: SafetensorsHeader; input: InputSource } => f.header !== undefined && inputOf(f) !== undefined);
    const refReader = reg.reader.withMemo(); // one memo for the add: the reference choice and every chunk decode each reference object once
    const samples = await readSamples(tensorFiles, reg.config.chunkElements); // the reference choice's trials and this version's sketch
    if (parentName === undefined) ({ parent: parentName, estimates } = await chooseParent(reg, samples, level, refReader));
    const parent = parentName === null ? undefined : await reg.manifest(parentName);
    // By tensor name across all the files: a tensor that moved shard still finds its relative. Past the chain bound, a skip-delta ancestor's (FORMAT.md §5).
    const { related } = codingRelatives(parent, await reg.manifests(), reg.config.maxChainDepth);
    const counters: Counters = { newObjectBytes: 0, newObjects: 0 };
    let done = 0;
    const label = `add ${name}`;
    const progress = (n: number): void => {
      done += n;
      opts.onProgress?.({ label, done, total, unit: 'bytes' });
    };
    const files: FileEntry[] = [];
    for (const f of source.files) {
      files.push(f.header ? await storeSafetensors(reg, inputOf(f), f.path, f.header, related, level, counters, progress, refReader) : await storeBlobFile(reg, f, level, counters, progress));
    }
    const manifest: VersionManifest = {
      format: MANIFEST_FORMAT,
      formatVersion: manifestFormatVersion({ files }),
      name,
      parent: parent?.name ?? null,
      createdAt: new Date().toISOString(),
      layout: source.layout,
      files,
      stats: { rawBytes: total, ...counters },
    };
    const sketch = versionSketch(samples);
    if (sketch) manifest.sketch = sketch;
    // Second line of defence: the very bytes to be published must pass the parser every later reader uses, or nothing is published.
    const bytes = serializeManifest(manifest);
    try {
      parseManifest(bytes, manifest.name);
    } catch (e) {
      throw new At1Error('E_IO', `internal error: the manifest built for ${JSON.stringify(name)} fails the manifest parser (${(e as Error).message}); nothing was published (please report this)`, { cause: e });
    }
    const manifestBytes = await reg.publish(manifest, lock, bytes);
    return { manifest, estimates, storedBytes: counters.newObjectBytes + manifestBytes };
  } finally {
    await lock.release();
  }
}
