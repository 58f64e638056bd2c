/**
 * Helpers of the runtime tests: small random Llama models written as safetensors bytes, and a
 * straightforward float64 forward pass (no KV cache, no float32 anywhere) to compare against.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LlamaConfig } from '../src/runtime/config.js';
import type { WeightSource } from '../src/runtime/weight-source.js';

import type { WeightDType, WeightMatrix } from '../src/kernels/index.js';
export const REPO = fileURLToPath(new URL('..', import.meta.url));
export const FIXTURE = join(REPO, 'fixtures/tinystories');
export const GOLDEN_DIR = join(REPO, 'test/fixtures/tinystories-golden');
export const SNIPPETS = join(REPO, 'test/fixtures/corpus-snippets');
export const SHARED_CORPUS = join(REPO, '../shared/fixtures/corpus');
export const HAS_SHARED_CORPUS = existsSync(join(SHARED_CORPUS, 'SOURCES.md'));

// ------------------------------------------------------------ random models

export type DType = 'F32' | 'F16' | 'BF16';

export interface TinySpec {
  hidden: number;
  intermediate: number;
  layers: number;
  heads: number;
  kvHeads: number;
  headDim?: number;
  vocab: number;
  maxPos: number;
  tie: boolean;
  dtype: DType;
  /** with tie: store only lm_head.weight and alias the embedding in __metadata__ (as the fixture does) */
  aliasTied?: boolean;
  seed: number;
}

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A value exactly representable in the dtype, roughly uniform in ±scale (scale a power of two ≤ 1). */
function randomValue(rng: () => number, dtype: DType, scale: number): number {
  // k · scale / 1024 with |k| < 1024: 10 significant bits fit F16 and F32; BF16 (8 bits) gets k rounded to 8 bits
  let k = Math.floor(rng() * 2047) - 1023;
  if (dtype === 'BF16') {
    const mag = Math.abs(k);
    if (mag >= 256) {
      const shift = 32 - Math.clz32(mag) - 8;
      k = Math.sign(k) * ((mag >> shift) << shift);
    }
  }
  return (k * scale) / 1024;
}

/** A norm weight in [0.75, 1.25), exact in the dtype (8 significant bits). */
function normValue(rng: () => number, _dtype: DType): number {
  return rng() < 0.5 ? (192 + Math.floor(rng() * 64)) / 256 : (128 + Math.floor(rng() * 32)) / 128;
}

function encode(values: number[], dtype: DType): Uint8Array {
  const n = values.length;
  const out = new Uint8Array(n * (dtype === 'F32' ? 4 : 2));
  const dv = new DataView(out.buffer);
  const tmp = new DataView(new ArrayBuffer(4));
  for (let i = 0; i < n; i++) {
    const v = values[i]!;
    if (dtype === 'F32') dv.setFloat32(i * 4, v, true);
    else if (dtype === 'BF16') {
      tmp.setFloat32(0, v);
      if ((tmp.getUint32(0) & 0xffff) !== 0) throw new Error(`not a bf16 value: ${v}`);
      dv.setUint16(i * 2, tmp.getUint32(0) >>> 16, true);
    } else dv.setUint16(i * 2, f16Bits(v), true);
  }
  return out;
}

/** binary16 bits of a value that is exactly representable (normal or zero). */
function f16Bits(v: number): number {
  if (v === 0) return Object.is(v, -0) ? 0x8000 : 0;
  const sign = v < 0 ? 0x8000 : 0;
  const a = Math.abs(v);
  const e = Math.floor(Math.log2(a));
  if (e < -14 || e > 15) throw new Error(`f16 out of normal range: ${v}`);
  const mant = a / 2 ** e - 1;
  const m = mant * 1024;
  if (!Number.isInteger(m)) throw new Error(`not an f16 value: ${v}`);
  return sign | ((e + 15) << 10) | m;
}

export function tinyConfigJson(s: TinySpec): Record<string, unknown> {
  const cfg: Record<string, unknown> = {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_act: 'silu',
    hidden_size: s.hidden,
    intermediate_size: s.intermediate,
    num_hidden_layers: s.layers,
    num_attention_heads: s.heads,
    num_key_value_heads: s.kvHeads,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    rope_scaling: null,
    attention_bias: false,
    mlp_bias: false,
    vocab_size: s.vocab,
    max_position_embeddings: s.maxPos,
    tie_word_embeddings: s.tie,
    bos_token_id: 1,
    eos_token_id: 2,
  };
  if (s.headDim !== undefined) cfg.head_dim = s.headDim;
  return cfg;
}

