/**
 * Runtime bench (`npm run bench:runtime [-- --shape 7b|1b|tiny] [--tokens N] [--threads N] [--no-fixture]`),
 * issue 11 "Bench". Not part of `npm test`.
 *
 * Builds a synthetic Llama model (bf16, untied embeddings, as Llama-2) with the
 * chosen shapes into a registry in a temp dir: a base and a fine-tune stored as
 * a delta against it (bench/synthetic.ts's writeChain: one training step of
 * noise). Each version is a model directory (weights, norms, config.json). The
 * tinystories fixture (base + code-lora as a delta) is measured the same way.
 *
 * Every mode runs in its own child process, so its peak RSS is the OS's
 * (VmHWM from /proc/self/status): --full-load, streaming at the smallest
 * budget the model opens with (LlamaModel.minimumBudget), and streaming at
 * 2 GB (at a mid budget when the model is not much larger than 2 GB). Each
 * child greedily generates from a fixed prompt of token ids through the
 * library, then computes the prompt's logits and hands back a SHA-256 of the
 * raw float32 bytes of the first position's (and all positions') logits:
 * equal digests are equal bits.
 *
 * What a streamed token costs is split by timing the weight source's
 * readInto (decode + SHA-256 verify, the registry's side) against the rest
 * of the pass (the kernels).
 *
 * --shape 7b needs ≈ 13.5 GB per version on disk while building (≈ 27 GB
 * before the sources are removed) and a long time on a small box.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  Registry,
  VersionWeights,
  add,
  initRegistry,
  openModel,
  parseLlamaConfig,
  serializeSafetensors,
  LlamaModel,
  LlamaTokenizer,
  type LlamaConfig,
} from '../src/index.js';
import { paramCount, writeChain, type Shape } from './synthetic.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, '..');
const FIXTURE = join(ROOT, 'fixtures', 'tinystories');
const MB = 1e6;
const GIB2 = 2 * 1024 ** 3;

// ---------------------------------------------------------------- child: one mode, one process

interface Job {
  regDir: string;
  version: string;
  mode: 'full' | 'stream' | 'idle';
  budget?: number;
  configPath?: string;
  tokenizerPath: string;
  prompt: number[];
  tokens: number;
  maxSeqLen: number;
  threads: number;
}

interface ChildResult {
  loadMs: number;
  firstTokenMs: number;
  genMs: number;
  generated: number[];
  /** decode-phase tokens (after the first) per second */
  tokensPerSecond: number;
  /** per decode-phase token: ms in readInto (decode + verify), total ms, bytes verified */
  perToken: { readMs: number; totalMs: number; bytes: number };
  loadBytes: number;
  planBytes: number;
  residentTensors: number;
  streamedTensors: number;
  firstLogitsSha: string;
  allLogitsSha: string;
  peakRssBytes: number;
  kernel: string;
}

function procStatus(field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) * 1024 : process.resourceUsage().maxRSS * 1024;
}

const sha = (a: Float32Array): string => createHash('sha256').update(new Uint8Array(a.buffer, a.byteOffset, a.byteLength)).digest('hex');

