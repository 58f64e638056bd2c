/**
 * init: create a registry in an empty (or new) directory with a base
 * version. Write order: the configuration first (exclusive create), then the
 * base like any add. If init is interrupted after the configuration, the
 * directory is a valid registry with no versions yet, and running the same
 * init again resumes it by adding the base.
 */
import { mkdir, readdir, stat } from 'node:fs/promises';
import { At1Error } from '../errors.js';
import { LocalBackend } from '../store/local-backend.js';
import { addVersion, closePlan, planInput, planSource, type SourcePlan, type AddOptions, type AddResult } from './add-version.js';
import { CONFIG_KEY, type RegistryConfig } from './config.js';
import { LEASES_DIR, LOCK_KEY, LOCKS_DIR } from './lease.js';
import { Registry, type InitOptions, type OpenOptions } from './registry.js';
import { resolveSettings } from './settings.js';

/** What an interrupted init may have left, and nothing else. */
const OWN_ENTRIES = new Set([CONFIG_KEY, 'objects', 'versions', 'tmp', LOCK_KEY, LOCKS_DIR, LEASES_DIR]);

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

export async function initRegistry(dir: string, basePath: string, opts: InitOptions & OpenOptions & Omit<AddOptions, 'parent'> = {}): Promise<{ registry: Registry; base: AddResult }> {
  const config = Registry.newConfig(opts); // option errors before touching the disk
  resolveSettings(opts.settings);
  // A bad base (file or model directory) is refused before the directory is touched.
  const plan = opts.input ? await planInput(opts.input, basePath) : await planSource(basePath);
  try {
    return await initWithPlan(dir, basePath, config, plan, opts);
  } finally {
    if (!opts.input) await closePlan(plan); // the inputs planning opened; a caller's input stays the caller's
  }
}

async function initWithPlan(dir: string, basePath: string, config: RegistryConfig, plan: SourcePlan, opts: InitOptions & OpenOptions & Omit<AddOptions, 'parent'>): Promise<{ registry: Registry; base: AddResult }> {
  const st = await stat(dir).catch(() => undefined);
  if (st && !st.isDirectory()) throw new At1Error('E_INPUT', `${dir} exists and is not a directory`);
  let registry: Registry;
  if (st) {
    const entries = await readdir(dir);
    const foreign = entries.filter((e) => !OWN_ENTRIES.has(e));
    if (foreign.length > 0) throw new At1Error('E_INPUT', `${dir} is not empty (it holds ${foreign.slice(0, 3).join(', ')}${foreign.length > 3 ? ', …' : ''}); init needs a new or empty directory`);
  } else {
    await mkdir(dir, { recursive: true });
  }
  const backend = new LocalBackend(dir);
  if ((await backend.size(CONFIG_KEY)) !== undefined) {
    registry = await Registry.openBackend(backend, opts);
    if ((await registry.versionNames()).length > 0) throw new At1Error('E_EXISTS', `${dir} is already a registry`);
    refuseDifferentOptions(dir, registry.config, opts);
  } else {
    registry = await Registry.create(backend, config, opts);
  }
  const base = await addVersion(registry, basePath, { ...opts, parentName: null, plan });
  return { registry, base };
}
