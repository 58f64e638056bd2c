/**
 * The `.at1z` container (docs/FORMAT.md §14): a fixed header, the coder's
 * frame payloads back to back, and a trailer that says what they are.
 *
 *   "AT1Z" | u8 version (1) | 3 zero bytes
 *   payload 0 | payload 1 | …                      (opaque to this file)
 *   trailer JSON (UTF-8) | u32 LE trailer length | SHA-256 of the trailer JSON | "Z1TA"
 *
 * Why a trailer and not a header: the writer streams frames as the coder
 * finishes them and knows their lengths and digests only at the end, so it
 * never holds more than one frame or seeks back. A reader finds everything
 * from the fixed 40-byte tail.
 *
 * The trailer is hostile input on read: it is parsed with the strict JSON
 * parser (no duplicate keys, numbers kept as text) and every field is typed,
 * range-checked and cross-checked (frames contiguous in the raw input and in
 * the file, ending where the trailer starts, summing to the input length).
 * A reader that accepts only what the writer can produce leaves no room for
 * two readers to see one archive differently.
 */
import { link, lstat, open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { constants } from 'node:fs';
import { dirname } from 'node:path';
import { At1Error, IntegrityError } from '../errors.js';
import { JsonNumber, StrictJsonError, describeJson, parseStrictJson, type JsonObject, type JsonValue } from '../format/strict-json.js';
import { fsyncDir, removeStaleTemps, tempNameFor } from '../util/atomic-file.js';
import { errnoOf, fsError } from '../util/fs-errors.js';
import { isSha256Hex, sha256Hex } from '../util/hash.js';
import { checkOutputPath } from '../util/output-path.js';

export const AT1Z_MAGIC = 'AT1Z';
export const AT1Z_END_MAGIC = 'Z1TA';
export const AT1Z_CONTAINER_VERSION = 1;
/** Magic, version, 3 reserved bytes. */
export const AT1Z_HEADER_BYTES = 8;
/** u32 trailer length, 32-byte SHA-256, end magic. */
export const AT1Z_TAIL_BYTES = 4 + 32 + 4;
/**
 * The largest trailer a reader accepts. A frame costs about 400 bytes of
 * trailer, so this is ~600k frames (600 GiB at 1 MiB frames); the bound
 * keeps a hostile length field from making the reader allocate gigabytes.
 */
export const AT1Z_MAX_TRAILER_BYTES = 256 << 20;
const MAX_STRING = 4096;
const MAX_CODEC_PARAMS = 256;

export interface ArchiveFrame {
  /** Where the frame's bytes start in the original input. */
  rawOffset: number;
  rawLength: number;
  /** SHA-256 of the frame's original bytes: checked after decoding it. */
  rawSha256: string;
  /** How many tokens the coder coded (reported; the decoder needs it to stop). */
  tokens: number;
  /** Where the payload starts in the .at1z file. */
  payloadOffset: number;
  payloadLength: number;
  /** SHA-256 of the payload bytes: checked before decoding it. */
  payloadSha256: string;
}

export interface ArchiveModel {
  /** The registry version name the archive was coded with. */
  version: string;
  weightsSha256: string;
  tokenizerSha256: string;
  configSha256: string;
}

export interface ArchiveTrailer {
  format: 'at1z';
  codec: string;
  codecParams: Record<string, number | string | boolean>;
  model: ArchiveModel;
  input: { kind: 'bytes' | 'tree'; length: number; sha256: string };
  frameSize: number;
  frames: ArchiveFrame[];
  createdBy: string;
}

/** What finish() takes: everything but the frames, which the writer recorded itself. */
export type ArchiveTrailerFields = Omit<ArchiveTrailer, 'frames'>;

/** What the caller knows of a frame when it appends its payload; offsets and the payload digest are the writer's. */
export interface FrameMeta {
  rawLength: number;
  rawSha256: string;
  tokens: number;
}

// ---------------------------------------------------------------------------
// Byte layout

const ascii = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0));
const MAGIC_BYTES = ascii(AT1Z_MAGIC);
const END_MAGIC_BYTES = ascii(AT1Z_END_MAGIC);

