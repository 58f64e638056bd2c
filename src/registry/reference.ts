/**
 * Choosing what a new version is coded against.
 *
 * Per version: the nearest relative. Every existing version whose tensors
 * line up with the new file's (same names, same element counts) is a
 * candidate; a few slices of the new file's largest tensors are encoded
 * against each candidate's same slices with the real codecs, and the
 * candidate with the smallest total wins (or none, when standalone coding
 * is as small). Encoding real slices, rather than a proxy statistic, keeps
 * the estimate honest across dtypes and codecs: a bf16 file next to the
 * float32 model it was rounded from estimates at almost nothing.
 *
 * Per chunk: the parent's chunk of the same tensor, unless that would make
 * the chain deeper than the registry allows; then the shallower chunk that
 * one was itself coded against, and so on (a standalone encoding at worst).
 * A second reference (the parent chunk's own reference) is offered for
 * trajectory codecs that predict along a checkpoint chain.
 */
import type { Level } from '../codec/types.js';
import type { InputSource } from '../format/input-source.js';
import type { SafetensorsHeader, TensorInfo } from '../format/safetensors.js';
import { bestEncoding, type Reference } from './chunk-writer.js';
import type { ChunkReader } from './chunk-reader.js';
import { dtypeBits, elementCount } from './geometry.js';
import type { TensorEntry, VersionManifest } from './manifest.js';
import type { Registry } from './registry.js';

/** References for one chunk, given the parent's chunk of the same tensor (docs/FORMAT.md §7). */
export async function refsForChunk(reader: ChunkReader, parentChunk: string | undefined, maxDepth: number): Promise<Reference[]> {
  let digest = parentChunk;
  while (digest !== undefined) {
    const { bytes, header } = await reader.read(digest);
    if (header.depth + 1 <= maxDepth) {
      const refs: Reference[] = [{ digest, dtype: header.dtype, bytes, depth: header.depth }];
      const gp = header.refs[0];
      if (gp) {
        const g = await reader.read(gp.digest);
        refs.push({ digest: gp.digest, dtype: g.header.dtype, bytes: g.bytes, depth: g.header.depth });
      }
      return refs;
    }
    digest = header.refs[0]?.digest; // too deep: fall back to what the parent chunk was coded against
  }
  return [];
}

/** Tensors of a manifest by name, with the chunking they were stored with. */
export function tensorsByName(m: VersionManifest | undefined): Map<string, { t: TensorEntry; chunkElements: number }> {
  const out = new Map<string, { t: TensorEntry; chunkElements: number }>();
  for (const f of m?.files ?? []) {
    if (f.kind !== 'safetensors') continue;
    for (const t of f.tensors) out.set(t.name, { t, chunkElements: f.chunkElements });
  }
  return out;
}

const SAMPLE_TENSORS = 8;
const SAMPLE_ELEMENTS = 16384;
const MAX_CANDIDATES = 16;

interface Sample {
  tensor: TensorInfo;
  /** First element of the slice, within chunk 0. */
  start: number;
  count: number;
  bytes: Uint8Array;
}

function pickSampleTensors(tensors: readonly TensorInfo[]): TensorInfo[] {
  const big = tensors.filter((t) => elementCount(t.shape) >= 64).sort((a, b) => b.end - b.begin - (a.end - a.begin));
  const chosen = big.slice(0, SAMPLE_TENSORS / 2);
  const rest = big.slice(SAMPLE_TENSORS / 2);
  const step = Math.max(1, Math.floor(rest.length / (SAMPLE_TENSORS / 2)));
  for (let i = 0; i < rest.length && chosen.length < SAMPLE_TENSORS; i += step) chosen.push(rest[i]!);
  return chosen;
}

/** The files a new version's tensors come from (one, or the shards of a model directory). */
export interface TensorSource {
  /** The open input the header was read from; samples are read through it (no second open). */
  input: InputSource;
  header: SafetensorsHeader;
}

async function readSamples(sources: readonly TensorSource[], chunkElements: number): Promise<Sample[]> {
  const all = sources.flatMap((s) => s.header.tensors.map((tensor) => ({ tensor, s })));
  const fileOf = new Map(all.map((x) => [x.tensor, x.s]));
  const out: Sample[] = [];
  for (const t of pickSampleTensors(all.map((x) => x.tensor))) {
    const { input, header } = fileOf.get(t)!;
    const bits = dtypeBits(t.dtype);
    if (bits % 8 !== 0) continue;
    const inChunk0 = Math.min(chunkElements, elementCount(t.shape));
    const count = Math.min(SAMPLE_ELEMENTS, inChunk0);
    const start = Math.floor((inChunk0 - count) / 16) * 8; // the middle of chunk 0, on an 8-element boundary
    const bytes = await input.readRange(header.dataStart + t.begin + (start * bits) / 8, (count * bits) / 8);
    out.push({ tensor: t, start, count, bytes });
  }
  return out;
}

function sliceRef(r: Reference, start: number, count: number): Reference {
  const w = dtypeBits(r.dtype) / 8;
  return { ...r, bytes: r.bytes.subarray(start * w, (start + count) * w) };
}

export interface ParentEstimate {
  name: string | null;
  /** Estimated encoded bytes of the sampled slices against this candidate (null: standalone). */
  sampleBytes: number;
}

export interface ParentChoice {
  parent: string | null;
  estimates: ParentEstimate[];
}

/** The nearest relative of the file among the registry's versions, by encoding sampled slices against each. */
export async function chooseParent(reg: Registry, sources: readonly TensorSource[], level: Level, reader: ChunkReader = reg.reader): Promise<ParentChoice> {
  const manifests = (await reg.manifests()).reverse().slice(0, MAX_CANDIDATES); // newest first: ties go to the newer version
  const samples = await readSamples(sources, reg.config.chunkElements);
  const standalone = samples.map((s) => bestEncoding(s.bytes, s.tensor.dtype, [], level).payload.length);
  const standaloneTotal = standalone.reduce((a, b) => a + b, 0);
  const estimates: ParentEstimate[] = [{ name: null, sampleBytes: standaloneTotal }];
  let best: ParentEstimate = estimates[0]!;
  for (const m of manifests) {
    const related = tensorsByName(m);
    let total = 0;
    let matched = 0;
    for (const [i, s] of samples.entries()) {
      const rel = related.get(s.tensor.name);
      const usable = rel && rel.chunkElements === reg.config.chunkElements && elementCount(rel.t.shape) === elementCount(s.tensor.shape);
      if (!usable) {
        total += standalone[i]!;
        continue;
      }
      matched++;
      const refs = (await refsForChunk(reader, rel.t.chunks[0], reg.config.maxChainDepth)).map((r) => sliceRef(r, s.start, s.count));
      total += Math.min(standalone[i]!, bestEncoding(s.bytes, s.tensor.dtype, refs, level).payload.length);
    }
    if (matched === 0) continue;
    const e = { name: m.name, sampleBytes: total };
    estimates.push(e);
    if (e.sampleBytes < best.sampleBytes) best = e;
  }
  return { parent: best.name, estimates };
}
