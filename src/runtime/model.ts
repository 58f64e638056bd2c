/**
 * A Llama forward pass in the manner of llama2.c's run.c: the config, the
 * weights, the run state, and one `forward` that reads like the math. The hot
 * loops live in src/kernels; this file only says what is multiplied by what.
 *
 * Weights come through a `WeightSource` (the registry's verified reader, or a
 * plain file in tests). A memory budget decides which tensors stay resident
 * (their verified bytes, kept as stored); the others are read again on every
 * pass, in row blocks that fit the streaming scratch, and dropped. The
 * embedding lookup reads only the rows of the tokens in the window. Every
 * residency choice and every window size gives the same bits: each output
 * element is computed by the same kernel in the same order whichever way its
 * weights arrived (see src/kernels/reference.ts).
 */
import { At1Error } from '../errors.js';
import {
  type WeightDType,
  type WeightMatrix,
  assertLittleEndian,
  decodeRow,
  decodeVector,
  dtypeBytes,
  isWeightDType,
  kernels,
  ropeAngles,
  ropeInvFreq,
  rowDecoder,
} from '../kernels/index.js';
import { detExp, detLog } from '../kernels/det-math.js';
import type { LlamaConfig } from './config.js';
import type { WeightSource } from './weight-source.js';
import { makeSampler, type SampleOptions } from './sampler.js';

// ---------------------------------------------------------------- weights

/** One stored tensor as the model uses it: a rows × cols matrix (a vector is 1 × n). */
export interface TensorRef {
  name: string;
  dtype: WeightDType;
  rows: number;
  cols: number;
  bytes: number;
  /** its stored bytes when resident; undefined when streamed */
  resident: Uint8Array | undefined;
}

export interface LayerWeights {
  attnNorm: TensorRef; // [dim]           input_layernorm
  wq: TensorRef; //       [nHeads·hd, dim]   q_proj
  wk: TensorRef; //       [nKv·hd, dim]      k_proj
  wv: TensorRef; //       [nKv·hd, dim]      v_proj
  wo: TensorRef; //       [dim, nHeads·hd]   o_proj
  ffnNorm: TensorRef; //  [dim]           post_attention_layernorm
  wGate: TensorRef; //    [hidden, dim]      gate_proj
  wUp: TensorRef; //      [hidden, dim]      up_proj
  wDown: TensorRef; //    [dim, hidden]      down_proj
}

export interface Weights {
  embed: TensorRef; //     [vocab, dim]  model.embed_tokens (may be the same tensor as lmHead)
  layers: LayerWeights[];
  finalNorm: TensorRef; // [dim]        model.norm
  lmHead: TensorRef; //    [vocab, dim]  lm_head (=== embed when tied)
}

// ---------------------------------------------------------------- run state

/** Activations for a window of up to W positions, and the KV cache. Shapes row-major. */
export class RunState {
  readonly x: Float32Array; //      [W, dim]        residual stream
  readonly xb: Float32Array; //     [W, dim]        normed input of a block
  readonly xb2: Float32Array; //    [W, dim]        output of o_proj / down_proj
  readonly q: Float32Array; //      [W, nHeads·hd]
  readonly k: Float32Array; //      [W, nKv·hd]
  readonly v: Float32Array; //      [W, nKv·hd]
  readonly att: Float32Array; //    [W, nHeads·hd]  attention output before o_proj
  readonly hb: Float32Array; //     [W, hidden]     gate, then silu(gate)·up
  readonly hb2: Float32Array; //    [W, hidden]     up
  readonly logits: Float32Array; // [W, vocab]
  readonly normW: Float32Array; //  [max(dim)]      a norm weight decoded to float32
  readonly scores: Float64Array; // [maxSeq]        attention scores of one head
  readonly acc: Float64Array; //    [hd]
  readonly cos: Float64Array; //    [W, hd/2]
  readonly sin: Float64Array; //    [W, hd/2]
  readonly kCache: Float32Array[]; // [layers][maxSeq, nKv·hd]
  readonly vCache: Float32Array[]; // [layers][maxSeq, nKv·hd]
  readonly embedRow: Uint8Array; // one stored embedding row