/** A random model as safetensors bytes (tensors in name order, header padded to 8 bytes). */
export function tinyModelBytes(s: TinySpec): Uint8Array {
  const rng = mulberry32(s.seed);
  const hd = s.headDim ?? s.hidden / s.heads;
  const tensors: { name: string; shape: number[]; scale: number; norm?: boolean }[] = [];
  const mat = (name: string, rows: number, cols: number, scale: number): void => {
    tensors.push({ name, shape: [rows, cols], scale });
  };
  const vec = (name: string, n: number): void => {
    tensors.push({ name, shape: [n], scale: 0.25, norm: true });
  };
  if (!(s.tie && s.aliasTied)) mat('model.embed_tokens.weight', s.vocab, s.hidden, 1);
  if (!s.tie || s.aliasTied) mat('lm_head.weight', s.vocab, s.hidden, 0.5);
  for (let l = 0; l < s.layers; l++) {
    const p = `model.layers.${l}.`;
    vec(p + 'input_layernorm.weight', s.hidden);
    mat(p + 'self_attn.q_proj.weight', s.heads * hd, s.hidden, 0.5);
    mat(p + 'self_attn.k_proj.weight', s.kvHeads * hd, s.hidden, 0.5);
    mat(p + 'self_attn.v_proj.weight', s.kvHeads * hd, s.hidden, 0.5);
    mat(p + 'self_attn.o_proj.weight', s.hidden, s.heads * hd, 0.25);
    vec(p + 'post_attention_layernorm.weight', s.hidden);
    mat(p + 'mlp.gate_proj.weight', s.intermediate, s.hidden, 0.5);
    mat(p + 'mlp.up_proj.weight', s.intermediate, s.hidden, 0.5);
    mat(p + 'mlp.down_proj.weight', s.hidden, s.intermediate, 0.25);
  }
  vec('model.norm.weight', s.hidden);
  tensors.sort((a, b) => (a.name < b.name ? -1 : 1));
  const datas: Uint8Array[] = [];
  const header: Record<string, unknown> = {};
  const meta: Record<string, string> = { format: 'pt' };
  if (s.tie && s.aliasTied) meta['model.embed_tokens.weight'] = 'lm_head.weight';
  header.__metadata__ = meta;
  let off = 0;
  for (const t of tensors) {
    const n = t.shape.reduce((a, d) => a * d, 1);
    const vals: number[] = [];
    for (let i = 0; i < n; i++) vals.push(t.norm ? normValue(rng, s.dtype) : randomValue(rng, s.dtype, t.scale));
    const b = encode(vals, s.dtype);
    header[t.name] = { dtype: s.dtype, shape: t.shape, data_offsets: [off, off + b.byteLength] };
    datas.push(b);
    off += b.byteLength;
  }
  let json = JSON.stringify(header);
  while ((8 + json.length) % 8 !== 0) json += ' ';
  const hb = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + hb.byteLength + off);
  new DataView(out.buffer).setBigUint64(0, BigInt(hb.byteLength), true);
  out.set(hb, 8);
  let p = 8 + hb.byteLength;
  for (const d of datas) {
    out.set(d, p);
    p += d.byteLength;
  }
  return out;
}

// ------------------------------------------------------------ float64 reference

/** A tensor's values as float64, converted with DataView (independently of src/kernels). */
export async function tensor64(src: WeightSource, name: string): Promise<Float64Array> {
  const info = src.tensor(name);
  if (info === undefined) throw new Error(`no tensor ${name}`);
  const n = info.shape.reduce((a, d) => a * d, 1);
  const size = info.dtype === 'F32' ? 4 : 2;
  const b = new Uint8Array(n * size);
  await src.readInto(name, b);
  const dv = new DataView(b.buffer);
  const tmp = new DataView(new ArrayBuffer(4));
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    if (info.dtype === 'F32') out[i] = dv.getFloat32(i * 4, true);
    else if (info.dtype === 'BF16') {
      tmp.setUint32(0, dv.getUint16(i * 2, true) * 65536);
      out[i] = tmp.getFloat32(0);
    } else {
      const h = dv.getUint16(i * 2, true);
      const e = (h >> 10) & 31;
      const m = h & 1023;
      const v = e === 0 ? m * 2 ** -24 : e === 31 ? (m ? NaN : Infinity) : (1 + m / 1024) * 2 ** (e - 15);
      out[i] = h & 0x8000 ? -v : v;
    }
  }
  return out;
}

export interface Ref64 {
  c: LlamaConfig;
  embed: Float64Array;
  lmHead: Float64Array;
  norm: Float64Array;
  layers: Record<string, Float64Array>[];
}

