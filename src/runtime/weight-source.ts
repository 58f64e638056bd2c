/**
 * Where the runtime gets its weights: one interface, no registry import.
 *
 * The registry's TensorReader.readInto satisfies `WeightSource` (it verifies
 * each tensor's SHA-256 as it reads); `SafetensorsFileWeightSource` reads an
 * unregistered .safetensors file for tests and benches, and
 * `SafetensorsBytesWeightSource` the same bytes from memory.
 */
import { open, type FileHandle } from 'node:fs/promises';
import { At1Error } from '../errors.js';

export interface WeightTensorInfo {
  name: string;
  /** 'F32' | 'F16' | 'BF16' are what the runtime runs; a source may report others and the model refuses them by name. */
  dtype: string;
  shape: number[];
}

export interface ReadOptions {
  /** offset inside the tensor's data, in bytes (default 0) */
  byteOffset?: number;
  /** bytes to read (default: the rest of the tensor from byteOffset) */
  byteLength?: number;
  signal?: AbortSignal;
}

export interface WeightSource {
  /** Every tensor the source holds (aliases, e.g. tied embeddings, included under their own names). */
  tensors(): WeightTensorInfo[];
  /** One tensor by name, or undefined. */
  tensor(name: string): WeightTensorInfo | undefined;
  /**
   * Reads bytes [byteOffset, byteOffset + byteLength) of the tensor's data into dest[0 .. byteLength).
   * A verifying source throws (an IntegrityError naming the tensor) rather than deliver bytes it could not check.
   */
  readInto(name: string, dest: Uint8Array, opts?: ReadOptions): Promise<void>;
  close?(): Promise<void>;
}

const ELEMENT_BYTES: Record<string, number> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1,
  U16: 2, U32: 4, U64: 8, F8_E4M3: 1, F8_E5M2: 1,
};

interface Entry {
  info: WeightTensorInfo;
  /** absolute file offset of the tensor data */
  start: number;
  bytes: number;
}

function fail(where: string, msg: string): never {
  throw new At1Error('E_SAFETENSORS', `${where}: ${msg}`);
}

/**
 * Parses a safetensors header (the JSON after the 8-byte length) into entries with absolute offsets.
 * `__metadata__` entries whose value names a stored tensor and whose key is not itself stored become
 * aliases (the fixture stores only lm_head.weight and maps model.embed_tokens.weight to it).
 */
export function parseHeaderJson(json: string, headerLength: number, fileSize: number, where: string): Map<string, Entry> {
  let h: unknown;
  try {
    h = JSON.parse(json);
  } catch (e) {
    fail(where, `header is not JSON (${(e as Error).message})`);
  }
  if (h === null || typeof h !== 'object' || Array.isArray(h)) fail(where, 'header is not a JSON object');
  const dataStart = 8 + headerLength;
  const out = new Map<string, Entry>();
  let meta: Record<string, unknown> = {};
  for (const [name, v] of Object.entries(h as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (v !== null && typeof v === 'object' && !Array.isArray(v)) meta = v as Record<string, unknown>;
      continue;
    }
    const e = v as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof e !== 'object' || e === null) fail(where, `tensor ${name}: entry is not an object`);
    if (typeof e.dtype !== 'string') fail(where, `tensor ${name}: dtype missing`);
    const size = ELEMENT_BYTES[e.dtype];
    if (size === undefined) fail(where, `tensor ${name}: unknown dtype ${e.dtype}`);
    if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) fail(where, `tensor ${name}: bad shape`);
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      fail(where, `tensor ${name}: bad data_offsets`);
    }
    const [b, end] = off as [number, number];
    const shape = e.shape as number[];
    const want = shape.reduce((a, d) => a * d, 1) * size;
    if (end - b !== want) fail(where, `tensor ${name}: data_offsets span ${end - b} bytes, shape and dtype need ${want}`);
    if (dataStart + end > fileSize) fail(where, `tensor ${name}: data runs past the end of the file`);
    out.set(name, { info: { name, dtype: e.dtype, shape: [...shape] }, start: dataStart + b, bytes: want });
  }
  for (const [alias, target] of Object.entries(meta)) {
    if (typeof target !== 'string' || out.has(alias)) continue;
    const t = out.get(target);
    if (t !== undefined) out.set(alias, { info: { ...t.info, name: alias, shape: [...t.info.shape] }, start: t.start, bytes: t.bytes });
  }
  return out;
}

