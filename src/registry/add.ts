/** The public add: a new version coded against `parent`, or against its nearest relative when no parent is given. */
import { At1Error } from '../errors.js';
import { addVersion, type AddOptions, type AddResult } from './add-version.js';
import type { Registry } from './registry.js';

export async function add(reg: Registry, path: string, opts: AddOptions = {}): Promise<AddResult> {
  if (opts.parent !== undefined && !(await reg.hasVersion(opts.parent))) {
    throw new At1Error('E_NOT_FOUND', `--parent ${JSON.stringify(opts.parent)} is not a version in ${reg.location}`);
  }
  return addVersion(reg, path, { ...opts, parentName: opts.parent });
}
