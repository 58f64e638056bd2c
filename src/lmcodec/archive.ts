/**
 * The archival tier's three operations over the .at1z container:
 * compress a file or directory with a registry version's model, decompress
 * it back, and verify an archive by decoding it without writing.
 *
 * Every frame is decode-verified before it is written: the encoder decodes
 * its own payload (the same token-by-token path a later decoder takes) and
 * compares the bytes, so an archive that exists decodes. Decompression
 * checks the model's identity (weights, tokenizer, config digests and the
 * codec parameters), each payload's SHA-256, each frame's SHA-256 and the
 * whole input's SHA-256 and length, and names the frame that fails.
 */
import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { At1Error, IntegrityError } from '../errors.js';
import { AtomicFileWriter } from '../util/atomic-file.js';
import { checkOutputPath } from '../util/output-path.js';
import { fsError } from '../util/fs-errors.js';
import { parallelMap } from '../util/parallel-map.js';
import { openFileSource, type InputSource } from '../format/input-source.js';
import { ArchiveReader, ArchiveWriter, type ArchiveTrailer } from './container.js';
import type { EncodedFrame } from './frame-codec.js';
import { CODEC, checkSameModel, type CoderOptions } from './coder.js';
import { openFramePool, type FramePool } from './frame-pool.js';
import { treeStream, treeStreamPlan, unpackTree } from './tree-stream.js';

export const DEFAULT_FRAME_SIZE = 1 << 20;
const MAX_FRAME_SIZE = 1 << 28;

export interface ArchiveProgress {
  phase: 'compress' | 'decompress' | 'verify';
  bytesDone: number;
  bytesTotal: number;
  tokensDone: number;
}

export interface CompressOptions extends CoderOptions {
  /** bytes per frame (default 1 MiB); frames are cut before a UTF-8 sequence, never inside one */
  frameSize?: number;
  /** frames coded at once (worker threads when > 1; default 1) */
  threads?: number;
  /** replace an existing output file */
  overwrite?: boolean;
  onProgress?: (p: ArchiveProgress) => void;
  signal?: AbortSignal;
}

export interface CompressResult {
  trailer: ArchiveTrailer;
  inputBytes: number;
  archiveBytes: number;
  tokens: number;
  /** frames coded as bytes because the tokenizer could not be mapped onto them */
  byteFrames: number;
  /** ideal code lengths by kind, in bits (statistics) */
  bits: { tokens: number; escapes: number; escapeBytes: number };
  seconds: number;
}

export interface DecompressOptions extends CoderOptions {
  threads?: number;
  onProgress?: (p: ArchiveProgress) => void;
  signal?: AbortSignal;
}

export interface DecompressResult {
  trailer: ArchiveTrailer;
  outputBytes: number;
  seconds: number;
}

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** Cuts a byte stream into frames of at most `frameSize`, each ending before a UTF-8 lead byte when one is near. */
async function* framesOf(pieces: AsyncIterable<Uint8Array>, frameSize: number): AsyncGenerator<Uint8Array> {
  let buf = new Uint8Array(0);
  const cut = (b: Uint8Array): number => {
    let end = frameSize;
    // step back over continuation bytes (10xxxxxx), at most 3, so a character is not split
    for (let k = 0; k < 3 && end > 1 && (b[end]! & 0xc0) === 0x80; k++) end--;
    return (b[end]! & 0xc0) === 0x80 ? frameSize : end;
  };
  for await (const piece of pieces) {
    const next = new Uint8Array(buf.length + piece.length);
    next.set(buf);
    next.set(piece, buf.length);
    buf = next;
    while (buf.length > frameSize) {
      const end = cut(buf);
      yield buf.slice(0, end);
      buf = buf.subarray(end);
    }
  }
  if (buf.length > 0) yield buf.slice();
}

/** A file as pieces of 1 MiB, read through one InputSource; a file that changed size while read is refused. */
async function* fileStream(src: InputSource): AsyncGenerator<Uint8Array> {
  for (let off = 0; off < src.size; off += 1 << 20) yield await src.readRange(off, Math.min(1 << 20, src.size - off));
  await src.checkUnchanged?.();
}

interface CodedFrame {
  raw: Uint8Array;
  rawSha256: string;
  payload: Uint8Array;
  tokens: number;
  mode: number;
  bits: EncodedFrame['bits'];
}

