/**
 * Hugging Face Llama (safetensors + config.json + tokenizer.json) → GGUF, as
 * llama.cpp's convert_hf_to_gguf.py does it for the tensors and metadata the
 * fixture family uses, so the peer bench can run the same weights in llama.cpp.
 *
 *   node --import tsx bench/peer/convert-gguf.ts MODEL.safetensors MODEL_DIR OUT.gguf [--type F32|F16|BF16]
 *
 * MODEL_DIR holds config.json, tokenizer.json and tokenizer_config.json.
 *
 * What matters for equal results:
 * - Rotary embeddings. Hugging Face's Llama rotates halves: dimension i of a
 *   head pairs with i + hd/2. GGML's "normal" rope (the one llama.cpp uses for
 *   the llama architecture) rotates neighbours: 2i with 2i+1. The converter
 *   therefore reorders the rows of q_proj (per attention head) and k_proj (per
 *   KV head) so that row h·hd + 2i + j of the GGUF tensor is row h·hd + j·hd/2 + i
 *   of the Hugging Face one (convert_hf_to_gguf's LlamaModel.permute). q·k is
 *   unchanged by a permutation applied to both, and V is not rotated.
 * - Tied embeddings: token_embd.weight is embed_tokens (or lm_head when only
 *   that is stored, as in the fixture); output.weight is written only when the
 *   config says the embeddings are untied, so llama.cpp reuses token_embd.
 * - Norm weights are written as F32 whatever the --type (llama.cpp's converter
 *   keeps 1-D tensors F32); converting F16/BF16 to F32 is exact.
 * - Matrices keep their stored dtype when it is the --type; F32 → F16/BF16
 *   rounds to nearest even; BF16 → F16 is refused (it would lose range).
 *
 * Tokenizer: the fixture's is a SentencePiece-style BPE (▁ for spaces,
 * byte fallback), which is GGUF's "llama" tokenizer model. GGUF's SPM
 * tokenizer merges by the score of the merged piece, highest first; the
 * Hugging Face merges are listed in the order their results appear in the
 * vocabulary, so score = −id ranks them the same way. <unk> is UNKNOWN, the
 * added special tokens CONTROL, <0xNN> pieces BYTE, the rest NORMAL.
 */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SafetensorsFileWeightSource, parseLlamaConfig, type LlamaConfig, type WeightTensorInfo } from '../../src/index.js';
import { writeGguf, type GgmlTypeName, type GgufTensor, type GgufValue } from './gguf.js';

export type GgufFileType = 'F32' | 'F16' | 'BF16';

/** general.file_type (llama_ftype) of an all-F32 / mostly-F16 / mostly-BF16 model. */
const FILE_TYPE: Record<GgufFileType, number> = { F32: 0, F16: 1, BF16: 32 };

const TOKEN_TYPE = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, BYTE: 6 } as const;

// ---------------------------------------------------------------- dtype conversion

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float32 bits → bfloat16, round to nearest even (NaN kept quiet). */
function f32ToBf16(x: number): number {
  f32[0] = x;
  const b = u32[0]!;
  if ((b & 0x7fffffff) > 0x7f800000) return ((b >>> 16) | 0x40) & 0xffff;
  return ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) & 0xffff;
}

/** float32 → IEEE half, round to nearest even, overflow to ±Inf, subnormals kept. */
export function f32ToF16(x: number): number {
  f32[0] = x;
  const b = u32[0]!;
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  const mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    const m = mant | 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = m & ((1 << shift) - 1);
    let h = m >>> shift;
    if (rest > half || (rest === half && (h & 1))) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (h & 1))) h++;
  return sign | h;
}