async function child(job: Job): Promise<void> {
  const reg = await Registry.open(job.regDir);
  if (job.mode === 'idle') {
    process.stdout.write(`RESULT ${JSON.stringify({ peakRssBytes: procStatus('VmHWM') })}\n`);
    process.exit(0);
  }
  const t0 = performance.now();
  const m = await openModel(reg, job.version, {
    fullLoad: job.mode === 'full',
    memoryBudget: job.mode === 'stream' ? job.budget : undefined,
    threads: job.threads,
    configPath: job.configPath,
    tokenizerPath: job.tokenizerPath,
    maxSeqLen: job.maxSeqLen,
  });
  const loadMs = performance.now() - t0;
  const w = m.weights;
  const loadBytes = w.stats.bytesVerified;

  // time spent getting verified bytes (decode + SHA-256) vs everything else
  let readMs = 0;
  const readInto = w.readInto.bind(w);
  w.readInto = async (...args: Parameters<typeof readInto>): Promise<void> => {
    const s = performance.now();
    try {
      await readInto(...args);
    } finally {
      readMs += performance.now() - s;
    }
  };

  const generated: number[] = [];
  let firstTokenMs = 0;
  let readAtFirst = 0;
  let bytesAtFirst = 0;
  const g0 = performance.now();
  for await (const tok of m.model.generate(job.prompt, { maxTokens: job.tokens, temperature: 0, stopAtEos: false })) {
    if (generated.length === 0) {
      firstTokenMs = performance.now() - g0;
      readAtFirst = readMs;
      bytesAtFirst = w.stats.bytesVerified;
    }
    generated.push(tok);
  }
  const genMs = performance.now() - g0;
  const decodeTokens = generated.length - 1;
  const perToken =
    decodeTokens > 0
      ? { readMs: (readMs - readAtFirst) / decodeTokens, totalMs: (genMs - firstTokenMs) / decodeTokens, bytes: (w.stats.bytesVerified - bytesAtFirst) / decodeTokens }
      : { readMs: readAtFirst, totalMs: firstTokenMs, bytes: bytesAtFirst - loadBytes };

  const lg = await m.model.logits(job.prompt);
  const V = m.config.vocabSize;
  const result: ChildResult = {
    loadMs,
    firstTokenMs,
    genMs,
    generated,
    tokensPerSecond: decodeTokens > 0 ? (decodeTokens * 1000) / (genMs - firstTokenMs) : 1000 / genMs,
    perToken,
    loadBytes,
    planBytes: m.model.memory.totalBytes,
    residentTensors: m.model.memory.residentTensors,
    streamedTensors: m.model.memory.streamedTensors,
    firstLogitsSha: sha(lg.subarray(0, V)),
    allLogitsSha: sha(lg),
    peakRssBytes: procStatus('VmHWM'),
    kernel: m.kernelName,
  };
  await m.close();
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
  process.exit(0);
}

function runChild<T>(job: Job): T {
  const r = spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--child', JSON.stringify(job)], {
    cwd: ROOT,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const line = r.stdout.split('\n').find((l) => l.startsWith('RESULT '));
  if (r.status !== 0 || !line) throw new Error(`child ${job.mode} ${job.budget ?? ''} of ${job.version} failed (status ${r.status}, ${r.signal ?? ''}):\n${r.stderr}`);
  return JSON.parse(line.slice(7)) as T;
}

// ---------------------------------------------------------------- synthetic models

interface Dims {
  hidden: number;
  intermediate: number;
  layers: number;
  heads: number;
  kvHeads: number;
  vocab: number;
}

const SHAPES: Record<string, Dims> = {
  // Llama-2-7B
  '7b': { hidden: 4096, intermediate: 11008, layers: 32, heads: 32, kvHeads: 32, vocab: 32000 },
  // the same proportions at half the width and half the depth (≈ 0.94 B parameters, 1.9 GB bf16)
  '1b': { hidden: 2048, intermediate: 5504, layers: 16, heads: 16, kvHeads: 16, vocab: 32000 },
  // a quick check of the bench itself (≈ 20 M parameters)
  tiny: { hidden: 256, intermediate: 688, layers: 4, heads: 4, kvHeads: 4, vocab: 32000 },
};

function matrixShapes(d: Dims): Shape[] {
  const hd = d.hidden / d.heads;
  const out: Shape[] = [{ name: 'model.embed_tokens.weight', shape: [d.vocab, d.hidden] }];
  for (let l = 0; l < d.layers; l++) {
    const p = `model.layers.${l}`;
    out.push({ name: `${p}.self_attn.q_proj.weight`, shape: [d.heads * hd, d.hidden] });
    out.push({ name: `${p}.self_attn.k_proj.weight`, shape: [d.kvHeads * hd, d.hidden] });
    out.push({ name: `${p}.self_attn.v_proj.weight`, shape: [d.kvHeads * hd, d.hidden] });
    out.push({ name: `${p}.self_attn.o_proj.weight`, shape: [d.hidden, d.heads * hd] });
    out.push({ name: `${p}.mlp.gate_proj.weight`, shape: [d.intermediate, d.hidden] });
    out.push({ name: `${p}.mlp.up_proj.weight`, shape: [d.intermediate, d.hidden] });
    out.push({ name: `${p}.mlp.down_proj.weight`, shape: [d.hidden, d.intermediate] });
  }
  out.push({ name: 'lm_head.weight', shape: [d.vocab, d.hidden] });
  return out;
}

