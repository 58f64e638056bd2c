/**
 * Run-time settings of a Registry object: how it behaves on this machine,
 * not what it stores (that is the configuration, config.ts, written once at
 * init). Passed as an option when a registry is opened or created and kept
 * on it (`reg.settings`); library code reads them from there and never from
 * the environment. The CLI maps its environment variables to these
 * (src/cli/env.ts: AT1_PACK_BYTES, AT1_LOCK_WAIT_MS, AT1_LEASE_MS,
 * AT1_THREADS, AT1_WORKERS, AT1_GC_GRACE_MS).
 */
import { At1Error } from '../errors.js';
import { DEFAULT_GC_GRACE_MS } from './gc.js';
import { DEFAULT_LEASE_MS, DEFAULT_LOCK_WAIT_MS } from './lease.js';
import { DEFAULT_PACK_MAX_BYTES } from './packs.js';

/** When chunks are decoded and encoded on worker threads: for large inputs ('auto'), always (tests use it on small data), never. */
export type WorkersMode = 'auto' | 'always' | 'never';

export interface RegistrySettings {
  /** Tensors of at most this many bytes are packed; 0 disables packing (packs.ts). */
  packBytes: number;
  /** How long a writer waits for the lock before E_LOCKED. */
  lockWaitMs: number;
  /** Lease length of the writer lock and reader leases (at least 100). */
  leaseMs: number;
  /** Worker threads per pool (1..64), or undefined for the default (worker-pool.ts). */
  threads: number | undefined;
  workers: WorkersMode;
  /** gc keeps unreachable objects younger than this. */
  gcGraceMs: number;
}

export const DEFAULT_SETTINGS: Readonly<RegistrySettings> = Object.freeze({
  packBytes: DEFAULT_PACK_MAX_BYTES,
  lockWaitMs: DEFAULT_LOCK_WAIT_MS,
  leaseMs: DEFAULT_LEASE_MS,
  threads: undefined,
  workers: 'auto',
  gcGraceMs: DEFAULT_GC_GRACE_MS,
});

export const MIN_LEASE_MS = 100;
export const MAX_THREADS = 64;

const WORKERS_MODES: readonly WorkersMode[] = ['auto', 'always', 'never'];

function wholeNumber(v: unknown, min: number, max = Number.MAX_SAFE_INTEGER): boolean {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= min && v <= max;
}

/** Defaults completed with `given`, each value checked (E_INPUT naming the setting). */
export function resolveSettings(given: Partial<RegistrySettings> = {}): RegistrySettings {
  const s: RegistrySettings = { ...DEFAULT_SETTINGS };
  for (const [k, v] of Object.entries(given) as [keyof RegistrySettings, unknown][]) {
    if (v !== undefined) (s as unknown as Record<string, unknown>)[k] = v;
  }
  const bad = (name: string, what: string): never => {
    throw new At1Error('E_INPUT', `settings.${name} must be ${what}`);
  };
  if (!wholeNumber(s.packBytes, 0)) bad('packBytes', 'a whole number of bytes (0 disables packing)');
  if (!wholeNumber(s.lockWaitMs, 0)) bad('lockWaitMs', 'a whole number of milliseconds');
  if (!wholeNumber(s.leaseMs, MIN_LEASE_MS)) bad('leaseMs', `a whole number of milliseconds, at least ${MIN_LEASE_MS}`);
  if (s.threads !== undefined && !wholeNumber(s.threads, 1, MAX_THREADS)) bad('threads', `a whole number from 1 to ${MAX_THREADS}, or undefined`);
  if (!WORKERS_MODES.includes(s.workers)) bad('workers', `one of ${WORKERS_MODES.join(', ')}`);
  if (!wholeNumber(s.gcGraceMs, 0)) bad('gcGraceMs', 'a whole number of milliseconds');
  return s;
}