  constructor(c: LlamaConfig, readonly window: number, readonly maxSeq: number, embedRowBytes: number) {
    const W = window;
    const qDim = c.numHeads * c.headDim;
    const kvDim = c.numKvHeads * c.headDim;
    this.x = new Float32Array(W * c.hiddenSize);
    this.xb = new Float32Array(W * c.hiddenSize);
    this.xb2 = new Float32Array(W * c.hiddenSize);
    this.q = new Float32Array(W * qDim);
    this.k = new Float32Array(W * kvDim);
    this.v = new Float32Array(W * kvDim);
    this.att = new Float32Array(W * qDim);
    this.hb = new Float32Array(W * c.intermediateSize);
    this.hb2 = new Float32Array(W * c.intermediateSize);
    this.logits = new Float32Array(W * c.vocabSize);
    this.normW = new Float32Array(c.hiddenSize);
    this.scores = new Float64Array(maxSeq);
    this.acc = new Float64Array(c.headDim);
    this.cos = new Float64Array(W * (c.headDim >> 1));
    this.sin = new Float64Array(W * (c.headDim >> 1));
    this.kCache = [];
    this.vCache = [];
    for (let l = 0; l < c.numLayers; l++) {
      this.kCache.push(new Float32Array(maxSeq * kvDim));
      this.vCache.push(new Float32Array(maxSeq * kvDim));
    }
    this.embedRow = new Uint8Array(new ArrayBuffer(Math.max(8, embedRowBytes)));
  }

  static kvBytes(c: LlamaConfig, maxSeq: number): number {
    return 2 * c.numLayers * maxSeq * c.numKvHeads * c.headDim * 4;
  }

  static activationBytes(c: LlamaConfig, W: number, maxSeq: number): number {
    const qDim = c.numHeads * c.headDim;
    const kvDim = c.numKvHeads * c.headDim;
    const f32 = W * (3 * c.hiddenSize + 2 * qDim + 2 * kvDim + 2 * c.intermediateSize + c.vocabSize) + c.hiddenSize;
    const f64 = maxSeq + c.headDim + W * c.headDim;
    return f32 * 4 + f64 * 8;
  }
}

// ---------------------------------------------------------------- options, results

export interface ModelOptions {
  /** Read and keep every tensor before the first pass (the baseline). Default when no memoryBudget is given. */
  fullLoad?: boolean;
  /** Bytes the model may hold: KV cache, activations, resident tensors and the streaming scratch. */
  memoryBudget?: number;
  /** Length of the KV cache (default and at most: max_position_embeddings). */
  maxSeqLen?: number;
  /** Positions per forward pass (default 64): a window is one pass over the weights. */
  window?: number;
  signal?: AbortSignal;
}

export interface ScoreResult {
  /** the tokens scored, BOS included if the caller put it there */
  tokenIds: number[];
  /** Σ −ln p(t[i+1] | t[0..i]) over the sequence */
  nllNats: number;
  /** tokens predicted: tokenIds.length − 1 */
  predictedTokens: number;
  perplexity: number;
  bitsPerToken: number;
  /** −ln p of each predicted token, float64 */
  tokenNll: Float64Array;
}

export interface GenerateOptions extends SampleOptions {
  maxTokens?: number;
  /** stop after yielding an end-of-sequence token (default true) */
  stopAtEos?: boolean;
  signal?: AbortSignal;
}

export interface MemoryPlan {
  fullLoad: boolean;
  budget: number | undefined;
  residentBytes: number;
  kvCacheBytes: number;
  activationBytes: number;
  scratchBytes: number;
  totalBytes: number;
  residentTensors: number;
  streamedTensors: number;
}