/** Compresses the file or directory `input` with `version` of the registry at `location` into `out`. */
export async function compressToArchive(location: string, version: string, input: string, out: string, opts: CompressOptions = {}): Promise<CompressResult> {
  const t0 = performance.now();
  const frameSize = opts.frameSize ?? DEFAULT_FRAME_SIZE;
  if (!Number.isSafeInteger(frameSize) || frameSize < 1024 || frameSize > MAX_FRAME_SIZE) {
    throw new At1Error('E_INPUT', `frame size must be from 1 KiB to 256 MiB, is ${opts.frameSize}`);
  }
  let st;
  try {
    st = await stat(input);
  } catch (e) {
    throw fsError(e, 'read', input);
  }
  let kind: 'bytes' | 'tree';
  let length: number;
  let pieces: AsyncIterable<Uint8Array>;
  let file: InputSource | undefined;
  if (st.isDirectory()) {
    const plan = await treeStreamPlan(input);
    kind = 'tree';
    length = plan.length;
    pieces = treeStream(plan);
  } else if (st.isFile()) {
    file = await openFileSource(input);
    kind = 'bytes';
    length = file.size;
    pieces = fileStream(file);
  } else throw new At1Error('E_INPUT', `${input} is neither a file nor a directory`);

  let pool: FramePool | undefined;
  let writer: ArchiveWriter | undefined;
  try {
    pool = await openFramePool(location, version, opts);
    const coders = pool;
    writer = await ArchiveWriter.create(out, { overwrite: opts.overwrite });
    const whole = createHash('sha256');
    let done = 0;
    let tokensDone = 0;
    let tokens = 0;
    let byteFrames = 0;
    const bits = { tokens: 0, escapes: 0, escapeBytes: 0 };
    const report = (): void => opts.onProgress?.({ phase: 'compress', bytesDone: done, bytesTotal: length, tokensDone });
    const code = async (raw: Uint8Array, at: number): Promise<CodedFrame> => {
      const enc = await coders.encode(raw, (n) => {
        tokensDone += n;
        report();
      });
      // decode-verify: the decoder's path, before the frame is written
      const back = await coders.decode(enc.payload, raw.length);
      if (!Buffer.from(back.buffer, back.byteOffset, back.byteLength).equals(raw)) {
        throw new At1Error('E_IO', `frame at input byte ${at}: the coded frame does not decode to its input (a codec bug; nothing was written)`);
      }
      return { raw, rawSha256: sha256(raw), payload: enc.payload, tokens: enc.tokens, mode: enc.mode, bits: enc.bits };
    };
    const write = async (r: CodedFrame): Promise<void> => {
      opts.signal?.throwIfAborted();
      await writer!.appendFrame(r.payload, { rawLength: r.raw.length, rawSha256: r.rawSha256, tokens: r.tokens });
      done += r.raw.length;
      tokens += r.tokens;
      if (r.mode !== 0) byteFrames++;
      bits.tokens += r.bits.tokens;
      bits.escapes += r.bits.escapes;
      bits.escapeBytes += r.bits.escapeBytes;
      report();
    };
    // At most `pool.size` frames are being coded at once, plus the one being read: bounded memory. Frames are written in order.
    const inFlight: Promise<CodedFrame>[] = [];
    let read = 0;
    for await (const raw of framesOf(pieces, frameSize)) {
      whole.update(raw);
      const p = code(raw, read);
      p.catch(() => undefined); // a failure is thrown where the frame is awaited, in order; never an unhandled rejection meanwhile
      inFlight.push(p);
      read += raw.length;
      if (inFlight.length >= coders.size) await write(await inFlight.shift()!);
    }
    while (inFlight.length > 0) await write(await inFlight.shift()!);
    if (done !== length) throw new At1Error('E_INPUT', `${input} changed while it was read (${done} bytes, expected ${length})`);
    const trailer = await writer.finish({
      format: 'at1z',
      codec: CODEC,
      codecParams: { ...coders.params },
      model: coders.identity,
      input: { kind, length, sha256: whole.digest('hex') },
      frameSize,
      createdBy: 'at1 0.1.0',
    });
    writer = undefined;
    const archiveBytes = (await stat(out)).size;
    return { trailer, inputBytes: length, archiveBytes, tokens, byteFrames, bits, seconds: (performance.now() - t0) / 1000 };
  } catch (e) {
    await writer?.abort();
    throw e;
  } finally {
    await pool?.close();
    await file?.close();
  }
}