/** RMSNorm weights (1-D, which writeChain does not write): all 1.0 in bf16, as a model is initialised. */
function normsFile(d: Dims): Uint8Array {
  const ones = new Uint16Array(d.hidden).fill(0x3f80);
  const data = new Uint8Array(ones.buffer);
  const names = ['model.norm.weight'];
  for (let l = 0; l < d.layers; l++) names.push(`model.layers.${l}.input_layernorm.weight`, `model.layers.${l}.post_attention_layernorm.weight`);
  return serializeSafetensors(names.map((name) => ({ name, dtype: 'BF16', shape: [d.hidden], data })));
}

function configJson(d: Dims): object {
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_act: 'silu',
    hidden_size: d.hidden,
    intermediate_size: d.intermediate,
    num_hidden_layers: d.layers,
    num_attention_heads: d.heads,
    num_key_value_heads: d.kvHeads,
    vocab_size: d.vocab,
    max_position_embeddings: 4096,
    rms_norm_eps: 1e-5,
    rope_theta: 10000,
    rope_scaling: null,
    attention_bias: false,
    mlp_bias: false,
    tie_word_embeddings: false,
    bos_token_id: 1,
    eos_token_id: 2,
    torch_dtype: 'bfloat16',
  };
}

async function buildSynthetic(tmp: string, d: Dims): Promise<{ regDir: string; rawBytes: number; storedFt: number; buildMs: number }> {
  const t0 = performance.now();
  const base = join(tmp, 'src-base');
  const ft = join(tmp, 'src-ft');
  mkdirSync(base);
  mkdirSync(ft);
  const shapes = matrixShapes(d);
  writeChain([join(base, 'model.safetensors'), join(ft, 'model.safetensors')], shapes, 6e-4, 7);
  const norms = normsFile(d);
  for (const dir of [base, ft]) {
    writeFileSync(join(dir, 'norms.safetensors'), norms);
    writeFileSync(join(dir, 'config.json'), JSON.stringify(configJson(d), null, 2));
  }
  const regDir = join(tmp, 'reg-synthetic');
  const { registry } = await initRegistry(regDir, base, { name: 'base' });
  const r = await add(registry, ft, { name: 'ft', parent: 'base' });
  rmSync(base, { recursive: true, force: true });
  rmSync(ft, { recursive: true, force: true });
  return { regDir, rawBytes: paramCount(shapes) * 2 + norms.length, storedFt: r.storedBytes, buildMs: performance.now() - t0 };
}

async function buildFixture(tmp: string): Promise<string> {
  const regDir = join(tmp, 'reg-fixture');
  const { registry } = await initRegistry(regDir, join(FIXTURE, 'base.safetensors'), { name: 'base' });
  await add(registry, join(FIXTURE, 'code-lora.safetensors'), { name: 'code-lora', parent: 'base' });
  return regDir;
}

// ---------------------------------------------------------------- measuring one model

interface Row {
  model: string;
  mode: string;
  budget: number | undefined;
  r: ChildResult;
}

const dtypeSize = (dt: string): number => (dt === 'F32' ? 4 : 2);

async function plan(regDir: string, version: string, configPath: string | undefined, maxSeqLen: number): Promise<{ floor: number; weightBytes: number; config: LlamaConfig }> {
  const reg = await Registry.open(regDir);
  const w = await VersionWeights.open(reg, version, { command: 'bench:runtime plan' });
  try {
    const side = configPath ? readFileSync(configPath) : await w.sideFile('config.json');
    if (!side) throw new Error(`${version} has no config.json`);
    const config = parseLlamaConfig(JSON.parse(Buffer.from(side).toString('utf8')));
    const floor = LlamaModel.minimumBudget(w, config, { maxSeqLen });
    const weightBytes = w.tensors().reduce((a, t) => a + t.shape.reduce((x, y) => x * y, 1) * dtypeSize(t.dtype), 0);
    return { floor, weightBytes, config };
  } finally {
    await w.close();
  }
}

