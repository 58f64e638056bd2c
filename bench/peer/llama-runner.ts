/**
 * The llama.cpp side of the peer bench, run as its own child process
 * (`node --import tsx bench/peer/llama-runner.ts JOB_JSON`) so its peak RSS
 * is its own. llama.cpp comes through node-llama-cpp's prebuilt CPU build
 * (getLlama({gpu: false, build: 'never'}): never compiles, never downloads).
 *
 * node-llama-cpp is imported by a computed name: it lives in
 * bench/peer/node_modules, which a fresh clone does not have, and the type
 * check must not need it. The few calls used are typed below.
 */
import { writeFileSync } from 'node:fs';
import { idleResult, median, peakRss, type PeerJob, type PeerResult } from './runner-protocol.js';

type Token = number;
interface NextOptions {
  generateNext: { token: true; probabilities: true; options: { temperature: 0 } };
}
interface Sequence {
  clearHistory(): Promise<void>;
  evaluateWithoutGeneratingNewTokens(tokens: Token[]): Promise<void>;
  evaluate(tokens: Token[], opts: { temperature: 0; yieldEogToken: true }): AsyncGenerator<Token, void, void | Token | Token[]>;
  controlledEvaluate(input: (Token | [Token, NextOptions])[]): Promise<(undefined | { next: { token?: Token; probabilities?: Map<Token, number> } })[]>;
}
interface Context {
  getSequence(): Sequence;
  contextSize: number;
  dispose(): Promise<void>;
}
interface Model {
  tokenize(text: string): Token[];
  createContext(opts: {
    contextSize: number;
    batchSize: number;
    threads: number;
    sequences: number;
    flashAttention: boolean;
    experimentalKvCacheKeyType: string;
    experimentalKvCacheValueType: string;
  }): Promise<Context>;
  dispose(): Promise<void>;
}
interface Llama {
  loadModel(opts: { modelPath: string }): Promise<Model>;
  buildType: string;
  cpuMathCores: number;
  dispose(): Promise<void>;
}
interface NodeLlamaCpp {
  getLlama(opts: { gpu: false; build: 'never'; logLevel: string; maxThreads?: number }): Promise<Llama>;
}

const PKG = 'node-llama-cpp';

async function run(job: PeerJob): Promise<PeerResult> {
  if (job.model.kind !== 'llama.cpp') throw new Error('llama-runner runs GGUF models');
  const { getLlama } = (await import(PKG)) as NodeLlamaCpp;
  const llama = await getLlama({ gpu: false, build: 'never', logLevel: 'error', maxThreads: job.threads });
  if (job.idle) return idleResult(peakRss());
  const t0 = performance.now();
  const model = await llama.loadModel({ modelPath: job.model.gguf });
  const kv = job.llamaKv ?? 'F32';
  const ctx = await model.createContext({
    contextSize: job.contextSize,
    batchSize: job.contextSize,
    threads: job.threads,
    sequences: 1,
    flashAttention: false,
    experimentalKvCacheKeyType: kv,
    experimentalKvCacheValueType: kv,
  });
  const seq = ctx.getSequence();
  const loadMs = performance.now() - t0;

  // the prompt pass: one batch of all prompt positions, logits of the last only (as at1's forward(…, 'last'))
  const times: number[] = [];
  for (let r = 0; r < job.reps; r++) {
    await seq.clearHistory();
    const s = performance.now();
    await seq.evaluateWithoutGeneratingNewTokens(job.prompt);
    times.push(performance.now() - s);
  }
  const promptMs = median(times);

  let generated: Token[] = [];
  const firsts: number[] = [];
  const rates: number[] = [];
  for (let r = 0; r < job.reps; r++) {
    await seq.clearHistory();
    generated = [];
    let firstTokenMs = 0;
    const g0 = performance.now();
    // yieldEogToken: go on past EOS as at1's generate does with stopAtEos false
    for await (const tok of seq.evaluate(job.prompt, { temperature: 0, yieldEogToken: true })) {
      if (generated.length === 0) firstTokenMs = performance.now() - g0;
      generated.push(tok);
      if (generated.length >= job.tokens) break;
    }
    firsts.push(firstTokenMs);
    rates.push(generated.length > 1 ? ((generated.length - 1) * 1000) / (performance.now() - g0 - firstTokenMs) : 0);
  }

  // log-probabilities of every position of scoreIds: node-llama-cpp hands back the softmax of the raw
  // logits over the whole vocabulary (the greedy sampler leaves them as they are), ln of which is the
  // log-softmax, i.e. the logits less one constant per position.
  // peak RSS of the run (load, prompt passes, generation), before the scoring below allocates its large outputs
  const peakRssBytes = peakRss();
  const scoreIds = job.scoreIds ?? [...job.prompt, ...generated.slice(0, -1)];
  await seq.clearHistory();
  const next: NextOptions = { generateNext: { token: true, probabilities: true, options: { temperature: 0 } } };
  const out = await seq.controlledEvaluate(scoreIds.map((t): Token | [Token, NextOptions] => [t, next]));
  const n = scoreIds.length;
  const V = out[0]?.next.probabilities?.size ?? 0;
  const lp = new Float64Array(n * V);
  for (let i = 0; i < n; i++) {
    const probs = out[i]?.next.probabilities;
    if (!probs || probs.size !== V) throw new Error(`llama.cpp gave no full distribution at position ${i}`);
    for (const [tok, p] of probs) lp[i * V + tok] = Math.log(p);
  }
  writeFileSync(job.logprobsOut, new Uint8Array(lp.buffer));

  const result: PeerResult = {
    runtime: `llama.cpp (node-llama-cpp 3.21.1, ${llama.buildType} CPU build, ${kv} KV cache, no flash attention)`,
    loadMs,
    promptMs,
    promptTokensPerSecond: (job.prompt.length * 1000) / promptMs,
    firstTokenMs: median(firsts),
    genTokensPerSecond: median(rates),
    generated,
    scoreIds,
    textIds: model.tokenize(job.text),
    peakRssBytes,
  };
  await ctx.dispose();
  await model.dispose();
  await llama.dispose();
  return result;
}

const job = JSON.parse(process.argv[2]!) as PeerJob;
const result = await run(job);
process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
process.exit(0);
