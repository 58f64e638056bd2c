/** The public add: a new version against `parent` (default: the base). */
import { At1Error } from '../errors.js';
import { addVersion, type AddOptions, type AddResult } from './add-version.js';
import type { Registry } from './registry.js';

export async function add(reg: Registry, path: string, opts: AddOptions = {}): Promise<AddResult> {
  if (opts.parent !== undefined && !(await reg.hasVersion(opts.parent))) {
    throw new At1Error('E_NOT_FOUND', `--parent ${JSON.stringify(opts.parent)} is not a version in ${reg.location}`);
  }
  const parentName = opts.parent ?? (await reg.baseName());
  return addVersion(reg, path, { ...opts, parentName });
}