/** The 8-byte header every version-1 archive starts with. */
export function encodeArchiveHeader(): Uint8Array {
  const h = new Uint8Array(AT1Z_HEADER_BYTES);
  h.set(MAGIC_BYTES, 0);
  h[4] = AT1Z_CONTAINER_VERSION;
  return h;
}

/** Trailer JSON bytes followed by the 40-byte tail. */
export function encodeArchiveTrailer(trailerJson: Uint8Array): Uint8Array {
  const out = new Uint8Array(trailerJson.length + AT1Z_TAIL_BYTES);
  out.set(trailerJson, 0);
  const at = trailerJson.length;
  new DataView(out.buffer).setUint32(at, trailerJson.length, true);
  out.set(Buffer.from(sha256Hex(trailerJson), 'hex'), at + 4);
  out.set(END_MAGIC_BYTES, at + 36);
  return out;
}

function corrupt(name: string, why: string): At1Error {
  return new At1Error('E_CORRUPT', `${name}: not a valid .at1z archive: ${why}`);
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function checkHeader(h: Uint8Array, name: string): void {
  if (!sameBytes(h.subarray(0, 4), MAGIC_BYTES)) throw corrupt(name, `it does not start with the magic "${AT1Z_MAGIC}"`);
  if (h[4] !== AT1Z_CONTAINER_VERSION) {
    throw new At1Error('E_UNSUPPORTED', `${name}: .at1z container version ${h[4]} is not supported by this build (it reads version ${AT1Z_CONTAINER_VERSION})`);
  }
  if (h[5] !== 0 || h[6] !== 0 || h[7] !== 0) throw corrupt(name, 'the reserved header bytes 5..7 are not zero');
}

/** Checks the 40-byte tail of a file of `fileSize` bytes; returns where the trailer JSON starts, its length and its recorded digest. */
function checkTail(tail: Uint8Array, fileSize: number, name: string): { start: number; length: number; sha256: string } {
  if (!sameBytes(tail.subarray(36, 40), END_MAGIC_BYTES)) throw corrupt(name, `it does not end with the magic "${AT1Z_END_MAGIC}" (truncated or not an archive)`);
  const length = new DataView(tail.buffer, tail.byteOffset, tail.byteLength).getUint32(0, true);
  const room = fileSize - AT1Z_HEADER_BYTES - AT1Z_TAIL_BYTES;
  if (length > room) throw corrupt(name, `the trailer length ${length} is more than the ${room} bytes between header and tail`);
  if (length > AT1Z_MAX_TRAILER_BYTES) throw corrupt(name, `the trailer length ${length} is over the limit of ${AT1Z_MAX_TRAILER_BYTES} bytes`);
  return { start: fileSize - AT1Z_TAIL_BYTES - length, length, sha256: Buffer.from(tail.subarray(4, 36)).toString('hex') };
}

// ---------------------------------------------------------------------------
// Trailer: serialization and strict validation

/** An own data property even for a key like "__proto__", which plain assignment would turn into a prototype change (or drop). */
function setParam(o: Record<string, number | string | boolean>, k: string, v: number | string | boolean): void {
  Object.defineProperty(o, k, { value: v, enumerable: true, writable: true, configurable: true });
}

/** The trailer as the writer stores it: fixed key order, codecParams sorted, no spaces, so equal archives are equal bytes. */
export function serializeTrailer(t: ArchiveTrailer): Uint8Array {
  const params: Record<string, number | string | boolean> = {};
  for (const k of Object.keys(t.codecParams).sort()) setParam(params, k, t.codecParams[k]!);
  const ordered = {
    format: t.format,
    codec: t.codec,
    codecParams: params,
    model: { version: t.model.version, weightsSha256: t.model.weightsSha256, tokenizerSha256: t.model.tokenizerSha256, configSha256: t.model.configSha256 },
    input: { kind: t.input.kind, length: t.input.length, sha256: t.input.sha256 },
    frameSize: t.frameSize,
    frames: t.frames.map((f) => ({
      rawOffset: f.rawOffset,
      rawLength: f.rawLength,
      rawSha256: f.rawSha256,
      tokens: f.tokens,
      payloadOffset: f.payloadOffset,
      payloadLength: f.payloadLength,
      payloadSha256: f.payloadSha256,
    })),
    createdBy: t.createdBy,
  };
  return new TextEncoder().encode(JSON.stringify(ordered));
}

/** Reads one strictly typed object; `where` names it in messages ("trailer", "trailer.frames[3]"). */
class Fields {
  constructor(
    private readonly obj: JsonObject,
    private readonly where: string,
    private readonly fail: (why: string) => never,
  ) {}

  static of(v: JsonValue | undefined, where: string, keys: readonly string[], fail: (why: string) => never): Fields {
    if (!(v instanceof Map)) return fail(`${where} is ${describeJson(v)}, not an object`);
    for (const k of v.keys()) if (!keys.includes(k)) fail(`${where} has an unknown field ${JSON.stringify(k)}`);
    for (const k of keys) if (!v.has(k)) fail(`${where} has no field "${k}"`);
    return new Fields(v, where, fail);
  }

  raw(k: string): JsonValue {
    return this.obj.get(k)!;
  }

  string(k: string, test?: (s: string) => boolean, what = 'a string'): string {
    const v = this.obj.get(k);
    if (typeof v !== 'string' || v.length === 0 || v.length > MAX_STRING || (test && !test(v))) {
      this.fail(`${this.where}.${k} is ${describeJson(v)}, not ${what}`);
    }
    return v as string;
  }

  sha(k: string): string {
    return this.string(k, isSha256Hex, 'a SHA-256 (64 lower-case hex digits)');
  }

  /** A non-negative integer written as plain digits, at most 2^53 - 1 (exact in a double). */
  int(k: string, min = 0): number {
    const v = this.obj.get(k);
    const n = v instanceof JsonNumber && /^(?:0|[1-9][0-9]{0,15})$/.test(v.raw) ? Number(v.raw) : NaN;
    if (!Number.isSafeInteger(n) || n < min) {
      this.fail(`${this.where}.${k} is ${v instanceof JsonNumber ? v.raw : describeJson(v)}, not an integer from ${min} to 2^53-1`);
    }
    return n;
  }
}

/**
 * Validate trailer JSON bytes for a file of `fileSize` bytes whose trailer
 * starts at `trailerStart`; throws E_CORRUPT naming `name` and the field.
 */
export function parseTrailer(bytes: Uint8Array, fileSize: number, trailerStart: number, name: string): ArchiveTrailer {
  const fail = (why: string): never => {
    throw corrupt(name, why);
  };
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    return fail('the trailer is not valid UTF-8');
  }
  let root: JsonValue;
  try {
    root = parseStrictJson(text, { maxDepth: 8 });
  } catch (e) {
    if (e instanceof StrictJsonError) return fail(`the trailer is not strict JSON: ${e.message}`);
    throw e;
  }
  const top = Fields.of(root, 'trailer', ['format', 'codec', 'codecParams', 'model', 'input', 'frameSize', 'frames', 'createdBy'], fail);
  top.string('format', (s) => s === 'at1z', '"at1z"');
  const codec = top.string('codec');

  const paramsRaw = top.raw('codecParams');
  if (!(paramsRaw instanceof Map)) return fail(`trailer.codecParams is ${describeJson(paramsRaw)}, not an object`);
  if (paramsRaw.size > MAX_CODEC_PARAMS) fail(`trailer.codecParams has ${paramsRaw.size} fields, more than ${MAX_CODEC_PARAMS}`);
  const codecParams: Record<string, number | string | boolean> = {};
  for (const [k, v] of paramsRaw) {
    if (k.length === 0 || k.length > 256) fail(`trailer.codecParams has a key of ${k.length} characters (1 to 256 allowed)`);
    if (typeof v === 'boolean' || (typeof v === 'string' && v.length <= MAX_STRING)) setParam(codecParams, k, v);
    // Numbers only in the form JSON.stringify writes, so the value read is exactly the value the coder wrote.
    else if (v instanceof JsonNumber && Number.isFinite(Number(v.raw)) && JSON.stringify(Number(v.raw)) === v.raw) setParam(codecParams, k, Number(v.raw));
    else fail(`trailer.codecParams.${k} is ${v instanceof JsonNumber ? v.raw : describeJson(v)}, not a boolean, a string or a number as JSON.stringify writes it`);
  }

  const m = Fields.of(top.raw('model'), 'trailer.model', ['version', 'weightsSha256', 'tokenizerSha256', 'configSha256'], fail);
  const model: ArchiveModel = { version: m.string('version'), weightsSha256: m.sha('weightsSha256'), tokenizerSha256: m.sha('tokenizerSha256'), configSha256: m.sha('configSha256') };

  const i = Fields.of(top.raw('input'), 'trailer.input', ['kind', 'length', 'sha256'], fail);
  const input = { kind: i.string('kind', (s) => s === 'bytes' || s === 'tree', '"bytes" or "tree"') as 'bytes' | 'tree', length: i.int('length'), sha256: i.sha('sha256') };
  const frameSize = top.int('frameSize', 1);
  const createdBy = top.string('createdBy');

  const framesRaw = top.raw('frames');
  if (!Array.isArray(framesRaw)) return fail(`trailer.frames is ${describeJson(framesRaw)}, not an array`);
  const frames: ArchiveFrame[] = [];
  let raw = 0;
  let pos = AT1Z_HEADER_BYTES;
  framesRaw.forEach((fv, n) => {
    const w = `trailer.frames[${n}]`;
    const f = Fields.of(fv, w, ['rawOffset', 'rawLength', 'rawSha256', 'tokens', 'payloadOffset', 'payloadLength', 'payloadSha256'], fail);
    const frame: ArchiveFrame = {
      rawOffset: f.int('rawOffset'),
      rawLength: f.int('rawLength', 1),
      rawSha256: f.sha('rawSha256'),
      tokens: f.int('tokens'),
      payloadOffset: f.int('payloadOffset'),
      payloadLength: f.int('payloadLength'),
      payloadSha256: f.sha('payloadSha256'),
    };
    if (frame.rawLength > frameSize) fail(`${w}.rawLength ${frame.rawLength} is more than the frame size ${frameSize}`);
    if (frame.rawOffset !== raw) fail(`${w}.rawOffset is ${frame.rawOffset}, expected ${raw}: frames must cover the input in order, without gaps or overlaps`);
    if (frame.payloadOffset !== pos) fail(`${w}.payloadOffset is ${frame.payloadOffset}, expected ${pos}: payloads must follow each other from byte ${AT1Z_HEADER_BYTES}, without gaps or overlaps`);
    raw += frame.rawLength;
    pos += frame.payloadLength;
    if (pos > trailerStart) fail(`${w} ends at byte ${pos}, past the start of the trailer at ${trailerStart} (file of ${fileSize} bytes)`);
    frames.push(frame);
  });
  if (raw !== input.length) fail(`the frames cover ${raw} bytes of input, but trailer.input.length is ${input.length}`);
  if (pos !== trailerStart) fail(`the payloads end at byte ${pos}, but the trailer starts at byte ${trailerStart}: ${trailerStart - pos} unaccounted bytes`);
  return { format: 'at1z', codec, codecParams, model, input, frameSize, frames, createdBy };
}

