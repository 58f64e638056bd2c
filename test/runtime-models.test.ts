/**
 * Small random Llama models built in the test (safetensors bytes written by test/runtime-helpers.ts):
 * tied (aliased or stored under the embedding's name) and untied embeddings, GQA ratios 1, 2 and 3,
 * an explicit head_dim, F32/F16/BF16 weights — each against the float64 forward.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LlamaModel, SafetensorsBytesWeightSource, parseLlamaConfig } from '../src/runtime/index.js';
import { type TinySpec, loadRef64, maxRelDiff, refLogits, refNll, tinyConfigJson, tinyModelBytes } from './runtime-helpers.js';

const TOKENS = [1, 5, 9, 33, 7, 7, 60, 2, 41, 12, 3, 50, 18, 22, 9, 63, 0, 31];

function spec(over: Partial<TinySpec>): TinySpec {
  return { hidden: 24, intermediate: 40, layers: 2, heads: 6, kvHeads: 6, vocab: 64, maxPos: 32, tie: false, dtype: 'F32', seed: 7, ...over };
}

async function check(s: TinySpec): Promise<void> {
  const cfg = parseLlamaConfig(tinyConfigJson(s));
  const src = SafetensorsBytesWeightSource.from(tinyModelBytes(s));
  const m = await LlamaModel.open(src, cfg, { window: 5 });
  const lg = await m.logits(TOKENS);
  const ref = await loadRef64(src, cfg);
  const lg64 = refLogits(ref, TOKENS);
  const d = maxRelDiff(lg, lg64);
  assert.ok(d <= 2e-5, `logits differ from float64 by ${d} (relative to the largest)`);
  const r = await m.score(TOKENS);
  const nll64 = refNll(lg64, TOKENS, cfg.vocabSize);
  assert.ok(Math.abs(r.nllNats - nll64) / nll64 <= 1e-5, `nll ${r.nllNats} vs ${nll64}`);
}

describe('random models against the float64 forward', () => {
  for (const dtype of ['F32', 'F16', 'BF16'] as const) {
    for (const [heads, kvHeads] of [[6, 6], [6, 3], [6, 2]] as const) {
      it(`${dtype}, ${heads} heads / ${kvHeads} KV heads (GQA ${heads / kvHeads}), untied`, async () => {
        await check(spec({ dtype, heads, kvHeads, seed: heads * 10 + kvHeads }));
      });
    }
    it(`${dtype}, tied embeddings stored as lm_head.weight with the embedding aliased in __metadata__`, async () => {
      await check(spec({ dtype, heads: 6, kvHeads: 2, tie: true, aliasTied: true, seed: 3 }));
    });
    it(`${dtype}, tied embeddings stored as model.embed_tokens.weight only`, async () => {
      await check(spec({ dtype, heads: 6, kvHeads: 3, tie: true, aliasTied: false, seed: 4 }));
    });
  }
  it('explicit head_dim different from hidden_size / heads (hidden 24, 4 heads of 10, 2 KV heads)', async () => {
    await check(spec({ dtype: 'BF16', heads: 4, kvHeads: 2, headDim: 10, seed: 11 }));
  });
  it('one layer, GQA 3, F16, tied', async () => {
    await check(spec({ dtype: 'F16', layers: 1, heads: 3, kvHeads: 1, hidden: 18, tie: true, aliasTied: true, seed: 12 }));
  });
});
