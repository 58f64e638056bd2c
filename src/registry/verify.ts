/**
 * verify: recompute every digest of a version from its stored objects —
 * each chunk against its object name, each tensor against its recorded
 * SHA-256, each file as a whole, and each file's header against the
 * manifest's tensor table — and report every failure by name rather than
 * stopping at the first.
 */
import { At1Error } from '../errors.js';
import { newSha256 } from '../util/hash.js';
import { ChunkReader } from './chunk-reader.js';
import { chunkSource, type ChunkSource } from './chunk-source.js';
import type { VersionManifest } from './manifest.js';
import type { ProgressFn } from './progress.js';
import type { Registry } from './registry.js';
import { checkPlacement, concatBytes, decodePieces, filePieces, type DecodeOptions } from './decode-pipeline.js';

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

/**
 * `opts.reuseBuffers` decodes into a ring of buffers (decode-pipeline.ts):
 * only when this is the last version the source's memo serves, since chunks
 * decoded into the ring are not kept as the next version's references.
 */
export async function verifyVersion(source: ChunkSource, m: VersionManifest, onBytes: (n: number) => void, signal?: AbortSignal, opts: DecodeOptions = {}): Promise<VersionVerdict> {
  const failures: VerifyFailure[] = [];
  let bytes = 0;
  let tensors = 0;
  for (const f of m.files) {
    const where = { version: m.name, file: f.path };
    const fileHash = newSha256();
    const before = failures.length;
    // The same placement check as a restore's (FORMAT.md §9): a manifest whose tensor table disagrees with the file's header fails both.
    const header: Uint8Array[] | undefined = f.kind === 'safetensors' ? [] : undefined;
    if (f.kind === 'safetensors') tensors += f.tensors.length;
    for await (const r of decodePieces(source, filePieces(f), where, opts)) {
      signal?.throwIfAborted();
      if (r.error) {
        failures.push({ ...where, tensor: r.piece.tensor?.name, reason: r.error.message });
        continue;
      }
      if (header && f.kind === 'safetensors' && r.piece.blob === f.header) {
        header.push(r.bytes!.slice());
        if (r.piece.last) {
          try {
            checkPlacement(f, concatBytes(header), where);
          } catch (e) {
            failures.push({ ...where, reason: e instanceof Error ? e.message : String(e) });
          }
        }
      }
      fileHash.update(r.bytes!);
      bytes += r.bytes!.length;
      onBytes(r.bytes!.length);
    }
    if (failures.length === before && fileHash.digest('hex') !== f.sha256) {
      failures.push({ ...where, reason: `file ${f.path} does not match its recorded SHA-256` });
    }
  }
  return { version: m.name, ok: failures.length === 0, bytes, tensors, failures };
}

/** Verify one version, or every version when `name` is undefined. `signal` stops it (a server's client went away). */
export async function verifyRegistry(reg: Registry, name: string | undefined, onProgress?: ProgressFn, opts: { signal?: AbortSignal } = {}): Promise<VerifyReport> {
  return reg.reading(name === undefined ? 'verify' : `verify ${name}`, name === undefined ? [] : [name], () => verifyUnderLease(reg, name, onProgress, opts.signal));
}

async function verifyUnderLease(reg: Registry, name: string | undefined, onProgress?: ProgressFn, signal?: AbortSignal): Promise<VerifyReport> {
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
  // Its memo spans every version verified: a version's chunks are decoded once, for their own check and as the next version's references.
  const source = chunkSource(new ChunkReader(reg.store).withMemo(), total, reg.settings);
  try {
    for (const [i, m] of manifests.entries()) {
      versions.push(
        await verifyVersion(source, m, (n) => {
          done += n;
          onProgress?.({ label: `verify ${m.name}`, done, total, unit: 'bytes' });
        }, signal, { reuseBuffers: i === manifests.length - 1 }),
      );
    }
  } finally {
    await source.close();
  }
  return { ok: versions.every((v) => v.ok), versions };
}
