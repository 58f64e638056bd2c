/**
 * Reading a family description (`family.json`, as in the fixtures): the
 * versions, each with its file, parent and SHA-256. Used by the demo and
 * the benchmarks, so any family laid out this way can be loaded and measured.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { At1Error } from '../index.js';

export interface FamilyVersion {
  name: string;
  file: string;
  parent: string | null;
  bytes: number;
  sha256: string;
}

export interface Family {
  dir: string;
  name: string;
  versions: FamilyVersion[];
}

/** The example family carried in the repository. */
export const EMBEDDED_FAMILY_DIR = fileURLToPath(new URL('../../fixtures/tinystories/', import.meta.url));

/** Load family.json and order versions so every parent comes before its children. */
export async function loadFamily(dir: string): Promise<Family> {
  const path = join(dir, 'family.json');
  let raw: { family?: string; versions?: FamilyVersion[] };
  try {
    raw = JSON.parse(await readFile(path, 'utf8'));
  } catch (e) {
    throw new At1Error('E_NOT_FOUND', `cannot read ${path}: ${(e as Error).message}`);
  }
  const all = raw.versions ?? [];
  const names = new Set(all.map((v) => v.name));
  const ordered: FamilyVersion[] = [];
  const placed = new Set<string>();
  while (ordered.length < all.length) {
    // The first version in file order whose parent is placed: keeps family.json's order where it is valid.
    const v = all.find((x) => !placed.has(x.name) && (x.parent === null || placed.has(x.parent) || !names.has(x.parent)));
    if (!v) throw new At1Error('E_INPUT', `${path}: the parents form a cycle`);
    ordered.push({ ...v, parent: v.parent !== null && names.has(v.parent) ? v.parent : null });
    placed.add(v.name);
  }
  return { dir, name: raw.family ?? dir, versions: ordered };
}
