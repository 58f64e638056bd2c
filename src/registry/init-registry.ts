/**
 * init: create a registry at a new or empty location (a directory, or any
 * backend location: store/open.ts) with a base version. Nothing is written
 * before every input is known good: options, the base (file or model
 * directory) and its version name are all checked first. Write order: the
 * configuration first (exclusive create), then the base like any add. If
 * init is interrupted after the configuration, the location holds a valid
 * registry with no versions yet, and running the same init again resumes it
 * by adding the base.
 */
import { At1Error } from '../errors.js';
import { openBackend } from '../store/open.js';
import { addVersion, closePlan, planInput, planSource, type SourcePlan, type AddOptions, type AddResult } from './add-version.js';
import { CONFIG_KEY, type RegistryConfig } from './config.js';
import { LEASES_DIR, LOCK_KEY, LOCKS_DIR } from './lease.js';
import { checkVersionName, defaultNameFor } from './names.js';
import { PENDING_DIR, Registry, type InitOptions, type OpenOptions } from './registry.js';
import { resolveSettings } from './settings.js';

/** What an interrupted init may have left, and nothing else. */
const OWN_ENTRIES = new Set([CONFIG_KEY, 'objects', 'versions', 'tmp', LOCK_KEY, LOCKS_DIR, LEASES_DIR, PENDING_DIR]);

/**
 * Resuming an interrupted init keeps the configuration it wrote; an option
 * given now that differs from it is refused rather than silently ignored
 * (the configuration is written once and never changed).
 */
function refuseDifferentOptions(dir: string, stored: RegistryConfig, opts: InitOptions): void {
  const asked: [string, unknown, unknown][] = [
    ['--chunk-elements', opts.chunkElements, stored.chunkElements],
    ['--max-chain-depth', opts.maxChainDepth, stored.maxChainDepth],
    ['--level', opts.level, stored.level],
  ];
  for (const [flag, want, have] of asked) {
    if (want !== undefined && want !== have) {
      throw new At1Error('E_INPUT', `${dir} holds an interrupted init with ${flag} ${String(have)}; resuming it with ${flag} ${String(want)} is refused (run init again with the same options, or remove ${dir} to start over)`);
    }
  }
}

/** The first few top-level entries that are not a registry's own (at most `limit + 1`, to know there are more). */
async function foreignEntries(entries: AsyncIterable<string>, limit: number): Promise<string[]> {
  const out: string[] = [];
  for await (const e of entries) {
    if (OWN_ENTRIES.has(e)) continue;
    out.push(e);
    if (out.length > limit) break;
  }
  return out;
}

export async function initRegistry(location: string, basePath: string, opts: InitOptions & OpenOptions & Omit<AddOptions, 'parent'> = {}): Promise<{ registry: Registry; base: AddResult }> {
  const config = Registry.newConfig(opts); // option errors before touching the storage
  resolveSettings(opts.settings);
  // A bad base (file or model directory) is refused before the storage is touched.
  const plan = opts.input ? await planInput(opts.input, basePath) : await planSource(basePath);
  try {
    return await initWithPlan(location, basePath, config, plan, opts);
  } finally {
    if (!opts.input) await closePlan(plan); // the inputs planning opened; a caller's input stays the caller's
  }
}

async function initWithPlan(location: string, basePath: string, config: RegistryConfig, plan: SourcePlan, opts: InitOptions & OpenOptions & Omit<AddOptions, 'parent'>): Promise<{ registry: Registry; base: AddResult }> {
  const name = opts.name ?? defaultNameFor(basePath);
  checkVersionName(name); // a bad --name (or file stem) too: it would otherwise fail after the configuration is written
  const backend = await openBackend(location, { mode: 'create' });
  const foreign = await foreignEntries(backend.topLevel(), 3);
  if (foreign.length > 0) throw new At1Error('E_INPUT', `${location} is not empty (it holds ${foreign.slice(0, 3).join(', ')}${foreign.length > 3 ? ', …' : ''}); init needs a new or empty directory`);
  let registry: Registry;
  if ((await backend.size(CONFIG_KEY)) !== undefined) {
    registry = await Registry.openBackend(backend, opts);
    if ((await registry.versionNames()).length > 0) throw new At1Error('E_EXISTS', `${location} is already a registry`);
    refuseDifferentOptions(location, registry.config, opts);
  } else {
    registry = await Registry.create(backend, config, opts);
  }
  const base = await addVersion(registry, basePath, { ...opts, name, parentName: null, plan });
  return { registry, base };
}