export interface ModelStats {
  /** bytes read through the WeightSource since open (the initial load included) */
  bytesRead: number;
  /** bytes read during forward passes (streamed weights and embedding rows) */
  bytesStreamed: number;
  passes: number;
  positions: number;
}

// ---------------------------------------------------------------- the model

const MIB = 1 << 20;

export class LlamaModel {
  private pos = 0;
  private busy = false;
  private readonly invFreq: Float64Array;
  private scratch: Uint8Array;
  readonly stats: ModelStats = { bytesRead: 0, bytesStreamed: 0, passes: 0, positions: 0 };

  private constructor(
    readonly config: LlamaConfig,
    private readonly source: WeightSource,
    readonly weights: Weights,
    private readonly s: RunState,
    readonly memory: MemoryPlan,
    private readonly signal: AbortSignal | undefined,
  ) {
    this.invFreq = ropeInvFreq(config.headDim, config.ropeTheta);
    this.scratch = new Uint8Array(new ArrayBuffer(Math.max(8, memory.scratchBytes)));
  }

  /** Checks every tensor against the config, plans residency, loads what stays resident. */
  static async open(source: WeightSource, config: LlamaConfig, opts: ModelOptions = {}): Promise<LlamaModel> {
    assertLittleEndian();
    const c = config;
    const weights = bindWeights(source, c);
    const { maxSeq, window } = lengths(c, opts);
    const { plan, resident } = planMemory(weights, c, maxSeq, window, opts);
    const s = new RunState(c, window, maxSeq, c.hiddenSize * dtypeBytes(weights.embed.dtype));
    const m = new LlamaModel(c, source, weights, s, plan, opts.signal);
    await m.loadResident(resident);
    return m;
  }

  /** The smallest memoryBudget this model opens with (KV cache, activations, norm vectors, one streamed row). */
  static minimumBudget(source: WeightSource, config: LlamaConfig, opts: Pick<ModelOptions, 'maxSeqLen' | 'window'> = {}): number {
    const { maxSeq, window } = lengths(config, opts);
    return memoryFloor(bindWeights(source, config), config, maxSeq, window).floor;
  }

  /** Tokens in the KV cache. */
  get position(): number {
    return this.pos;
  }

  /** Empties the KV cache. */
  reset(): void {
    this.pos = 0;
  }

  private async loadResident(resident: readonly TensorRef[]): Promise<void> {
    for (const t of resident) {
      const b = new Uint8Array(new ArrayBuffer(t.bytes));
      await this.source.readInto(t.name, b, { signal: this.signal });
      this.stats.bytesRead += t.bytes;
      t.resident = b;
    }
  }

  // ------------------------------------------------------------ weight access

  /** A norm weight as float32 in s.normW. */
  private async vector(t: TensorRef): Promise<Float32Array> {
    let bytes = t.resident;
    if (bytes === undefined) {
      bytes = this.scratch.subarray(0, t.bytes);
      await this.read(t, bytes, 0, t.bytes);
    }
    const out = this.s.normW.subarray(0, t.cols);
    decodeVector({ dtype: t.dtype, rows: 1, cols: t.cols, bytes }, out);
    return out;
  }

  private async read(t: TensorRef, dest: Uint8Array, byteOffset: number, byteLength: number): Promise<void> {
    await this.source.readInto(t.name, dest, { byteOffset, byteLength, signal: this.signal });
    this.stats.bytesRead += byteLength;
    this.stats.bytesStreamed += byteLength;
  }

