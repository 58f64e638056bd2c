/**
 * Where the runtime gets its weights: one interface, no registry import.
 *
 * The registry's TensorReader.readInto satisfies `WeightSource` (it verifies
 * each tensor's SHA-256 as it reads); `SafetensorsFileWeightSource` reads an
 * unregistered .safetensors file for tests and benches, and
 * `SafetensorsBytesWeightSource` the same bytes from memory.
 */
import { At1Error } from '../errors.js';
import { bytesSource, openFileSource, type InputSource } from '../format/input-source.js';
import { parseSafetensorsHeader, readSafetensorsHeaderFrom, type SafetensorsHeader } from '../format/safetensors.js';

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

interface Entry {
  info: WeightTensorInfo;
  /** absolute offset of the tensor data in the file */
  start: number;
  bytes: number;
}

/**
 * Entries of a header checked by the strict parser (src/format/safetensors.ts),
 * with absolute offsets. `__metadata__` entries whose value names a stored
 * tensor and whose key is not itself stored become aliases (the fixture
 * stores only lm_head.weight and maps model.embed_tokens.weight to it).
 */
function entriesOf(h: SafetensorsHeader): Map<string, Entry> {
  const out = new Map<string, Entry>();
  for (const t of h.tensors) out.set(t.name, { info: { name: t.name, dtype: t.dtype, shape: [...t.shape] }, start: h.dataStart + t.begin, bytes: t.end - t.begin });
  for (const [alias, target] of Object.entries(h.metadata ?? {})) {
    if (out.has(alias)) continue;
    const t = out.get(target);
    if (t !== undefined) out.set(alias, { info: { ...t.info, name: alias, shape: [...t.info.shape] }, start: t.start, bytes: t.bytes });
  }
  return out;
}

/**
 * Reads tensors of an unregistered .safetensors file (or bytes in memory)
 * through one InputSource, unverified: for tests, benches and comparing a
 * registry run against the file it came from.
 */
export class SafetensorsFileWeightSource implements WeightSource {
  /** bytes delivered by readInto so far (for tests and stats) */
  bytesRead = 0;
  reads = 0;

  protected constructor(
    private readonly entries: Map<string, Entry>,
    private readonly input: InputSource,
  ) {}

  static async open(path: string): Promise<SafetensorsFileWeightSource> {
    return SafetensorsFileWeightSource.fromInput(await openFileSource(path));
  }

  /** Over any InputSource; closing the weight source closes it. */
  static async fromInput(input: InputSource): Promise<SafetensorsFileWeightSource> {
    try {
      return new SafetensorsFileWeightSource(entriesOf(await readSafetensorsHeaderFrom(input)), input);
    } catch (e) {
      await input.close();
      throw e;
    }
  }

  get where(): string {
    return this.input.name;
  }

  tensors(): WeightTensorInfo[] {
    return [...this.entries.values()].map((e) => ({ ...e.info, shape: [...e.info.shape] }));
  }

  tensor(name: string): WeightTensorInfo | undefined {
    const e = this.entries.get(name);
    return e === undefined ? undefined : { ...e.info, shape: [...e.info.shape] };
  }

  async readInto(name: string, dest: Uint8Array, opts?: ReadOptions): Promise<void> {
    opts?.signal?.throwIfAborted();
    const e = this.entries.get(name);
    if (e === undefined) throw new At1Error('E_NOT_FOUND', `${this.where}: no tensor ${name}`);
    const off = opts?.byteOffset ?? 0;
    const len = opts?.byteLength ?? e.bytes - off;
    if (!Number.isSafeInteger(off) || !Number.isSafeInteger(len) || off < 0 || len < 0 || off + len > e.bytes) {
      throw new At1Error('E_INPUT', `tensor ${name}: read of ${len} bytes at ${off} is outside its ${e.bytes} bytes`);
    }
    if (dest.byteLength < len) throw new At1Error('E_INPUT', `tensor ${name}: destination of ${dest.byteLength} bytes is smaller than ${len}`);
    dest.set(await this.input.readRange(e.start + off, len, { signal: opts?.signal }));
    this.bytesRead += len;
    this.reads++;
  }

  async close(): Promise<void> {
    await this.input.close();
  }
}

/** The same over a safetensors file already in memory (tests). */
export class SafetensorsBytesWeightSource extends SafetensorsFileWeightSource {
  static from(bytes: Uint8Array, name = 'safetensors bytes'): SafetensorsBytesWeightSource {
    return new SafetensorsBytesWeightSource(entriesOf(parseSafetensorsHeader(bytes, bytes.length, name)), bytesSource(bytes, name));
  }
}
