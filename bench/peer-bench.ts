/**
 * at1 next to llama.cpp, the runtime users would otherwise run. Not part of `npm test`.
 *
 *   npm run bench:peer [-- --models base,code-full,synthetic-small] [--types F32,F16,BF16]
 *     [--prompt-tokens 128] [--tokens 64] [--threads 1] [--reps 3] [--llama-kv F32|F16]
 *     [--data ../shared/fixtures] [--keep]
 *
 * Models, each in F32, F16 and BF16 with bit-identical values in both runtimes (F16/BF16
 * rounded from F32 to nearest even): the fixture base (TinyStories-656K; its F32 values are
 * bf16-exact, so its three types hold the same numbers), the fixture's code-full (trained in
 * float32; ../shared only) and a synthetic 58 M-parameter Llama with random weights (hidden 512,
 * 8 layers, GQA 2, vocab 32000, untied), big enough that the matrix products set the speed.
 * at1 runs them from a registry built from those files (openModel, full load, the wasm kernels);
 * llama.cpp runs the GGUF files bench/peer/convert-gguf.ts writes, through node-llama-cpp's
 * prebuilt CPU build (installed into bench/peer on first use: bench/peer/install.ts), with an F32
 * KV cache as at1's (--llama-kv F16 for its default). Both get the same prompt token ids, so
 * tokenizer differences do not enter; whether llama.cpp's own tokenizer gives at1's ids for the
 * prompt text is reported on the side.
 *
 * Each runtime and weight type runs in its own child process (peak RSS = its VmHWM) and does the
 * same work: load; the prompt pass `reps` times (median); greedy generation `reps` times
 * (median); then the log-probabilities of every prompt position and every generated token, on
 * at1's greedy ids. Logits are compared as log-softmax: node-llama-cpp hands back the softmax of
 * the raw logits, not the logits, and log p = logit − logsumexp is the logits less one constant
 * per position. A negative control runs the first F32 model converted without the rotary Q/K
 * permutation, which the comparison must catch. Exit 1 when a difference is over its tolerance,
 * the greedy paths part other than at a near-tie, or the control is not caught.
 *
 * Where at1 stands and why (measured figures in README, "Running a model from the registry"):
 * - Numbers: in F32 the two agree on every greedy token and to ~2e-5 nats; with F16/BF16 weights
 *   llama.cpp rounds the activations to the weights' type before each dot product (ggml's
 *   vec_dot_type) while at1 keeps them in float32, hence ~1e-2 (F16) and ~1e-1 (BF16).
 * - Speed: on the 58 M model at1 runs the prompt at about a quarter of llama.cpp's rate and
 *   generates at 0.1–0.3×. The matrix products are the cost, and at1's are slower by design and
 *   by platform: its arithmetic is fixed for bit-identical results across budgets, threads and
 *   kernels (src/kernels/reference.ts: every dot product summed in float64 lanes in one order),
 *   so a 128-bit WebAssembly SIMD op does 2 multiply-adds where llama.cpp's AVX-512 float32 FMA
 *   (and, for BF16, the CPU's AVX-512 BF16 dot instructions) does 16 or 32. The runtime also
 *   copies each weight matrix into the WebAssembly memory on every call (it does not keep resident
 *   weights in the module's memory, src/kernels/wasm.ts `alloc`), which for a one-token matvec
 *   costs about as much as the product. F16 is at1's slowest type: WebAssembly has no F16
 *   conversion instruction, so each weight is widened by bit moves where llama.cpp uses the CPU's
 *   F16C. Attention and the element-wise steps are plain JS in float64. Load: at1 decodes and
 *   SHA-256-verifies every byte from the registry; llama.cpp maps the GGUF file.
 *   On the 656 K fixture both are dominated by per-pass overheads (JS orchestration per tensor
 *   for at1; node-llama-cpp's batch queue for llama.cpp), and the figures are noisy.
 * - Memory: full-loaded, at1's peak RSS is at or below llama.cpp's (node + tsx in both; the
 *   llama.cpp addon adds ~40 MB at idle); streaming (bench:runtime) goes much lower.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  LlamaTokenizer,
  Registry,
  SafetensorsFileWeightSource,
  add,
  initRegistry,
  openModel,
  readSafetensorsHeader,
  serializeSafetensors,
  type TensorToWrite,
} from '../src/index.js';
import { convertDtype, convertToGguf, type GgufFileType } from './peer/convert-gguf.js';
import { ensurePeerPackage, PEER_DIR } from './peer/install.js';
import { idleResult, logSoftmax, median, peakRss, type PeerJob, type PeerResult } from './peer/runner-protocol.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '..');
const FIXTURE = join(ROOT, 'fixtures', 'tinystories');
const MB = 1e6;

/** A TinyStories-like prompt (the model's own domain); its ids are cut to --prompt-tokens. */
const PROMPT_TEXT =
  'Once upon a time, there was a little girl named Lily. She lived in a small house with her mom and dad. ' +
  'Every day, Lily liked to play in the park with her red ball. One sunny day, she saw a big dog near the tree. ' +
  'The dog was sad because it was lost. Lily said, "Do not be sad, dog. I will help you find your home." ' +
  'They walked and walked until they saw a kind old man. The man smiled and said, "Thank you for finding my dog!" ' +
  'Lily was very happy. She learned that helping others makes everyone feel good. The next day, Lily went back to the park. ' +
  'She wanted to find a new friend to play with. She saw a boy named Tom who was sitting alone on a bench. ' +
  'Tom looked sad. Lily walked to him and said, "Hi, I am Lily. Do you want to play with my ball?" Tom smiled and nodded. ' +
  'They threw the ball high in the sky and ran after it. They laughed and played until the sun went down. ' +
  'When it was time to go home, Tom gave Lily a small blue stone. "This is for you, my new friend," he said. ' +
  'Lily put the stone in her pocket and ran home to show her mom. Her mom hugged her and said, "You are a good friend, Lily."';