  /**
   * Calls fn(block, firstRow) over the matrix: once with all of it when resident,
   * else once per row block read into the streaming scratch.
   */
  private async rows(t: TensorRef, fn: (w: WeightMatrix, row0: number) => void): Promise<void> {
    if (t.resident !== undefined) {
      fn({ dtype: t.dtype, rows: t.rows, cols: t.cols, bytes: t.resident }, 0);
      return;
    }
    const rowBytes = t.cols * dtypeBytes(t.dtype);
    const perBlock = Math.max(1, Math.floor(this.scratch.byteLength / rowBytes));
    for (let r0 = 0; r0 < t.rows; r0 += perBlock) {
      const n = Math.min(perBlock, t.rows - r0);
      const bytes = this.scratch.subarray(0, n * rowBytes);
      await this.read(t, bytes, r0 * rowBytes, n * rowBytes);
      fn({ dtype: t.dtype, rows: n, cols: t.cols, bytes }, r0);
    }
  }

  /** out[T, t.rows] = x[T, t.cols] · tᵀ */
  private async matmul(out: Float32Array, x: Float32Array, T: number, t: TensorRef): Promise<void> {
    const K = kernels();
    await this.rows(t, (w, row0) => K.matmul({ out, outStride: t.rows, outCol0: row0, x, T, w }));
  }

  /** x[t, :] = embedding row of tokens[t] */
  private async embed(tokens: readonly number[]): Promise<void> {
    const { embed } = this.weights;
    const dim = this.config.hiddenSize;
    const rowBytes = dim * dtypeBytes(embed.dtype);
    const xU32 = new Uint32Array(this.s.x.buffer);
    for (let t = 0; t < tokens.length; t++) {
      const tok = tokens[t]!;
      let w: WeightMatrix;
      let r: number;
      if (embed.resident !== undefined) {
        w = { dtype: embed.dtype, rows: embed.rows, cols: dim, bytes: embed.resident };
        r = tok;
      } else {
        const row = this.s.embedRow.subarray(0, rowBytes);
        await this.read(embed, row, tok * rowBytes, rowBytes);
        w = { dtype: embed.dtype, rows: 1, cols: dim, bytes: row };
        r = 0;
      }
      decodeRow(rowDecoder(w), r, this.s.x.subarray(t * dim), xU32.subarray(t * dim));
    }
  }

  // ------------------------------------------------------------ forward