export async function loadRef64(src: WeightSource, c: LlamaConfig): Promise<Ref64> {
  const has = (n: string): boolean => src.tensor(n) !== undefined;
  const embedName = has('model.embed_tokens.weight') ? 'model.embed_tokens.weight' : 'lm_head.weight';
  const embed = await tensor64(src, embedName);
  const lmHead = c.tieWordEmbeddings ? embed : await tensor64(src, 'lm_head.weight');
  const layers: Record<string, Float64Array>[] = [];
  for (let l = 0; l < c.numLayers; l++) {
    const L: Record<string, Float64Array> = {};
    for (const k of [
      'input_layernorm', 'self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj',
      'post_attention_layernorm', 'mlp.gate_proj', 'mlp.up_proj', 'mlp.down_proj',
    ]) L[k] = await tensor64(src, `model.layers.${l}.${k}.weight`);
    layers.push(L);
  }
  return { c, embed, lmHead, norm: await tensor64(src, 'model.norm.weight'), layers };
}

/** y[r] = Σ_i W[r, i] x[i], W [rows, cols] */
function mv(W: Float64Array, x: Float64Array, rows: number, cols: number): Float64Array {
  const y = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let i = 0; i < cols; i++) s += W[r * cols + i]! * x[i]!;
    y[r] = s;
  }
  return y;
}

function rms(x: Float64Array, w: Float64Array, eps: number): Float64Array {
  let ss = 0;
  for (const v of x) ss += v * v;
  const s = 1 / Math.sqrt(ss / x.length + eps);
  return x.map((v, i) => v * s * w[i]!);
}

/** Logits of every position, float64, [n × vocab]. */
export function refLogits(m: Ref64, tokens: readonly number[]): Float64Array {
  const c = m.c;
  const D = c.hiddenSize;
  const hd = c.headDim;
  const H = c.numHeads;
  const KV = c.numKvHeads;
  const n = tokens.length;
  const xs = tokens.map((t) => m.embed.slice(t * D, (t + 1) * D));
  const rope = (v: Float64Array, heads: number, pos: number): void => {
    const half = hd / 2;
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < half; i++) {
        const a = pos * Math.pow(c.ropeTheta, (-2 * i) / hd);
        const x1 = v[h * hd + i]!;
        const x2 = v[h * hd + i + half]!;
        v[h * hd + i] = x1 * Math.cos(a) - x2 * Math.sin(a);
        v[h * hd + i + half] = x2 * Math.cos(a) + x1 * Math.sin(a);
      }
    }
  };
  for (const L of m.layers) {
    const qs: Float64Array[] = [];
    const ks: Float64Array[] = [];
    const vs: Float64Array[] = [];
    for (let p = 0; p < n; p++) {
      const xn = rms(xs[p]!, L['input_layernorm']!, c.rmsNormEps);
      const q = mv(L['self_attn.q_proj']!, xn, H * hd, D);
      const k = mv(L['self_attn.k_proj']!, xn, KV * hd, D);
      rope(q, H, p);
      rope(k, KV, p);
      qs.push(q);
      ks.push(k);
      vs.push(mv(L['self_attn.v_proj']!, xn, KV * hd, D));
    }
    for (let p = 0; p < n; p++) {
      const att = new Float64Array(H * hd);
      for (let h = 0; h < H; h++) {
        const kh = Math.floor(h / (H / KV));
        const sc: number[] = [];
        for (let j = 0; j <= p; j++) {
          let s = 0;
          for (let d = 0; d < hd; d++) s += qs[p]![h * hd + d]! * ks[j]![kh * hd + d]!;
          sc.push(s / Math.sqrt(hd));
        }
        const mx = Math.max(...sc);
        const e = sc.map((s) => Math.exp(s - mx));
        const z = e.reduce((a, b) => a + b, 0);
        for (let j = 0; j <= p; j++) for (let d = 0; d < hd; d++) att[h * hd + d] = att[h * hd + d]! + (e[j]! / z) * vs[j]![kh * hd + d]!;
      }
      const o = mv(L['self_attn.o_proj']!, att, D, H * hd);
      xs[p] = xs[p]!.map((v, i) => v + o[i]!);
    }
    for (let p = 0; p < n; p++) {
      const xn = rms(xs[p]!, L['post_attention_layernorm']!, c.rmsNormEps);
      const g = mv(L['mlp.gate_proj']!, xn, c.intermediateSize, D);
      const u = mv(L['mlp.up_proj']!, xn, c.intermediateSize, D);
      const h = g.map((v, i) => (v / (1 + Math.exp(-v))) * u[i]!);
      const d = mv(L['mlp.down_proj']!, h, D, c.intermediateSize);
      xs[p] = xs[p]!.map((v, i) => v + d[i]!);
    }
  }
  const out = new Float64Array(n * c.vocabSize);
  for (let p = 0; p < n; p++) out.set(mv(m.lmHead, rms(xs[p]!, m.norm, c.rmsNormEps), c.vocabSize, D), p * c.vocabSize);
  return out;
}

