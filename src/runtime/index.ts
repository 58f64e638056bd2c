/**
 * The verified Llama runtime, independent of the registry: weights come through
 * a WeightSource (the registry's verified TensorReader satisfies it).
 */
export { parseLlamaConfig, loadLlamaConfig, UnsupportedConfigError, type LlamaConfig } from './config.js';
export {
  SafetensorsFileWeightSource,
  SafetensorsBytesWeightSource,
  type WeightSource,
  type WeightTensorInfo,
  type ReadOptions,
} from './weight-source.js';
export { LlamaTokenizer, StreamDecoder, type DecodeOptions } from './tokenizer.js';
export {
  LlamaModel,
  RunState,
  nllOf,
  type ModelOptions,
  type ScoreResult,
  type GenerateOptions,
  type MemoryPlan,
  type ModelStats,
  type Weights,
  type LayerWeights,
  type TensorRef,
} from './model.js';
export { makeSampler, argmax, Prng, type SampleOptions } from './sampler.js';