  /**
   * Runs tokens[0..T) (T ≤ window) at positions pos .. pos+T−1, appending their keys and values
   * to the cache. Logits: of every position ('all', [T, vocab]), of the last ('last', [1, vocab]) or none.
   * The returned array is the run state's buffer, valid until the next call.
   */
  private async forwardWindow(tokens: readonly number[], want: 'all' | 'last' | 'none'): Promise<Float32Array> {
    const c = this.config;
    const s = this.s;
    const K = kernels();
    const T = tokens.length;
    const pos0 = this.pos;
    const dim = c.hiddenSize;
    const hd = c.headDim;
    const half = hd >> 1;
    const qDim = c.numHeads * hd;
    const kvDim = c.numKvHeads * hd;
    const hidden = c.intermediateSize;

    await this.embed(tokens);
    for (let t = 0; t < T; t++) {
      ropeAngles(pos0 + t, this.invFreq, s.cos.subarray(t * half, (t + 1) * half), s.sin.subarray(t * half, (t + 1) * half));
    }

    for (let l = 0; l < c.numLayers; l++) {
      this.signal?.throwIfAborted();
      const L = this.weights.layers[l]!;
      // attention: xb = rmsnorm(x); q, k, v = xb·Wqᵀ, xb·Wkᵀ, xb·Wvᵀ
      K.rmsnorm(s.xb, s.x, await this.vector(L.attnNorm), dim, T, c.rmsNormEps);
      await this.matmul(s.q, s.xb, T, L.wq);
      await this.matmul(s.k, s.xb, T, L.wk);
      await this.matmul(s.v, s.xb, T, L.wv);
      // rotate q and k by their positions, append k and v to the cache
      for (let t = 0; t < T; t++) {
        const cos = s.cos.subarray(t * half, (t + 1) * half);
        const sin = s.sin.subarray(t * half, (t + 1) * half);
        K.rope(s.q, t * qDim, c.numHeads, hd, cos, sin);
        K.rope(s.k, t * kvDim, c.numKvHeads, hd, cos, sin);
      }
      s.kCache[l]!.set(s.k.subarray(0, T * kvDim), pos0 * kvDim);
      s.vCache[l]!.set(s.v.subarray(0, T * kvDim), pos0 * kvDim);
      // att = softmax(q·Kᵀ/√hd)·V per head (causal, GQA), then x += att·Woᵀ
      K.attention({
        out: s.att, q: s.q, kCache: s.kCache[l]!, vCache: s.vCache[l]!, T, pos0,
        nHeads: c.numHeads, nKvHeads: c.numKvHeads, headDim: hd, scores: s.scores, acc: s.acc,
      });
      await this.matmul(s.xb2, s.att, T, L.wo);
      K.addInPlace(s.x, s.xb2, T * dim);
      // feed-forward: x += (silu(xb·Wgateᵀ) ⊙ xb·Wupᵀ)·Wdownᵀ, xb = rmsnorm(x)
      K.rmsnorm(s.xb, s.x, await this.vector(L.ffnNorm), dim, T, c.rmsNormEps);
      await this.matmul(s.hb, s.xb, T, L.wGate);
      await this.matmul(s.hb2, s.xb, T, L.wUp);
      K.swiglu(s.hb, s.hb2, T * hidden);
      await this.matmul(s.xb2, s.hb, T, L.wDown);
      K.addInPlace(s.x, s.xb2, T * dim);
    }
    this.pos = pos0 + T;
    this.stats.passes++;
    this.stats.positions += T;
    if (want === 'none') return s.logits.subarray(0, 0);

    // logits = rmsnorm(x)·lm_headᵀ, of all positions or the last only
    const first = want === 'all' ? 0 : T - 1;
    const n = T - first;
    const xs = s.x.subarray(first * dim, T * dim);
    const xbs = s.xb.subarray(0, n * dim);
    K.rmsnorm(xbs, xs, await this.vector(this.weights.finalNorm), dim, n, c.rmsNormEps);
    const out = s.logits.subarray(0, n * c.vocabSize);
    await this.matmul(out, xbs, n, this.weights.lmHead);
    return out;
  }

  private checkTokens(tokens: readonly number[]): void {
    for (const t of tokens) {
      if (!Number.isSafeInteger(t) || t < 0 || t >= this.config.vocabSize) {
        throw new At1Error('E_INPUT', `token id ${t} is outside the vocabulary of ${this.config.vocabSize}`);
      }
    }
    if (this.pos + tokens.length > this.s.maxSeq) {
      throw new At1Error('E_INPUT', `${this.pos + tokens.length} positions exceed the context of ${this.s.maxSeq}`);
    }
  }

  private enter(): void {
    if (this.busy) throw new At1Error('E_INPUT', 'the model is already running a call; one at a time');
    this.busy = true;
  }

  /**
   * Appends tokens to the context (any number, in windows) and returns logits:
   * 'all' → a new Float32Array [tokens.length, vocab]; 'last' → [vocab] of the last token; 'none' → empty.
   */
  async forward(tokens: readonly number[], want: 'all' | 'last' | 'none' = 'last'): Promise<Float32Array> {
    this.enter();
    try {
      return await this.forwardUnlocked(tokens, want);
    } finally {
      this.busy = false;
    }
  }

  private async forwardUnlocked(tokens: readonly number[], want: 'all' | 'last' | 'none'): Promise<Float32Array> {
    this.checkTokens(tokens);
    const V = this.config.vocabSize;
    const W = this.s.window;
    const all = want === 'all' ? new Float32Array(tokens.length * V) : undefined;
    let last = new Float32Array(0);
    for (let i = 0; i < tokens.length; i += W) {
      const chunk = tokens.slice(i, i + W);
      const isLast = i + W >= tokens.length;
      const mode = want === 'all' ? 'all' : want === 'last' && isLast ? 'last' : 'none';
      const lg = await this.forwardWindow(chunk, mode);
      if (all !== undefined) all.set(lg, i * V);
      else if (mode === 'last') last = lg.slice();
    }
    return all ?? last;
  }

