/**
 * Choosing what a new version is coded against.
 *
 * Per version: the nearest relative, in two steps whose cost does not grow
 * with the family. First a ranking: every existing version whose tensors
 * line up with the new file's (same names, same element counts) is scored
 * by comparing its recorded sketch (sketch.ts: 64 sampled values
 * of each sampled tensor, kept in its manifest) with the new file's, with no
 * decoding; a version written before sketches existed has its sketch taken
 * from its stored chunks, for the newest UNSKETCHED_CANDIDATES of them only.
 * Then trials: a few slices of the new file's largest tensors are encoded
 * against the best TRIAL_CANDIDATES versions' same slices with the real
 * codecs, and the smallest total wins (or none, when standalone coding is as
 * small). Encoding real slices keeps the final choice honest across dtypes
 * and codecs (a bf16 file next to the float32 model it was rounded from
 * estimates at almost nothing); the sketch only decides which few to try.
 * Ties go to the newer version, so the choice is deterministic.
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
import { sketchable, sketchDistance, sketchOfSlice, type TensorSketch, type VersionSketch } from './sketch.js';
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

/** Positions along a checkpoint run at or below this stay linear (each version against its parent); beyond, skip-deltas in base SKIP_BASE. */
export const SKIP_BASE = 3;

/**
 * The chain policy (FORMAT.md §5, "Chain policy"): which version a new
 * version's chunks are coded against. Its position n along the parent
 * links (the base is 0) is its parent's plus one. Up to maxChainDepth, the
 * parent itself (a short run is a plain chain: every delta spans one
 * step). Beyond, a skip-delta as in Subversion's skip-deltas or Mercurial's
 * sparse revlog, in base 3: the ancestor at position n - 3^p, where 3^p is
 * the largest power of 3 dividing n. Two thirds of the versions are then
 * still coded against their parent, the rest against an ancestor 3, 9,
 * 27… steps back, and a chain needs at most 2 links per base-3 digit of n
 * (8 links for every n up to 160); refsForChunk still enforces the bound for
 * any chunk whose chain would pass it. Without the policy, every version
 * past the bound fell back to the same ancestor's chunks, and the deltas
 * grew with the distance to it.
 */
export function skipTarget(position: number, maxDepth: number): number {
  if (position <= maxDepth) return position - 1;
  let p = 1;
  while (position % (p * SKIP_BASE) === 0) p *= SKIP_BASE;
  return position - p;
}

/**
 * The tensors a new version with parent `parent` is coded against (by
 * name): the skip-delta ancestor's (skipTarget), and the parent's for any
 * tensor the ancestor does not have with the same element count.
 * `manifests`: every version (the parent links are followed through them).
 */