/** Σ −ln softmax(logits[p])[tokens[p+1]] in float64. */
export function refNll(logits: Float64Array, tokens: readonly number[], V: number): number {
  let nll = 0;
  for (let p = 0; p + 1 < tokens.length; p++) {
    let mx = -Infinity;
    for (let i = 0; i < V; i++) mx = Math.max(mx, logits[p * V + i]!);
    let z = 0;
    for (let i = 0; i < V; i++) z += Math.exp(logits[p * V + i]! - mx);
    nll += mx + Math.log(z) - logits[p * V + tokens[p + 1]!]!;
  }
  return nll;
}

/** max |a − b| / max(1, max |b|) */
export function maxRelDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  let mb = 1;
  for (let i = 0; i < b.length; i++) {
    d = Math.max(d, Math.abs(a[i]! - b[i]!));
    mb = Math.max(mb, Math.abs(b[i]!));
  }
  return d / mb;
}

export function sameBits(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) return false;
  return true;
}

/** A small LCG: the same sequence on every machine, for kernel tests. */
export function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

/**
 * A random rows × cols weight matrix: F32 values in (−1, 1); F16/BF16 as
 * random bit patterns whose exponent field lies in the dtype's [lo, hi].
 */
export function randomMatrix(dtype: WeightDType, rows: number, cols: number, seed: number, exponents: Record<'F16' | 'BF16', [number, number]>): WeightMatrix {
  const r = lcg(seed);
  const n = rows * cols;
  if (dtype === 'F32') {
    const f = new Float32Array(n).map(() => r() * 2 - 1);
    return { dtype, rows, cols, bytes: new Uint8Array(f.buffer) };
  }
  const [lo, hi] = exponents[dtype];
  const u = new Uint16Array(n).map(() => {
    for (;;) {
      const h = Math.floor(r() * 65536);
      const exp = dtype === 'F16' ? (h >> 10) & 31 : (h >> 7) & 255;
      if (exp >= lo && exp <= hi) return h;
    }
  });
  return { dtype, rows, cols, bytes: new Uint8Array(u.buffer) };
}

// ------------------------------------------------------------ tokenizers

/**
 * tokenizer.json of a BPE tokenizer with byte fallback and the fixture's normalizer and decoder
 * (SentencePiece style: ▁ for spaces, one leading ▁ prepended and stripped again), with a tiny
 * vocabulary: <unk> <s> </s>, the 256 byte tokens, a–z . , ▁ and two merges. Every character
 * outside that vocabulary becomes byte tokens, so text of any script round-trips.
 */
export function byteFallbackTokenizerJson(): object {
  const vocab: Record<string, number> = { '<unk>': 0, '<s>': 1, '</s>': 2 };
  for (let b = 0; b < 256; b++) vocab[`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`] = 3 + b;
  let id = 259;
  for (const ch of '▁abcdefghijklmnopqrstuvwxyz.,') vocab[ch] = id++;
  vocab['▁c'] = id++;
  vocab['af'] = id++;
  const special = ['<unk>', '<s>', '</s>'];
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: special.map((content, i) => ({ id: i, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '▁' }, { type: 'Replace', pattern: { String: ' ' }, content: '▁' }] },
    pre_tokenizer: null,
    post_processor: null,
    decoder: {
      type: 'Sequence',
      decoders: [{ type: 'Replace', pattern: { String: '▁' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }, { type: 'Strip', content: ' ', start: 1, stop: 0 }],
    },
    model: {
      type: 'BPE', dropout: null, unk_token: '<unk>', continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: true, byte_fallback: true, ignore_merges: false, vocab, merges: ['▁ c', 'a f'],
    },
  };
}

export const BYTE_FALLBACK_TOKENIZER_CONFIG = { bos_token: '<s>', eos_token: '</s>' };

/** The fixture vocabulary's single characters, "▁" read as a space: what its tokenizer can spell. */
export function fixtureVocabChars(): Set<string> {
  const vocab = (JSON.parse(readFileSync(join(FIXTURE, 'tokenizer.json'), 'utf8')) as { model: { vocab: Record<string, number> } }).model.vocab;
  return new Set(Object.keys(vocab).filter((k) => [...k].length === 1).map((k) => (k === '\u2581' ? ' ' : k)));
}

/** What decode(encode(text)) gives with a vocabulary of `chars` and no byte tokens: "▁" read back as a space, each maximal run of other characters as "<unk>". */
export function roundTripWithUnk(text: string, chars: Set<string>): string {
  let out = '';
  let unk = false;
  for (const ch of text.replaceAll('\u2581', ' ')) {
    if (chars.has(ch)) {
      out += ch;
      unk = false;
    } else if (!unk) {
      out += '<unk>';
      unk = true;
    }
  }
  return out;
}