// ---------------------------------------------------------------- at1 child

async function at1Child(job: PeerJob): Promise<PeerResult> {
  if (job.model.kind !== 'at1') throw new Error('the at1 child runs registry versions');
  const reg = await Registry.open(job.model.regDir);
  if (job.idle) return idleResult(peakRss());
  const t0 = performance.now();
  const m = await openModel(reg, job.model.version, {
    fullLoad: true,
    threads: job.threads,
    configPath: job.model.configPath,
    tokenizerPath: job.model.tokenizerPath,
    maxSeqLen: job.contextSize,
  });
  const loadMs = performance.now() - t0;

  const times: number[] = [];
  for (let r = 0; r < job.reps; r++) {
    m.model.reset();
    const s = performance.now();
    await m.model.forward(job.prompt, 'last');
    times.push(performance.now() - s);
  }
  const promptMs = median(times);

  let generated: number[] = [];
  const firsts: number[] = [];
  const rates: number[] = [];
  for (let r = 0; r < job.reps; r++) {
    generated = [];
    let firstTokenMs = 0;
    const g0 = performance.now();
    for await (const tok of m.model.generate(job.prompt, { maxTokens: job.tokens, temperature: 0, stopAtEos: false })) {
      if (generated.length === 0) firstTokenMs = performance.now() - g0;
      generated.push(tok);
    }
    firsts.push(firstTokenMs);
    rates.push(generated.length > 1 ? ((generated.length - 1) * 1000) / (performance.now() - g0 - firstTokenMs) : 0);
  }

  const V = m.config.vocabSize;
  // peak RSS of the run (load, prompt passes, generation), before the scoring below allocates its large outputs
  const peakRssBytes = peakRss();
  const scoreIds = job.scoreIds ?? [...job.prompt, ...generated.slice(0, -1)];
  const lg = await m.model.logits(scoreIds);
  const lp = new Float64Array(scoreIds.length * V);
  for (let i = 0; i < scoreIds.length; i++) logSoftmax(lg, i * V, V, lp, i * V);
  writeFileSync(job.logprobsOut, new Uint8Array(lp.buffer));

  const result: PeerResult = {
    runtime: `at1 (${m.kernelName}, full load)`,
    loadMs,
    promptMs,
    promptTokensPerSecond: (job.prompt.length * 1000) / promptMs,
    firstTokenMs: median(firsts),
    genTokensPerSecond: median(rates),
    generated,
    scoreIds,
    textIds: m.tokenizer.encode(job.text),
    peakRssBytes,
  };
  await m.close();
  return result;
}