/** Decoded frames of an archive, in order, each checked against its digest. */
async function* decodedFrames(reader: ArchiveReader, pool: FramePool, opts: DecompressOptions, phase: ArchiveProgress['phase']): AsyncGenerator<Uint8Array> {
  const t = reader.trailer;
  let done = 0;
  let tokensDone = 0;
  const whole = createHash('sha256');
  const frames = t.frames.map((f, i) => ({ f, i }));
  const decoded = parallelMap(
    frames,
    async ({ f, i }) => {
      const payload = await reader.readPayload(i);
      let bytes: Uint8Array;
      try {
        bytes = await pool.decode(payload, f.rawLength, (n) => {
          tokensDone += n;
          opts.onProgress?.({ phase, bytesDone: done, bytesTotal: t.input.length, tokensDone });
        });
      } catch (e) {
        const why = e instanceof Error ? e.message : String(e);
        throw new IntegrityError(`${reader.path}: frame ${i} (input bytes ${f.rawOffset}..${f.rawOffset + f.rawLength}) does not decode: ${why}`, {});
      }
      if (sha256(bytes) !== f.rawSha256) {
        throw new IntegrityError(`${reader.path}: frame ${i} (input bytes ${f.rawOffset}..${f.rawOffset + f.rawLength}) decodes to bytes that do not match its SHA-256`, {});
      }
      return bytes;
    },
    pool.size,
  );
  for await (const bytes of decoded) {
    whole.update(bytes);
    done += bytes.length;
    opts.onProgress?.({ phase, bytesDone: done, bytesTotal: t.input.length, tokensDone });
    yield bytes;
  }
  if (done !== t.input.length || whole.digest('hex') !== t.input.sha256) {
    throw new IntegrityError(`${reader.path}: the decoded input does not match its recorded length and SHA-256`, {});
  }
}

/** Opens the archive and its model; `check` runs on the trailer first, before the model is loaded (a refused output costs nothing). */
async function openForDecode(location: string, archive: string, opts: DecompressOptions, check?: (t: ArchiveTrailer) => Promise<void>): Promise<{ reader: ArchiveReader; pool: FramePool }> {
  const reader = await ArchiveReader.open(archive);
  try {
    const t = reader.trailer;
    if (t.codec !== CODEC) throw new At1Error('E_UNSUPPORTED', `${archive} uses codec ${t.codec}; this build decodes ${CODEC}`);
    await check?.(t);
    const threads = Math.max(1, Math.min(opts.threads ?? 1, t.frames.length || 1));
    const context = t.codecParams['context'];
    if (typeof context !== 'number') throw new At1Error('E_CORRUPT', `${archive}: codecParams.context is missing`);
    const pool = await openFramePool(location, t.model.version, { ...opts, threads, context });
    try {
      checkSameModel(archive, t.model, t.codecParams, pool);
    } catch (e) {
      await pool.close();
      throw e;
    }
    return { reader, pool };
  } catch (e) {
    await reader.close();
    throw e;
  }
}

/** Decompresses `archive` to `out` (a file, or a directory for an archived tree), atomically. */
export async function decompressArchive(location: string, archive: string, out: string, opts: DecompressOptions = {}): Promise<DecompressResult> {
  const t0 = performance.now();
  // A file output passes the one output check before the model is loaded; a tree's is unpackTree's own.
  let target = out;
  const { reader, pool } = await openForDecode(location, archive, opts, async (t) => {
    if (t.input.kind === 'bytes') target = (await checkOutputPath(out, { kind: 'file', label: '-o' })).path;
  });
  try {
    const t = reader.trailer;
    if (t.input.kind === 'tree') {
      await unpackTree(decodedFrames(reader, pool, opts, 'decompress'), out, { source: archive });
    } else {
      const w = await AtomicFileWriter.create(target, out);
      try {
        for await (const b of decodedFrames(reader, pool, opts, 'decompress')) await w.write(b);
        await w.commit();
      } catch (e) {
        await w.abort();
        throw e;
      }
    }
    return { trailer: t, outputBytes: t.input.length, seconds: (performance.now() - t0) / 1000 };
  } finally {
    await pool.close();
    await reader.close();
  }
}

/** Decodes every frame and checks every digest, writing nothing. */
export async function verifyArchive(location: string, archive: string, opts: DecompressOptions = {}): Promise<DecompressResult> {
  const t0 = performance.now();
  const { reader, pool } = await openForDecode(location, archive, opts);
  try {
    for await (const _ of decodedFrames(reader, pool, opts, 'verify')) void _;
    return { trailer: reader.trailer, outputBytes: reader.trailer.input.length, seconds: (performance.now() - t0) / 1000 };
  } finally {
    await pool.close();
    await reader.close();
  }
}
