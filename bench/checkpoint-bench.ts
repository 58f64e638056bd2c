/**
 * A long checkpoint chain must not cost a full copy per checkpoint: a
 * synthetic run of N checkpoints (small Llama shape), each added with the
 * automatic reference choice; reports bytes per checkpoint, the deepest
 * chain any object has, and BitX (each checkpoint against the previous)
 * for comparison.
 */
import { statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Level } from '../src/codec/types.js';
import { add, initRegistry, listRegistry } from '../src/index.js';
import { bitxBytes } from './baselines.js';
import { llamaShapes, writeChain } from './synthetic.js';

export interface CheckpointResult {
  checkpoints: number;
  rawPerCheckpoint: number;
  at1PerCheckpoint: number;
  bitxPerCheckpoint: number;
  maxDepth: number;
  maxChainDepthSetting: number;
}

export async function checkpointBench(count: number, level: Level, log: (s: string) => void): Promise<CheckpointResult> {
  const work = await mkdtemp(join(tmpdir(), 'at1-bench-ckpt-'));
  try {
    const paths = Array.from({ length: count + 1 }, (_, i) => join(work, `ckpt-${String(i).padStart(3, '0')}.safetensors`));
    // Smaller steps than a fine-tune: consecutive checkpoints of one run.
    writeChain(paths, llamaShapes(4e6), 3e-4, 7);
    const { registry } = await initRegistry(join(work, 'reg'), paths[0]!, { name: 'ckpt-000', level });
    for (let i = 1; i <= count; i++) {
      await add(registry, paths[i]!, { name: `ckpt-${String(i).padStart(3, '0')}`, level });
      if (i % 10 === 0) log(`  added checkpoint ${i}/${count}`);
    }
    const listing = await listRegistry(registry);
    const rows = listing.versions.slice(1);
    let maxDepth = 0;
    for (const d of (await registry.store.list()).keys()) maxDepth = Math.max(maxDepth, (await registry.reader.header(d)).depth);
    const stored = new Set<string>();
    bitxBytes(paths[0]!, null, stored);
    let bitx = 0;
    for (let i = 1; i <= count; i++) bitx += bitxBytes(paths[i]!, paths[i - 1]!, stored);
    return {
      checkpoints: count,
      rawPerCheckpoint: statSync(paths[1]!).size,
      at1PerCheckpoint: rows.reduce((a, r) => a + r.storedBytes, 0) / count,
      bitxPerCheckpoint: bitx / count,
      maxDepth,
      maxChainDepthSetting: registry.config.maxChainDepth,
    };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
