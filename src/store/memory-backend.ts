/**
 * A Backend held in memory: for tests, for tools that build a registry
 * before writing it anywhere, and as the second implementation that keeps
 * the contract honest (test/store-conformance.test.ts runs every case
 * against it and the local directory). Location `memory:NAME`; every
 * MemoryBackend opened with the same name in one process sees the same
 * keys, as two handles on one directory do. Calls run without an await
 * between check and change, so create is atomic within the process (the only
 * writers a memory store has) and put is atomic replace; modification times
 * are the process clock, which is the storage's clock here. A memory write
 * cannot be interrupted halfway, so it leaves no leftovers of its own; tests
 * plant some with `plantLeftover`.
 */
import { At1Error } from '../errors.js';
import {
  checkAborted,
  checkKey,
  DEFAULT_PAGE_SIZE,
  shortRead,
  type Backend,
  type CallOptions,
  type Capabilities,
  type KeyInfo,
  type KeyStat,
  type ListOptions,
} from './backend.js';

interface Entry {
  bytes: Uint8Array;
  mtimeMs: number;
}

interface Space {
  keys: Map<string, Entry>;
  /** Planted by tests (`plantLeftover`): a memory write cannot be interrupted halfway. */
  leftovers: Map<string, Entry>;
}

const spaces = new Map<string, Space>();

const MEMORY_CAPABILITIES: Capabilities = Object.freeze({ exclusiveCreate: true, atomicReplace: true, conditionalTouch: true, suggestedConnections: 8 });

/** Let other tasks run between pages, as a remote listing would: a listing is not one synchronous sweep. */
const nextTurn = (): Promise<void> => new Promise((r) => setImmediate(r));

export class MemoryBackend implements Backend {
  readonly capabilities = MEMORY_CAPABILITIES;
  private readonly space: Space;

  constructor(readonly name: string = `anon-${Math.random().toString(36).slice(2)}`) {
    let space = spaces.get(name);
    if (!space) spaces.set(name, (space = { keys: new Map(), leftovers: new Map() }));
    this.space = space;
  }

  get location(): string {
    return `memory:${this.name}`;
  }

  private get keys(): Map<string, Entry> {
    return this.space.keys;
  }

  /** Check the key and the signal: every call starts here. */
  private begin(what: string, key: string, signal: AbortSignal | undefined): void {
    checkKey(key);
    checkAborted(signal, what, key, this.location);
  }

  private entry(key: string, signal: AbortSignal | undefined): Entry {
    this.begin('read', key, signal);
    const e = this.keys.get(key);
    if (!e) throw new At1Error('E_NOT_FOUND', `${key} is missing from ${this.location}`);
    return e;
  }

  async read(key: string, opts: CallOptions = {}): Promise<Uint8Array> {
    return this.entry(key, opts.signal).bytes.slice();
  }

  async readRange(key: string, offset: number, length: number, opts: CallOptions = {}): Promise<Uint8Array> {
    const out = await this.readUpTo(key, offset, length, opts);
    if (out.length !== length) throw shortRead(this.location, key, offset, length, out.length);
    return out;
  }

  async readUpTo(key: string, offset: number, length: number, opts: CallOptions = {}): Promise<Uint8Array> {
    if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0) {
      throw new At1Error('E_INPUT', `bad range of ${key}: offset ${offset}, length ${length}`);
    }
    const b = this.entry(key, opts.signal).bytes;
    return b.slice(Math.min(offset, b.length), Math.min(offset + length, b.length));
  }

  async size(key: string, opts: CallOptions = {}): Promise<number | undefined> {
    return (await this.stat(key, opts))?.size;
  }

  async stat(key: string, opts: CallOptions = {}): Promise<KeyStat | undefined> {
    this.begin('stat', key, opts.signal);
    const e = this.keys.get(key);
    return e ? { size: e.bytes.length, mtimeMs: e.mtimeMs } : undefined;
  }

  async touch(key: string, expect?: Uint8Array, opts: CallOptions = {}): Promise<boolean> {
    this.begin('touch', key, opts.signal);
    const e = this.keys.get(key);
    if (!e) return false;
    if (expect !== undefined && (expect.length !== e.bytes.length || Buffer.compare(expect, e.bytes) !== 0)) return false;
    e.mtimeMs = Date.now();
    return true;
  }

  /** Check-and-set with no await between them: atomic in one process, which is all a memory store has. */
  async create(key: string, data: Uint8Array, opts: CallOptions = {}): Promise<boolean> {
    this.begin('create', key, opts.signal);
    if (this.keys.has(key)) return false;
    this.keys.set(key, { bytes: data.slice(), mtimeMs: Date.now() });
    return true;
  }

  async put(key: string, data: Uint8Array, opts: CallOptions = {}): Promise<void> {
    this.begin('put', key, opts.signal);
    this.keys.set(key, { bytes: data.slice(), mtimeMs: Date.now() });
  }

  async remove(key: string, opts: CallOptions = {}): Promise<void> {
    this.begin('remove', key, opts.signal);
    this.keys.delete(key);
  }

  /** Errors (a refused key, an aborted signal) arrive through the iteration, as a remote listing's would. */
  async *list(prefix: string, opts: ListOptions = {}): AsyncGenerator<KeyInfo> {
    this.begin('list', prefix, opts.signal);
    yield* this.pages(this.keys, prefix + '/', 'list', prefix, opts);
  }

  async *topLevel(opts: CallOptions = {}): AsyncGenerator<string> {
    checkAborted(opts.signal, 'list', '/', this.location);
    yield* new Set([...this.keys.keys()].map((k) => k.split('/')[0]!));
  }

  async *leftovers(opts: ListOptions = {}): AsyncGenerator<KeyInfo> {
    checkAborted(opts.signal, 'list', 'leftovers', this.location);
    yield* this.pages(this.space.leftovers, '', 'list', 'leftovers', opts);
  }

  async removeLeftover(key: string, opts: CallOptions = {}): Promise<void> {
    this.begin('remove', key, opts.signal);
    if (!key.startsWith('tmp/')) throw new At1Error('E_INPUT', `${key} is not a leftover of ${this.location}`);
    this.space.leftovers.delete(key);
  }

  /** A paginated walk over a live map (keys added or removed meanwhile may or may not appear). */
  private async *pages(map: Map<string, Entry>, startsWith: string, what: string, label: string, opts: ListOptions): AsyncGenerator<KeyInfo> {
    const pageSize = Math.max(1, opts.pageSize ?? DEFAULT_PAGE_SIZE);
    let n = 0;
    for (const [key, e] of map) {
      if (!key.startsWith(startsWith)) continue;
      yield { key, size: e.bytes.length, mtimeMs: e.mtimeMs };
      if (++n % pageSize === 0) {
        await nextTurn();
        checkAborted(opts.signal, what, label, this.location);
      }
    }
  }

  /** Test hook: leave debris as an interrupted write would (a memory write itself cannot be interrupted). */
  plantLeftover(name: string, data: Uint8Array, mtimeMs = Date.now()): string {
    const key = `tmp/${name}`;
    checkKey(key);
    this.space.leftovers.set(key, { bytes: data.slice(), mtimeMs });
    return key;
  }

  /** Forget every key of this name (tests). */
  static drop(name: string): void {
    spaces.delete(name);
  }
}