  /** Logits of every position of tokenIds, from an empty context: [n, vocab]. */
  async logits(tokenIds: readonly number[]): Promise<Float32Array> {
    this.reset();
    return this.forward(tokenIds, 'all');
  }

  /**
   * Scores tokenIds from an empty context: the negative log-likelihood of each token given all before it
   * (the first token is context only; put BOS there). Log-softmax in float64.
   */
  async score(tokenIds: readonly number[]): Promise<ScoreResult> {
    if (tokenIds.length < 2) throw new At1Error('E_INPUT', 'score needs at least two tokens (the first is context only)');
    this.enter();
    try {
      this.reset();
      this.checkTokens(tokenIds);
      const V = this.config.vocabSize;
      const W = this.s.window;
      const n = tokenIds.length;
      const tokenNll = new Float64Array(n - 1);
      for (let i = 0; i < n; i += W) {
        const chunk = tokenIds.slice(i, i + W);
        const lg = await this.forwardWindow(chunk, i + W >= n ? (chunk.length > 1 ? 'all' : 'none') : 'all');
        for (let t = 0; t < chunk.length && i + t + 1 < n; t++) {
          tokenNll[i + t] = nllOf(lg, t * V, V, tokenIds[i + t + 1]!);
        }
      }
      let nll = 0;
      for (let i = 0; i < n - 1; i++) nll += tokenNll[i]!;
      return {
        tokenIds: [...tokenIds],
        nllNats: nll,
        predictedTokens: n - 1,
        perplexity: Math.exp(nll / (n - 1)),
        bitsPerToken: nll / Math.LN2 / (n - 1),
        tokenNll,
      };
    } finally {
      this.busy = false;
    }
  }

  /**
   * Generates tokens after the prompt (from an empty context): greedy at temperature 0, else sampled
   * with a seeded deterministic PRNG. Yields each token as it is chosen; stops at maxTokens, at the end
   * of the context, or after an EOS token (which is yielded).
   */
  async *generate(promptIds: readonly number[], opts: GenerateOptions = {}): AsyncGenerator<number, void, undefined> {
    if (promptIds.length === 0) throw new At1Error('E_INPUT', 'generate needs at least one prompt token (BOS)');
    const maxTokens = opts.maxTokens ?? 64;
    const stopAtEos = opts.stopAtEos ?? true;
    const sample = makeSampler(opts);
    const eos = new Set(this.config.eosTokenIds);
    this.enter();
    try {
      this.reset();
      let logits = await this.forwardUnlocked(promptIds, 'last');
      for (let produced = 0; produced < maxTokens; produced++) {
        opts.signal?.throwIfAborted();
        const tok = sample(logits);
        yield tok;
        if (stopAtEos && eos.has(tok)) return;
        if (produced + 1 >= maxTokens || this.pos >= this.s.maxSeq) return;
        logits = await this.forwardUnlocked([tok], 'last');
      }
    } finally {
      this.busy = false;
    }
  }

  /** Releases the source if it can be closed. */
  async close(): Promise<void> {
    await this.source.close?.();
  }
}

/** −ln softmax(logits[off..off+V))[target], in float64. */
export function nllOf(logits: Float32Array, off: number, V: number, target: number): number {
  let max = -Infinity;
  for (let i = 0; i < V; i++) if (logits[off + i]! > max) max = logits[off + i]!;
  let sum = 0;
  for (let i = 0; i < V; i++) sum += detExp(logits[off + i]! - max);
  return max + detLog(sum) - logits[off + target]!;
}