async function measure(model: string, regDir: string, version: string, configPath: string | undefined, prompt: number[], tokens: number, threads: number): Promise<{ rows: Row[]; weightBytes: number }> {
  const maxSeqLen = prompt.length + tokens;
  const { floor, weightBytes } = await plan(regDir, version, configPath, maxSeqLen);
  const second = weightBytes > 2 * GIB2 ? GIB2 : Math.round(floor + weightBytes / 2);
  const secondName = second === GIB2 ? 'stream @ 2 GiB' : 'stream @ mid';
  const base = { regDir, version, configPath, tokenizerPath: join(FIXTURE, 'tokenizer.json'), prompt, tokens, maxSeqLen, threads };
  const rows: Row[] = [];
  for (const [mode, name, budget] of [
    ['full', 'full load', undefined],
    ['stream', 'stream @ min', floor],
    ['stream', secondName, second],
  ] as const) {
    process.stderr.write(`  ${model}: ${name}${budget ? ` (${fmtMB(budget)})` : ''} …\n`);
    const t0 = performance.now();
    const r = runChild<ChildResult>({ ...base, mode, budget });
    process.stderr.write(`    ${((performance.now() - t0) / 1000).toFixed(1)} s, peak RSS ${fmtMB(r.peakRssBytes)}\n`);
    rows.push({ model, mode: name, budget, r });
  }
  return { rows, weightBytes };
}

// ---------------------------------------------------------------- report

const fmtMB = (b: number): string => (b >= 1e9 ? `${(b / 1e9).toFixed(2)} GB` : `${(b / MB).toFixed(1)} MB`);
const fmtMs = (ms: number): string => (ms >= 10000 ? `${(ms / 1000).toFixed(1)} s` : `${ms.toFixed(0)} ms`);

