/**
 * The fixture model against the float64 golden decodes (test/fixtures/tinystories-golden, copied from
 * ../shared/fixtures/tinystories/golden.json) and perplexity against a float64 forward on the same ids.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { LlamaModel, LlamaTokenizer, SafetensorsFileWeightSource, loadLlamaConfig } from '../src/runtime/index.js';
import { FIXTURE, GOLDEN_DIR, SNIPPETS, loadRef64, refLogits, refNll } from './runtime-helpers.js';

interface GoldenRun {
  file: string;
  prompt: number[];
  greedy_tokens: number[];
  first_logits: number[][];
}
const golden = JSON.parse(readFileSync(join(GOLDEN_DIR, 'golden.json'), 'utf8')) as { runs: GoldenRun[] };
const MODEL_FILES: Record<string, string> = {
  'base.safetensors': join(FIXTURE, 'base.safetensors'),
  'base-fp32.safetensors': join(GOLDEN_DIR, 'base-fp32.safetensors'),
};

describe('golden decodes of the fixture model', () => {
  for (const run of golden.runs) {
    it(`${run.file}: greedy from BOS gives the golden tokens, first logits within 1e-3`, async () => {
      const cfg = await loadLlamaConfig(join(FIXTURE, 'config.json'));
      const src = await SafetensorsFileWeightSource.open(MODEL_FILES[run.file]!);
      try {
        const m = await LlamaModel.open(src, cfg, { fullLoad: true });
        const out: number[] = [];
        for await (const t of m.generate(run.prompt, { maxTokens: run.greedy_tokens.length, temperature: 0 })) out.push(t);
        assert.deepEqual(out, run.greedy_tokens);
        const ids = [...run.prompt, ...run.greedy_tokens].slice(0, run.first_logits.length);
        const lg = await m.logits(ids);
        const V = cfg.vocabSize;
        let worst = 0;
        for (let p = 0; p < run.first_logits.length; p++) {
          const want = run.first_logits[p]!;
          assert.equal(want.length, V);
          for (let i = 0; i < V; i++) worst = Math.max(worst, Math.abs(lg[p * V + i]! - want[i]!));
        }
        assert.ok(worst <= 1e-3, `max |logit − golden| = ${worst}`);
      } finally {
        await src.close();
      }
    });
  }
});

describe('perplexity of the fixture model agrees with a float64 forward', () => {
  const cases: [string, string, number][] = [
    ['base.safetensors', 'alice29-head.txt', 160],
    ['base-fp32.safetensors', 'alice29-head.txt', 160],
    ['base.safetensors', 'decode-go-head.txt', 120],
  ];
  for (const [file, snippet, maxTokens] of cases) {
    it(`${file} on ${snippet} (${maxTokens} tokens, windows of 48): within 1e-5 relative`, async () => {
      const cfg = await loadLlamaConfig(join(FIXTURE, 'config.json'));
      const tok = await LlamaTokenizer.fromDir(FIXTURE);
      const text = readFileSync(join(SNIPPETS, snippet), 'utf8');
      const ids = [tok.bosTokenId!, ...tok.encode(text)].slice(0, maxTokens);
      assert.equal(ids.length, maxTokens);
      const src = await SafetensorsFileWeightSource.open(MODEL_FILES[file]!);
      try {
        const m = await LlamaModel.open(src, cfg, { fullLoad: true, window: 48 });
        const r = await m.score(ids);
        const ref = await loadRef64(src, cfg);
        const nll64 = refNll(refLogits(ref, ids), ids, cfg.vocabSize);
        const ppl64 = Math.exp(nll64 / (ids.length - 1));
        assert.equal(r.predictedTokens, ids.length - 1);
        assert.ok(Math.abs(r.nllNats - nll64) / nll64 <= 1e-5, `nll ${r.nllNats} vs float64 ${nll64}`);
        assert.ok(Math.abs(r.perplexity - ppl64) / ppl64 <= 1e-5, `perplexity ${r.perplexity} vs float64 ${ppl64}`);
        assert.ok(Math.abs(r.bitsPerToken - nll64 / Math.LN2 / (ids.length - 1)) <= 1e-5 * r.bitsPerToken);
        let sum = 0;
        for (const x of r.tokenNll) sum += x;
        assert.equal(sum, r.nllNats);
      } finally {
        await src.close();
      }
    });
  }
});
