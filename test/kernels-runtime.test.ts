/**
 * The runtime's logits with the WebAssembly kernels (1 and 2 threads, installed with
 * useWasmKernels) are the reference kernels' bits: the fixture model, full load and streaming,
 * and random F16/BF16 models.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { kernels, referenceKernels, useKernels, useWasmKernels } from '../src/kernels/index.js';
import { LlamaModel, SafetensorsBytesWeightSource, SafetensorsFileWeightSource, loadLlamaConfig, parseLlamaConfig } from '../src/runtime/index.js';
import { FIXTURE, sameBits, tinyConfigJson, tinyModelBytes } from './runtime-helpers.js';

async function fixtureLogits(ids: number[], window: number, fullLoad: boolean): Promise<Float32Array> {
  const cfg = await loadLlamaConfig(join(FIXTURE, 'config.json'));
  const src = await SafetensorsFileWeightSource.open(join(FIXTURE, 'base.safetensors'));
  try {
    const m = await LlamaModel.open(src, cfg, fullLoad ? { fullLoad: true, window, maxSeqLen: 64 } : { window, maxSeqLen: 64 });
    return new Float32Array(await m.logits(ids));
  } finally {
    await src.close();
  }
}

async function tinyLogits(dtype: 'F16' | 'BF16' | 'F32', ids: number[]): Promise<Float32Array> {
  const s = { hidden: 24, intermediate: 40, layers: 2, heads: 6, kvHeads: 2, vocab: 64, maxPos: 32, tie: false, dtype, seed: 11 };
  const m = await LlamaModel.open(SafetensorsBytesWeightSource.from(tinyModelBytes(s)), parseLlamaConfig(tinyConfigJson(s)), { fullLoad: true, window: 5 });
  return new Float32Array(await m.logits(ids));
}

describe('runtime with the wasm kernels', () => {
  const ids = [1, 450, 1217, 338, 263, 1243, 1889, 13, 1118, 2001, 263, 931];
  for (const threads of [1, 2]) {
    it(`${threads} thread${threads > 1 ? 's' : ''}: the fixture's and random models' logits are the reference's bits`, async () => {
      assert.equal(kernels(), referenceKernels);
      const want = [await fixtureLogits(ids, 12, true), await fixtureLogits(ids, 3, false)];
      const tiny = [await tinyLogits('F16', ids.map((i) => i % 64)), await tinyLogits('BF16', ids.map((i) => i % 64))];
      const k = await useWasmKernels({ threads, parallelThreshold: 1 });
      try {
        assert.match(kernels().name, /^wasm/);
        assert.ok(sameBits(await fixtureLogits(ids, 12, true), want[0]!), 'full load');
        assert.ok(sameBits(await fixtureLogits(ids, 3, false), want[1]!), 'streaming');
        assert.ok(sameBits(await tinyLogits('F16', ids.map((i) => i % 64)), tiny[0]!), 'F16');
        assert.ok(sameBits(await tinyLogits('BF16', ids.map((i) => i % 64)), tiny[1]!), 'BF16');
      } finally {
        useKernels(referenceKernels);
        await k.close();
      }
    });
  }
});
