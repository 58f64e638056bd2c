/**
 * A Backend held in memory: for tests, for tools that build a registry
 * before writing it anywhere, and as the second implementation that keeps
 * the contract honest (test/store-conformance.test.ts runs every case
 * against it and the local directory). Location `memory:NAME`; every
 * MemoryBackend opened with the same name in one process sees the same
 * keys, as two handles on one directory do.
 */
import { At1Error } from '../errors.js';
import { checkKey, type Backend, type KeyInfo, type KeyStat, type WriteOptions } from './backend.js';

interface Entry {
  bytes: Uint8Array;
  mtimeMs: number;
}

const spaces = new Map<string, Map<string, Entry>>();

export class MemoryBackend implements Backend {
  private readonly keys: Map<string, Entry>;

  constructor(readonly name: string = `anon-${Math.random().toString(36).slice(2)}`) {
    let space = spaces.get(name);
    if (!space) spaces.set(name, (space = new Map()));
    this.keys = space;
  }

  get location(): string {
    return `memory:${this.name}`;
  }

  private entry(key: string): Entry {
    checkKey(key);
    const e = this.keys.get(key);
    if (!e) throw new At1Error('E_NOT_FOUND', `${key} is missing from ${this.location}`);
    return e;
  }

  async read(key: string): Promise<Uint8Array> {
    return this.entry(key).bytes.slice();
  }

  async readRange(key: string, offset: number, length: number): Promise<Uint8Array> {
    const b = this.entry(key).bytes;
    return b.slice(Math.min(offset, b.length), Math.min(offset + length, b.length));
  }

  async size(key: string): Promise<number | undefined> {
    return (await this.stat(key))?.size;
  }

  async stat(key: string): Promise<KeyStat | undefined> {
    checkKey(key);
    const e = this.keys.get(key);
    return e ? { size: e.bytes.length, mtimeMs: e.mtimeMs } : undefined;
  }

  async touch(key: string, expect?: Uint8Array): Promise<boolean> {
    checkKey(key);
    const e = this.keys.get(key);
    if (!e) return false;
    if (expect !== undefined && (expect.length !== e.bytes.length || Buffer.compare(expect, e.bytes) !== 0)) return false;
    e.mtimeMs = Date.now();
    return true;
  }

  async write(key: string, data: Uint8Array, opts: WriteOptions = {}): Promise<boolean> {
    checkKey(key);
    if (opts.exclusive && this.keys.has(key)) return false;
    this.keys.set(key, { bytes: data.slice(), mtimeMs: Date.now() });
    return true;
  }

  async remove(key: string): Promise<void> {
    checkKey(key);
    this.keys.delete(key);
  }

  async list(prefix: string): Promise<KeyInfo[]> {
    checkKey(prefix);
    const out: KeyInfo[] = [];
    for (const [key, e] of this.keys) if (key.startsWith(prefix + '/')) out.push({ key, size: e.bytes.length, mtimeMs: e.mtimeMs });
    return out;
  }

  /** Forget every key of this name (tests). */
  static drop(name: string): void {
    spaces.delete(name);
  }
}
