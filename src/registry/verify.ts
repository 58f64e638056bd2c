/**
 * verify: recompute every digest of a version from its stored objects —
 * each chunk against its object name, each tensor against its recorded
 * SHA-256, each file as a whole — and report every failure by name rather
 * than stopping at the first.
 */
import { At1Error } from '../errors.js';
import { newSha256 } from '../util/hash.js';
import type { VersionManifest } from './manifest.js';
import type { ProgressFn } from './progress.js';
import type { Registry } from './registry.js';
import { ChunkReader } from './chunk-reader.js';
import { readBlob, readTensor } from './restore.js';

export interface VerifyFailure {
  version: string;
  file: string;
  /** The tensor that failed; absent when the header or a whole file failed. */
  tensor?: string;
  reason: string;
}

export interface VersionVerdict {
  version: string;
  ok: boolean;
  bytes: number;
  tensors: number;
  failures: VerifyFailure[];
}

export interface VerifyReport {
  ok: boolean;
  versions: VersionVerdict[];
}

async function drain(gen: AsyncGenerator<Uint8Array>, sink: (b: Uint8Array) => void): Promise<void> {
  for await (const b of gen) sink(b);
}

export async function verifyVersion(reader: ChunkReader, m: VersionManifest, onBytes: (n: number) => void): Promise<VersionVerdict> {
  const failures: VerifyFailure[] = [];
  let bytes = 0;
  let tensors = 0;
  const count = (b: Uint8Array): void => {
    bytes += b.length;
    onBytes(b.length);
  };
  for (const f of m.files) {
    const where = { version: m.name, file: f.path };
    const fileHash = newSha256();
    const sink = (b: Uint8Array): void => {
      fileHash.update(b);
      count(b);
    };
    const before = failures.length;
    const blob = f.kind === 'blob' ? f : f.header;
    try {
      await drain(readBlob(reader, blob, f.kind === 'blob' ? `file ${f.path}` : `safetensors header of ${f.path}`), sink);
    } catch (e) {
      failures.push({ ...where, reason: e instanceof Error ? e.message : String(e) });
    }
    if (f.kind === 'safetensors') {
      for (const t of f.tensors) {
        tensors++;
        try {
          await drain(readTensor(reader, t, f.chunkElements, where), sink);
        } catch (e) {
          failures.push({ ...where, tensor: t.name, reason: e instanceof Error ? e.message : String(e) });
        }
      }
    }
    if (failures.length === before && fileHash.digest('hex') !== f.sha256) {
      failures.push({ ...where, reason: `file ${f.path} does not match its recorded SHA-256` });
    }
  }
  return { version: m.name, ok: failures.length === 0, bytes, tensors, failures };
}

/** Verify one version, or every version when `name` is undefined. */
export async function verifyRegistry(reg: Registry, name: string | undefined, onProgress?: ProgressFn): Promise<VerifyReport> {
  let manifests: VersionManifest[];
  if (name !== undefined) manifests = [await reg.manifest(name)];
  else {
    manifests = await reg.manifests();
    if (manifests.length === 0) throw new At1Error('E_CORRUPT', `registry ${reg.location} has no versions`);
  }
  const total = manifests.reduce((a, m) => a + m.files.reduce((b, f) => b + f.size, 0), 0);
  let done = 0;
  const versions: VersionVerdict[] = [];
  // A reader of its own: verify re-reads everything from storage, never trusting chunks an earlier call decoded.
  const reader = new ChunkReader(reg.store);
  for (const m of manifests) {
    versions.push(
      await verifyVersion(reader, m, (n) => {
        done += n;
        onProgress?.({ label: `verify ${m.name}`, done, total, unit: 'bytes' });
      }),
    );
  }
  return { ok: versions.every((v) => v.ok), versions };
}