// ---------------------------------------------------------------- residency

function lengths(c: LlamaConfig, opts: Pick<ModelOptions, 'maxSeqLen' | 'window'>): { maxSeq: number; window: number } {
  const maxSeq = Math.min(opts.maxSeqLen ?? c.maxPositionEmbeddings, c.maxPositionEmbeddings);
  if (!Number.isSafeInteger(maxSeq) || maxSeq < 1) throw new At1Error('E_INPUT', `maxSeqLen must be a positive integer, is ${opts.maxSeqLen}`);
  const window = Math.min(opts.window ?? 64, maxSeq);
  if (!Number.isSafeInteger(window) || window < 1) throw new At1Error('E_INPUT', `window must be a positive integer, is ${opts.window}`);
  return { maxSeq, window };
}

/** Finds every tensor the config needs in the source and checks its dtype and shape, naming any that is wrong. */
function bindWeights(source: WeightSource, c: LlamaConfig): Weights {
  const qDim = c.numHeads * c.headDim;
  const kvDim = c.numKvHeads * c.headDim;
  const ref = (name: string, rows: number, cols: number, vector = false): TensorRef => {
    const t = source.tensor(name);
    if (t === undefined) throw new At1Error('E_NOT_FOUND', `the model has no tensor ${name}`);
    if (!isWeightDType(t.dtype)) throw new At1Error('E_UNSUPPORTED', `tensor ${name} is ${t.dtype}; the runtime runs F32, F16 and BF16 weights`);
    const want = vector ? [cols] : [rows, cols];
    if (t.shape.length !== want.length || t.shape.some((d, i) => d !== want[i])) {
      throw new At1Error('E_UNSUPPORTED', `tensor ${name} has shape [${t.shape.join(', ')}]; the config needs [${want.join(', ')}]`);
    }
    return { name, dtype: t.dtype, rows, cols, bytes: rows * cols * dtypeBytes(t.dtype), resident: undefined };
  };
  const EMBED = 'model.embed_tokens.weight';
  const LM_HEAD = 'lm_head.weight';
  let embed: TensorRef;
  let lmHead: TensorRef;
  if (c.tieWordEmbeddings) {
    // HF ties lm_head to the embedding; a file may store either name (the fixture stores lm_head and aliases the other)
    embed = ref(source.tensor(EMBED) !== undefined ? EMBED : LM_HEAD, c.vocabSize, c.hiddenSize);
    lmHead = embed;
  } else {
    embed = ref(EMBED, c.vocabSize, c.hiddenSize);
    if (source.tensor(LM_HEAD) === undefined) {
      throw new At1Error('E_NOT_FOUND', `tie_word_embeddings is false but the model has no tensor ${LM_HEAD}`);
    }
    lmHead = ref(LM_HEAD, c.vocabSize, c.hiddenSize);
  }
  const layers: LayerWeights[] = [];
  for (let l = 0; l < c.numLayers; l++) {
    const p = `model.layers.${l}.`;
    layers.push({
      attnNorm: ref(p + 'input_layernorm.weight', 1, c.hiddenSize, true),
      wq: ref(p + 'self_attn.q_proj.weight', qDim, c.hiddenSize),
      wk: ref(p + 'self_attn.k_proj.weight', kvDim, c.hiddenSize),
      wv: ref(p + 'self_attn.v_proj.weight', kvDim, c.hiddenSize),
      wo: ref(p + 'self_attn.o_proj.weight', c.hiddenSize, qDim),
      ffnNorm: ref(p + 'post_attention_layernorm.weight', 1, c.hiddenSize, true),
      wGate: ref(p + 'mlp.gate_proj.weight', c.intermediateSize, c.hiddenSize),
      wUp: ref(p + 'mlp.up_proj.weight', c.intermediateSize, c.hiddenSize),
      wDown: ref(p + 'mlp.down_proj.weight', c.hiddenSize, c.intermediateSize),
    });
  }
  return { embed, layers, finalNorm: ref('model.norm.weight', 1, c.hiddenSize, true), lmHead };
}

