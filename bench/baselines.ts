/**
 * Baselines measured in the same run as at1:
 * - BitX exactly as published (ZipLLM, NSDI 2026): bit-identical tensors
 *   stored once; each 16-bit (or 32-bit) word XORed with the parent's
 *   same-named tensor; high and low bytes split into streams; zstd -3 on
 *   each. Without a parent tensor of the same shape and dtype:
 *   byte-grouped zstd -3.
 * - zstd -19 of the whole file (libzstd, the same library as the CLI).
 * - xz -9e of the whole file, when the xz command exists.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { splitPlanes } from '../src/codec/byte-planes.js';
import { zstdCompress } from '../src/codec/zstd.js';
import { elementBytes } from '../src/format/dtype.js';
import { parseSafetensorsHeader } from '../src/format/safetensors.js';

export interface LoadedTensor {
  dtype: string;
  shape: number[];
  bytes: Uint8Array;
}

export function loadTensors(path: string): { headerBytes: Uint8Array; tensors: Map<string, LoadedTensor> } {
  const file = new Uint8Array(readFileSync(path));
  const h = parseSafetensorsHeader(file, file.length, path);
  const tensors = new Map<string, LoadedTensor>();
  for (const t of h.tensors) tensors.set(t.name, { dtype: t.dtype, shape: t.shape, bytes: file.subarray(h.dataStart + t.begin, h.dataStart + t.end) });
  return { headerBytes: h.headerBytes, tensors };
}

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

function groupedZstd3(bytes: Uint8Array, width: number): number {
  return splitPlanes(bytes, width).reduce((a, p) => a + zstdCompress(p, 3).length, 0);
}

/** Bytes BitX stores for `path` given its parent file (or none), with a set of tensor digests already stored in the family. */
export function bitxBytes(path: string, parentPath: string | null, stored: Set<string>): number {
  const cur = loadTensors(path);
  const parent = parentPath ? loadTensors(parentPath).tensors : new Map<string, LoadedTensor>();
  let total = zstdCompress(cur.headerBytes, 3).length;
  for (const [name, t] of cur.tensors) {
    const d = sha(t.bytes);
    if (stored.has(d)) continue; // tensor dedup
    stored.add(d);
    const w = elementBytes(t.dtype) ?? 1;
    const p = parent.get(name);
    if (p && p.dtype === t.dtype && p.bytes.length === t.bytes.length && w > 1) {
      const x = new Uint8Array(t.bytes.length);
      for (let i = 0; i < x.length; i++) x[i] = t.bytes[i]! ^ p.bytes[i]!;
      total += groupedZstd3(x, w);
    } else {
      total += groupedZstd3(t.bytes, t.bytes.length % w === 0 ? w : 1);
    }
  }
  return total;
}

export function zstd19Bytes(path: string): number {
  return zstdCompress(new Uint8Array(readFileSync(path)), 19).length;
}

export function hasCommand(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;
}

export function xzBytes(path: string): number | undefined {
  if (!hasCommand('xz')) return undefined;
  const r = spawnSync('xz', ['-9e', '-T1', '-c', path], { maxBuffer: 1 << 30 });
  return r.status === 0 ? r.stdout.length : undefined;
}

/** Byte-grouped zstd -3 of every tensor of a file: the standalone baseline for one bf16 tensor or model. */
export function groupedZstdBytes(path: string): { raw: number; stored: number } {
  let raw = 0;
  let stored = 0;
  for (const t of loadTensors(path).tensors.values()) {
    const w = elementBytes(t.dtype) ?? 1;
    raw += t.bytes.length;
    stored += groupedZstd3(t.bytes, t.bytes.length % w === 0 ? w : 1);
  }
  return { raw, stored };
}
