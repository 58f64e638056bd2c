/**
 * at1's library API. The CLI is a thin layer over exactly these calls.
 *
 *   const { registry } = await initRegistry('models/', 'base.safetensors');
 *   await add(registry, 'ft.safetensors', { name: 'ft' });
 *   await getVersion(registry, 'ft', 'out.safetensors');
 *   const report = await verifyRegistry(registry, undefined);
 *   const listing = await listRegistry(registry);
 */
export { At1Error, IntegrityError, type ErrorCode } from './errors.js';
export { Registry, type InitOptions } from './registry/registry.js';
export { initRegistry } from './registry/init-registry.js';
export { add } from './registry/add.js';
export { getVersion, streamVersion, type GetResult } from './registry/restore.js';
export { readFile as readVersionFile } from './registry/decode-pipeline.js';
export { TensorReader, type ReadOptions } from './registry/tensor-reader.js';
export { verifyRegistry, type VerifyReport, type VersionVerdict, type VerifyFailure } from './registry/verify.js';
export { listRegistry, type FamilyListing, type VersionRow } from './registry/list.js';
export { findTensor, readTensorRange, readTensorBytes, rowRange, tensorsOf, type TensorLocation, type ByteRange } from './registry/tensor-access.js';
export { typedView, toFloat32, type TypedView } from './format/dtype-convert.js';
export type { VersionManifest, TensorEntry, FileEntry } from './registry/manifest.js';
export type { ProgressEvent, ProgressFn } from './registry/progress.js';
export { readSafetensorsHeader, serializeSafetensors, SafetensorsError } from './format/safetensors.js';
