/**
 * at1's library API. The CLI is a thin layer over exactly these calls: it
 * imports nothing else from the library (test/cli-imports.test.ts).
 *
 *   const { registry } = await initRegistry('models/', 'base.safetensors');
 *   await add(registry, 'ft.safetensors', { name: 'ft' });
 *   await getVersion(registry, 'ft', 'out.safetensors');
 *   const report = await verifyRegistry(registry, undefined);
 *   const listing = await listRegistry(registry);
 *
 * Run-time settings (pack threshold, lease timings, worker threads, gc
 * grace) are options of Registry.open / initRegistry (`{ settings }`), kept
 * on the registry as `reg.settings`; the library never reads process.env.
 */
export { AccessDeniedError, At1Error, IntegrityError, type ErrorCode } from './errors.js';

// Registries: open, create, settings.
export { Registry, openRegistry, type InitOptions, type OpenOptions } from './registry/registry.js';
export { openBackend, type OpenBackendOptions } from './store/open.js';
export { S3Backend, S3CallError, type S3BackendOptions } from './store/s3-backend.js';
export { parseS3Location, s3Settings, type S3Location, type S3Settings } from './store/s3-config.js';
export { listAll, type Backend, type Capabilities, type CallOptions, type KeyInfo, type KeyStat, type ListOptions } from './store/backend.js';
export { initRegistry } from './registry/init-registry.js';
export { DEFAULT_SETTINGS, MAX_THREADS, MIN_LEASE_MS, resolveSettings, type RegistrySettings, type WorkersMode } from './registry/settings.js';
export type { RegistryConfig } from './registry/config.js';
export type { Level } from './codec/types.js';

// Versions: add, get, stream, verify, list, rm, gc, fsck.
export { add } from './registry/add.js';
export { addMany, planAddMany, naturalCompare, type AddManyOptions, type AddManyResult, type AddOrder } from './registry/add-many.js';
export type { AddOptions, AddResult } from './registry/add-version.js';
export type { ParentEstimate } from './registry/reference.js';
export { getVersion, streamVersion, type GetOptions, type GetResult } from './registry/restore.js';
export { readFile as readVersionFile } from './registry/decode-pipeline.js';
export { readFileRange, checkFileRange, type FileRangeOptions } from './registry/file-range.js';
export { chunkSource, SharedChunkSources, type ChunkSource } from './registry/chunk-source.js';
export { manifestKey } from './registry/registry.js';
export { checkVersionName, nameProblem, MAX_NAME_LENGTH } from './registry/names.js';
export { codecById } from './codec/index.js';
export { verifyRegistry, type VerifyReport, type VersionVerdict, type VerifyFailure } from './registry/verify.js';
export { listRegistry, type FamilyListing, type VersionRow } from './registry/list.js';
export { removeVersion, type RemoveOptions, type RemoveResult } from './registry/remove.js';
export { gcRegistry, DEFAULT_GC_GRACE_MS, type GcOptions, type GcResult } from './registry/gc.js';
export { fsckRegistry, type FsckOptions, type FsckProblem, type FsckReport } from './registry/fsck.js';

// Tensors: find, read (one reader for every consumer), list.
export { TensorReader, type ReadOptions as TensorReadOptions } from './registry/tensor-reader.js';
export { findTensor, readTensorRange, readTensorBytes, rowRange, tensorsOf, tensorObjects, tensorStoredBytes, type TensorLocation, type ByteRange } from './registry/tensor-access.js';
export { typedView, toFloat32, type TypedView } from './format/dtype-convert.js';
export type { VersionManifest, TensorEntry, FileEntry } from './registry/manifest.js';
export { manifestDigests, parseManifest } from './registry/manifest.js';
export type { ProgressEvent, ProgressFn } from './registry/progress.js';

// Inputs and formats.
export { openFileSource, bytesSource, type InputSource, type ReadOptions } from './format/input-source.js';
export { readSafetensorsHeader, readSafetensorsHeaderFrom, parseSafetensorsHeader, serializeSafetensors, SafetensorsError, type SafetensorsHeader, type TensorInfo, type TensorToWrite } from './format/safetensors.js';
export { npyHeader, npyData } from './format/npy.js';

// Writing outputs safely (used by `get --out` and `tensor get --out`).
export { AtomicFileWriter, removeStaleTemps } from './util/atomic-file.js';
export { checkOutputPath, type OutputCheck, type CheckedOutput } from './util/output-path.js';
export { errnoOf, fsError } from './util/fs-errors.js';

// Running models from the registry (runtime/ reads weights through a WeightSource; VersionWeights is the registry's).
export { openModel, type OpenModelOptions, type OpenedModel } from './model/open-model.js';
export { VersionWeights, type VersionWeightInfo, type VersionWeightStats } from './registry/version-weights.js';
export {
  parseLlamaConfig,
  loadLlamaConfig,
  UnsupportedConfigError,
  SafetensorsFileWeightSource,
  SafetensorsBytesWeightSource,
  LlamaTokenizer,
  StreamDecoder,
  LlamaModel,
  nllOf,
  type LlamaConfig,
  type WeightSource,
  type WeightTensorInfo,
  type ScoreResult,
  type GenerateOptions,
  type MemoryPlan,
  type ModelStats,
} from './runtime/index.js';

// The LM-codec archival tier (src/lmcodec): text compressed by a model from the registry.
export { compressToArchive, decompressArchive, verifyArchive, DEFAULT_FRAME_SIZE, type ArchiveProgress, type CompressOptions, type CompressResult, type DecompressOptions, type DecompressResult } from './lmcodec/archive.js';
export { benchArchive, type BenchRow, type BenchOptions } from './lmcodec/bench.js';
export { openCoder, CODEC as LM_CODEC, type Coder, type CoderOptions } from './lmcodec/coder.js';
export { encodeFrame, decodeFrame, type EncodedFrame, type FrameCoderOptions } from './lmcodec/frame-codec.js';
export { TokenPredictor, FREQ_TOTAL } from './lmcodec/predictor.js';
export { segmentsOf, segmentLogits, IncrementalLogits, type Segment } from './lmcodec/lm-context.js';
export { TokenBytes, tokenizeFrame, reconstruct, type VocabularyView, type TokenizedFrame } from './lmcodec/tokenize-bytes.js';
export { ArchiveReader, ArchiveWriter, readArchiveBytes, writeArchiveBytes, type ArchiveTrailer, type ArchiveFrame, type ArchiveModel } from './lmcodec/container.js';
export { treeStreamPlan, treeStream, unpackTree, type TreeEntry, type TreePlan } from './lmcodec/tree-stream.js';
export { ArithmeticEncoder, ArithmeticDecoder, MAX_TOTAL as ARITHMETIC_MAX_TOTAL } from './codec/entropy/arithmetic.js';
export { detExp, detLog, detPow, detSinCos } from './kernels/det-math.js';
export { parseKernelChoice, type KernelChoice } from './kernels/codec-native.js';
export { codecKernelsInUse, useCodecKernels } from './codec/kernels.js';
// Serving a registry over HTTP (`at1 serve`): the v1 API, Hub-compatible routes, the page.
// Loaded on first use, so the other commands do not load the HTTP stack.
export type { RunningServer } from './server/server.js';
export { DEFAULT_LIMITS, type ServeOptions, type Limits } from './server/options.js';
export async function startServer(opts: import('./server/options.js').ServeOptions): Promise<import('./server/server.js').RunningServer> {
  return (await import('./server/server.js')).startServer(opts);
}
export async function readTokenFile(path: string): Promise<string> {
  return (await import('./server/auth.js')).readTokenFile(path);
}