function uniqueTensors(w: Weights): TensorRef[] {
  const out: TensorRef[] = [];
  const seen = new Set<TensorRef>();
  const add = (t: TensorRef): void => {
    if (!seen.has(t)) {
      seen.add(t);
      out.push(t);
    }
  };
  for (const L of w.layers) for (const t of Object.values(L) as TensorRef[]) add(t);
  add(w.finalNorm);
  add(w.lmHead);
  add(w.embed);
  return out;
}

function memoryFloor(w: Weights, c: LlamaConfig, maxSeq: number, window: number) {
  const all = uniqueTensors(w);
  const vectors = all.filter((t) => t.rows === 1);
  const matrices = all.filter((t) => t.rows > 1 && !(t === w.embed && t !== w.lmHead));
  const fixed = RunState.kvBytes(c, maxSeq) + RunState.activationBytes(c, window, maxSeq) + vectors.reduce((a, t) => a + t.bytes, 0);
  const widestRow = Math.max(...matrices.map((t) => t.bytes / t.rows));
  return { vectors, matrices, fixed, widestRow, floor: fixed + widestRow };
}

/**
 * The memory plan. Full load: everything resident. With a budget: the KV cache and activations first,
 * then the norm vectors, then a streaming scratch (at least the widest row, up to a quarter of what is
 * left, at least 1 MiB when it fits, at most the largest streamed matrix), then matrices resident in
 * forward order while they fit. An untied embedding is never resident (its rows are read per token).
 */
function planMemory(
  w: Weights,
  c: LlamaConfig,
  maxSeq: number,
  window: number,
  opts: ModelOptions,
): { plan: MemoryPlan; resident: TensorRef[] } {
  const kv = RunState.kvBytes(c, maxSeq);
  const act = RunState.activationBytes(c, window, maxSeq);
  const all = uniqueTensors(w);
  const fullLoad = opts.fullLoad === true || opts.memoryBudget === undefined;
  const plan = (resident: TensorRef[], scratch: number): { plan: MemoryPlan; resident: TensorRef[] } => {
    const res = resident.reduce((a, t) => a + t.bytes, 0);
    return {
      plan: {
        fullLoad, budget: opts.memoryBudget, residentBytes: res, kvCacheBytes: kv, activationBytes: act, scratchBytes: scratch,
        totalBytes: res + kv + act + scratch, residentTensors: resident.length, streamedTensors: all.length - resident.length,
      },
      resident,
    };
  };
  if (fullLoad) return plan(all, 0);
  const budget = opts.memoryBudget!;
  if (!Number.isFinite(budget) || budget <= 0) throw new At1Error('E_INPUT', `memoryBudget must be a positive number of bytes, is ${budget}`);
  const { vectors, matrices, fixed, widestRow } = memoryFloor(w, c, maxSeq, window);
  let avail = budget - fixed;
  if (avail < widestRow) {
    throw new At1Error(
      'E_INPUT',
      `memory budget ${budget} bytes is below the ${fixed + widestRow} the KV cache (${kv}), activations (${act}), ` +
        `norm weights and one streamed row need; lower the context (maxSeqLen) or the window`,
    );
  }
  const matBytes = matrices.reduce((a, t) => a + t.bytes, 0);
  if (matBytes <= avail) return plan([...vectors, ...matrices], 0);
  const largest = Math.max(...matrices.map((t) => t.bytes));
  const scratch = Math.min(largest, avail, Math.max(widestRow, Math.floor(avail / 4), Math.min(MIB, avail)));
  avail -= scratch;
  const resident = [...vectors];
  for (const t of matrices) {
    if (t.bytes <= avail) {
      resident.push(t);
      avail -= t.bytes;
    }
  }
  return plan(resident, scratch);
}
