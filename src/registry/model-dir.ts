/**
 * A model directory as a version: every regular file under it, with its
 * path. `.safetensors` files are stored tensor by tensor (deduplicated and
 * delta-coded against the relative's tensors of the same name, whatever
 * shard they sit in); every other file (config, tokenizer, README, index)
 * is stored as a blob. Restores recreate the directory byte for byte.
 *
 * Refused: symbolic links and special files (nothing outside the directory
 * is ever read), a directory without any .safetensors file, and a sharded
 * index that does not match its shards. Skipped, and reported: `.git` and
 * `.cache` folders (version-control and download metadata, not the model).
 */
import { lstat, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { At1Error } from '../errors.js';
import { INDEX_SUFFIX, parseShardIndex } from '../format/hf-index.js';
import { readSafetensorsHeader, type SafetensorsHeader } from '../format/safetensors.js';

export const SKIPPED_DIRS = new Set(['.git', '.cache']);

export interface PlannedFile {
  /** Relative path with '/' separators. */
  path: string;
  abs: string;
  size: number;
  /** Present for .safetensors files, validated. */
  header?: SafetensorsHeader;
}

export interface DirPlan {
  files: PlannedFile[];
  skipped: string[];
}

const PATH_SEGMENT_BAD = /[\u0000-\u001f\u007f\\]/;

async function walk(root: string, rel: string, out: PlannedFile[], skipped: string[]): Promise<void> {
  const entries = (await readdir(join(root, rel), { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1));
  for (const e of entries) {
    const path = rel ? `${rel}/${e.name}` : e.name;
    const abs = join(root, path);
    if (PATH_SEGMENT_BAD.test(e.name)) throw new At1Error('E_INPUT', `${abs}: file names with control characters or backslashes are refused`);
    const st = await lstat(abs);
    if (st.isSymbolicLink()) throw new At1Error('E_INPUT', `${abs} is a symbolic link; at1 does not follow links out of a model directory (copy the file in instead)`);
    if (st.isDirectory()) {
      if (SKIPPED_DIRS.has(e.name)) skipped.push(path + '/');
      else await walk(root, path, out, skipped);
    } else if (st.isFile()) out.push({ path, abs, size: st.size });
    else throw new At1Error('E_INPUT', `${abs} is not a regular file`);
  }
}

/** Every tensor name must be in exactly the shard the index names, and every shard tensor in the index. */
function checkIndex(indexPath: string, indexAbs: string, indexBytes: Uint8Array, files: PlannedFile[]): void {
  const index = parseShardIndex(indexBytes, indexAbs);
  const byPath = new Map(files.map((f) => [f.path, f]));
  const indexDir = indexPath.includes('/') ? indexPath.slice(0, indexPath.lastIndexOf('/') + 1) : '';
  const listed = new Set<string>();
  for (const [tensor, shard] of index.weightMap) {
    const f = byPath.get(indexDir + shard);
    if (!f?.header) throw new At1Error('E_INPUT', `${indexAbs}: shard ${JSON.stringify(shard)} (of tensor ${JSON.stringify(tensor)}) is not in the directory`);
    if (!f.header.tensors.some((t) => t.name === tensor)) throw new At1Error('E_INPUT', `${indexAbs}: tensor ${JSON.stringify(tensor)} is missing from its shard ${shard}`);
    listed.add(indexDir + shard);
  }
  const shardOf = new Map<string, string>();
  for (const path of listed) {
    for (const t of byPath.get(path)!.header!.tensors) {
      const other = shardOf.get(t.name);
      if (other) throw new At1Error('E_INPUT', `tensor ${JSON.stringify(t.name)} is in two shards: ${other} and ${path}`);
      shardOf.set(t.name, path);
      if (index.weightMap.get(t.name) === undefined) throw new At1Error('E_INPUT', `${indexAbs}: tensor ${JSON.stringify(t.name)} of shard ${path} is not in the index`);
    }
  }
}

export async function planModelDir(dir: string): Promise<DirPlan> {
  const files: PlannedFile[] = [];
  const skipped: string[] = [];
  await walk(dir, '', files, skipped);
  for (const f of files) if (f.path.endsWith('.safetensors')) f.header = await readSafetensorsHeader(f.abs);
  if (!files.some((f) => f.header)) throw new At1Error('E_INPUT', `${dir} holds no .safetensors file: not a model directory`);
  for (const f of files) if (f.path.endsWith(INDEX_SUFFIX)) checkIndex(f.path, f.abs, new Uint8Array(await readFile(f.abs)), files);
  return { files, skipped };
}