function checkTrailerDigest(bytes: Uint8Array, recorded: string, name: string): void {
  const actual = sha256Hex(bytes);
  if (actual !== recorded) throw corrupt(name, `the trailer's SHA-256 is ${actual}, but the tail records ${recorded} (damaged trailer)`);
}

function payloadMismatch(name: string, i: number, f: ArchiveFrame, actual: string): IntegrityError {
  return new IntegrityError(
    `${name}: frame ${i} (input bytes ${f.rawOffset}..${f.rawOffset + f.rawLength}) is damaged: its payload's SHA-256 is ${actual}, the trailer records ${f.payloadSha256}`,
    { file: name },
  );
}

// ---------------------------------------------------------------------------
// In memory

export interface ArchiveBytes {
  trailer: ArchiveTrailer;
  /** Frame `i`'s payload, its digest checked (IntegrityError naming the frame). */
  payload(i: number): Uint8Array;
}

/** Parse a whole archive held in memory (tests, small inputs); the same checks as ArchiveReader. */
export function readArchiveBytes(bytes: Uint8Array, name = 'archive in memory'): ArchiveBytes {
  if (bytes.length < AT1Z_HEADER_BYTES + AT1Z_TAIL_BYTES) throw corrupt(name, `it is ${bytes.length} bytes, shorter than the ${AT1Z_HEADER_BYTES + AT1Z_TAIL_BYTES} of an empty archive (truncated)`);
  checkHeader(bytes.subarray(0, AT1Z_HEADER_BYTES), name);
  const tail = checkTail(bytes.subarray(bytes.length - AT1Z_TAIL_BYTES), bytes.length, name);
  const tj = bytes.subarray(tail.start, tail.start + tail.length);
  checkTrailerDigest(tj, tail.sha256, name);
  const trailer = parseTrailer(tj, bytes.length, tail.start, name);
  return {
    trailer,
    payload(i: number): Uint8Array {
      const f = frameAt(trailer, i, name);
      const p = bytes.subarray(f.payloadOffset, f.payloadOffset + f.payloadLength);
      const actual = sha256Hex(p);
      if (actual !== f.payloadSha256) throw payloadMismatch(name, i, f, actual);
      return p;
    },
  };
}