function runChild(job: PeerJob): PeerResult {
  const script = job.model.kind === 'at1' ? fileURLToPath(import.meta.url) : join(PEER_DIR, 'llama-runner.ts');
  const args = job.model.kind === 'at1' ? ['--child', JSON.stringify(job)] : [JSON.stringify(job)];
  const r = spawnSync(process.execPath, ['--import', 'tsx', script, ...args], { cwd: ROOT, encoding: 'utf8', maxBuffer: 64 * MB, stdio: ['ignore', 'pipe', 'pipe'] });
  const line = r.stdout.split('\n').find((l) => l.startsWith('RESULT '));
  if (r.status !== 0 || !line) throw new Error(`${job.model.kind} child failed (status ${r.status}, ${r.signal ?? ''}):\n${r.stderr}`);
  return JSON.parse(line.slice(7)) as PeerResult;
}

// ---------------------------------------------------------------- the three weight types

/** Writes `src` with every tensor in `dtype` (through float32; F32 → F16/BF16 rounds to nearest even). */
async function writeVariant(src: string, dtype: GgufFileType, out: string): Promise<void> {
  const ws = await SafetensorsFileWeightSource.open(src);
  const header = await readSafetensorsHeader(src);
  try {
    const tensors: TensorToWrite[] = [];
    for (const t of header.tensors) {
      const bytes = new Uint8Array(t.end - t.begin);
      await ws.readInto(t.name, bytes);
      const wide = convertDtype(t.dtype, 'F32', bytes, t.name);
      tensors.push({ name: t.name, dtype, shape: t.shape, data: convertDtype('F32', dtype, wide, t.name) });
    }
    writeFileSync(out, serializeSafetensors(tensors, header.metadata ?? undefined));
  } finally {
    await ws.close();
  }
}

/**
 * A synthetic Llama with random weights, large enough that the matrix products, not the fixed
 * per-pass costs, set the speed: untied embeddings (as Llama-2), BF16, weights ~ N(0, 0.05),
 * norms 1. The fixture's tokenizer (its 2048 ids; the rest of the vocabulary is unused) so both
 * runtimes load one; the prompt ids are the fixture's.
 */
interface Dims {
  hidden: number;
  intermediate: number;
  layers: number;
  heads: number;
  kvHeads: number;
  vocab: number;
}

const SYNTHETIC: Record<string, Dims> = {
  // ≈ 58 M parameters: 116 MB in BF16, 232 MB in F32
  small: { hidden: 512, intermediate: 1376, layers: 8, heads: 8, kvHeads: 4, vocab: 32000 },
  // ≈ 250 M parameters: 0.5 GB in BF16, 1 GB in F32
  medium: { hidden: 1024, intermediate: 2816, layers: 16, heads: 16, kvHeads: 8, vocab: 32000 },
};

