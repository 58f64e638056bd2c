/**
 * Same bits whichever way the weights arrive and however positions are batched: windows vs
 * token-by-token, full load vs streaming vs the smallest memory budget (compared as raw float bits),
 * and the reads the budget implies (embedding rows only, lm_head in row blocks).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  LlamaModel,
  LlamaTokenizer,
  SafetensorsBytesWeightSource,
  SafetensorsFileWeightSource,
  loadLlamaConfig,
  parseLlamaConfig,
  type ModelOptions,
} from '../src/runtime/index.js';
import { FIXTURE, SNIPPETS, sameBits, tinyConfigJson, tinyModelBytes } from './runtime-helpers.js';

async function fixtureIds(n: number): Promise<number[]> {
  const tok = await LlamaTokenizer.fromDir(FIXTURE);
  return [tok.bosTokenId!, ...tok.encode(readFileSync(join(SNIPPETS, 'alice29-head.txt'), 'utf8'))].slice(0, n);
}

async function open(opts: ModelOptions): Promise<{ m: LlamaModel; src: SafetensorsFileWeightSource }> {
  const cfg = await loadLlamaConfig(join(FIXTURE, 'config.json'));
  const src = await SafetensorsFileWeightSource.open(join(FIXTURE, 'base.safetensors'));
  return { m: await LlamaModel.open(src, cfg, opts), src };
}

describe('bit-identical logits', () => {
  it('a window of positions gives the bits of token-by-token decoding (windows 1, 7, 64)', async () => {
    const ids = await fixtureIds(70);
    const results: Float32Array[] = [];
    for (const window of [1, 7, 64]) {
      const { m, src } = await open({ fullLoad: true, window, maxSeqLen: 128 });
      results.push(await m.logits(ids));
      // and appending one token at a time through forward() with 'all'
      if (window === 64) {
        m.reset();
        const parts = new Float32Array(results[0]!.length);
        for (let i = 0; i < ids.length; i++) parts.set(await m.forward([ids[i]!], 'all'), i * m.config.vocabSize);
        results.push(parts);
      }
      await src.close();
    }
    for (const r of results.slice(1)) assert.ok(sameBits(r, results[0]!));
  });

  it('full load, streaming under a budget and the smallest budget give the same bits and tokens', async () => {
    const ids = await fixtureIds(50);
    const cfg = await loadLlamaConfig(join(FIXTURE, 'config.json'));
    const probe = await SafetensorsFileWeightSource.open(join(FIXTURE, 'base.safetensors'));
    const floor = LlamaModel.minimumBudget(probe, cfg, { maxSeqLen: 96, window: 16 });
    await probe.close();
    const variants: ModelOptions[] = [
      { fullLoad: true },
      { memoryBudget: floor + 700_000 },
      { memoryBudget: floor + 300_000 },
      { memoryBudget: floor },
    ];
    const logits: Float32Array[] = [];
    const gens: number[][] = [];
    const sampled: number[][] = [];
    for (const v of variants) {
      const { m, src } = await open({ ...v, maxSeqLen: 96, window: 16 });
      if (v.memoryBudget !== undefined) {
        assert.ok(m.memory.totalBytes <= v.memoryBudget, `plan ${m.memory.totalBytes} over budget ${v.memoryBudget}`);
        assert.ok(m.memory.streamedTensors > 0);
      } else assert.equal(m.memory.streamedTensors, 0);
      logits.push(await m.logits(ids));
      const g: number[] = [];
      for await (const t of m.generate([1], { maxTokens: 12 })) g.push(t);
      gens.push(g);
      const s: number[] = [];
      for await (const t of m.generate([1, 147], { maxTokens: 12, temperature: 0.9, topK: 40, topP: 0.95, seed: 5 })) s.push(t);
      sampled.push(s);
      await src.close();
    }
    for (let i = 1; i < variants.length; i++) {
      assert.ok(sameBits(logits[i]!, logits[0]!), `variant ${i} logits differ in bits`);
      assert.deepEqual(gens[i], gens[0]);
      assert.deepEqual(sampled[i], sampled[0]);
    }
  });

  it('the smallest budget streams every matrix in row blocks and reads only the embedding rows it needs', async () => {
    const cfg = await loadLlamaConfig(join(FIXTURE, 'config.json'));
    const src = await SafetensorsFileWeightSource.open(join(FIXTURE, 'base.safetensors'));
    const floor = LlamaModel.minimumBudget(src, cfg, { maxSeqLen: 32, window: 4 });
    const m = await LlamaModel.open(src, cfg, { memoryBudget: floor, maxSeqLen: 32, window: 4 });
    assert.equal(m.memory.residentTensors, 5); // the norm vectors
    const rowBytes = cfg.hiddenSize * 2;
    assert.equal(m.memory.scratchBytes, rowBytes * 3); // the widest row: down_proj, 384 bf16
    src.bytesRead = 0;
    await m.forward([1], 'none');
    // one embedding row, and every layer matrix once; no logits wanted, so no lm_head
    const layerBytes = cfg.numLayers * 2 * (2 * 128 * 128 + 2 * 64 * 128 + 3 * 384 * 128);
    assert.equal(src.bytesRead, rowBytes + layerBytes);
    assert.equal(m.stats.bytesStreamed, rowBytes + layerBytes);
    src.bytesRead = 0;
    await m.forward([5, 6], 'last');
    assert.equal(src.bytesRead, 2 * rowBytes + layerBytes + cfg.vocabSize * rowBytes);
    await src.close();
  });

  it('random GQA-3 F16 model: full load vs smallest budget, windows 1 and 6, same bits', async () => {
    const s = { hidden: 24, intermediate: 40, layers: 2, heads: 6, kvHeads: 2, vocab: 64, maxPos: 32, tie: true, aliasTied: true, dtype: 'F16' as const, seed: 9 };
    const cfg = parseLlamaConfig(tinyConfigJson(s));
    const bytes = tinyModelBytes(s);
    const ids = [1, 4, 8, 15, 16, 23, 42, 2, 3, 3, 9, 0, 63];
    const floor = LlamaModel.minimumBudget(SafetensorsBytesWeightSource.from(bytes), cfg, { window: 1 });
    const a = await (await LlamaModel.open(SafetensorsBytesWeightSource.from(bytes), cfg, { fullLoad: true, window: 6 })).logits(ids);
    const b = await (await LlamaModel.open(SafetensorsBytesWeightSource.from(bytes), cfg, { memoryBudget: floor, window: 1 })).logits(ids);
    assert.ok(sameBits(a, b));
  });
});