/** A whole archive in memory from payloads and the trailer fields (tests, small inputs): what ArchiveWriter writes. */
export function writeArchiveBytes(payloads: { payload: Uint8Array; meta: FrameMeta }[], fields: ArchiveTrailerFields): Uint8Array {
  const layout = new FrameLayout();
  for (const p of payloads) layout.add(p.payload, p.meta, 'archive in memory');
  const trailer = encodeArchiveTrailer(layout.trailerBytes(fields, 'archive in memory'));
  return Buffer.concat([encodeArchiveHeader(), ...payloads.map((p) => p.payload), trailer]);
}

function frameAt(t: ArchiveTrailer, i: number, name: string): ArchiveFrame {
  const f = Number.isInteger(i) ? t.frames[i] : undefined;
  if (!f) throw new At1Error('E_INPUT', `${name}: there is no frame ${i} (the archive has ${t.frames.length})`);
  return f;
}

/** The frame table as payloads are appended, and the trailer it makes; shared by the file and in-memory writers. */
class FrameLayout {
  readonly frames: ArchiveFrame[] = [];
  private raw = 0;
  private pos = AT1Z_HEADER_BYTES;

  add(payload: Uint8Array, meta: FrameMeta, name: string): void {
    if (!Number.isSafeInteger(meta.rawLength) || meta.rawLength < 1) throw new At1Error('E_INPUT', `${name}: frame ${this.frames.length}: rawLength ${meta.rawLength} is not a positive integer`);
    if (!Number.isSafeInteger(meta.tokens) || meta.tokens < 0) throw new At1Error('E_INPUT', `${name}: frame ${this.frames.length}: tokens ${meta.tokens} is not a non-negative integer`);
    if (!isSha256Hex(meta.rawSha256)) throw new At1Error('E_INPUT', `${name}: frame ${this.frames.length}: rawSha256 is not 64 lower-case hex digits`);
    this.frames.push({
      rawOffset: this.raw,
      rawLength: meta.rawLength,
      rawSha256: meta.rawSha256,
      tokens: meta.tokens,
      payloadOffset: this.pos,
      payloadLength: payload.length,
      payloadSha256: sha256Hex(payload),
    });
    this.raw += meta.rawLength;
    this.pos += payload.length;
  }

