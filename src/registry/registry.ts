/**
 * A registry: a backend holding `at1-registry.json`, `versions/*.json` and
 * `objects/`. This class owns opening and creating one and reading
 * manifests; what is done to versions (add, restore, verify, list) lives in
 * one file each and takes the registry as its context.
 */
import { AccessDeniedError, At1Error } from '../errors.js';
import { ObjectStore } from '../store/object-store.js';
import { openBackend } from '../store/open.js';
import type { Backend } from '../store/backend.js';
import { ChunkReader } from './chunk-reader.js';
import {
  CONFIG_FORMAT,
  CONFIG_FORMAT_VERSION,
  CONFIG_KEY,
  DEFAULT_CHUNK_ELEMENTS,
  DEFAULT_MAX_CHAIN_DEPTH,
  checkChunkElements,
  checkDepth,
  parseConfig,
  type RegistryConfig,
} from './config.js';
import { parseManifest, serializeManifest, type VersionManifest } from './manifest.js';
import { checkVersionName, nameProblem } from './names.js';
import { acquireWriterLease, NO_LEASE, takeReaderLease, type Lease, type LeaseOptions } from './lease.js';
import type { Level } from '../codec/types.js';
import { resolveSettings, type RegistrySettings } from './settings.js';

export const VERSIONS_DIR = 'versions';
/** Manifests about to be published (FORMAT.md §7 step 3, §8b): gc treats a young one as needed. */
export const PENDING_DIR = 'pending';

export function pendingKey(token: string): string {
  return `${PENDING_DIR}/${token}.json`;
}

export function manifestKey(name: string): string {
  checkVersionName(name);
  return `${VERSIONS_DIR}/${name}.json`;
}

/** How a Registry object is opened: its run-time settings (settings.ts; the defaults for any left out). */
export interface OpenOptions {
  settings?: Partial<RegistrySettings>;
}

export interface InitOptions {
  chunkElements?: number;
  maxChainDepth?: number;
  level?: Level;
}

export class Registry {
  readonly store: ObjectStore;
  readonly reader: ChunkReader;

  private constructor(
    readonly backend: Backend,
    readonly config: RegistryConfig,
    /** Run-time settings (pack threshold, lease timings, worker threads, gc grace): what library code reads instead of the environment. */
    readonly settings: RegistrySettings,
  ) {
    this.store = new ObjectStore(backend);
    this.reader = new ChunkReader(this.store);
  }

  get location(): string {
    return this.backend.location;
  }

  /** Open an existing registry by location (a path, file://, memory:NAME): `openRegistry`. */
  static open(location: string, opts: OpenOptions = {}): Promise<Registry> {
    return openRegistry(location, opts);
  }

  static async openBackend(backend: Backend, opts: OpenOptions = {}): Promise<Registry> {
    const settings = resolveSettings(opts.settings);
    let bytes: Uint8Array;
    try {
      bytes = await backend.read(CONFIG_KEY);
    } catch (e) {
      if (e instanceof At1Error && e.code === 'E_NOT_FOUND') {
        throw new At1Error('E_NOT_FOUND', `${backend.location} is not an at1 registry (no ${CONFIG_KEY}); create one with 'at1 registry init'`);
      }
      throw e;
    }
    return new Registry(backend, parseConfig(bytes, backend.location), settings);
  }

  /** The configuration a new registry gets (see init-registry.ts for the write order). */
  static newConfig(opts: InitOptions): RegistryConfig {
    const chunkElements = opts.chunkElements ?? DEFAULT_CHUNK_ELEMENTS;
    const maxChainDepth = opts.maxChainDepth ?? DEFAULT_MAX_CHAIN_DEPTH;
    if (!checkChunkElements(chunkElements)) throw new At1Error('E_INPUT', `--chunk-elements must be a multiple of 8 between 8 and 2^26, got ${chunkElements}`);
    if (!checkDepth(maxChainDepth)) throw new At1Error('E_INPUT', `--max-chain-depth must be between 1 and 32, got ${maxChainDepth}`);
    return {
      format: CONFIG_FORMAT,
      formatVersion: CONFIG_FORMAT_VERSION,
      createdAt: new Date().toISOString(),
      chunkElements,
      maxChainDepth,
      level: opts.level ?? 'max',
    };
  }

