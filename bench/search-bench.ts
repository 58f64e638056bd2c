/**
 * The encoder search at 'max' (src/codec/search.ts) against the exhaustive
 * search it replaces, in the same run on the same chunks: stored payload
 * bytes and single-thread encode time (candidates tried + the winner; the
 * verify decode and the I/O are the same for both and left out).
 *
 *  - the fixture family: every version's tensors in registry chunks, each
 *    against its family.json parent's same tensor (and the grandparent's, for
 *    the trajectory codec), as `add` codes a version against its parent;
 *  - a synthetic Llama-shaped bf16 pair (synthetic.ts): the base coded
 *    standalone (init) and the fine-tune against it (add).
 *
 * The two searches alternate chunk by chunk, so load from others on the
 * machine falls on both alike.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadFamily } from '../src/cli/family.js';
import type { SearchMode } from '../src/codec/search.js';
import { DEFAULT_CHUNK_ELEMENTS } from '../src/registry/config.js';
import { bestEncoding, type Reference } from '../src/registry/chunk-writer.js';
import { dtypeBits } from '../src/registry/geometry.js';
import { loadTensors, type LoadedTensor } from './baselines.js';
import { llamaShapes, paramCount, writeChain } from './synthetic.js';

export interface SearchRow {
  what: string;
  raw: number;
  exhaustiveBytes: number;
  estimateBytes: number;
  exhaustiveSeconds: number;
  estimateSeconds: number;
  /** Chunks whose winning codec differs between the two searches. */
  differentWinner: number;
  chunks: number;
}

interface Totals {
  bytes: Record<SearchMode, number>;
  seconds: Record<SearchMode, number>;
  differentWinner: number;
  chunks: number;
  raw: number;
}

const fresh = (): Totals => ({ bytes: { exhaustive: 0, estimate: 0 }, seconds: { exhaustive: 0, estimate: 0 }, differentWinner: 0, chunks: 0, raw: 0 });

function ref(bytes: Uint8Array, dtype: string): Reference {
  return { digest: '', depth: 0, dtype, bytes };
}

/** Encode one chunk both ways (order alternating by chunk index), adding to `t`. */
function both(t: Totals, raw: Uint8Array, dtype: string, refs: Reference[]): void {
  const order: SearchMode[] = t.chunks % 2 === 0 ? ['exhaustive', 'estimate'] : ['estimate', 'exhaustive'];
  const codec: Partial<Record<SearchMode, string>> = {};
  for (const mode of order) {
    const t0 = performance.now();
    const e = bestEncoding(raw, dtype, refs, 'max', mode);
    t.seconds[mode] += (performance.now() - t0) / 1000;
    t.bytes[mode] += e.payload.length;
    codec[mode] = e.codec.name;
  }
  if (codec.exhaustive !== codec.estimate) t.differentWinner++;
  t.chunks++;
  t.raw += raw.length;
}

/** A tensor's registry chunks (DEFAULT_CHUNK_ELEMENTS elements each) as byte ranges. */
function chunkRanges(t: LoadedTensor): [number, number][] {
  const step = (DEFAULT_CHUNK_ELEMENTS * dtypeBits(t.dtype)) / 8;
  const out: [number, number][] = [];
  for (let o = 0; o < t.bytes.length; o += step) out.push([o, Math.min(o + step, t.bytes.length)]);
  return out;
}

/** Slice a reference tensor at the same elements as [a, b) of a tensor of `dtype`. */
function refSlice(r: LoadedTensor, dtype: string, a: number, b: number): Reference {
  const scale = dtypeBits(r.dtype) / dtypeBits(dtype);
  return ref(r.bytes.subarray(a * scale, b * scale), r.dtype);
}

function row(what: string, t: Totals): SearchRow {
  return { what, raw: t.raw, exhaustiveBytes: t.bytes.exhaustive, estimateBytes: t.bytes.estimate, exhaustiveSeconds: t.seconds.exhaustive, estimateSeconds: t.seconds.estimate, differentWinner: t.differentWinner, chunks: t.chunks };
}

export async function searchBench(familyDir: string, params: number, log: (s: string) => void): Promise<{ family: SearchRow[]; synthetic: SearchRow[]; params: number }> {
  const family = await loadFamily(familyDir);
  const byName = new Map(family.versions.map((v) => [v.name, v]));
  const famRows: SearchRow[] = [];
  const all = fresh();
  for (const v of family.versions) {
    const mine = loadTensors(join(familyDir, v.file)).tensors;
    const parent = v.parent ? byName.get(v.parent) : undefined;
    const pt = parent ? loadTensors(join(familyDir, parent.file)).tensors : undefined;
    const grand = parent?.parent ? byName.get(parent.parent) : undefined;
    const gt = grand ? loadTensors(join(familyDir, grand.file)).tensors : undefined;
    const t = fresh();
    for (const [name, tensor] of mine) {
      const p = pt?.get(name);
      if (p && Buffer.compare(p.bytes, tensor.bytes) === 0) continue; // dedup: not encoded at all
      const g = gt?.get(name);
      for (const [a, b] of chunkRanges(tensor)) {
        const refs = [p, g].filter((x): x is LoadedTensor => x !== undefined).map((x) => refSlice(x, tensor.dtype, a, b));
        both(t, tensor.bytes.subarray(a, b), tensor.dtype, refs);
      }
    }
    famRows.push(row(`${v.name}${v.parent ? ` vs ${v.parent}` : ' (standalone)'}`, t));
    for (const k of ['exhaustive', 'estimate'] as const) {
      all.bytes[k] += t.bytes[k];
      all.seconds[k] += t.seconds[k];
    }
    all.differentWinner += t.differentWinner;
    all.chunks += t.chunks;
    all.raw += t.raw;
    log(`  search: ${v.name}`);
  }
  famRows.push(row('whole family', all));

  const work = await mkdtemp(join(tmpdir(), 'at1-bench-search-'));
  try {
    const shapes = llamaShapes(params);
    const paths = [join(work, 'base.safetensors'), join(work, 'ft.safetensors')];
    log(`  search: generating a ${(paramCount(shapes) / 1e9).toFixed(2)}B-parameter bf16 pair`);
    writeChain(paths, shapes);
    const init = fresh();
    const add = fresh();
    // Tensor by tensor, so memory stays at two files' worth of mapped input.
    const base = loadTensors(paths[0]!).tensors;
    const ft = loadTensors(paths[1]!).tensors;
    for (const [name, tensor] of ft) {
      const b = base.get(name)!;
      for (const [x, y] of chunkRanges(tensor)) {
        both(init, b.bytes.subarray(x, y), b.dtype, []);
        both(add, tensor.bytes.subarray(x, y), tensor.dtype, [ref(b.bytes.subarray(x, y), b.dtype)]);
      }
    }
    return { family: famRows, synthetic: [row('init: base standalone', init), row('add: fine-tune vs base', add)], params: paramCount(shapes) };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