function toF32(dtype: string, bytes: Uint8Array): Float32Array {
  const n = bytes.byteLength / (dtype === 'F32' ? 4 : 2);
  const out = new Float32Array(n);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (dtype === 'F32') for (let i = 0; i < n; i++) out[i] = dv.getFloat32(i * 4, true);
  else if (dtype === 'BF16') {
    const o = new Uint32Array(out.buffer);
    for (let i = 0; i < n; i++) o[i] = dv.getUint16(i * 2, true) << 16;
  } else if (dtype === 'F16') {
    for (let i = 0; i < n; i++) out[i] = f16ToF32(dv.getUint16(i * 2, true));
  } else throw new Error(`unsupported dtype ${dtype}`);
  return out;
}

function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 0x1f) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** Stored bytes of one tensor in `to` (F32, F16 or BF16). */
export function convertDtype(from: string, to: GgmlTypeName, bytes: Uint8Array, name: string): Uint8Array {
  if (from === to) return bytes;
  if (from === 'BF16' && to === 'F16') throw new Error(`tensor ${name}: BF16 → F16 would lose range; convert from the F32 model`);
  const x = toF32(from, bytes);
  if (to === 'F32') return new Uint8Array(x.buffer);
  const out = new Uint16Array(x.length);
  const f = to === 'F16' ? f32ToF16 : f32ToBf16;
  for (let i = 0; i < x.length; i++) out[i] = f(x[i]!);
  return new Uint8Array(out.buffer);
}

// ---------------------------------------------------------------- rotary permutation

/**
 * Reorders the rows of a [nHead·hd, cols] projection from rotate-half to
 * GGML's interleaved pairs: GGUF row h·hd + 2i + j = HF row h·hd + j·hd/2 + i.
 */
export function permuteRope(bytes: Uint8Array, nHead: number, rows: number, rowBytes: number): Uint8Array {
  const hd = rows / nHead;
  if (!Number.isInteger(hd) || hd % 2 !== 0) throw new Error(`rope permutation: ${rows} rows do not split into ${nHead} heads of an even size`);
  const out = new Uint8Array(bytes.byteLength);
  const half = hd / 2;
  for (let h = 0; h < nHead; h++)
    for (let i = 0; i < half; i++)
      for (let j = 0; j < 2; j++) {
        const dst = h * hd + 2 * i + j;
        const src = h * hd + j * half + i;
        out.set(bytes.subarray(src * rowBytes, (src + 1) * rowBytes), dst * rowBytes);
      }
  return out;
}

// ---------------------------------------------------------------- tokenizer

interface TokenizerJson {
  added_tokens?: { id: number; content: string; special?: boolean }[];
  normalizer?: unknown;
  model: { type: string; vocab: Record<string, number>; unk_token?: string; byte_fallback?: boolean };
}