export function codingRelatives(parent: VersionManifest | undefined, manifests: readonly VersionManifest[], maxDepth: number): { base: string | undefined; related: Map<string, { t: TensorEntry; chunkElements: number }> } {
  const related = tensorsByName(parent);
  if (!parent) return { base: undefined, related };
  const byName = new Map(manifests.map((m) => [m.name, m]));
  const line: VersionManifest[] = [parent]; // parent, grandparent, … up to the root
  for (let m = parent; m.parent !== null && line.length <= manifests.length; ) {
    const up = byName.get(m.parent);
    if (!up) break; // a parent removed without --rebase: the line ends here
    line.push(up);
    m = up;
  }
  const position = line.length; // the new version's; the root of the line is 0
  const back = position - 1 - skipTarget(position, maxDepth); // steps above the parent
  const base = line[back];
  if (!base || back === 0) return { base: parent.name, related };
  for (const [name, e] of tensorsByName(base)) {
    const own = related.get(name);
    if (own && elementCount(own.t.shape) === elementCount(e.t.shape)) related.set(name, e);
  }
  return { base: base.name, related };
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
/** Versions tried with the real codecs after the sketch ranking. */
export const TRIAL_CANDIDATES = 3;
/** Versions without a recorded sketch (older manifests) considered, newest first: their sketch costs a decode. */
const UNSKETCHED_CANDIDATES = 16;

export interface Sample {
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

/** Slices of the new version's sampled tensors: what the trials encode, and what its sketch is cut from. */
export async function readSamples(sources: readonly TensorSource[], chunkElements: number): Promise<Sample[]> {
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
  /** The trials: standalone, then each version tried, in ranking order. */
  estimates: ParentEstimate[];
  /** Every candidate's sketch distance, best first (what picked the trials). */
  ranking: { name: string; distance: number }[];
}

/** The sketch recorded for a new version: one per sampled float tensor. */
export function versionSketch(samples: readonly Sample[]): VersionSketch | undefined {
  const tensors = samples.map((s) => sketchOfSlice(s.tensor.name, s.tensor.dtype, s.start, s.count, s.bytes)).filter((t): t is TensorSketch => t !== undefined);
  return tensors.length > 0 ? { tensors } : undefined;
}

/** A version's sketch taken from its stored chunks (for manifests written before sketches were recorded): decodes chunk 0 of each sampled tensor. */
async function storedSketch(reader: ChunkReader, related: ReturnType<typeof tensorsByName>, mine: readonly TensorSketch[], samples: readonly Sample[]): Promise<TensorSketch[]> {
  const out: TensorSketch[] = [];
  for (const t of mine) {
    const rel = related.get(t.name);
    const s = samples.find((x) => x.tensor.name === t.name);
    if (!rel || !s || rel.t.pack || rel.t.chunks.length === 0 || !sketchable(rel.t.dtype)) continue;
    const { bytes } = await reader.read(rel.t.chunks[0]!);
    const w = dtypeBits(rel.t.dtype) / 8;
    if ((s.start + s.count) * w > bytes.length) continue;
    const k = sketchOfSlice(t.name, rel.t.dtype, s.start, s.count, bytes.subarray(s.start * w, (s.start + s.count) * w));
    if (k) out.push(k);
  }
  return out;
}

/**
 * The nearest relative of the new version among the registry's versions:
 * ranked by sketch distance, the best TRIAL_CANDIDATES tried by encoding the
 * sampled slices against them. `samples` from readSamples.
 */
export async function chooseParent(reg: Registry, samples: readonly Sample[], level: Level, reader: ChunkReader = reg.reader): Promise<ParentChoice> {
  const manifests = (await reg.manifests()).reverse(); // newest first: ties go to the newer version
  const mine = versionSketch(samples)?.tensors ?? [];
  // Ranking: per sampled tensor, the sketch distance; a tensor the candidate cannot serve counts as a fixed 16 bits per value.
  const ranked: { m: VersionManifest; distance: number; order: number }[] = [];
  let unsketched = 0;
  for (const [order, m] of manifests.entries()) {
    const related = tensorsByName(m);
    const usable = (name: string, shape: readonly number[]): boolean => {
      const rel = related.get(name);
      return rel !== undefined && rel.chunkElements === reg.config.chunkElements && elementCount(rel.t.shape) === elementCount(shape);
    };
    if (!samples.some((s) => usable(s.tensor.name, s.tensor.shape))) continue;
    let theirs = m.sketch?.tensors;
    if (!theirs) {
      if (unsketched++ >= UNSKETCHED_CANDIDATES) continue;
      theirs = await storedSketch(reader, related, mine, samples);
    }
    const byName = new Map(theirs.map((t) => [t.name, t]));
    let distance = 0;
    for (const t of mine) {
      const other = byName.get(t.name);
      const sample = samples.find((x) => x.tensor.name === t.name)!;
      const d = other && usable(t.name, sample.tensor.shape) ? sketchDistance(t, other) : undefined;
      distance += d ?? 16 * Math.floor(sample.count / t.step);
    }
    ranked.push({ m, distance, order });
  }
  ranked.sort((a, b) => a.distance - b.distance || a.order - b.order);

  const standalone = samples.map((s) => bestEncoding(s.bytes, s.tensor.dtype, [], level).payload.length);
  const standaloneTotal = standalone.reduce((a, b) => a + b, 0);
  const estimates: ParentEstimate[] = [{ name: null, sampleBytes: standaloneTotal }];
  let best: ParentEstimate = estimates[0]!;
  for (const { m } of ranked.slice(0, TRIAL_CANDIDATES)) {
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
  return { parent: best.name, estimates, ranking: ranked.map((r) => ({ name: r.m.name, distance: r.distance })) };
}
