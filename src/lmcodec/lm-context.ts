/**
 * The language model's view of a frame: which tokens it sees when it
 * predicts token i, and the two ways of computing those predictions that
 * must agree bit for bit — all positions of a segment in one batched pass
 * (the encoder, which knows every token) and one token at a time (the
 * decoder, which learns each token only after decoding it).
 *
 * A frame is longer than the model's context, so it is cut into segments.
 * Segment j predicts tokens [a, b) from a fresh context: BOS, then tokens
 * [a − reuse, i) — the last `reuse` tokens of the previous segment are fed
 * again so no prediction starts cold. b is as far as the context allows:
 * 1 + (b − 1 − start) ≤ maxSeq.
 *
 * Both paths run the same kernels over the same tokens at the same
 * positions; the runtime computes every (position, output) with one
 * summation order whatever the window (src/kernels/reference.ts), so the
 * logits are identical. A test checks it over thousands of positions.
 */
import type { LlamaModel } from '../runtime/model.js';

export interface Segment {
  /** first token predicted */
  a: number;
  /** one past the last token predicted */
  b: number;
  /** first token of the context after BOS */
  start: number;
}

/** The segments covering n tokens. */
export function segmentsOf(n: number, maxSeq: number, reuse: number): Segment[] {
  if (maxSeq < 2) throw new RangeError('the model context must hold at least 2 positions');
  const r = Math.min(reuse, maxSeq - 2);
  const out: Segment[] = [];
  let a = 0;
  while (a < n) {
    const start = a === 0 ? 0 : a - r;
    const b = Math.min(n, start + maxSeq);
    out.push({ a, b, start });
    a = b;
  }
  return out;
}

/** Encoder side: the logits predicting every token of a segment, rows in token order ([b − a, vocab]). */
export async function segmentLogits(model: LlamaModel, bos: number, ids: readonly number[], seg: Segment): Promise<Float32Array> {
  const ctx = [bos, ...ids.slice(seg.start, seg.b - 1)];
  model.reset();
  const all = await model.forward(ctx, 'all');
  const V = model.config.vocabSize;
  return all.subarray((seg.a - seg.start) * V, (seg.b - seg.start) * V);
}

/** Decoder side: feeds a segment's context, then one token at a time. */
export class IncrementalLogits {
  constructor(
    private readonly model: LlamaModel,
    private readonly bos: number,
  ) {}

  /** Starts segment `seg` given the tokens decoded so far; returns the logits predicting token seg.a. */
  async begin(ids: readonly number[], seg: Segment): Promise<Float32Array> {
    this.model.reset();
    return this.model.forward([this.bos, ...ids.slice(seg.start, seg.a)], 'last');
  }

  /** Feeds the token just decoded; returns the logits predicting the next one. */
  async next(id: number): Promise<Float32Array> {
    return this.model.forward([id], 'last');
  }
}
