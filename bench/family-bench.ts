/**
 * Storage of a real family: at1 (every version against its automatically
 * chosen nearest relative) next to BitX (each version against its
 * family.json parent), zstd -19 and xz -9e of whole files, per version and
 * in total; then the targeted special cases (standalone bf16, cross-dtype).
 */
import { join } from 'node:path';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { add, initRegistry, listRegistry } from '../src/index.js';
import { bestEncoding } from '../src/registry/chunk-writer.js';
import { loadFamily } from '../src/cli/family.js';
import type { Level } from '../src/codec/types.js';
import { bitxBytes, groupedZstdBytes, loadTensors, xzBytes, zstd19Bytes } from './baselines.js';

export interface FamilyRow {
  name: string;
  familyParent: string | null;
  at1Parent: string | null;
  raw: number;
  at1: number;
  bitx: number;
  zstd19: number;
  xz?: number;
}

export interface FamilyResult {
  level: Level;
  rows: FamilyRow[];
  total: { raw: number; at1: number; bitx: number; zstd19: number; xz?: number };
  standaloneBf16: { raw: number; at1: number; groupedZstd: number } | null;
  crossDtype: { name: string; parent: string; raw: number; at1: number } | null;
}

export async function familyBench(dir: string, level: Level, withXz: boolean, log: (s: string) => void): Promise<FamilyResult> {
  const family = await loadFamily(dir);
  const work = await mkdtemp(join(tmpdir(), 'at1-bench-family-'));
  try {
    const [base, ...rest] = family.versions;
    if (!base) throw new Error(`${dir}: no versions`);
    const file = (n: string | null): string | null => (n === null ? null : join(dir, family.versions.find((v) => v.name === n)!.file));
    const { registry } = await initRegistry(join(work, 'reg'), join(dir, base.file), { name: base.name, level });
    for (const v of rest) {
      const r = await add(registry, join(dir, v.file), { name: v.name, level });
      log(`  added ${v.name} against ${r.manifest.parent ?? '(standalone)'}`);
    }
    const listing = await listRegistry(registry);
    const stored = new Set<string>();
    const rows: FamilyRow[] = [];
    for (const v of family.versions) {
      const at1Row = listing.versions.find((r) => r.name === v.name)!;
      const path = join(dir, v.file);
      rows.push({
        name: v.name,
        familyParent: v.parent,
        at1Parent: at1Row.parent,
        raw: v.bytes,
        at1: at1Row.storedBytes,
        bitx: bitxBytes(path, file(v.parent), stored),
        zstd19: zstd19Bytes(path),
        xz: withXz ? xzBytes(path) : undefined,
      });
    }
    const sum = (f: (r: FamilyRow) => number | undefined): number => rows.reduce((a, r) => a + (f(r) ?? 0), 0);
    const total = { raw: sum((r) => r.raw), at1: listing.total.storedBytes, bitx: sum((r) => r.bitx), zstd19: sum((r) => r.zstd19), xz: withXz && rows.every((r) => r.xz) ? sum((r) => r.xz) : undefined };

    // Standalone bf16: the first bf16 version's tensors coded with no reference at all.
    const bf16 = family.versions.find((v) => [...loadTensors(join(dir, v.file)).tensors.values()].every((t) => t.dtype === 'BF16'));
    let standaloneBf16: FamilyResult['standaloneBf16'] = null;
    if (bf16) {
      let raw = 0;
      let at1 = 0;
      for (const t of loadTensors(join(dir, bf16.file)).tensors.values()) {
        raw += t.bytes.length;
        at1 += bestEncoding(t.bytes, t.dtype, [], level).payload.length;
      }
      standaloneBf16 = { raw, at1, groupedZstd: groupedZstdBytes(join(dir, bf16.file)).stored };
    }
    // Cross-dtype: a version whose family parent has another dtype (base bf16 from base-fp32).
    const cross = rows.find((r) => {
      if (!r.familyParent) return false;
      const a = [...loadTensors(join(dir, family.versions.find((v) => v.name === r.name)!.file)).tensors.values()][0];
      const b = [...loadTensors(file(r.familyParent)!).tensors.values()][0];
      return a && b && a.dtype !== b.dtype && r.at1Parent === r.familyParent;
    });
    return { level, rows, total, standaloneBf16, crossDtype: cross ? { name: cross.name, parent: cross.familyParent!, raw: cross.raw, at1: cross.at1 } : null };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
