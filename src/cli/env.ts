/**
 * The CLI's environment variables, mapped to the library's RegistrySettings
 * (src/registry/settings.ts). The library never reads the environment; the
 * CLI reads it here, once per command, and passes the result when it opens
 * or creates a registry. A malformed value is refused (E_INPUT, exit 2)
 * naming the variable, before anything is read or written.
 *
 * | variable          | setting    | value                                                        |
 * |-------------------|------------|--------------------------------------------------------------|
 * | AT1_PACK_BYTES    | packBytes  | bytes; tensors up to this size are packed; 0 disables packs  |
 * | AT1_LOCK_WAIT_MS  | lockWaitMs | ms a writer waits for the lock (default 5000)                |
 * | AT1_LEASE_MS      | leaseMs    | ms a lease lasts unrenewed, at least 100 (default 30000)     |
 * | AT1_THREADS       | threads    | worker threads per pool, 1 to 64 (default: from the cores)   |
 * | AT1_WORKERS       | workers    | 1: always use worker threads; 0: never (default: large data) |
 * | AT1_GC_GRACE_MS   | gcGraceMs  | ms gc spares unreachable objects (default 900000; --grace)   |
 * | AT1_KERNELS       | (process)  | js, native or auto: the codec's loops (codec/kernels.ts)     |
 *
 * An empty value counts as unset.
 */
import { At1Error, codecKernelsInUse, MAX_THREADS, MIN_LEASE_MS, parseKernelChoice, type RegistrySettings } from '../index.js';

type Env = Readonly<Record<string, string | undefined>>;

function raw(env: Env, name: string): string | undefined {
  const v = env[name];
  return v === undefined || v === '' ? undefined : v;
}

function wholeNumber(v: string): number | undefined {
  const n = Number(v);
  return /^\d+$/.test(v) && Number.isSafeInteger(n) ? n : undefined;
}

function ms(env: Env, name: string, min = 0): number | undefined {
  const v = raw(env, name);
  if (v === undefined) return undefined;
  const n = wholeNumber(v);
  if (n === undefined || n < min) throw new At1Error('E_INPUT', `${name}=${JSON.stringify(v)} is not a whole number of milliseconds${min > 0 ? ` (at least ${min})` : ''}`);
  return n;
}

/** The settings the environment asks for (only those it sets; the library's defaults fill in the rest). */
export function settingsFromEnv(env: Env): Partial<RegistrySettings> {
  const s: Partial<RegistrySettings> = {};
  const pack = raw(env, 'AT1_PACK_BYTES');
  if (pack !== undefined) {
    const n = wholeNumber(pack);
    if (n === undefined) throw new At1Error('E_INPUT', `AT1_PACK_BYTES must be a whole number of bytes (0 disables packing), not ${JSON.stringify(pack)}`);
    s.packBytes = n;
  }
  const lockWaitMs = ms(env, 'AT1_LOCK_WAIT_MS');
  if (lockWaitMs !== undefined) s.lockWaitMs = lockWaitMs;
  const leaseMs = ms(env, 'AT1_LEASE_MS', MIN_LEASE_MS);
  if (leaseMs !== undefined) s.leaseMs = leaseMs;
  const gcGraceMs = ms(env, 'AT1_GC_GRACE_MS');
  if (gcGraceMs !== undefined) s.gcGraceMs = gcGraceMs;
  const threads = raw(env, 'AT1_THREADS');
  if (threads !== undefined) {
    const n = wholeNumber(threads);
    if (n === undefined || n < 1 || n > MAX_THREADS) throw new At1Error('E_INPUT', `AT1_THREADS=${JSON.stringify(threads)} is not a number of worker threads from 1 to ${MAX_THREADS}`);
    s.threads = n;
  }
  const kernels = raw(env, 'AT1_KERNELS');
  // Read by the codec itself in every thread (src/codec/kernels.ts); refused here so that a typo is not silently 'auto'.
  if (kernels !== undefined && parseKernelChoice(kernels) === undefined)
    throw new At1Error('E_INPUT', `AT1_KERNELS=${JSON.stringify(kernels)} must be js (the JavaScript loops), native (the compiled ones, or an error) or auto`);
  // native without the addon: refused before the command starts, not as a decode failure of the first tensor
  if (kernels === 'native') codecKernelsInUse();
  const workers = raw(env, 'AT1_WORKERS');
  if (workers !== undefined) {
    if (workers !== '0' && workers !== '1') throw new At1Error('E_INPUT', `AT1_WORKERS=${JSON.stringify(workers)} must be 1 (always use worker threads) or 0 (never); unset, they are used for large data`);
    s.workers = workers === '1' ? 'always' : 'never';
  }
  return s;
}

/** What every CLI command opens or creates a registry with: the settings of this process's environment. */
export function cliOpenOptions(): { settings: Partial<RegistrySettings> } {
  return { settings: settingsFromEnv(process.env) };
}
