/**
 * A training run's checkpoints: N checkpoints of a small Llama-shaped bf16
 * model (default ~20 MB), each one optimiser-like step from the previous
 * (momentum 0.9: consecutive updates are correlated, as Adam's are, not
 * independent noise), each added with the automatic reference choice as a
 * training run would add them. Reports, for versions 1, 10, 50 and N: add
 * seconds, stored bytes, ratio, chain depth and restore seconds; then the
 * totals against BitX (each checkpoint against the previous, unbounded
 * chains) and zstd -19, measured in the same run, and what list and verify
 * cost per version.
 */
import { statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Level } from '../src/codec/types.js';
import { add, getVersion, initRegistry, listRegistry, openRegistry, verifyRegistry, type Registry } from '../src/index.js';
import { bitxBytes, zstd19Bytes } from './baselines.js';
import { llamaShapes, paramCount, writeChain } from './synthetic.js';

export interface CheckpointRow {
  version: number;
  addSeconds: number;
  storedBytes: number;
  ratio: number;
  depth: number;
  getSeconds: number;
}

export interface CheckpointResult {
  checkpoints: number;
  params: number;
  rawPerCheckpoint: number;
  rows: CheckpointRow[];
  at1PerCheckpoint: number;
  bitxPerCheckpoint: number;
  zstd19PerCheckpoint: number;
  zstd19Sampled: number;
  maxDepth: number;
  maxChainDepthSetting: number;
  listSecondsPerVersion: number;
  verifySecondsPerVersion: number;
  addSeconds: number[];
}

const name = (i: number): string => `ckpt-${String(i).padStart(3, '0')}`;

/** The deepest chain among a version's tensor chunks. */
async function versionDepth(reg: Registry, v: string): Promise<number> {
  let depth = 0;
  for (const f of (await reg.manifest(v)).files) {
    if (f.kind !== 'safetensors') continue;
    for (const t of f.tensors) for (const d of t.chunks) depth = Math.max(depth, (await reg.reader.header(d)).depth);
  }
  return depth;
}

export async function checkpointBench(count: number, level: Level, log: (s: string) => void, params = 1e7): Promise<CheckpointResult> {
  const work = await mkdtemp(join(tmpdir(), 'at1-bench-ckpt-'));
  try {
    const paths = Array.from({ length: count + 1 }, (_, i) => join(work, `${name(i)}.safetensors`));
    const shapes = llamaShapes(params);
    writeChain(paths, shapes, 2e-4, 7, 0.9);
    const { registry } = await initRegistry(join(work, 'reg'), paths[0]!, { name: name(0), level });
    const addSeconds: number[] = [0];
    for (let i = 1; i <= count; i++) {
      const t0 = performance.now();
      await add(registry, paths[i]!, { name: name(i), level });
      addSeconds.push((performance.now() - t0) / 1000);
      if (i % 10 === 0) log(`  added checkpoint ${i}/${count} (${addSeconds[i]!.toFixed(2)} s)`);
    }
    let t0 = performance.now();
    const listing = await listRegistry(registry);
    const listSeconds = (performance.now() - t0) / 1000;
    const stored = new Map(listing.versions.map((v) => [v.name, v.storedBytes]));
    const raw = statSync(paths[1]!).size;
    const rows: CheckpointRow[] = [];
    const fresh = await openRegistry(join(work, 'reg')); // restores from storage, not from the adds' decode cache
    for (const i of [...new Set([1, 2, 10, 50, count].filter((i) => i <= count))]) {
      const out = join(work, 'restored.safetensors');
      const g0 = performance.now();
      await getVersion(fresh, name(i), out);
      const getSeconds = (performance.now() - g0) / 1000;
      await rm(out, { force: true });
      rows.push({ version: i, addSeconds: addSeconds[i]!, storedBytes: stored.get(name(i))!, ratio: stored.get(name(i))! / raw, depth: await versionDepth(registry, name(i)), getSeconds });
    }
    let maxDepth = 0;
    for (const d of (await registry.store.list()).keys()) maxDepth = Math.max(maxDepth, (await registry.reader.header(d)).depth);
    t0 = performance.now();
    const report = await verifyRegistry(fresh, undefined);
    const verifySeconds = (performance.now() - t0) / 1000;
    if (!report.ok) throw new Error('verify failed');
    log('  baselines: BitX over every checkpoint, zstd -19 over every tenth');
    const seen = new Set<string>();
    bitxBytes(paths[0]!, null, seen);
    let bitx = 0;
    for (let i = 1; i <= count; i++) bitx += bitxBytes(paths[i]!, paths[i - 1]!, seen);
    // zstd -19 codes each file alone, so every tenth checkpoint is a fair sample of the mean (the whole run would take ~10 minutes here).
    const sample = Array.from({ length: count }, (_, k) => k + 1).filter((i) => i === 1 || i % 10 === 0);
    const zstd = sample.reduce((a, i) => a + zstd19Bytes(paths[i]!), 0) / sample.length;
    const at1Total = listing.versions.slice(1).reduce((a, v) => a + v.storedBytes, 0);
    return {
      checkpoints: count,
      params: paramCount(shapes),
      rawPerCheckpoint: raw,
      rows,
      at1PerCheckpoint: at1Total / count,
      bitxPerCheckpoint: bitx / count,
      zstd19PerCheckpoint: zstd,
      zstd19Sampled: sample.length,
      maxDepth,
      maxChainDepthSetting: registry.config.maxChainDepth,
      listSecondsPerVersion: listSeconds / listing.versions.length,
      verifySecondsPerVersion: verifySeconds / listing.versions.length,
      addSeconds,
    };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