function table(all: { rows: Row[]; weightBytes: number }[], idleRss: number): string {
  const out: string[] = [];
  out.push('| model | mode | budget | plan | peak RSS | RSS vs full | load | first token | tok/s | per decode token: total / decode+verify (share) / bytes verified | decode+verify rate | tokens = full | first-logits bits = full |');
  out.push('|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  const notes: string[] = [];
  for (const m of all) {
    const full = m.rows[0]!.r;
    for (const { model, mode, budget, r } of m.rows) {
      const pt = r.perToken;
      const share = pt.totalMs > 0 ? (100 * pt.readMs) / pt.totalMs : 0;
      const rate = pt.readMs > 0 && pt.bytes > 0 ? `${(pt.bytes / MB / (pt.readMs / 1000)).toFixed(0)} MB/s` : mode === 'full load' ? `load ${(r.loadBytes / MB / (r.loadMs / 1000)).toFixed(0)} MB/s` : '–';
      out.push(
        `| ${model} (${fmtMB(m.weightBytes)}) | ${mode} | ${budget === undefined ? '–' : fmtMB(budget)} | ${fmtMB(r.planBytes)} (${r.residentTensors} resident / ${r.streamedTensors} streamed) | ${fmtMB(r.peakRssBytes)} | ${(full.peakRssBytes / r.peakRssBytes).toFixed(2)}× | ${fmtMs(r.loadMs)} | ${fmtMs(r.firstTokenMs)} | ${r.tokensPerSecond.toFixed(2)} | ${fmtMs(pt.totalMs)} / ${fmtMs(pt.readMs)} (${share.toFixed(0)}%) / ${fmtMB(pt.bytes)} | ${rate} | ${JSON.stringify(r.generated) === JSON.stringify(full.generated) ? 'yes' : 'NO'} | ${r.firstLogitsSha === full.firstLogitsSha && r.allLogitsSha === full.allLogitsSha ? `yes (${r.firstLogitsSha.slice(0, 12)}…)` : 'NO'} |`,
      );
    }
    const min = m.rows[1]!.r;
    const ratio = full.peakRssBytes / min.peakRssBytes;
    const ratioAboveIdle = (full.peakRssBytes - idleRss) / Math.max(1, min.peakRssBytes - idleRss);
    notes.push(
      `- ${m.rows[0]!.model}: full-load RSS / streaming-at-min RSS = **${ratio.toFixed(2)}×** (target ≥ 20×: ${ratio >= 20 ? 'met' : 'not met'}); ` +
        `above the ${fmtMB(idleRss)} of an idle node process with the registry open: ${ratioAboveIdle.toFixed(1)}×. ` +
        `A streamed decode token spends ${min.perToken.totalMs > 0 ? ((100 * min.perToken.readMs) / min.perToken.totalMs).toFixed(0) : '?'}% of its time at the min budget, ` +
        `${m.rows[2]!.r.perToken.totalMs > 0 ? ((100 * m.rows[2]!.r.perToken.readMs) / m.rows[2]!.r.perToken.totalMs).toFixed(0) : '?'}% at ${m.rows[2]!.mode.slice(9)}, ` +
        `in decode + verify (readInto); the rest is the forward pass's kernels.`,
    );
  }
  return [...out, '', ...notes].join('\n');
}

// ---------------------------------------------------------------- main

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

async function main(): Promise<void> {
  const shapeName = arg('--shape') ?? '7b';
  const dims = SHAPES[shapeName];
  if (!dims) throw new Error(`--shape must be one of ${Object.keys(SHAPES).join(', ')}, is ${shapeName}`);
  const tokens = Number(arg('--tokens') ?? 8);
  if (!Number.isInteger(tokens) || tokens < 1) throw new Error(`--tokens must be a positive integer`);
  const threads = Number(arg('--threads') ?? 1);
  const fixture = !process.argv.includes('--no-fixture');

  const tmp = mkdtempSync(join(tmpdir(), 'at1-runtime-bench-'));
  const cleanup = (): void => rmSync(tmp, { recursive: true, force: true });
  process.on('SIGINT', () => {
    cleanup();
    process.exit(130);
  });
  try {
    const results: { rows: Row[]; weightBytes: number }[] = [];
    const d = dims;
    const params = paramCount(matrixShapes(d));
    process.stderr.write(`building synthetic ${shapeName} (${(params / 1e9).toFixed(2)} B parameters, bf16) base + fine-tune delta in ${tmp} …\n`);
    const syn = await buildSynthetic(tmp, d);
    process.stderr.write(`  built in ${(syn.buildMs / 1000).toFixed(1)} s; the fine-tune stored ${fmtMB(syn.storedFt)} for ${fmtMB(syn.rawBytes)} raw\n`);
    // a fixed prompt of token ids (the synthetic vocab is Llama's size, not the tokenizer's): BOS + 7 ids
    const synPrompt = [1, 450, 4996, 17354, 1701, 29916, 432, 17204].map((t) => t % d.vocab);
    const idle = runChild<{ peakRssBytes: number }>({ regDir: syn.regDir, version: 'ft', mode: 'idle', tokenizerPath: '', prompt: [], tokens: 0, maxSeqLen: 1, threads });
    results.push(await measure(`synthetic ${shapeName} ft`, syn.regDir, 'ft', undefined, synPrompt, tokens, threads));

    if (fixture) {
      process.stderr.write('building the fixture registry (tinystories base + code-lora) …\n');
      const regDir = await buildFixture(tmp);
      const tk = await LlamaTokenizer.fromDir(FIXTURE);
      const prompt = [tk.bosTokenId ?? 1, ...tk.encode('Once upon a time, there was a little')];
      results.push(await measure('fixture code-lora', regDir, 'code-lora', join(FIXTURE, 'config.json'), prompt, tokens, threads));
    }

    const kernel = results[0]!.rows[0]!.r.kernel;
    process.stdout.write(`\n## Runtime bench: --shape ${shapeName}, ${tokens} tokens greedy, ${threads} thread(s), kernels ${kernel}, node ${process.version}\n\n`);
    process.stdout.write(table(results, idle.peakRssBytes) + '\n');
    process.stdout.write(
      `\nPeak RSS is VmHWM of each mode's own child process (node, tsx and the wasm kernels included). ` +
        `"first token" covers the prompt pass; tok/s and the per-token split are over the decode tokens after it. ` +
        `Bits: SHA-256 of the raw float32 logits of the prompt's first position (and of all positions), compared with full load.\n`,
    );
  } finally {
    cleanup();
  }
}

if (process.argv[2] === '--child') {
  await child(JSON.parse(process.argv[3]!) as Job);
} else {
  await main();
}