function range(e: Entry, opts: ReadOptions | undefined, dest: Uint8Array): { pos: number; len: number } {
  const off = opts?.byteOffset ?? 0;
  const len = opts?.byteLength ?? e.bytes - off;
  if (!Number.isSafeInteger(off) || !Number.isSafeInteger(len) || off < 0 || len < 0 || off + len > e.bytes) {
    throw new At1Error('E_INPUT', `tensor ${e.info.name}: read of ${len} bytes at ${off} is outside its ${e.bytes} bytes`);
  }
  if (dest.byteLength < len) throw new At1Error('E_INPUT', `tensor ${e.info.name}: destination of ${dest.byteLength} bytes is smaller than ${len}`);
  return { pos: e.start + off, len };
}

abstract class SafetensorsSourceBase implements WeightSource {
  /** bytes delivered by readInto so far (for tests and stats) */
  bytesRead = 0;
  reads = 0;
  protected constructor(protected readonly entries: Map<string, Entry>, readonly where: string) {}
  tensors(): WeightTensorInfo[] {
    return [...this.entries.values()].map((e) => ({ ...e.info, shape: [...e.info.shape] }));
  }
  tensor(name: string): WeightTensorInfo | undefined {
    const e = this.entries.get(name);
    return e === undefined ? undefined : { ...e.info, shape: [...e.info.shape] };
  }
  protected entry(name: string): Entry {
    const e = this.entries.get(name);
    if (e === undefined) throw new At1Error('E_NOT_FOUND', `${this.where}: no tensor ${name}`);
    return e;
  }
  abstract readInto(name: string, dest: Uint8Array, opts?: ReadOptions): Promise<void>;
}

/** Reads tensors straight from an (unregistered) .safetensors file, unverified. */
export class SafetensorsFileWeightSource extends SafetensorsSourceBase {
  private constructor(entries: Map<string, Entry>, private readonly fh: FileHandle, path: string) {
    super(entries, path);
  }

  static async open(path: string): Promise<SafetensorsFileWeightSource> {
    const fh = await open(path, 'r');
    try {
      const size = (await fh.stat()).size;
      const lenBuf = Buffer.alloc(8);
      if (size < 8 || (await fh.read(lenBuf, 0, 8, 0)).bytesRead !== 8) fail(path, 'shorter than the 8-byte header length');
      const n = Number(lenBuf.readBigUInt64LE(0));
      if (n > size - 8 || n > 100_000_000) fail(path, `header length ${n} does not fit the file`);
      const hb = Buffer.alloc(n);
      if ((await fh.read(hb, 0, n, 8)).bytesRead !== n) fail(path, 'header truncated');
      return new SafetensorsFileWeightSource(parseHeaderJson(hb.toString('utf8'), n, size, path), fh, path);
    } catch (e) {
      await fh.close();
      throw e;
    }
  }

  async readInto(name: string, dest: Uint8Array, opts?: ReadOptions): Promise<void> {
    opts?.signal?.throwIfAborted();
    const e = this.entry(name);
    const { pos, len } = range(e, opts, dest);
    let done = 0;
    while (done < len) {
      const r = await this.fh.read(dest, done, len - done, pos + done);
      if (r.bytesRead === 0) fail(this.where, `tensor ${name}: file ended early`);
      done += r.bytesRead;
    }
    this.bytesRead += len;
    this.reads++;
  }

  async close(): Promise<void> {
    await this.fh.close();
  }
}

/** The same over a safetensors file already in memory (tests). */
export class SafetensorsBytesWeightSource extends SafetensorsSourceBase {
  private constructor(entries: Map<string, Entry>, private readonly bytes: Uint8Array) {
    super(entries, 'safetensors bytes');
  }

  static from(bytes: Uint8Array): SafetensorsBytesWeightSource {
    if (bytes.byteLength < 8) fail('safetensors bytes', 'shorter than the 8-byte header length');
    const n = Number(new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true));
    if (n > bytes.byteLength - 8) fail('safetensors bytes', `header length ${n} does not fit`);
    const json = new TextDecoder().decode(bytes.subarray(8, 8 + n));
    return new SafetensorsBytesWeightSource(parseHeaderJson(json, n, bytes.byteLength, 'safetensors bytes'), bytes);
  }

  async readInto(name: string, dest: Uint8Array, opts?: ReadOptions): Promise<void> {
    opts?.signal?.throwIfAborted();
    const e = this.entry(name);
    const { pos, len } = range(e, opts, dest);
    dest.set(this.bytes.subarray(pos, pos + len));
    this.bytesRead += len;
    this.reads++;
  }
}