function writeSynthetic(dir: string, d: Dims): string {
  mkdirSync(dir, { recursive: true });
  let seed = 0x2545f491;
  const next = (): number => {
    seed ^= seed << 13;
    seed >>>= 0;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    seed >>>= 0;
    return (seed + 0.5) / 4294967296;
  };
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  const matrix = (rows: number, cols: number, std: number): Uint8Array => {
    const out = new Uint16Array(rows * cols);
    for (let i = 0; i < out.length; i += 2) {
      // Box–Muller: two normals per pair of uniforms
      const r = Math.sqrt(-2 * Math.log(next())) * std;
      const t = 2 * Math.PI * next();
      f[0] = r * Math.cos(t);
      out[i] = (u[0]! + 0x7fff + ((u[0]! >>> 16) & 1)) >>> 16;
      if (i + 1 < out.length) {
        f[0] = r * Math.sin(t);
        out[i + 1] = (u[0]! + 0x7fff + ((u[0]! >>> 16) & 1)) >>> 16;
      }
    }
    return new Uint8Array(out.buffer);
  };
  const ones = new Uint8Array(new Uint16Array(d.hidden).fill(0x3f80).buffer);
  const hd = d.hidden / d.heads;
  const t: TensorToWrite[] = [{ name: 'model.embed_tokens.weight', dtype: 'BF16', shape: [d.vocab, d.hidden], data: matrix(d.vocab, d.hidden, 0.05) }];
  for (let l = 0; l < d.layers; l++) {
    const p = `model.layers.${l}`;
    t.push({ name: `${p}.input_layernorm.weight`, dtype: 'BF16', shape: [d.hidden], data: ones });
    t.push({ name: `${p}.self_attn.q_proj.weight`, dtype: 'BF16', shape: [d.heads * hd, d.hidden], data: matrix(d.heads * hd, d.hidden, 0.05) });
    t.push({ name: `${p}.self_attn.k_proj.weight`, dtype: 'BF16', shape: [d.kvHeads * hd, d.hidden], data: matrix(d.kvHeads * hd, d.hidden, 0.05) });
    t.push({ name: `${p}.self_attn.v_proj.weight`, dtype: 'BF16', shape: [d.kvHeads * hd, d.hidden], data: matrix(d.kvHeads * hd, d.hidden, 0.05) });
    t.push({ name: `${p}.self_attn.o_proj.weight`, dtype: 'BF16', shape: [d.hidden, d.heads * hd], data: matrix(d.hidden, d.heads * hd, 0.05) });
    t.push({ name: `${p}.post_attention_layernorm.weight`, dtype: 'BF16', shape: [d.hidden], data: ones });
    t.push({ name: `${p}.mlp.gate_proj.weight`, dtype: 'BF16', shape: [d.intermediate, d.hidden], data: matrix(d.intermediate, d.hidden, 0.05) });
    t.push({ name: `${p}.mlp.up_proj.weight`, dtype: 'BF16', shape: [d.intermediate, d.hidden], data: matrix(d.intermediate, d.hidden, 0.05) });
    t.push({ name: `${p}.mlp.down_proj.weight`, dtype: 'BF16', shape: [d.hidden, d.intermediate], data: matrix(d.hidden, d.intermediate, 0.05) });
  }
  t.push({ name: 'model.norm.weight', dtype: 'BF16', shape: [d.hidden], data: ones });
  t.push({ name: 'lm_head.weight', dtype: 'BF16', shape: [d.vocab, d.hidden], data: matrix(d.vocab, d.hidden, 0.05) });
  const file = join(dir, 'model-bf16.safetensors');
  writeFileSync(file, serializeSafetensors(t, { format: 'pt' }));
  const config = {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_act: 'silu',
    hidden_size: d.hidden,
    intermediate_size: d.intermediate,
    num_hidden_layers: d.layers,
    num_attention_heads: d.heads,
    num_key_value_heads: d.kvHeads,
    vocab_size: d.vocab,
    max_position_embeddings: 2048,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    rope_scaling: null,
    tie_word_embeddings: false,
    bos_token_id: 1,
    eos_token_id: 2,
    torch_dtype: 'bfloat16',
  };
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config, null, 2));
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) writeFileSync(join(dir, f), readFileSync(join(FIXTURE, f)));
  return file;
}

interface Variant {
  model: string;
  /** holds config.json and the tokenizer files */
  modelDir: string;
  type: GgufFileType;
  version: string;
  safetensors: string;
  gguf: string;
  source: string;
}

/**
 * The models compared, each in F32, F16 and BF16 with the F16/BF16 weights rounded from the F32
 * ones (nearest even), so each runtime gets bit-identical values of each type:
 * - base: the published TinyStories-656K. Its F32 values are bf16-exact (all-zero low 16 bits),
 *   so its three types hold the same numbers: any difference between them is the runtime's
 *   arithmetic, not the weights. Without ../shared, base.safetensors widened to F32 (exact).
 * - code-full: the full fine-tune on Python source, trained and stored in float32 (../shared only),
 *   so F16 and BF16 really round its weights.
 */
