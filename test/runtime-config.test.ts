/**
 * What the runtime refuses, and how: configs it cannot run (naming the field), tensors of the wrong
 * dtype or shape (naming the tensor), a source that fails verification (the error reaches the caller
 * before the tensor is used), budgets too small.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { IntegrityError } from '../src/errors.js';
import {
  LlamaModel,
  SafetensorsBytesWeightSource,
  UnsupportedConfigError,
  parseLlamaConfig,
  type ReadOptions,
  type WeightSource,
} from '../src/runtime/index.js';
import { FIXTURE, tinyConfigJson, tinyModelBytes } from './runtime-helpers.js';

const fixtureConfig = JSON.parse(readFileSync(join(FIXTURE, 'config.json'), 'utf8')) as Record<string, unknown>;

describe('config.json', () => {
  it('reads the fixture config', () => {
    const c = parseLlamaConfig(fixtureConfig);
    assert.deepEqual(c, {
      hiddenSize: 128, intermediateSize: 384, numLayers: 2, numHeads: 8, numKvHeads: 4, headDim: 16, rmsNormEps: 1e-6,
      ropeTheta: 10000, vocabSize: 2048, maxPositionEmbeddings: 512, tieWordEmbeddings: true, bosTokenId: 1, eosTokenIds: [2],
    });
  });

  const refused: [string, Record<string, unknown>][] = [
    ['rope_scaling', { rope_scaling: { type: 'linear', factor: 2 } }],
    ['rope_parameters', { rope_parameters: { rope_type: 'llama3', factor: 8 } }],
    ['hidden_act', { hidden_act: 'gelu' }],
    ['attention_bias', { attention_bias: true }],
    ['mlp_bias', { mlp_bias: true }],
    ['model_type', { model_type: 'mistral' }],
    ['architectures', { architectures: ['MistralForCausalLM'] }],
    ['quantization_config', { quantization_config: { quant_method: 'gptq' } }],
    ['num_key_value_heads', { num_key_value_heads: 3 }],
    ['hidden_size', { hidden_size: 130 }],
    ['head_dim', { head_dim: 15 }],
    ['vocab_size', { vocab_size: 0 }],
    ['rms_norm_eps', { rms_norm_eps: -1 }],
    ['tie_word_embeddings', { tie_word_embeddings: 'yes' }],
    ['eos_token_id', { eos_token_id: 5000 }],
    ['partial_rotary_factor', { partial_rotary_factor: 0.5 }],
    ['intermediate_size', { intermediate_size: undefined }],
  ];
  for (const [field, change] of refused) {
    it(`refuses ${field} ${JSON.stringify(change[field]) ?? '(missing)'}, naming the field`, () => {
      const cfg = { ...fixtureConfig, ...change };
      if (change[field] === undefined) delete cfg[field];
      assert.throws(
        () => parseLlamaConfig(cfg),
        (e: unknown) => e instanceof UnsupportedConfigError && e.field === field && e.message.includes(field) && e.code === 'E_UNSUPPORTED',
      );
    });
  }

  it('accepts the defaults HF applies (no num_key_value_heads, no head_dim, eos as a list)', () => {
    const cfg: Record<string, unknown> = { ...fixtureConfig, eos_token_id: [2, 0] };
    delete cfg.num_key_value_heads;
    const c = parseLlamaConfig(cfg);
    assert.equal(c.numKvHeads, 8);
    assert.deepEqual(c.eosTokenIds, [2, 0]);
  });
});

const SPEC = { hidden: 16, intermediate: 24, layers: 1, heads: 4, kvHeads: 2, vocab: 32, maxPos: 16, tie: false, dtype: 'BF16' as const, seed: 1 };

/** A source that lets a test change what tensors look like or make a read fail. */
class Tampered implements WeightSource {
  readonly readNames: string[] = [];
  constructor(
    private readonly inner: WeightSource,
    private readonly edit: (name: string, info: { dtype: string; shape: number[] }) => void = () => {},
    private readonly failOn?: string,
  ) {}
  tensors() {
    return this.inner.tensors();
  }
  tensor(name: string) {
    const t = this.inner.tensor(name);
    if (t !== undefined) this.edit(name, t);
    return t;
  }
  async readInto(name: string, dest: Uint8Array, opts?: ReadOptions): Promise<void> {
    if (name === this.failOn) throw new IntegrityError(`tensor ${name}: SHA-256 mismatch`, { tensor: name });
    this.readNames.push(name);
    return this.inner.readInto(name, dest, opts);
  }
}