function tokenizerMetadata(dir: string, config: LlamaConfig): Record<string, GgufValue> {
  const tj = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8')) as TokenizerJson;
  if (tj.model.type !== 'BPE') throw new Error(`${dir}/tokenizer.json: model type ${tj.model.type}; only a SentencePiece-style BPE converts to GGUF's "llama" tokenizer here`);
  let cfg: { bos_token?: unknown; eos_token?: unknown; add_bos_token?: boolean; add_eos_token?: boolean; pad_token?: unknown } = {};
  try {
    cfg = JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8')) as typeof cfg;
  } catch {
    // optional
  }
  const n = config.vocabSize;
  const tokens: string[] = new Array<string>(n);
  const types = new Int32Array(n).fill(TOKEN_TYPE.NORMAL);
  const scores = new Float32Array(n);
  for (const [piece, id] of Object.entries(tj.model.vocab)) if (id < n) tokens[id] = piece;
  const special = new Set<number>();
  for (const t of tj.added_tokens ?? []) {
    if (t.id >= n) continue;
    tokens[t.id] = t.content;
    if (t.special) special.add(t.id);
  }
  const idOf = (tok: unknown): number | undefined => {
    const s = typeof tok === 'string' ? tok : (tok as { content?: unknown } | null)?.content;
    if (typeof s !== 'string') return undefined;
    const i = tokens.indexOf(s);
    return i >= 0 ? i : undefined;
  };
  const unk = idOf(tj.model.unk_token);
  for (let id = 0; id < n; id++) {
    if (tokens[id] === undefined) {
      tokens[id] = `[PAD${id}]`;
      types[id] = 5; // UNUSED
      continue;
    }
    if (id === unk) types[id] = TOKEN_TYPE.UNKNOWN;
    else if (special.has(id)) types[id] = TOKEN_TYPE.CONTROL;
    else if (/^<0x[0-9A-Fa-f]{2}>$/.test(tokens[id]!)) types[id] = TOKEN_TYPE.BYTE;
    scores[id] = types[id] === TOKEN_TYPE.NORMAL ? -id : 0;
  }
  const meta: Record<string, GgufValue> = {
    'tokenizer.ggml.model': { type: 'string', value: 'llama' },
    'tokenizer.ggml.tokens': { type: 'string[]', value: tokens },
    'tokenizer.ggml.scores': { type: 'f32[]', value: scores },
    'tokenizer.ggml.token_type': { type: 'i32[]', value: types },
    'tokenizer.ggml.add_bos_token': { type: 'bool', value: cfg.add_bos_token ?? true },
    'tokenizer.ggml.add_eos_token': { type: 'bool', value: cfg.add_eos_token ?? false },
    // the normalizer prepends ▁ (SentencePiece's add_dummy_prefix)
    'tokenizer.ggml.add_space_prefix': { type: 'bool', value: JSON.stringify(tj.normalizer ?? '').includes('"Prepend"') },
  };
  const ids: [string, number | undefined][] = [
    ['bos_token_id', idOf(cfg.bos_token) ?? config.bosTokenId],
    ["eos_token_id", idOf(cfg.eos_token) ?? config.eosTokenIds[0]],
    ['unknown_token_id', unk],
    ['padding_token_id', idOf(cfg.pad_token)],
  ];
  for (const [k, v] of ids) if (v !== undefined) meta[`tokenizer.ggml.${k}`] = { type: 'u32', value: v };
  return meta;
}

// ---------------------------------------------------------------- model

export interface ConvertResult {
  path: string;
  bytes: number;
  tensors: number;
}

export interface ConvertOptions {
  /**
   * false leaves q_proj/k_proj in Hugging Face's row order: a wrong GGUF, which the peer bench
   * runs as a negative control to show its comparison catches the mistake.
   */
  ropePermute?: boolean;
}

