/**
 * The encoder search at 'max': which of the candidate codecs are worth a
 * full encoding of a chunk.
 *
 * Trying every codec on every chunk and keeping the smallest payload is
 * exact but slow: on a bf16 fine-tune against its parent (synthetic 100M
 * pair, 4 MB chunks, one core) the full encodings cost grouped-zstd 1.2 s,
 * BitX 1.6 s, float-exp 3.1 s, float-delta 2.6 s and float-lowrank 2.0 s
 * (detection alone on noise), 10.6 s in all, of which only float-delta's
 * 2.6 s buys the payload that is kept.
 *
 * So the encoder first codes a sample of the chunk with the candidates and
 * encodes in full only those whose sample payload is within SAMPLE_MARGIN
 * of the smallest sample payload (raw is always kept: it costs nothing and
 * bounds every object by its raw size). The sample answers the questions
 * that decide the winner (is the reference close enough that a delta beats
 * standalone coding, does the trajectory context pay, does byte-grouped
 * zstd beat the exponent coder) with the real codecs, so a new codec needs
 * no estimator of its own and the estimate cannot drift from what the codec
 * does. Two codecs are judged otherwise: float-exp is not even tried on the
 * sample when a cheap lower bound on its size (its raw sign and mantissa
 * bits) is above the best sample payload so far, and float-lowrank, which
 * a sample cannot judge, goes through its own detection (GATES below).

 * The sample is SAMPLE_BLOCKS blocks of n / (SAMPLE_BLOCKS * BLOCK_DIVISOR)
 * elements, one at the start of each SAMPLE_BLOCKS-th of the chunk: 1/8 of
 * the elements, spread over the chunk (an embedding chunk's first rows are
 * not its last). Block lengths and offsets are multiples of n/64, so for a
 * chunk of whole rows whose row count is a multiple of 64 every block is
 * whole rows and the sample is itself a matrix with the chunk's row width:
 * low-rank structure survives sampling. The references are sampled at the
 * same elements.
 *
 * Deterministic: the sample positions depend on the chunk length only, and
 * every step is a codec's own deterministic encode, so the same chunk and
 * references give the same payload on every machine. Chunks below
 * SAMPLE_MIN_ELEMENTS, with fewer than two codecs beyond raw to choose from,
 * of a sub-byte dtype, or whose element count is not a multiple of 64 are
 * searched exhaustively (small chunks cost little either way).
 *
 * Measured (`npm run bench -- --only search`, the two searches alternating
 * chunk by chunk): the fixture family and a synthetic 100M bf16 pair give
 * byte-identical totals and the same winning codec on every chunk; encoding
 * the pair's fine-tune takes 6.4 s instead of 15.0 s on one core (init,
 * standalone: 6.0 s instead of 6.2 s: float-exp wins there and is run
 * either way). test/codec-search.test.ts holds the fixture to it.
 */
import { dtypeInfo } from '../format/dtype.js';
import { lowRankPossible } from './lowrank-gate.js';
import { floatExpCodec } from './numeric/exp-codec.js';
import { floatFormat, view16, view32 } from './numeric/float.js';
import { floatLowRankCodec } from './numeric/lowrank-codec.js';
import type { ChunkContext, Codec, Level, RefChunk } from './types.js';

/** Chunks of fewer elements are searched exhaustively. */
export const SAMPLE_MIN_ELEMENTS = 1 << 15;
/** The sample: this many blocks, each 1/(SAMPLE_BLOCKS * BLOCK_DIVISOR) of the chunk (1/8 of it in all). */
export const SAMPLE_BLOCKS = 8;
const BLOCK_DIVISOR = 8;
/** A candidate is encoded in full when its sample payload is at most this much larger than the smallest one (relative, plus SAMPLE_SLACK bytes). */
export const SAMPLE_MARGIN = 0.03;
const SAMPLE_SLACK = 64;

/**
 * Codecs judged by a gate of their own instead of the sample: float-lowrank
 * needs enough rows for its factors to pay (a 1/8 sample amortises the
 * factors over 1/8 of the rows, and rejected rank-1-2 structure the whole
 * chunk codes 4-9% smaller), and its detection can be run exactly and
 * cheaply (lowrank-gate.ts). A gated codec is encoded in full when its gate
 * passes, and skipped when it fails.
 */
const GATES = new Map<Codec, (raw: Uint8Array, ctx: ChunkContext) => boolean>([[floatLowRankCodec, lowRankPossible]]);

/**
 * A lower bound on float-exp's payload for a chunk (numeric/exp-codec.ts):
 * it stores every element's sign and all but the top two of its mantissa
 * bits that are not zero in every element raw, whatever its exponent model
 * does. When another codec's sample payload is below this bound (a delta
 * against a close reference: 0.2-0.5 of raw, against float-exp's 0.66), the
 * exponent coder cannot win and is not even tried on the sample.
 */
function floatExpFloorBytes(sample: Uint8Array, dtype: string): number | undefined {
  const fmt = floatFormat(dtype);
  if (!fmt) return undefined;
  const n = sample.length / (fmt.width >>> 3);
  const v = fmt.width === 16 ? view16(sample) : view32(sample);
  const mmask = fmt.width === 32 ? 0x7fffff : (1 << fmt.mantBits) - 1;
  let orm = 0;
  for (let i = 0; i < n; i++) orm |= v[i]! & mmask;
  const t = orm === 0 ? fmt.mantBits : 31 - Math.clz32(orm & -orm);
  const kept = fmt.mantBits - t;
  return (n * (1 + Math.max(0, kept - 2))) / 8;
}