  /** Write a new registry's configuration: exclusive, so an existing registry is never overwritten. */
  static async create(backend: Backend, config: RegistryConfig, opts: OpenOptions = {}): Promise<Registry> {
    const settings = resolveSettings(opts.settings);
    const bytes = new TextEncoder().encode(JSON.stringify(config, null, 1) + '\n');
    if (!(await backend.create(CONFIG_KEY, bytes))) {
      throw new At1Error('E_EXISTS', `${backend.location} is already a registry`);
    }
    return new Registry(backend, config, settings);
  }

  /** Take the writer lock (a lease, renewed while held; see lease.ts). */
  lock(command: string, opts: LeaseOptions = {}): Promise<Lease> {
    return acquireWriterLease(this.backend, command, { waitMs: this.settings.lockWaitMs, leaseMs: this.settings.leaseMs, ...opts });
  }

  /**
   * Run a read under a reader lease, taken before `fn` reads any manifest:
   * gc and rm then never delete what it may need (gc.ts). `versions`: what
   * it reads (shown to a gc that waits for it); empty means all.
   */
  async reading<T>(command: string, versions: string[], fn: () => Promise<T>): Promise<T> {
    const release = await this.holdReadLease(command, versions);
    try {
      return await fn();
    } finally {
      await release();
    }
  }

  /** `reading` for a stream: the lease is taken at the first read and released when the stream ends or is abandoned. */
  async *readingStream<T>(command: string, versions: string[], stream: () => AsyncGenerator<T>): AsyncGenerator<T> {
    const release = await this.holdReadLease(command, versions);
    try {
      yield* stream();
    } finally {
      await release();
    }
  }

  /**
   * One reader lease per Registry object, shared by nested and concurrent
   * reads through it (a runtime streaming thousands of tensors renews one
   * lease, not thousands); released when the last of them ends.
   */
  async holdReadLease(command: string, versions: string[]): Promise<() => Promise<void>> {
    if (!this.readLease) {
      // A read-only credential (S3: GetObject and ListBucket only) cannot announce itself; it reads without a lease (FORMAT.md §8), unprotected against a concurrent rm + gc.
      const lease = takeReaderLease(this.backend, command, versions, { leaseMs: this.settings.leaseMs }).catch((e: unknown) => {
        if (e instanceof AccessDeniedError) return NO_LEASE;
        throw e;
      });
      this.readLease = { lease, users: 0 };
    }
    const held = this.readLease;
    held.users++;
    try {
      await held.lease;
    } catch (e) {
      held.users--;
      if (this.readLease === held) this.readLease = undefined;
      throw e;
    }
    return async () => {
      if (--held.users > 0) return;
      if (this.readLease === held) this.readLease = undefined;
      await (await held.lease).release();
    };
  }

  private readLease: { lease: Promise<Lease>; users: number } | undefined;

  async hasVersion(name: string): Promise<boolean> {
    return (await this.backend.size(manifestKey(name))) !== undefined;
  }

  async manifest(name: string): Promise<VersionManifest> {
    let bytes: Uint8Array;
    try {
      bytes = await this.backend.read(manifestKey(name));
    } catch (e) {
      if (e instanceof At1Error && e.code === 'E_NOT_FOUND') {
        throw new At1Error('E_NOT_FOUND', `version ${JSON.stringify(name)} is not in registry ${this.location}`);
      }
      throw e;
    }
    return parseManifest(bytes, name);
  }

  /**
   * Names of all versions (manifests present), sorted. A file in `versions/`
   * that cannot be a manifest (`base (1).json`, `notes.txt`, a folder) is not
   * a version: it is ignored here and reported by fsck (strayVersionFiles).
   */
  async versionNames(): Promise<string[]> {
    return (await this.versionFiles()).names;
  }