async function prepare(tmp: string, data: string, models: string[]): Promise<{ regDir: string; variants: Variant[] }> {
  const variants: Variant[] = [];
  for (const model of models.filter((m) => !m.startsWith('synthetic-'))) {
    if (model !== 'base' && model !== 'code-full') throw new Error(`--models: ${model} is not base, code-full or synthetic-…`);
    let f32 = join(data, 'tinystories', `${model}-fp32.safetensors`);
    let source = `${model}-fp32.safetensors`;
    if (!existsSync(f32)) {
      if (model !== 'base') {
        process.stderr.write(`  ${model}: ${f32} is not there (../shared absent?); skipped\n`);
        continue;
      }
      source = 'base.safetensors widened to F32 (exact)';
      f32 = join(tmp, 'base-f32.safetensors');
      await writeVariant(join(FIXTURE, 'base.safetensors'), 'F32', f32);
    }
    for (const type of ['F32', 'F16', 'BF16'] as const) {
      const file = type === 'F32' ? f32 : join(tmp, `${model}-${type.toLowerCase()}.safetensors`);
      if (type !== 'F32') await writeVariant(f32, type, file);
      variants.push({ model, modelDir: FIXTURE, type, version: `${model}-${type.toLowerCase()}`, safetensors: file, gguf: join(tmp, `${model}-${type.toLowerCase()}.gguf`), source: type === 'F32' ? source : `F32 rounded to ${type}` });
    }
  }
  for (const model of models.filter((m) => m.startsWith('synthetic-'))) {
    const dims = SYNTHETIC[model.slice('synthetic-'.length)];
    if (!dims) throw new Error(`--models: ${model} is not one of ${Object.keys(SYNTHETIC).map((k) => `synthetic-${k}`).join(', ')}`);
    const dir = join(tmp, model);
    const bf16 = writeSynthetic(dir, dims);
    for (const type of ['F32', 'F16', 'BF16'] as const) {
      const file = type === 'BF16' ? bf16 : join(dir, `model-${type.toLowerCase()}.safetensors`);
      if (type !== 'BF16') await writeVariant(bf16, type, file);
      variants.push({ model, modelDir: dir, type, version: `${model}-${type.toLowerCase()}`, safetensors: file, gguf: join(tmp, `${model}-${type.toLowerCase()}.gguf`), source: type === 'BF16' ? 'random, N(0, 0.05)' : `BF16 ${type === 'F32' ? 'widened (exact)' : 'rounded'} to ${type}` });
    }
  }
  if (variants.length === 0) throw new Error(`none of the models ${models.join(', ')} is available`);
  const regDir = join(tmp, 'registry');
  const { registry } = await initRegistry(regDir, variants[0]!.safetensors, { name: variants[0]!.version });
  for (const v of variants.slice(1)) await add(registry, v.safetensors, { name: v.version });
  for (const v of variants) await convertToGguf(v.safetensors, v.modelDir, v.gguf, v.type);
  return { regDir, variants };
}

// ---------------------------------------------------------------- comparing

interface Compared {
  /** generated tokens equal before the first difference */
  agree: number;
  /** max |Δ log p| over the positions predicting prompt tokens, and over those predicting generated ones */
  maxPrompt: number;
  maxSteps: number;
  argmaxEqual: number;
  positions: number;
  /** at the first differing step: each runtime's log p gap between its two best tokens there */
  divergence?: { step: number; at1Gap: number; llamaGap: number };
}

/** The best and second-best log p of one row. */
function topTwo(lp: Float64Array, off: number, V: number): { best: number; gap: number } {
  let best = 0;
  for (let j = 1; j < V; j++) if (lp[off + j]! > lp[off + best]!) best = j;
  let second = -Infinity;
  for (let j = 0; j < V; j++) if (j !== best) second = Math.max(second, lp[off + j]!);
  return { best, gap: lp[off + best]! - second };
}

function compare(a: PeerResult, b: PeerResult, aLp: Float64Array, bLp: Float64Array, promptLen: number, V: number): Compared {
  let agree = 0;
  while (agree < a.generated.length && a.generated[agree] === b.generated[agree]) agree++;
  let maxPrompt = 0;
  let maxSteps = 0;
  let argmaxEqual = 0;
  const n = aLp.length / V;
  for (let i = 0; i < n; i++) {
    let d = 0;
    for (let j = 0; j < V; j++) d = Math.max(d, Math.abs(aLp[i * V + j]! - bLp[i * V + j]!));
    // position i predicts token i + 1: a prompt token for i < promptLen - 1, then generated ones
    if (i < promptLen - 1) maxPrompt = Math.max(maxPrompt, d);
    else maxSteps = Math.max(maxSteps, d);
    if (topTwo(aLp, i * V, V).best === topTwo(bLp, i * V, V).best) argmaxEqual++;
  }
  const c: Compared = { agree, maxPrompt, maxSteps, argmaxEqual, positions: n };
  const pos = promptLen - 1 + agree;
  if (agree < a.generated.length && pos < n) {
    // up to here both generated the same ids, so this position is where llama.cpp chose differently
    c.divergence = { step: agree, at1Gap: topTwo(aLp, pos * V, V).gap, llamaGap: topTwo(bLp, pos * V, V).gap };
  }
  return c;
}

