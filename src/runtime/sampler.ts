/**
 * Choosing the next token from logits: greedy at temperature 0, otherwise
 * temperature, top-k and top-p (nucleus) sampling driven by a seeded
 * deterministic PRNG (xoshiro128**), so a seed always gives the same tokens.
 */
import { At1Error } from '../errors.js';
import { detExp } from '../kernels/det-math.js';

export interface SampleOptions {
  /** 0 (default) is greedy */
  temperature?: number;
  /** keep the k most likely tokens (0 or undefined: all) */
  topK?: number;
  /** keep the smallest set of most likely tokens whose probability reaches p (1 or undefined: all) */
  topP?: number;
  /** PRNG seed (default 0) */
  seed?: number;
}

/** Index of the largest logit; the lowest index among equals. */
export function argmax(logits: Float32Array): number {
  let best = 0;
  let bv = logits[0]!;
  for (let i = 1; i < logits.length; i++) {
    if (logits[i]! > bv) {
      bv = logits[i]!;
      best = i;
    }
  }
  return best;
}

/** xoshiro128** seeded through splitmix32; next() gives a float64 in [0, 1) with 53 random bits. */
export class Prng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;
  constructor(seed: number) {
    let s = (seed >>> 0) ^ Math.floor(seed / 2 ** 32);
    const sm = (): number => {
      s = (s + 0x9e3779b9) | 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = sm();
    this.b = sm();
    this.c = sm();
    this.d = sm();
  }
  nextU32(): number {
    const r = Math.imul(rotl(Math.imul(this.b, 5), 7), 9) >>> 0;
    const t = this.b << 9;
    this.c ^= this.a;
    this.d ^= this.b;
    this.b ^= this.c;
    this.a ^= this.d;
    this.c ^= t;
    this.d = rotl(this.d, 11);
    return r;
  }
  next(): number {
    return ((this.nextU32() >>> 5) * 67108864 + (this.nextU32() >>> 6)) / 9007199254740992;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** A function from logits to the next token, with its own PRNG state. */
export function makeSampler(opts: SampleOptions): (logits: Float32Array) => number {
  const temperature = opts.temperature ?? 0;
  if (!Number.isFinite(temperature) || temperature < 0) throw new At1Error('E_INPUT', `temperature must be ≥ 0, is ${temperature}`);
  if (temperature === 0) return argmax;
  const topK = opts.topK ?? 0;
  const topP = opts.topP ?? 1;
  if (!Number.isSafeInteger(topK) || topK < 0) throw new At1Error('E_INPUT', `topK must be a non-negative integer, is ${topK}`);
  if (!(topP > 0 && topP <= 1)) throw new At1Error('E_INPUT', `topP must be in (0, 1], is ${topP}`);
  const rng = new Prng(opts.seed ?? 0);
  let idx: Int32Array | undefined;
  let p: Float64Array | undefined;
  return (logits: Float32Array): number => {
    const V = logits.length;
    if (idx === undefined || idx.length !== V) {
      idx = new Int32Array(V);
      p = new Float64Array(V);
    }
    const probs = p!;
    const order = idx;
    for (let i = 0; i < V; i++) order[i] = i;
    // most likely first; ties by lower index (a total order, so the sort is deterministic)
    order.sort((x, y) => logits[y]! - logits[x]! || x - y);
    const keep = topK > 0 ? Math.min(topK, V) : V;
    const max = logits[order[0]!]!;
    let sum = 0;
    for (let j = 0; j < keep; j++) {
      const e = detExp((logits[order[j]!]! - max) / temperature);
      probs[j] = e;
      sum += e;
    }
    let n = keep;
    if (topP < 1) {
      let cum = 0;
      for (let j = 0; j < keep; j++) {
        cum += probs[j]! / sum;
        if (cum >= topP) {
          n = j + 1;
          break;
        }
      }
      sum = 0;
      for (let j = 0; j < n; j++) sum += probs[j]!;
    }
    const u = rng.next() * sum;
    let cum = 0;
    for (let j = 0; j < n; j++) {
      cum += probs[j]!;
      if (u < cum) return order[j]!;
    }
    return order[n - 1]!;
  };
}