  /**
   * The trailer JSON, checked by the reader's own validation before it is
   * written: the writer can never produce an archive the reader refuses
   * (wrong input length, a frame over frameSize, a bad digest string…).
   */
  trailerBytes(fields: ArchiveTrailerFields, name: string): Uint8Array {
    for (const [k, v] of Object.entries(fields.codecParams)) {
      if (typeof v === 'number' && !Number.isFinite(v)) throw new At1Error('E_INPUT', `${name}: codecParams.${k} is ${v}; JSON has no such number`);
    }
    const trailer: ArchiveTrailer = { ...fields, frames: this.frames };
    const bytes = serializeTrailer(trailer);
    const fileSize = this.pos + bytes.length + AT1Z_TAIL_BYTES;
    try {
      parseTrailer(bytes, fileSize, this.pos, name);
    } catch (e) {
      if (e instanceof At1Error && e.code === 'E_CORRUPT') throw new At1Error('E_INPUT', `refusing to write an invalid archive: ${e.message}`);
      throw e;
    }
    return bytes;
  }
}

// ---------------------------------------------------------------------------
// Files

export interface ArchiveWriterOptions {
  /** Replace an existing file at the path (atomically); default false: refuse with E_EXISTS. */
  overwrite?: boolean;
  /** How the path is named in messages (default the path itself). */
  label?: string;
}