/** Converts weights (a .safetensors file) with the config and tokenizer of modelDir into a GGUF of `type`. */
export async function convertToGguf(weightsPath: string, modelDir: string, outPath: string, type: GgufFileType, opts: ConvertOptions = {}): Promise<ConvertResult> {
  const permute = opts.ropePermute ?? true;
  const rawConfig = JSON.parse(readFileSync(join(modelDir, 'config.json'), 'utf8')) as Record<string, unknown>;
  const c = parseLlamaConfig(rawConfig);
  const src = await SafetensorsFileWeightSource.open(weightsPath);
  try {
    const read = async (name: string): Promise<{ info: WeightTensorInfo; bytes: Uint8Array }> => {
      const info = src.tensor(name);
      if (!info) throw new Error(`${weightsPath}: no tensor ${name}`);
      const n = info.shape.reduce((a, b) => a * b, 1);
      const bytes = new Uint8Array(n * (info.dtype === 'F32' ? 4 : 2));
      await src.readInto(name, bytes);
      return { info, bytes };
    };
    const tensors: GgufTensor[] = [];
    const matrix = async (hf: string, gguf: string, ropeHeads?: number): Promise<void> => {
      const { info, bytes } = await read(hf);
      let data = convertDtype(info.dtype, type, bytes, hf);
      if (ropeHeads !== undefined && permute) data = permuteRope(data, ropeHeads, info.shape[0]!, (data.byteLength / info.shape[0]!) | 0);
      tensors.push({ name: gguf, shape: info.shape, type, data });
    };
    const vector = async (hf: string, gguf: string): Promise<void> => {
      const { info, bytes } = await read(hf);
      tensors.push({ name: gguf, shape: info.shape, type: 'F32', data: convertDtype(info.dtype, 'F32', bytes, hf) });
    };
    const embedName = src.tensor('model.embed_tokens.weight') ? 'model.embed_tokens.weight' : 'lm_head.weight';
    await matrix(embedName, 'token_embd.weight');
    for (let l = 0; l < c.numLayers; l++) {
      const p = `model.layers.${l}`;
      await vector(`${p}.input_layernorm.weight`, `blk.${l}.attn_norm.weight`);
      await matrix(`${p}.self_attn.q_proj.weight`, `blk.${l}.attn_q.weight`, c.numHeads);
      await matrix(`${p}.self_attn.k_proj.weight`, `blk.${l}.attn_k.weight`, c.numKvHeads);
      await matrix(`${p}.self_attn.v_proj.weight`, `blk.${l}.attn_v.weight`);
      await matrix(`${p}.self_attn.o_proj.weight`, `blk.${l}.attn_output.weight`);
      await vector(`${p}.post_attention_layernorm.weight`, `blk.${l}.ffn_norm.weight`);
      await matrix(`${p}.mlp.gate_proj.weight`, `blk.${l}.ffn_gate.weight`);
      await matrix(`${p}.mlp.up_proj.weight`, `blk.${l}.ffn_up.weight`);
      await matrix(`${p}.mlp.down_proj.weight`, `blk.${l}.ffn_down.weight`);
    }
    await vector('model.norm.weight', 'output_norm.weight');
    if (!c.tieWordEmbeddings) await matrix('lm_head.weight', 'output.weight');

    const meta: Record<string, GgufValue> = {
      'general.architecture': { type: 'string', value: 'llama' },
      'general.name': { type: 'string', value: String(rawConfig._name_or_path ?? 'at1 peer-bench model') },
      'general.file_type': { type: 'u32', value: FILE_TYPE[type] },
      'llama.context_length': { type: 'u32', value: c.maxPositionEmbeddings },
      'llama.embedding_length': { type: 'u32', value: c.hiddenSize },
      'llama.block_count': { type: 'u32', value: c.numLayers },
      'llama.feed_forward_length': { type: 'u32', value: c.intermediateSize },
      'llama.attention.head_count': { type: 'u32', value: c.numHeads },
      'llama.attention.head_count_kv': { type: 'u32', value: c.numKvHeads },
      'llama.attention.key_length': { type: 'u32', value: c.headDim },
      'llama.attention.value_length': { type: 'u32', value: c.headDim },
      'llama.attention.layer_norm_rms_epsilon': { type: 'f32', value: c.rmsNormEps },
      'llama.rope.freq_base': { type: 'f32', value: c.ropeTheta },
      'llama.rope.dimension_count': { type: 'u32', value: c.headDim },
      'llama.vocab_size': { type: 'u32', value: c.vocabSize },
      ...tokenizerMetadata(modelDir, c),
    };
    const bytes = writeGguf(outPath, meta, tensors);
    return { path: outPath, bytes, tensors: tensors.length };
  } finally {
    await src.close();
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const [weights, dir, out] = process.argv.slice(2).filter((a, i, all) => !a.startsWith('--') && all[i - 1] !== '--type');
  const ti = process.argv.indexOf('--type');
  const type = (ti > 0 ? process.argv[ti + 1] : 'F32') as GgufFileType;
  if (!weights || !dir || !out || !(type in FILE_TYPE)) {
    process.stderr.write('usage: convert-gguf.ts MODEL.safetensors MODEL_DIR OUT.gguf [--type F32|F16|BF16]\n');
    process.exit(2);
  }
  statSync(weights);
  const r = await convertToGguf(weights, dir, out, type);
  process.stdout.write(`${r.path}: ${r.tensors} tensors, ${r.bytes} bytes (${type})\n`);
}