describe('tensors the runtime cannot run', () => {
  const cfg = parseLlamaConfig(tinyConfigJson(SPEC));
  const bytes = tinyModelBytes(SPEC);
  const q = 'model.layers.0.self_attn.q_proj.weight';

  it('a missing tensor is named', async () => {
    const src = new Tampered(SafetensorsBytesWeightSource.from(bytes));
    const orig = src.tensor.bind(src);
    src.tensor = (n: string) => (n === q ? undefined : orig(n));
    await assert.rejects(LlamaModel.open(src, cfg), (e: Error) => e.message.includes(q));
  });

  it('a wrong dtype is named', async () => {
    const src = new Tampered(SafetensorsBytesWeightSource.from(bytes), (n, t) => {
      if (n === q) t.dtype = 'F64';
    });
    await assert.rejects(LlamaModel.open(src, cfg), (e: Error) => e.message.includes(q) && e.message.includes('F64'));
  });

  it('a wrong shape is named', async () => {
    const src = new Tampered(SafetensorsBytesWeightSource.from(bytes), (n, t) => {
      if (n === q) t.shape = [16, 17];
    });
    await assert.rejects(LlamaModel.open(src, cfg), (e: Error) => e.message.includes(q) && e.message.includes('16, 17'));
  });

  it('untied without lm_head.weight is refused', async () => {
    const c2 = parseLlamaConfig({ ...tinyConfigJson(SPEC), tie_word_embeddings: false });
    const src = new Tampered(SafetensorsBytesWeightSource.from(bytes));
    const orig = src.tensor.bind(src);
    src.tensor = (n: string) => (n === 'lm_head.weight' ? undefined : orig(n));
    await assert.rejects(LlamaModel.open(src, c2), (e: Error) => e.message.includes('lm_head.weight'));
  });

  it('a streamed tensor that fails verification stops the pass with the error naming it, before it is used', async () => {
    const bad = 'model.layers.0.mlp.up_proj.weight';
    const floor = LlamaModel.minimumBudget(SafetensorsBytesWeightSource.from(bytes), cfg);
    const src = new Tampered(SafetensorsBytesWeightSource.from(bytes), undefined, bad);
    const m = await LlamaModel.open(src, cfg, { memoryBudget: floor });
    await assert.rejects(m.forward([1, 2, 3]), (e: unknown) => e instanceof IntegrityError && e.where.tensor === bad && e.message.includes(bad));
    // nothing after it in the forward pass was read
    assert.ok(!src.readNames.includes('model.layers.0.mlp.down_proj.weight'));
  });

  it('full load reads (and so verifies) everything before the first pass', async () => {
    const bad = 'lm_head.weight';
    await assert.rejects(
      LlamaModel.open(new Tampered(SafetensorsBytesWeightSource.from(bytes), undefined, bad), cfg, { fullLoad: true }),
      (e: unknown) => e instanceof IntegrityError && e.where.tensor === bad,
    );
  });

  it('a budget below the floor is refused with the bytes needed', async () => {
    const src = SafetensorsBytesWeightSource.from(bytes);
    const floor = LlamaModel.minimumBudget(src, cfg);
    await assert.rejects(LlamaModel.open(src, cfg, { memoryBudget: floor - 1 }), (e: Error) => e.message.includes(String(floor)));
  });

  it('token ids outside the vocabulary and contexts past maxSeqLen are refused', async () => {
    const m = await LlamaModel.open(SafetensorsBytesWeightSource.from(bytes), cfg, { maxSeqLen: 8 });
    await assert.rejects(m.logits([1, 32]), /outside the vocabulary/);
    await assert.rejects(m.logits([1, 2, 3, 4, 5, 6, 7, 8, 9]), /exceed the context of 8/);
    // the model is usable after a refusal
    assert.equal((await m.logits([1, 2])).length, 64);
  });
});