/**
 * Writes an archive to a temp file beside `path`, one frame at a time
 * (memory: one payload), then the trailer; finish() fsyncs and moves it
 * into place. Nothing appears at `path` before finish() returns; abort()
 * (or a crash) leaves at most the temp, named as util/atomic-file.ts says.
 */
export class ArchiveWriter {
  private readonly layout = new FrameLayout();
  private state: 'open' | 'done' | 'failed' = 'open';

  private constructor(
    readonly path: string,
    readonly tempPath: string,
    private readonly fh: FileHandle,
    private readonly overwrite: boolean,
    private readonly name: string,
  ) {}

  static async create(path: string, opts: ArchiveWriterOptions = {}): Promise<ArchiveWriter> {
    const name = opts.label ?? path;
    const checked = await checkOutputPath(path, { kind: 'file', label: 'output' });
    if (checked.existing !== 'none' && !opts.overwrite) throw new At1Error('E_EXISTS', `${name} already exists; pass overwrite (--force) to replace it`);
    await removeStaleTemps(checked.path);
    const tempPath = tempNameFor(checked.path);
    let fh: FileHandle;
    try {
      fh = await open(tempPath, 'wx', 0o644);
    } catch (e) {
      throw fsError(e, 'create a temporary file beside', name);
    }
    const w = new ArchiveWriter(checked.path, tempPath, fh, opts.overwrite ?? false, name);
    await w.write(encodeArchiveHeader());
    return w;
  }

  private async write(data: Uint8Array): Promise<void> {
    try {
      let off = 0;
      while (off < data.length) off += (await this.fh.write(data, off, data.length - off)).bytesWritten;
    } catch (e) {
      this.state = 'failed';
      throw fsError(e, 'write', this.name);
    }
  }

  private usable(): void {
    if (this.state !== 'open') throw new At1Error('E_INPUT', `${this.name}: the archive writer is already ${this.state === 'done' ? 'finished or aborted' : 'failed'}`);
  }

  /** Append the next frame's payload; frames must come in input order. */
  async appendFrame(payload: Uint8Array, meta: FrameMeta): Promise<void> {
    this.usable();
    this.layout.add(payload, meta, this.name);
    await this.write(payload);
  }

  get frameCount(): number {
    return this.layout.frames.length;
  }

  /** Write the trailer, fsync, move into place (refusing, unless overwrite, a file that appeared meanwhile), fsync the directory. */
  async finish(fields: ArchiveTrailerFields): Promise<ArchiveTrailer> {
    this.usable();
    let bytes: Uint8Array;
    try {
      bytes = this.layout.trailerBytes(fields, this.name);
    } catch (e) {
      await this.abort();
      throw e;
    }
    try {
      await this.write(encodeArchiveTrailer(bytes));
      await this.fh.sync().catch((e: unknown) => Promise.reject(fsError(e, 'write', this.name)));
      await this.fh.close().catch((e: unknown) => Promise.reject(fsError(e, 'write', this.name)));
      this.state = 'done';
      await this.place();
    } catch (e) {
      await this.abort();
      throw e;
    }
    fsyncDir(dirname(this.path));
    return { ...fields, frames: this.layout.frames };
  }

