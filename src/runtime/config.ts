/**
 * A Llama model's configuration, read from a Hugging Face config.json.
 * Anything this runtime cannot run exactly is refused, naming the field.
 */
import { readFile } from 'node:fs/promises';
import { At1Error } from '../errors.js';

export interface LlamaConfig {
  hiddenSize: number; // dim
  intermediateSize: number; // hidden_dim of the MLP
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  rmsNormEps: number;
  ropeTheta: number;
  vocabSize: number;
  maxPositionEmbeddings: number;
  tieWordEmbeddings: boolean;
  bosTokenId: number | undefined;
  /** generation stops at any of these */
  eosTokenIds: number[];
}

/** A config.json field the runtime cannot run, or a bad value; `field` names it. */
export class UnsupportedConfigError extends At1Error {
  constructor(readonly field: string, message: string) {
    super('E_UNSUPPORTED', `config.json ${field}: ${message}`);
    this.name = 'UnsupportedConfigError';
  }
}

function refuse(field: string, msg: string): never {
  throw new UnsupportedConfigError(field, msg);
}

function show(v: unknown): string {
  try {
    const s = JSON.stringify(v);
    return s === undefined ? String(v) : s.length > 80 ? s.slice(0, 77) + '...' : s;
  } catch {
    return typeof v;
  }
}

function posInt(c: Record<string, unknown>, field: string, dflt?: number): number {
  const v = c[field] ?? dflt;
  if (v === undefined) refuse(field, 'missing');
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) refuse(field, `must be a positive integer, is ${show(v)}`);
  return v;
}

function posNum(c: Record<string, unknown>, field: string, dflt: number): number {
  const v = c[field] ?? dflt;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) refuse(field, `must be a positive number, is ${show(v)}`);
  return v;
}

function mustBeFalsy(c: Record<string, unknown>, field: string, what: string): void {
  const v = c[field];
  if (v !== undefined && v !== null && v !== false) refuse(field, `is ${show(v)}; ${what}`);
}

function tokenId(c: Record<string, unknown>, field: string, vocab: number): number[] {
  const v = c[field];
  if (v === undefined || v === null) return [];
  const ids = Array.isArray(v) ? v : [v];
  for (const id of ids) {
    if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0 || id >= vocab) {
      refuse(field, `must be a token id below vocab_size ${vocab} (or a list of them), is ${show(v)}`);
    }
  }
  return ids as number[];
}

/** Validates a parsed config.json object. */
export function parseLlamaConfig(json: unknown): LlamaConfig {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) refuse('(top level)', 'is not a JSON object');
  const c = json as Record<string, unknown>;
  if (c.model_type !== 'llama') refuse('model_type', `is ${show(c.model_type)}; this runtime runs "llama" only`);
  if (c.architectures !== undefined) {
    if (!Array.isArray(c.architectures) || !c.architectures.includes('LlamaForCausalLM')) {
      refuse('architectures', `is ${show(c.architectures)}; this runtime runs LlamaForCausalLM`);
    }
  }
  const act = c.hidden_act ?? 'silu';
  if (act !== 'silu') refuse('hidden_act', `is ${show(act)}; only "silu" (SwiGLU) is implemented`);
  mustBeFalsy(c, 'rope_scaling', 'only unscaled rotary embeddings are implemented');
  if (c.rope_parameters !== undefined && c.rope_parameters !== null) {
    const rp = c.rope_parameters as Record<string, unknown>;
    if (typeof rp !== 'object' || (rp.rope_type ?? 'default') !== 'default') {
      refuse('rope_parameters', `is ${show(c.rope_parameters)}; only default rotary embeddings are implemented`);
    }
  }
  mustBeFalsy(c, 'attention_bias', 'attention projections with bias are not implemented');
  mustBeFalsy(c, 'mlp_bias', 'MLP projections with bias are not implemented');
  mustBeFalsy(c, 'quantization_config', 'quantized weights are not implemented');
  if (c.partial_rotary_factor !== undefined && c.partial_rotary_factor !== 1) {
    refuse('partial_rotary_factor', `is ${show(c.partial_rotary_factor)}; only full rotary embeddings are implemented`);
  }

  const hiddenSize = posInt(c, 'hidden_size');
  const intermediateSize = posInt(c, 'intermediate_size');
  const numLayers = posInt(c, 'num_hidden_layers');
  const numHeads = posInt(c, 'num_attention_heads');
  const numKvHeads = posInt(c, 'num_key_value_heads', numHeads);
  if (numHeads % numKvHeads !== 0) refuse('num_key_value_heads', `${numKvHeads} does not divide num_attention_heads ${numHeads}`);
  let headDim: number;
  if (c.head_dim === undefined || c.head_dim === null) {
    if (hiddenSize % numHeads !== 0) refuse('hidden_size', `${hiddenSize} is not a multiple of num_attention_heads ${numHeads} (and no head_dim)`);
    headDim = hiddenSize / numHeads;
  } else headDim = posInt(c, 'head_dim');
  if (headDim % 2 !== 0) refuse('head_dim', `${headDim} is odd; rotary embeddings need an even head dimension`);
  const vocabSize = posInt(c, 'vocab_size');
  const tie = c.tie_word_embeddings ?? false;
  if (typeof tie !== 'boolean') refuse('tie_word_embeddings', `must be true or false, is ${show(tie)}`);
  const bos = tokenId(c, 'bos_token_id', vocabSize);
  if (bos.length > 1) refuse('bos_token_id', 'must be one token id');
  return {
    hiddenSize,
    intermediateSize,
    numLayers,
    numHeads,
    numKvHeads,
    headDim,
    rmsNormEps: posNum(c, 'rms_norm_eps', 1e-6),
    ropeTheta: posNum(c, 'rope_theta', 10000),
    vocabSize,
    maxPositionEmbeddings: posInt(c, 'max_position_embeddings', 2048),
    tieWordEmbeddings: tie,
    bosTokenId: bos[0],
    eosTokenIds: tokenId(c, 'eos_token_id', vocabSize),
  };
}

export async function loadLlamaConfig(path: string): Promise<LlamaConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new At1Error('E_NOT_FOUND', `cannot read ${path}: ${(e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new At1Error('E_INPUT', `${path} is not JSON: ${(e as Error).message}`);
  }
  return parseLlamaConfig(json);
}
