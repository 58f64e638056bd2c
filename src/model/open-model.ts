/**
 * Open a registry version as a runnable Llama model: the glue between
 * `registry/` (verified weights, side files) and `runtime/` (config,
 * tokenizer, forward pass), which do not know each other.
 *
 * Where config.json and tokenizer.json come from, in this order: the paths
 * given in the options; else the version itself when it is a model
 * directory (read from the registry and checked against their SHA-256 like
 * any file). A one-file version holds only tensors, so it needs them given
 * (`--config`, `--tokenizer`); the error says so.
 */
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { At1Error } from '../errors.js';
import type { Registry } from '../registry/registry.js';
import { VersionWeights } from '../registry/version-weights.js';
import { parseLlamaConfig, type LlamaConfig } from '../runtime/config.js';
import { LlamaModel } from '../runtime/model.js';
import { LlamaTokenizer } from '../runtime/tokenizer.js';
import { kernels, referenceKernels, useKernels, type Kernels } from '../kernels/index.js';
import { wasmKernels, type WasmKernels } from '../kernels/wasm.js';

export interface OpenModelOptions {
  /** Bytes the model may hold (KV cache, activations, resident weights, streaming scratch); the rest is streamed each pass. */
  memoryBudget?: number;
  /** Read and verify every tensor first and keep it (the baseline). Default when no memoryBudget is given. */
  fullLoad?: boolean;
  /** Threads for the matrix products (default 1). Any count gives the same bits. */
  threads?: number;
  /** 'wasm' (WebAssembly SIMD, default) or 'js' (the plain reference); both give the same bits. */
  kernels?: 'wasm' | 'js';
  /** A config.json path, for versions that do not hold one. */
  configPath?: string;
  /** A tokenizer.json path (or a directory holding tokenizer.json and tokenizer_config.json). */
  tokenizerPath?: string;
  /** Length of the KV cache (default: the model's context). */
  maxSeqLen?: number;
  signal?: AbortSignal;
}

export interface OpenedModel {
  version: string;
  config: LlamaConfig;
  tokenizer: LlamaTokenizer;
  model: LlamaModel;
  weights: VersionWeights;
  /** The kernels in use while the model is open ('js-reference', 'wasm-simd…'). */
  kernelName: string;
  /** SHA-256 of the config.json bytes used, and of tokenizer.json's (the LM codec records both) */
  configSha256: string;
  tokenizerSha256: string;
  close(): Promise<void>;
}

async function readJsonFile(path: string, what: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new At1Error('E_NOT_FOUND', `cannot read the ${what} ${path}: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new At1Error('E_INPUT', `${what} ${path} is not JSON: ${(e as Error).message}`);
  }
}

function parseStored(bytes: Uint8Array, version: string, path: string): unknown {
  try {
    return JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (e) {
    throw new At1Error('E_INPUT', `version ${version}, file ${path} is not JSON: ${(e as Error).message}`);
  }
}

const sha256Hex = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

function parseFileJson(bytes: Uint8Array, path: string, what: string): unknown {
  try {
    return JSON.parse(Buffer.from(bytes).toString('utf8'));
  } catch (e) {
    throw new At1Error('E_INPUT', `${what} ${path} is not JSON: ${(e as Error).message}`);
  }
}

async function readBytes(path: string, what: string): Promise<Uint8Array> {
  try {
    return await readFile(path);
  } catch (e) {
    throw new At1Error('E_NOT_FOUND', `cannot read the ${what} ${path}: ${(e as Error).message}`);
  }
}

async function loadConfig(w: VersionWeights, version: string, opts: OpenModelOptions): Promise<{ config: LlamaConfig; sha256: string }> {
  if (opts.configPath) {
    const bytes = await readBytes(opts.configPath, 'config');
    return { config: parseLlamaConfig(parseFileJson(bytes, opts.configPath, 'config')), sha256: sha256Hex(bytes) };
  }
  const stored = await w.sideFile('config.json');
  if (!stored) throw new At1Error('E_INPUT', `version ${version} holds no config.json (it is ${w.manifest.layout === 'file' ? 'one safetensors file' : 'a model directory without one'}); pass --config PATH`);
  return { config: parseLlamaConfig(parseStored(stored, version, 'config.json')), sha256: sha256Hex(stored) };
}

async function loadTokenizer(w: VersionWeights, version: string, opts: OpenModelOptions): Promise<{ tokenizer: LlamaTokenizer; sha256: string }> {
  if (opts.tokenizerPath) {
    const st = await stat(opts.tokenizerPath).catch(() => undefined);
    const jsonPath = st?.isDirectory() ? join(opts.tokenizerPath, 'tokenizer.json') : opts.tokenizerPath;
    const bytes = await readBytes(jsonPath, 'tokenizer');
    const json = parseFileJson(bytes, jsonPath, 'tokenizer') as object;
    const cfgPath = join(dirname(jsonPath), 'tokenizer_config.json');
    const cfg = (await stat(cfgPath).catch(() => undefined)) ? ((await readJsonFile(cfgPath, 'tokenizer config')) as object) : {};
    return { tokenizer: new LlamaTokenizer(json, cfg), sha256: sha256Hex(bytes) };
  }
  const stored = await w.sideFile('tokenizer.json');
  if (!stored) throw new At1Error('E_INPUT', `version ${version} holds no tokenizer.json; pass --tokenizer PATH`);
  const cfgBytes = await w.sideFile('tokenizer_config.json');
  const tokenizer = new LlamaTokenizer(parseStored(stored, version, 'tokenizer.json') as object, cfgBytes ? (parseStored(cfgBytes, version, 'tokenizer_config.json') as object) : {});
  return { tokenizer, sha256: sha256Hex(stored) };
}

/**
 * Open `version` of `reg` as a model. Weights are read through the
 * registry's verifying reader under a reader lease held until close().
 * The kernels chosen are installed for the process while the model is open.
 */
export async function openModel(reg: Registry, version: string, opts: OpenModelOptions = {}): Promise<OpenedModel> {
  const threads = opts.threads ?? 1;
  if (!Number.isInteger(threads) || threads < 1 || threads > 64) throw new At1Error('E_INPUT', `threads must be a whole number from 1 to 64, is ${String(opts.threads)}`);
  if (opts.kernels === 'js' && threads > 1) throw new At1Error('E_INPUT', 'the plain JS kernels run on one thread; use the wasm kernels for --threads');
  const weights = await VersionWeights.open(reg, version);
  let installed: WasmKernels | undefined;
  let previous: Kernels | undefined;
  try {
    const { config, sha256: configSha256 } = await loadConfig(weights, version, opts);
    const { tokenizer, sha256: tokenizerSha256 } = await loadTokenizer(weights, version, opts);
    previous = kernels();
    if (opts.kernels === 'js') useKernels(referenceKernels);
    else useKernels((installed = await wasmKernels({ threads })));
    const model = await LlamaModel.open(weights, config, { memoryBudget: opts.memoryBudget, fullLoad: opts.fullLoad, maxSeqLen: opts.maxSeqLen, signal: opts.signal });
    const prev = previous;
    return {
      version,
      config,
      tokenizer,
      model,
      weights,
      kernelName: kernels().name,
      configSha256,
      tokenizerSha256,
      close: async () => {
        await model.close();
        useKernels(prev);
        await installed?.close();
        await weights.close();
      },
    };
  } catch (e) {
    if (previous) useKernels(previous);
    await installed?.close();
    await weights.close();
    throw e;
  }
}
