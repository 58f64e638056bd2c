/**
 * Bulk add: many files or model directories (a training run's
 * checkpoints), each added as its own version, one after another, each
 * atomic on its own (add-version.ts). Names are the file stems; the order is
 * by name (digit runs compared as numbers, so checkpoint-500 comes before
 * checkpoint-1000) or by modification time. Every name is checked, and
 * duplicates refused, before anything is added; a failure stops the run,
 * naming the version and its file, and leaves the versions before it in
 * place.
 */
import { stat } from 'node:fs/promises';
import { At1Error } from '../errors.js';
import { fsError } from '../util/fs-errors.js';
import { add } from './add.js';
import type { AddOptions, AddResult } from './add-version.js';
import { checkVersionName, defaultNameFor } from './names.js';
import type { Registry } from './registry.js';

export type AddOrder = 'name' | 'mtime';

export interface AddManyOptions extends Pick<AddOptions, 'level' | 'onProgress'> {
  /** 'name' (default): natural order of the names; 'mtime': oldest first, ties by name. */
  order?: AddOrder;
  /** Skip inputs whose version name exists already (a resumed run), instead of failing on them. */
  skipExisting?: boolean;
  /** Called before each version is added (1-based index, count, name, file). */
  onStart?: (i: number, count: number, name: string, path: string) => void;
  /** Called after each version is added. */
  onAdded?: (r: AddResult, path: string, i: number, count: number) => void;
}

export interface AddManyResult {
  added: { path: string; result: AddResult }[];
  /** Inputs skipped because their version exists (with skipExisting). */
  skipped: { path: string; name: string }[];
}

/** a < b with digit runs compared as numbers, then code unit order: the same on every machine (no locale). */
export function naturalCompare(a: string, b: string): number {
  const ra = a.match(/\d+|\D+/g) ?? [];
  const rb = b.match(/\d+|\D+/g) ?? [];
  for (let i = 0; i < Math.min(ra.length, rb.length); i++) {
    const x = ra[i]!;
    const y = rb[i]!;
    if (x === y) continue;
    const dx = /^\d/.test(x);
    const dy = /^\d/.test(y);
    if (dx && dy) {
      const nx = x.replace(/^0+(?=\d)/, '');
      const ny = y.replace(/^0+(?=\d)/, '');
      if (nx.length !== ny.length) return nx.length - ny.length;
      if (nx !== ny) return nx < ny ? -1 : 1;
      if (x.length !== y.length) return x.length - y.length; // 007 after 7
      continue;
    }
    return x < y ? -1 : 1;
  }
  if (ra.length !== rb.length) return ra.length - rb.length;
  return a < b ? -1 : a > b ? 1 : 0;
}

interface Input {
  path: string;
  name: string;
  mtimeMs: number;
}

/** The inputs in the order they will be added; every name checked, duplicates refused (nothing added yet). */
export async function planAddMany(paths: readonly string[], order: AddOrder = 'name'): Promise<Input[]> {
  if (paths.length === 0) throw new At1Error('E_INPUT', 'no files to add');
  const inputs: Input[] = [];
  const byName = new Map<string, string>();
  for (const path of paths) {
    const name = defaultNameFor(path);
    try {
      checkVersionName(name);
    } catch (e) {
      throw new At1Error('E_INPUT', `${path}: ${(e as Error).message}; nothing was added (rename the file, or add it alone with --name)`);
    }
    const other = byName.get(name);
    if (other !== undefined) throw new At1Error('E_INPUT', `${other} and ${path} would both be version ${JSON.stringify(name)}; nothing was added (add one of them alone with --name)`);
    byName.set(name, path);
    let mtimeMs = 0;
    if (order === 'mtime') {
      try {
        mtimeMs = (await stat(path)).mtimeMs;
      } catch (e) {
        throw fsError(e, 'inspect', path);
      }
    }
    inputs.push({ path, name, mtimeMs });
  }
  const byNames = (a: Input, b: Input): number => naturalCompare(a.name, b.name);
  return inputs.sort(order === 'mtime' ? (a, b) => a.mtimeMs - b.mtimeMs || byNames(a, b) : byNames);
}

/**
 * Add every input as its own version, in `opts.order`, each coded against
 * its nearest relative (usually the version added just before it). On a
 * failure, throws an At1Error with the failure's own code, naming the
 * version, its file and what was added before it; those versions stay.
 */
export async function addMany(reg: Registry, paths: readonly string[], opts: AddManyOptions = {}): Promise<AddManyResult> {
  const inputs = await planAddMany(paths, opts.order);
  const out: AddManyResult = { added: [], skipped: [] };
  for (const [k, input] of inputs.entries()) {
    if (opts.skipExisting && (await reg.hasVersion(input.name))) {
      out.skipped.push({ path: input.path, name: input.name });
      continue;
    }
    opts.onStart?.(k + 1, inputs.length, input.name, input.path);
    let result: AddResult;
    try {
      result = await add(reg, input.path, { name: input.name, level: opts.level, onProgress: opts.onProgress });
    } catch (e) {
      const code = e instanceof At1Error ? e.code : 'E_IO';
      const before = out.added.length === 0 ? 'nothing was added before it' : `the ${out.added.length} version${out.added.length === 1 ? '' : 's'} added before it (${out.added.map((a) => a.result.manifest.name).join(', ')}) stay`;
      const rest = inputs.length - k - 1;
      throw new At1Error(code, `version ${JSON.stringify(input.name)} (${input.path}, ${k + 1} of ${inputs.length}): ${e instanceof Error ? e.message : String(e)}; ${before}${rest > 0 ? `; ${rest} after it not attempted` : ''}`, { cause: e, retryable: e instanceof At1Error && e.retryable });
    }
    out.added.push({ path: input.path, result });
    opts.onAdded?.(result, input.path, k + 1, inputs.length);
  }
  return out;
}