  /** Manifest names, and the keys under versions/ that are not manifests. */
  async versionFiles(): Promise<{ names: string[]; strays: string[] }> {
    const names: string[] = [];
    const strays: string[] = [];
    for await (const { key } of this.backend.list(VERSIONS_DIR)) {
      const file = key.slice(VERSIONS_DIR.length + 1);
      const name = file.endsWith('.json') ? file.slice(0, -'.json'.length) : undefined;
      if (name !== undefined && !file.includes('/') && nameProblem(name) === undefined) names.push(name);
      else strays.push(key);
    }
    return { names: names.sort(), strays: strays.sort() };
  }

  /** All manifests, oldest first (ties by name): the order versions were added. */
  async manifests(): Promise<VersionManifest[]> {
    const all = await Promise.all((await this.versionNames()).map((n) => this.manifest(n)));
    return all.sort((a, b) => (a.createdAt < b.createdAt ? -1 : a.createdAt > b.createdAt ? 1 : a.name < b.name ? -1 : 1));
  }

  /** The base: the version created by init, i.e. the oldest with no parent. */
  async baseName(): Promise<string> {
    const root = (await this.manifests()).find((m) => m.parent === null);
    if (!root) throw new At1Error('E_CORRUPT', `registry ${this.location} has no base version`);
    return root.name;
  }

  /**
   * Publish a manifest: exclusive create, so a name can never be overwritten.
   * `lease`: the writer lock this add holds; checked right before the create,
   * so a writer whose lease expired and was taken over publishes nothing.
   * Before that check the same bytes are stored as the pending record
   * `pending/<lease token>.json`, removed once the manifest has landed (or
   * failed to): a gc that runs while this writer is stalled between its
   * check and its create (it can only start after the check) finds the
   * record and keeps everything it names (FORMAT.md §8b).
   */
  async publish(m: VersionManifest, lease?: Lease, bytes = serializeManifest(m)): Promise<number> {
    const pending = lease?.token ? pendingKey(lease.token) : undefined;
    if (pending) await this.backend.put(pending, bytes);
    try {
      await lease?.assertHeld();
      if (!(await this.backend.create(manifestKey(m.name), bytes))) {
        throw new At1Error('E_EXISTS', `version ${JSON.stringify(m.name)} already exists in ${this.location}`);
      }
    } finally {
      if (pending) await this.backend.remove(pending).catch(() => undefined); // left behind, it expires with the grace period and gc removes it
    }
    return bytes.length;
  }

  /**
   * Pending records (see publish) with their age by the storage's clock:
   * the manifest each holds, or the parse error of one that does not parse.
   */
  async pendingManifests(): Promise<{ key: string; ageMs: number; manifest?: VersionManifest; error?: string }[]> {
    const out: { key: string; ageMs: number; manifest?: VersionManifest; error?: string }[] = [];
    for await (const { key, mtimeMs } of this.backend.list(PENDING_DIR)) {
      const ageMs = Date.now() - (mtimeMs ?? (await this.backend.stat(key))?.mtimeMs ?? Date.now());
      let bytes: Uint8Array;
      try {
        bytes = await this.backend.read(key);
      } catch (e) {
        if (e instanceof At1Error && e.code === 'E_NOT_FOUND') continue; // published and removed meanwhile
        throw e;
      }
      try {
        const name = (JSON.parse(new TextDecoder().decode(bytes)) as { name?: unknown }).name;
        out.push({ key, ageMs, manifest: parseManifest(bytes, typeof name === 'string' ? name : '') });
      } catch (e) {
        out.push({ key, ageMs, error: (e as Error).message });
      }
    }
    return out;
  }
}

/**
 * Open an existing registry at a location: a local path, a `file://` URL or
 * `memory:NAME` (store/open.ts says which backend each names).
 */
export async function openRegistry(location: string, opts: OpenOptions = {}): Promise<Registry> {
  return Registry.openBackend(await openBackend(location, { what: 'registry' }), opts);
}
