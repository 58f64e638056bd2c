/**
 * A version's tensors as a source of weights for a consumer that reads them
 * piecemeal (the runtime, later the server): every tensor by name, its dtype
 * and shape, and `readInto(name, dest, {byteOffset, byteLength})` through the
 * one TensorReader. It satisfies the runtime's `WeightSource` structurally,
 * so `runtime/` never imports `registry/`.
 *
 * What is verified: a whole-tensor read is checked against the tensor's
 * SHA-256 before it returns; a part (a row block, embedding rows) is decoded
 * from the chunks that overlap it, each checked against its own digest
 * (FORMAT.md §9). Nothing unchecked reaches the caller's buffer's consumer:
 * readInto resolves only after the check.
 *
 * The reader lease (FORMAT.md §8b) is held from open to close, so gc and rm
 * leave the version's objects alone while a model runs from it.
 */
import { At1Error } from '../errors.js';
import { newSha256 } from '../util/hash.js';
import { readFile } from './decode-pipeline.js';
import type { Registry } from './registry.js';
import { TensorReader, type TensorLocation } from './tensor-reader.js';
import { tensorsOf } from './tensor-access.js';
import type { VersionManifest } from './manifest.js';

export interface VersionWeightInfo {
  name: string;
  dtype: string;
  shape: number[];
}

export interface VersionWeightReadOptions {
  byteOffset?: number;
  byteLength?: number;
  signal?: AbortSignal;
}

export interface VersionWeightStats {
  /** bytes handed out, each covered by a checked SHA-256 */
  bytesVerified: number;
  reads: number;
}

export class VersionWeights {
  readonly stats: VersionWeightStats = { bytesVerified: 0, reads: 0 };
  private closed = false;

  private constructor(
    readonly registry: Registry,
    readonly manifest: VersionManifest,
    private readonly byName: Map<string, TensorLocation>,
    private readonly reader: TensorReader,
    private readonly release: () => Promise<void>,
  ) {}

  /** Open a version's weights under a reader lease (released by close). */
  static async open(reg: Registry, version: string, opts: { command?: string } = {}): Promise<VersionWeights> {
    const release = await reg.holdReadLease(opts.command ?? `run ${version}`, [version]);
    try {
      const m = await reg.manifest(version);
      const byName = new Map<string, TensorLocation>();
      for (const loc of tensorsOf(m)) {
        if (byName.has(loc.tensor.name)) throw new At1Error('E_INPUT', `version ${version}: tensor ${JSON.stringify(loc.tensor.name)} is stored in two files; a model needs one of each`);
        byName.set(loc.tensor.name, loc);
      }
      return new VersionWeights(reg, m, byName, TensorReader.open(reg, 0) /* in-process: the runtime reads small pieces, often */, release);
    } catch (e) {
      await release();
      throw e;
    }
  }

  tensors(): VersionWeightInfo[] {
    return [...this.byName.values()].map((l) => ({ name: l.tensor.name, dtype: l.tensor.dtype, shape: [...l.tensor.shape] }));
  }

  tensor(name: string): VersionWeightInfo | undefined {
    const l = this.byName.get(name);
    return l ? { name, dtype: l.tensor.dtype, shape: [...l.tensor.shape] } : undefined;
  }

  /**
   * The identity of the weights: SHA-256 of one line `name\tdtype\tshape\tsha256\n` per tensor,
   * sorted by name (UTF-16 order). Unchanged by anything that keeps the tensors (a rebase rewrites
   * the manifest's parent, not the weights); the LM codec records it to refuse another model.
   */
  weightsDigest(): string {
    const lines = [...this.byName.values()]
      .map((l) => `${l.tensor.name}\t${l.tensor.dtype}\t${l.tensor.shape.join(',')}\t${l.tensor.sha256}\n`)
      .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    const h = newSha256();
    for (const line of lines) h.update(line);
    return h.digest('hex');
  }

  /** Bytes [byteOffset, byteOffset + byteLength) of a tensor into dest[0, byteLength), verified (see the file comment). */
  async readInto(name: string, dest: Uint8Array, opts: VersionWeightReadOptions = {}): Promise<void> {
    if (this.closed) throw new At1Error('E_INPUT', `version ${this.manifest.name}: its weights were closed`);
    const loc = this.byName.get(name);
    if (!loc) throw new At1Error('E_NOT_FOUND', `version ${this.manifest.name} has no tensor ${JSON.stringify(name)}`);
    const start = opts.byteOffset ?? 0;
    const length = opts.byteLength ?? loc.tensor.length - start;
    if (dest.length < length) throw new At1Error('E_INPUT', `tensor ${JSON.stringify(name)}: a buffer of ${dest.length} bytes cannot take ${length}`);
    const whole = start === 0 && length === loc.tensor.length;
    const out = dest.subarray(0, length);
    await this.reader.readInto(loc, out, whole ? { signal: opts.signal } : { range: { start, end: start + length }, signal: opts.signal });
    this.stats.bytesVerified += length;
    this.stats.reads++;
  }

  /**
   * A side file of a model-directory version (config.json, tokenizer.json),
   * checked against its SHA-256; undefined when the version has no such file.
   */
  async sideFile(path: string): Promise<Uint8Array | undefined> {
    const f = this.manifest.files.find((x) => x.path === path); // at the directory's root, as Hugging Face keeps them: never a namesake in a subfolder
    if (!f) return undefined;
    const parts: Uint8Array[] = [];
    for await (const p of readFile(this.registry, this.manifest, f)) parts.push(p);
    return Buffer.concat(parts);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.reader.close();
    await this.release();
  }
}
