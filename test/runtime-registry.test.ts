/**
 * The runtime running straight from a registry: `at1 run` reproduces the
 * golden greedy decode; streaming at the smallest budget, full load, 1 and 2
 * threads and the JS and WebAssembly kernels give bit-identical logits; a
 * damaged weight object stops the run with an integrity error naming the
 * tensor; a model-directory version brings its own config and tokenizer; a
 * one-file version without them is refused clearly; `at1 perplexity` equals
 * the library's score of the same file read without the registry.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { add, initRegistry, LlamaModel, loadLlamaConfig, LlamaTokenizer, openModel, Registry, SafetensorsFileWeightSource, tensorsOf } from '../src/index.js';
import { LlamaModel as RuntimeModel } from '../src/runtime/model.js';
import { at1, EMBEDDED, tempDir } from './helpers.js';
import { GOLDEN_DIR, SNIPPETS, sameBits } from './runtime-helpers.js';

const GOLDEN = JSON.parse(readFileSync(join(GOLDEN_DIR, 'golden.json'), 'utf8')) as { runs: { file: string; greedy_tokens: number[] }[] };
const BASE_TOKENS = GOLDEN.runs.find((r) => r.file === 'base.safetensors')!.greedy_tokens;
const CONFIG = join(EMBEDDED, 'config.json');
const TOKENIZER = join(EMBEDDED, 'tokenizer.json');
const MODEL_FLAGS = ['--config', CONFIG, '--tokenizer', TOKENIZER];

async function family(t: Parameters<typeof tempDir>[0]): Promise<string> {
  const dir = join(tempDir(t), 'reg');
  await initRegistry(dir, join(EMBEDDED, 'base.safetensors'));
  const reg = await Registry.open(dir);
  await add(reg, join(EMBEDDED, 'code-lora.safetensors')); // a delta version: its weights decode through reference chains
  return dir;
}

test('at1 run from the registry yields the golden greedy decode of base, with JSON as the issue specifies', async (t) => {
  const dir = await family(t);
  const r = at1('run', dir, 'base', ...MODEL_FLAGS, '--max-tokens', String(BASE_TOKENS.length), '--json');
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { promptTokenIds: number[]; generatedTokenIds: number[]; text: string; timings: Record<string, number>; peakRssBytes: number };
  assert.deepEqual(out.promptTokenIds, [1]);
  assert.deepEqual(out.generatedTokenIds, BASE_TOKENS);
  assert.match(out.text, /^Once upon a time/);
  assert.ok(out.peakRssBytes > 0 && typeof out.timings.totalMs === 'number');
  const plain = at1('run', dir, 'base', ...MODEL_FLAGS, '--max-tokens', '8', '--memory-budget', '1.5MB');
  assert.equal(plain.status, 0, plain.stderr);
  assert.match(plain.stdout, /^Once upon a time/, 'text on stdout as it is produced');
  assert.match(plain.stderr, /tokens\/s.*peak RSS.*decoded and verified/, 'statistics on stderr');
});

test('streaming at the smallest budget, full load, 1 or 2 threads, JS or wasm kernels: bit-identical logits and tokens (a delta version)', async (t) => {
  const dir = await family(t);
  const reg = await Registry.open(dir);
  const prompt = [1, ...new LlamaTokenizer(JSON.parse(readFileSync(TOKENIZER, 'utf8')) as object).encode('Once upon a time, a little fox')];
  const probe = await openModel(reg, 'code-lora', { configPath: CONFIG, tokenizerPath: TOKENIZER, kernels: 'js' });
  const floor = RuntimeModel.minimumBudget(probe.weights, probe.config);
  await probe.close();
  const modes = [
    { kernels: 'js' as const, fullLoad: true },
    { kernels: 'wasm' as const, fullLoad: true },
    { kernels: 'wasm' as const, memoryBudget: floor },
    { kernels: 'wasm' as const, memoryBudget: floor + 200_000, threads: 2 },
    { kernels: 'js' as const, memoryBudget: floor },
  ];
  let want: { logits: Float32Array; tokens: number[] } | undefined;
  for (const mode of modes) {
    const m = await openModel(reg, 'code-lora', { configPath: CONFIG, tokenizerPath: TOKENIZER, ...mode });
    try {
      const logits = await m.model.logits(prompt);
      const tokens: number[] = [];
      for await (const tok of m.model.generate(prompt, { maxTokens: 12, temperature: 0.8, topK: 40, seed: 7 })) tokens.push(tok);
      if (!want) want = { logits, tokens };
      else {
        assert.ok(sameBits(logits, want.logits), `logits bits differ in ${JSON.stringify(mode)}`);
        assert.deepEqual(tokens, want.tokens, `sampled tokens differ in ${JSON.stringify(mode)}`);
      }
      if (mode.memoryBudget !== undefined) assert.ok(m.model.memory.streamedTensors > 0, 'the small budget streams');
    } finally {
      await m.close();
    }
  }
});

test('a damaged weight object stops at1 run with an integrity error naming the tensor (exit 1), and nothing is generated', async (t) => {
  const dir = await family(t);
  const reg = await Registry.open(dir);
  const loc = tensorsOf(await reg.manifest('base')).find((x) => x.tensor.name === 'model.layers.1.mlp.down_proj.weight')!;
  const digest = loc.tensor.chunks[0]!;
  const path = join(dir, 'objects', digest.slice(0, 2), digest);
  const bytes = readFileSync(path);
  bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 0x01; // one bit of the payload
  writeFileSync(path, bytes);
  for (const extra of [[], ['--memory-budget', '1.5MB']]) {
    const r = at1('run', dir, 'base', ...MODEL_FLAGS, '--max-tokens', '5', ...extra);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /model\.layers\.1\.mlp\.down_proj\.weight/);
    assert.equal(r.stdout, '', 'no token was produced from unverified weights');
  }
});

test('a model-directory version brings its own config.json and tokenizer; a one-file version without them is refused naming the version', async (t) => {
  const work = tempDir(t);
  const model = join(work, 'tinystories');
  mkdirSync(model);
  copyFileSync(join(EMBEDDED, 'base.safetensors'), join(model, 'model.safetensors'));
  for (const f of ['config.json', 'tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(EMBEDDED, f), join(model, f));
  const dir = join(work, 'reg');
  assert.equal(at1('registry', 'init', model, dir, '--name', 'hf').status, 0);
  const r = at1('run', dir, 'hf', '--max-tokens', String(BASE_TOKENS.length), '--json');
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual((JSON.parse(r.stdout) as { generatedTokenIds: number[] }).generatedTokenIds, BASE_TOKENS);
  const one = join(work, 'one');
  assert.equal(at1('registry', 'init', join(EMBEDDED, 'base.safetensors'), one).status, 0);
  const refused = at1('run', one, 'base', '--max-tokens', '3');
  assert.equal(refused.status, 2);
  assert.match(refused.stderr, /version base holds no config\.json.*--config/);
  const unknown = at1('run', one, 'nope', ...MODEL_FLAGS);
  assert.equal(unknown.status, 2);
  assert.match(unknown.stderr, /nope/);
});

test('at1 perplexity equals the library score of the same file read without the registry, bit for bit', async (t) => {
  const dir = await family(t);
  const file = join(SNIPPETS, 'decode-go-head.txt');
  const r = at1('perplexity', dir, 'base', file, ...MODEL_FLAGS, '--max-tokens', '200', '--memory-budget', '1.6MB', '--json');
  assert.equal(r.status, 0, r.stderr);
  const got = JSON.parse(r.stdout) as { tokenIds: number[]; nllNats: number; perplexity: number; bitsPerByte: number; predictedTokens: number; truncated: boolean };
  assert.equal(got.tokenIds.length, 200);
  assert.equal(got.tokenIds[0], 1, 'BOS first');
  assert.equal(got.truncated, true);
  const src = await SafetensorsFileWeightSource.open(join(EMBEDDED, 'base.safetensors'));
  const m = await LlamaModel.open(src, await loadLlamaConfig(CONFIG), { fullLoad: true });
  try {
    const tk = await LlamaTokenizer.fromDir(EMBEDDED);
    const ids = [1, ...tk.encode(readFileSync(file, 'utf8'))].slice(0, 200);
    assert.deepEqual(got.tokenIds, ids);
    const want = await m.score(ids);
    assert.equal(got.nllNats, want.nllNats);
    assert.equal(got.perplexity, want.perplexity);
    assert.equal(got.predictedTokens, 199);
    assert.ok(got.bitsPerByte > 0 && Number.isFinite(got.bitsPerByte));
  } finally {
    await m.close();
  }
});
