/**
 * `at1 run` and `at1 perplexity`: a Llama model straight from a registry
 * version, weights streamed and verified as the forward pass needs them.
 * Generated text goes to stdout as it is produced; statistics to stderr at
 * the end (or one JSON object on stdout with --json).
 */
import { readFile } from 'node:fs/promises';
import { Command, InvalidArgumentError, Option } from 'commander';
import { At1Error, openModel, Registry, StreamDecoder, type OpenedModel, type OpenModelOptions } from '../index.js';
import { cliOpenOptions } from './env.js';
import { formatBytes, printJson } from './output.js';

const UNITS: Record<string, number> = { '': 1, b: 1, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12, kib: 1024, mib: 1024 ** 2, gib: 1024 ** 3, tib: 1024 ** 4 };

/** "600MB", "2GiB", "1.5GB", "123456": bytes. */
export function parseByteSize(v: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(v);
  const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new InvalidArgumentError('expected a size such as 600MB, 2GiB or a number of bytes');
  return Math.floor(Number(m[1]) * unit);
}

export function intArg(min: number, max: number): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`expected a whole number from ${min} to ${max}`);
    return n;
  };
}

function numArg(min: number, max: number): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < min || n > max) throw new InvalidArgumentError(`expected a number from ${min} to ${max}`);
    return n;
  };
}

interface ModelCliOptions {
  memoryBudget?: number;
  fullLoad?: boolean;
  threads?: number;
  kernels?: 'wasm' | 'js';
  config?: string;
  tokenizer?: string;
  json?: boolean;
}

function withModelOptions(c: Command): Command {
  return c
    .option('--memory-budget <size>', 'bytes the model may hold (KV cache included); the rest is streamed each pass, e.g. 600MB', parseByteSize)
    .option('--full-load', 'read and verify every tensor first and keep it (the baseline)')
    .option('--threads <n>', 'threads for the matrix products (same bits for any count)', intArg(1, 64), 1)
    .addOption(new Option('--kernels <kind>', 'numeric kernels (same bits either way)').choices(['wasm', 'js']).default('wasm'))
    .option('--config <path>', "config.json, for a version that does not hold one (a one-file version)")
    .option('--tokenizer <path>', 'tokenizer.json (or its directory), for a version that does not hold one')
    .option('--json', 'print one JSON object at the end');
}

function openOptions(o: ModelCliOptions): OpenModelOptions {
  if (o.fullLoad && o.memoryBudget !== undefined) throw new At1Error('E_INPUT', '--full-load and --memory-budget exclude each other');
  return { memoryBudget: o.memoryBudget, fullLoad: o.fullLoad ?? o.memoryBudget === undefined, threads: o.threads, kernels: o.kernels, configPath: o.config, tokenizerPath: o.tokenizer };
}

function peakRssBytes(): number {
  return process.resourceUsage().maxRSS * 1024;
}

function memoryJson(m: OpenedModel): Record<string, unknown> {
  return { ...m.model.memory, bytesVerified: m.weights.stats.bytesVerified, kernels: m.kernelName };
}