  /**
   * rename() replaces whatever is there; without overwrite, link() makes the
   * name only if it is free (atomically), so a file created since create()
   * checked is never replaced. Where hard links are not supported, the
   * fallback checks and renames (a narrow race, documented).
   */
  private async place(): Promise<void> {
    if (this.overwrite) {
      await rename(this.tempPath, this.path).catch((e: unknown) => Promise.reject(fsError(e, 'move the finished archive into place at', this.name)));
      return;
    }
    try {
      await link(this.tempPath, this.path);
      await unlink(this.tempPath).catch(() => undefined);
    } catch (e) {
      const errno = errnoOf(e);
      if (errno === 'EEXIST') throw new At1Error('E_EXISTS', `${this.name} was created by someone else while the archive was written; nothing was replaced`);
      if (errno !== 'EPERM' && errno !== 'ENOTSUP' && errno !== 'EOPNOTSUPP' && errno !== 'ENOSYS') throw fsError(e, 'move the finished archive into place at', this.name);
      if (await lstat(this.path).then(() => true, () => false)) throw new At1Error('E_EXISTS', `${this.name} was created by someone else while the archive was written; nothing was replaced`);
      await rename(this.tempPath, this.path).catch((e2: unknown) => Promise.reject(fsError(e2, 'move the finished archive into place at', this.name)));
    }
  }

  /** Remove the temp file; safe after a failure and twice. Nothing is left at the output path. */
  async abort(): Promise<void> {
    if (this.state === 'done' && !(await lstat(this.tempPath).then(() => true, () => false))) return;
    this.state = 'done';
    await this.fh.close().catch(() => undefined);
    await unlink(this.tempPath).catch(() => undefined);
  }
}

/** An open archive: its validated trailer, and payloads read on demand (several may be read at once). */
export class ArchiveReader {
  private constructor(
    readonly path: string,
    readonly trailer: ArchiveTrailer,
    readonly fileSize: number,
    private readonly fh: FileHandle,
  ) {}

  /** Open `path`, check header, tail, trailer digest and trailer; E_CORRUPT naming the path and the problem. */
  static async open(path: string): Promise<ArchiveReader> {
    let fh: FileHandle;
    try {
      // O_NONBLOCK: a FIFO at the path must not hang the open; it is refused below.
      fh = await open(path, constants.O_RDONLY | constants.O_NONBLOCK);
    } catch (e) {
      throw fsError(e, 'open the archive', path);
    }
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw new At1Error('E_INPUT', `${path}: not a regular file`);
      const size = st.size;
      if (size < AT1Z_HEADER_BYTES + AT1Z_TAIL_BYTES) throw corrupt(path, `it is ${size} bytes, shorter than the ${AT1Z_HEADER_BYTES + AT1Z_TAIL_BYTES} of an empty archive (truncated)`);
      checkHeader(await readExactly(fh, 0, AT1Z_HEADER_BYTES, path), path);
      const tail = checkTail(await readExactly(fh, size - AT1Z_TAIL_BYTES, AT1Z_TAIL_BYTES, path), size, path);
      const tj = await readExactly(fh, tail.start, tail.length, path);
      checkTrailerDigest(tj, tail.sha256, path);
      return new ArchiveReader(path, parseTrailer(tj, size, tail.start, path), size, fh);
    } catch (e) {
      await fh.close().catch(() => undefined);
      throw e;
    }
  }

  /** Frame `i`'s payload, its SHA-256 checked: IntegrityError naming the frame and the archive on a mismatch. */
  async readPayload(i: number): Promise<Uint8Array> {
    const f = frameAt(this.trailer, i, this.path);
    const p = await readExactly(this.fh, f.payloadOffset, f.payloadLength, this.path);
    const actual = sha256Hex(p);
    if (actual !== f.payloadSha256) throw payloadMismatch(this.path, i, f, actual);
    return p;
  }

  async close(): Promise<void> {
    await this.fh.close().catch(() => undefined);
  }
}

async function readExactly(fh: FileHandle, at: number, length: number, name: string): Promise<Uint8Array> {
  const buf = new Uint8Array(length);
  let got = 0;
  while (got < length) {
    let n: number;
    try {
      n = (await fh.read(buf, got, length - got, at + got)).bytesRead;
    } catch (e) {
      throw fsError(e, 'read', name);
    }
    if (n === 0) throw corrupt(name, `it ends at byte ${at + got}, before the ${length} bytes expected at ${at} (truncated while open?)`);
    got += n;
  }
  return buf;
}