/** Trial order: reference codecs first (the likely winners, which set the bar the floor above is checked against), float-exp last. */
function trialOrder(codecs: readonly Codec[]): Codec[] {
  return [...codecs].sort((a, b) => (a === floatExpCodec ? 1 : 0) - (b === floatExpCodec ? 1 : 0) || b.refCount - a.refCount || a.id - b.id);
}

export type SearchMode = 'estimate' | 'exhaustive';

/** One candidate's sample payload size (for benchmarks and tests: what the search saw). */
export interface SampleEstimate {
  codec: Codec;
  bytes: number;
}

export interface SearchPlan {
  /** Codecs to encode in full, in the candidate order (so ties resolve as the exhaustive search resolves them). */
  codecs: Codec[];
  /** Sample sizes, when the chunk was sampled; absent for an exhaustive search. */
  estimates?: SampleEstimate[];
}

function refsFor(codec: Codec, refs: readonly RefChunk[]): readonly RefChunk[] {
  return refs.slice(0, codec.refCount);
}

/** Whether codec accepts the chunk with its share of refs (the same rule the encoder applies). */
export function applicable(codec: Codec, rawLength: number, dtype: string, refs: readonly RefChunk[]): boolean {
  return codec.refCount <= refs.length && codec.accepts(rawLength, { dtype, refs: refsFor(codec, refs) });
}

/** Bytes [k*stride + 0, +len) of every block, concatenated: the sample of one array whose elements are `width` bytes. */
function gather(bytes: Uint8Array, width: number, blockElems: number, strideElems: number): Uint8Array {
  const len = blockElems * width;
  const out = new Uint8Array(SAMPLE_BLOCKS * len);
  for (let k = 0; k < SAMPLE_BLOCKS; k++) {
    const at = k * strideElems * width;
    out.set(bytes.subarray(at, at + len), k * len);
  }
  return out;
}

/**
 * The sample of a chunk and of its references at the same elements, or
 * undefined when the chunk is not sampled (see the module comment).
 */
export function sampleChunk(raw: Uint8Array, dtype: string, refs: readonly RefChunk[]): { raw: Uint8Array; refs: RefChunk[] } | undefined {
  const info = dtypeInfo(dtype);
  if (!info || info.bits % 8 !== 0) return undefined;
  const width = info.bits / 8;
  if (raw.length % width !== 0) return undefined;
  const n = raw.length / width;
  const parts = SAMPLE_BLOCKS * BLOCK_DIVISOR;
  if (n < SAMPLE_MIN_ELEMENTS || n % parts !== 0) return undefined;
  const blockElems = n / parts;
  const strideElems = n / SAMPLE_BLOCKS;
  const sampledRefs: RefChunk[] = [];
  for (const r of refs) {
    // A reference is element-aligned with the chunk; one that is not (a codec would refuse it anyway) stops the sampling.
    if (r.bytes.length % n !== 0) return undefined;
    sampledRefs.push({ dtype: r.dtype, bytes: gather(r.bytes, r.bytes.length / n, blockElems, strideElems) });
  }
  return { raw: gather(raw, width, blockElems, strideElems), refs: sampledRefs };
}

/**
 * Which of `candidates` to encode `raw` with in full at `level`. 'exhaustive'
 * (and every level but 'max') returns every applicable candidate; 'estimate'
 * prunes by sample payload as described above.
 */
export function planSearch(raw: Uint8Array, dtype: string, refs: readonly RefChunk[], level: Level, candidates: readonly Codec[], mode: SearchMode = 'estimate'): SearchPlan {
  const codecs = candidates.filter((c) => applicable(c, raw.length, dtype, refs));
  if (mode === 'exhaustive' || level !== 'max') return { codecs };
  // raw (id 0) is free and always kept; only the others need judging.
  const judged = codecs.filter((c) => c.id !== 0);
  if (judged.length < 2) return { codecs };
  const sample = sampleChunk(raw, dtype, refs);
  if (!sample) return { codecs };
  const estimates: SampleEstimate[] = [];
  const unjudged = new Set<Codec>();
  const gatedOut = new Set<Codec>();
  for (const c of trialOrder(judged)) {
    const gate = GATES.get(c);
    if (gate) {
      if (gate(raw, { dtype, refs: refsFor(c, refs) })) unjudged.add(c);
      else gatedOut.add(c);
      continue;
    }
    if (c === floatExpCodec && estimates.length > 0) {
      const floor = floatExpFloorBytes(sample.raw, dtype);
      const best = Math.min(...estimates.map((e) => e.bytes));
      if (floor !== undefined && floor > best * (1 + SAMPLE_MARGIN) + SAMPLE_SLACK) {
        gatedOut.add(c);
        continue;
      }
    }
    const ctx: ChunkContext = { dtype, refs: refsFor(c, sample.refs) };
    if (!c.accepts(sample.raw.length, ctx)) {
      unjudged.add(c); // the sample says nothing about it: encode it in full, as before
      continue;
    }
    estimates.push({ codec: c, bytes: c.encode(sample.raw, ctx, level).length });
  }
  if (estimates.length === 0) return { codecs: codecs.filter((c) => !gatedOut.has(c)), estimates };
  const best = Math.min(...estimates.map((e) => e.bytes));
  const limit = best * (1 + SAMPLE_MARGIN) + SAMPLE_SLACK;
  const kept = new Set<Codec>(estimates.filter((e) => e.bytes <= limit).map((e) => e.codec));
  return { codecs: codecs.filter((c) => c.id === 0 || kept.has(c) || (unjudged.has(c) && !gatedOut.has(c))), estimates };
}