export function runCommand(): Command {
  const cmd = new Command('run')
    .description('generate text with a version of a registry, weights streamed and verified as they are used')
    .argument('<dir>', 'the registry')
    .argument('<version>', 'the version to run')
    .option('--prompt <text>', 'the prompt (default: none, generation starts from BOS)')
    .option('--prompt-file <file>', 'read the prompt from a file')
    .option('--max-tokens <n>', 'tokens to generate at most', intArg(1, 1 << 20), 64)
    .option('--temperature <t>', '0 is greedy', numArg(0, 100), 0)
    .option('--top-k <k>', 'sample among the k most likely tokens', intArg(1, 1 << 24))
    .option('--top-p <p>', 'sample within cumulative probability p', numArg(0, 1))
    .option('--seed <n>', 'seed of the sampler (same seed, same tokens)', intArg(0, 2 ** 32 - 1), 0);
  return withModelOptions(cmd).action(async (dir: string, version: string, o: ModelCliOptions & { prompt?: string; promptFile?: string; maxTokens: number; temperature: number; topK?: number; topP?: number; seed: number }) => {
    if (o.prompt !== undefined && o.promptFile !== undefined) throw new At1Error('E_INPUT', '--prompt and --prompt-file exclude each other');
    const promptText = o.promptFile !== undefined ? await readFile(o.promptFile, 'utf8').catch((e: Error) => { throw new At1Error('E_NOT_FOUND', `cannot read the prompt file ${o.promptFile}: ${e.message}`); }) : (o.prompt ?? '');
    const t0 = performance.now();
    const reg = await Registry.open(dir, cliOpenOptions());
    const m = await openModel(reg, version, openOptions(o));
    try {
      const bos = m.tokenizer.bosTokenId ?? m.config.bosTokenId;
      const prompt = [...(bos !== undefined ? [bos] : []), ...(promptText ? m.tokenizer.encode(promptText) : [])];
      if (prompt.length === 0) throw new At1Error('E_INPUT', 'the model has no BOS token and the prompt is empty: nothing to start from');
      if (prompt.length >= m.config.maxPositionEmbeddings) throw new At1Error('E_INPUT', `the prompt is ${prompt.length} tokens; the model's context is ${m.config.maxPositionEmbeddings}`);
      const tLoaded = performance.now();
      const decoder = new StreamDecoder(m.tokenizer, { context: prompt, skipSpecialTokens: true });
      const generated: number[] = [];
      let tFirst: number | undefined;
      for await (const tok of m.model.generate(prompt, { maxTokens: o.maxTokens, temperature: o.temperature, topK: o.topK, topP: o.topP, seed: o.seed })) {
        tFirst ??= performance.now();
        generated.push(tok);
        const text = decoder.push(tok);
        if (!o.json && text) process.stdout.write(text);
      }
      const tail = decoder.flush();
      if (!o.json) process.stdout.write(tail + '\n');
      const tEnd = performance.now();
      const genSeconds = (tEnd - (tFirst ?? tEnd)) / 1000;
      const timings = {
        loadMs: tLoaded - t0,
        firstTokenMs: tFirst !== undefined ? tFirst - tLoaded : undefined,
        totalMs: tEnd - t0,
        // the first token's time is the prompt pass; the rate is over the tokens after it
        tokensPerSecond: generated.length > 1 && genSeconds > 0 ? (generated.length - 1) / genSeconds : undefined,
      };
      const peak = peakRssBytes();
      if (o.json) {
        printJson({ version, promptTokenIds: prompt, generatedTokenIds: generated, text: m.tokenizer.decode(generated, { skipSpecialTokens: true }), timings, peakRssBytes: peak, memory: memoryJson(m) });
      } else {
        process.stderr.write(
          `at1 run: ${generated.length} tokens, ${timings.tokensPerSecond?.toFixed(1) ?? '-'} tokens/s, first token ${timings.firstTokenMs?.toFixed(0) ?? '-'} ms, ` +
            `peak RSS ${formatBytes(peak)}, ${formatBytes(m.weights.stats.bytesVerified)} decoded and verified, ${m.kernelName}` +
            `${m.model.memory.fullLoad ? ', full load' : `, budget ${formatBytes(m.model.memory.budget ?? 0)} (${m.model.memory.streamedTensors} tensors streamed)`}\n`,
        );
      }
    } finally {
      await m.close();
    }
  });
}

export function perplexityCommand(): Command {
  const cmd = new Command('perplexity')
    .description('score a text file with a version: BOS, then every token given all before it (nats, perplexity, bits per byte)')
    .argument('<dir>', 'the registry')
    .argument('<version>', 'the version to score with')
    .argument('<file>', 'a UTF-8 text file')
    .option('--max-tokens <n>', "score at most N tokens, BOS included (default and at most: the model's context)", intArg(2, 1 << 24));
  return withModelOptions(cmd).action(async (dir: string, version: string, file: string, o: ModelCliOptions & { maxTokens?: number }) => {
    const bytes = await readFile(file).catch((e: Error) => {
      throw new At1Error('E_NOT_FOUND', `cannot read ${file}: ${e.message}`);
    });
    const text = new TextDecoder('utf-8', { fatal: true }).decode(bytes); // throws on invalid UTF-8: scored text must be text
    const t0 = performance.now();
    const reg = await Registry.open(dir, cliOpenOptions());
    const m = await openModel(reg, version, openOptions(o));
    try {
      const bos = m.tokenizer.bosTokenId ?? m.config.bosTokenId;
      if (bos === undefined) throw new At1Error('E_INPUT', 'the model has no BOS token to start the sequence with');
      const all = [bos, ...m.tokenizer.encode(text)];
      const limit = Math.min(o.maxTokens ?? m.config.maxPositionEmbeddings, m.config.maxPositionEmbeddings);
      const ids = all.slice(0, limit);
      if (ids.length < 2) throw new At1Error('E_INPUT', `${file} holds no tokens to score`);
      const truncated = ids.length < all.length;
      const r = await m.model.score(ids);
      // Bits per byte over the bytes the scored tokens cover: the whole file, or when cut, the UTF-8 bytes of the kept tokens' text.
      const bytesScored = truncated ? Buffer.byteLength(m.tokenizer.decode(ids.slice(1))) : bytes.length;
      const result = {
        version,
        file,
        tokenIds: ids,
        tokens: ids.length,
        predictedTokens: r.predictedTokens,
        truncated,
        fileTokens: all.length,
        nllNats: r.nllNats,
        perplexity: r.perplexity,
        bitsPerToken: r.bitsPerToken,
        bytes: bytesScored,
        bitsPerByte: r.nllNats / Math.LN2 / bytesScored,
        timings: { totalMs: performance.now() - t0 },
        peakRssBytes: peakRssBytes(),
        memory: memoryJson(m),
      };
      if (o.json) return printJson(result);
      process.stdout.write(
        `${file}: ${r.predictedTokens} tokens predicted${truncated ? ` (cut from ${all.length - 1}: the context is ${limit})` : ''}\n` +
          `  nll ${r.nllNats.toFixed(4)} nats, perplexity ${r.perplexity.toFixed(4)}, ${r.bitsPerToken.toFixed(4)} bits/token, ${result.bitsPerByte.toFixed(4)} bits/byte over ${bytesScored} bytes\n`,
      );
    } finally {
      await m.close();
    }
  });
}
