/**
 * Hugging Face sharded checkpoints: `model.safetensors.index.json` holds
 * `weight_map` (tensor name -> shard file) and `metadata`. The index is
 * hostile input like any file: it is parsed strictly (duplicate keys are
 * an error, not "last one wins"), and a shard name must be a plain relative
 * path inside the model directory: no `..`, no leading `/`, no backslash,
 * no scheme (`s3:`, `https:`), no control characters.
 */
import { At1Error } from '../errors.js';
import { parseStrictJson, StrictJsonError, type JsonValue } from './strict-json.js';

export const INDEX_SUFFIX = '.safetensors.index.json';

export interface ShardIndex {
  /** Tensor name -> shard path relative to the model directory, in index order. */
  weightMap: Map<string, string>;
}

/** Why a shard name is refused, or undefined when it is a safe relative path. */
export function shardNameProblem(name: string): string | undefined {
  if (name.length === 0) return 'it is empty';
  if (/[\u0000-\u001f\u007f]/.test(name)) return 'it contains a control character';
  if (name.startsWith('/')) return 'it is an absolute path';
  if (name.includes('\\')) return 'it contains a backslash';
  if (/^[A-Za-z][A-Za-z0-9+.-]*:/.test(name)) return 'it has a scheme (a URL or drive), not a relative path';
  if (name.split('/').some((s) => s === '..' || s === '.' || s === '')) return "it has an empty, '.' or '..' segment (it could point outside the model directory)";
  if (!name.endsWith('.safetensors')) return 'it is not a .safetensors file';
  return undefined;
}

export function parseShardIndex(bytes: Uint8Array, file: string): ShardIndex {
  let root: JsonValue;
  try {
    root = parseStrictJson(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (e) {
    if (e instanceof StrictJsonError && e.kind === 'duplicate') {
      throw new At1Error('E_INPUT', `${file}: ${JSON.stringify(e.key)} is listed twice`);
    }
    throw new At1Error('E_INPUT', `${file} is not valid JSON: ${(e as Error).message}`);
  }
  if (!(root instanceof Map)) throw new At1Error('E_INPUT', `${file}: the index is not a JSON object`);
  const wm = root.get('weight_map');
  if (!(wm instanceof Map)) throw new At1Error('E_INPUT', `${file}: weight_map is missing or not an object`);
  const weightMap = new Map<string, string>();
  for (const [tensor, shard] of wm) {
    if (typeof shard !== 'string') throw new At1Error('E_INPUT', `${file}: tensor ${JSON.stringify(tensor)} maps to something other than a file name`);
    const why = shardNameProblem(shard);
    if (why) throw new At1Error('E_INPUT', `${file}: shard ${JSON.stringify(shard)} of tensor ${JSON.stringify(tensor)} is refused: ${why}`);
    weightMap.set(tensor, shard);
  }
  return { weightMap };
}