/**
 * The tolerance each weight type is held to: max |Δ log p| in nats.
 * F32: both runtimes multiply in float32, only in different orders: 1e-4.
 * F16/BF16: llama.cpp rounds the activations to the weights' type before each dot product
 * (ggml's vec_dot_type) while at1 widens the weights and keeps float32 activations, so the two
 * differ by that rounding carried through the model. The bounds are 8× apart, as the types' unit
 * roundoffs are (F16 2^-11, BF16 2^-8); the column "at1 F32 → this type" shows for scale what
 * rounding the weights themselves to the type changes.
 */
const TOLERANCE: Record<GgufFileType, number> = { F32: 1e-4, F16: 5e-2, BF16: 4e-1 };

function maxAbsDiff(a: Float64Array, b: Float64Array): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}

// ---------------------------------------------------------------- main

const fmtMB = (b: number): string => `${(b / MB).toFixed(1)} MB`;
const ratio = (a: number, b: number): string => `${(a / b).toFixed(2)}×`;
const exp = (x: number): string => (x === 0 ? '0' : x.toExponential(1));

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      'prompt-tokens': { type: 'string', default: '128' },
      tokens: { type: 'string', default: '64' },
      'llama-kv': { type: 'string', default: 'F32' },
      threads: { type: 'string', default: '1' },
      reps: { type: 'string', default: '3' },
      data: { type: 'string', default: join(ROOT, '..', 'shared', 'fixtures') },
      types: { type: 'string', default: 'F32,F16,BF16' },
      models: { type: 'string', default: 'base,code-full,synthetic-small' },
      keep: { type: 'boolean', default: false },
    },
  });
  const P = Number(values['prompt-tokens']);
  const N = Number(values.tokens);
  const llamaKv = values['llama-kv'];
  if (llamaKv !== 'F32' && llamaKv !== 'F16') throw new Error('--llama-kv must be F32 or F16');
  const threads = Number(values.threads);
  const reps = Number(values.reps);
  for (const [k, v] of [['--prompt-tokens', P], ['--tokens', N], ['--threads', threads], ['--reps', reps]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`${k} must be a positive integer`);
  }
  const types = values.types.split(',') as GgufFileType[];
  for (const t of types) if (!['F32', 'F16', 'BF16'].includes(t)) throw new Error(`--types: ${t} is not F32, F16 or BF16`);

  const missing = ensurePeerPackage('node-llama-cpp');
  if (missing) {
    process.stderr.write(`bench:peer needs llama.cpp: ${missing}\n`);
    process.exit(2);
  }

  const tk = await LlamaTokenizer.fromDir(FIXTURE);
  const textIds = tk.encode(PROMPT_TEXT);
  const prompt = [tk.bosTokenId ?? 1, ...textIds].slice(0, P);
  if (prompt.length < P) throw new Error(`the prompt text gives only ${prompt.length} tokens; --prompt-tokens at most that`);
  const contextSize = P + N + 8;

  const tmp = mkdtempSync(join(tmpdir(), 'at1-peer-bench-'));
  const cleanup = (): void => {
    if (!values.keep) rmSync(tmp, { recursive: true, force: true });
  };
  process.on('SIGINT', () => {
    cleanup();
    process.exit(130);
  });
  try {
    process.stderr.write(`preparing ${values.models} in F32, F16, BF16 (registry + GGUF) in ${tmp} …\n`);
    const { regDir, variants } = await prepare(tmp, values.data, values.models.split(','));
    const rows: { v: Variant; a: PeerResult; l: PeerResult; c: Compared; aLp: Float64Array }[] = [];
    mkdirSync(join(tmp, 'out'));
    const v0 = variants[0]!;
    const idleJob = { prompt, tokens: N, threads, contextSize, reps, text: PROMPT_TEXT, logprobsOut: '', idle: true };
    const idleAt1 = runChild({ ...idleJob, model: { kind: 'at1', regDir, version: v0.version, configPath: join(v0.modelDir, 'config.json'), tokenizerPath: v0.modelDir } });
    const idleLlama = runChild({ ...idleJob, model: { kind: 'llama.cpp', gguf: v0.gguf } });
    for (const v of variants.filter((x) => types.includes(x.type))) {
      const base = { prompt, tokens: N, threads, contextSize, reps, text: PROMPT_TEXT, llamaKv: llamaKv as 'F32' | 'F16' };
      process.stderr.write(`  ${v.version}: at1 …\n`);
      const aOut = join(tmp, 'out', `${v.version}-at1.f64`);
      // at1 first: the prompt and its greedy ids are what both score
      const a = runChild({ ...base, model: { kind: 'at1', regDir, version: v.version, configPath: join(v.modelDir, 'config.json'), tokenizerPath: v.modelDir }, logprobsOut: aOut });
      process.stderr.write(`  ${v.version}: llama.cpp …\n`);
      const lOut = join(tmp, 'out', `${v.version}-llama.f64`);
      const l = runChild({ ...base, model: { kind: 'llama.cpp', gguf: v.gguf }, scoreIds: a.scoreIds, logprobsOut: lOut });
      const V = (JSON.parse(readFileSync(join(v.modelDir, 'config.json'), 'utf8')) as { vocab_size: number }).vocab_size;
      const aLp = new Float64Array(new Uint8Array(readFileSync(aOut)).buffer);
      const lLp = new Float64Array(new Uint8Array(readFileSync(lOut)).buffer);
      if (aLp.length !== lLp.length) throw new Error(`${v.version}: at1 scored ${aLp.length / V} positions, llama.cpp ${lLp.length / V}`);
      rows.push({ v, a, l, c: compare(a, l, aLp, lLp, P, V), aLp });
    }

    let allWithin = true;
    // negative control: the first F32 model converted without the rotary Q/K permutation must be caught
    let control: string | undefined;
    const first = rows.find((r) => r.v.type === 'F32');
    if (first) {
      process.stderr.write(`  ${first.v.version}: llama.cpp on a GGUF without the Q/K permutation (negative control) …\n`);
      const wrong = join(tmp, `${first.v.version}-unpermuted.gguf`);
      await convertToGguf(first.v.safetensors, first.v.modelDir, wrong, 'F32', { ropePermute: false });
      const wOut = join(tmp, 'out', 'control.f64');
      const w = runChild({ prompt, tokens: N, threads, contextSize, reps: 1, text: PROMPT_TEXT, llamaKv: llamaKv as 'F32' | 'F16', model: { kind: 'llama.cpp', gguf: wrong }, scoreIds: first.a.scoreIds, logprobsOut: wOut });
      const V = first.aLp.length / first.a.scoreIds.length;
      const c = compare(first.a, w, first.aLp, new Float64Array(new Uint8Array(readFileSync(wOut)).buffer), P, V);
      const caught = Math.max(c.maxPrompt, c.maxSteps) > TOLERANCE.F32;
      allWithin &&= caught;
      control =
        `Negative control: ${first.v.model} F32 converted without the rotary Q/K row permutation gives max abs Δ log p ${exp(Math.max(c.maxPrompt, c.maxSteps))}, ` +
        `${c.agree} of ${N} greedy tokens equal, the same argmax at ${c.argmaxEqual} of ${c.positions} positions: ${caught ? 'caught' : 'NOT caught'} by the comparison.`;
    }

    const out: string[] = [];
    out.push(`## at1 vs llama.cpp: prompt ${P} token ids, ${N} greedy tokens, ${threads} thread(s), node ${process.version}`);
    out.push('');
    out.push(`at1: ${rows[0]?.a.runtime}; llama.cpp: ${rows[0]?.l.runtime}. Log-probabilities compared at the ${P - 1} positions predicting prompt tokens and the ${N} predicting generated ones (both on at1's greedy ids).`);
    out.push('');
    out.push('| weights | greedy tokens equal | first difference | max abs Δ log p, prompt | max abs Δ log p, generation | at1 F32 → this type | tolerance | within | same argmax |');
    out.push('|---|---|---|---|---|---|---|---|---|');
    for (const { v, a, c, aLp } of rows) {
      const f32 = rows.find((r) => r.v.model === v.model && r.v.type === 'F32');
      const own = v.type !== 'F32' && f32 && JSON.stringify(f32.a.scoreIds) === JSON.stringify(a.scoreIds) ? maxAbsDiff(f32.aLp, aLp) : undefined;
      const tol = TOLERANCE[v.type];
      const within = Math.max(c.maxPrompt, c.maxSteps) <= tol;
      const dv = c.divergence;
      // greedy paths may part only at a near-tie: where at1's two best tokens are closer than the tolerance
      const tie = dv !== undefined && dv.at1Gap <= tol;
      allWithin &&= within && (c.agree === N || tie);
      const diff = dv ? `step ${dv.step}: top-two gap at1 ${exp(dv.at1Gap)}, llama.cpp ${exp(dv.llamaGap)} nats${tie ? ' (a tie within the tolerance)' : ' (NOT a tie)'}` : 'none';
      out.push(
        `| ${v.model} ${v.type} (${v.source}) | ${c.agree} of ${N} | ${diff} | ${exp(c.maxPrompt)} | ${exp(c.maxSteps)} | ${own === undefined ? '–' : exp(own)} | ` +
          `${exp(tol)} | ${within ? 'yes' : 'NO'} | ${c.argmaxEqual} of ${c.positions} |`,
      );
    }
    out.push('');
    out.push('| weights | prompt tok/s at1 | llama.cpp | at1/llama.cpp | generation tok/s at1 | llama.cpp | at1/llama.cpp | peak RSS at1 | llama.cpp | at1/llama.cpp | load at1 | llama.cpp |');
    out.push('|---|---|---|---|---|---|---|---|---|---|---|---|');
    for (const { v, a, l } of rows) {
      out.push(
        `| ${v.model} ${v.type} | ${a.promptTokensPerSecond.toFixed(0)} | ${l.promptTokensPerSecond.toFixed(0)} | ${ratio(a.promptTokensPerSecond, l.promptTokensPerSecond)} | ` +
          `${a.genTokensPerSecond.toFixed(0)} | ${l.genTokensPerSecond.toFixed(0)} | ${ratio(a.genTokensPerSecond, l.genTokensPerSecond)} | ` +
          `${fmtMB(a.peakRssBytes)} | ${fmtMB(l.peakRssBytes)} | ${ratio(a.peakRssBytes, l.peakRssBytes)} | ${a.loadMs.toFixed(0)} ms | ${l.loadMs.toFixed(0)} ms |`,
      );
    }
    out.push('');
    const t0 = rows[0];
    if (t0) {
      const same = JSON.stringify(t0.a.textIds) === JSON.stringify(t0.l.textIds);
      let k = 0;
      while (k < t0.a.textIds.length && t0.a.textIds[k] === t0.l.textIds[k]) k++;
      out.push(
        `Tokenizers on the prompt text (a side check; the comparison above feeds ids): llama.cpp's SPM tokenizer on the converted vocabulary ` +
          (same ? `gives at1's ${t0.a.textIds.length} ids exactly.` : `differs from at1's ids from position ${k} (at1 ${t0.a.textIds.length} ids, llama.cpp ${t0.l.textIds.length}).`),
      );
    }
    out.push(
      `Prompt tok/s: median of ${reps} prompt passes (logits of the last position only, as generation needs). Generation tok/s: the ${N - 1} tokens after the first, median of ${reps} runs. ` +
        `Peak RSS: VmHWM of each runtime's own child process after load, prompt passes and generation (before the scoring pass, whose outputs node-llama-cpp hands back as one JS Map per position); ` +
        `node + tsx are included in both (idle, nothing loaded: at1 ${fmtMB(idleAt1.peakRssBytes)} with the registry open, llama.cpp ${fmtMB(idleLlama.peakRssBytes)} with its addon loaded); llama.cpp maps the GGUF.`,
    );
    if (control) out.push(control);
    process.stdout.write(out.join('\n') + '\n');
    if (!allWithin) process.exitCode = 1;
    if (values.keep) process.stderr.write(`kept ${tmp}\n`);
  } finally {
    cleanup();
  }
}

if (process.argv[2] === '--child') {
  const result = await at1Child(JSON.parse(process.argv[3]!) as PeerJob);
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
  process.exit(0);
} else {
  await main();
}
