/**
 * The registry's configuration document, `at1-registry.json` at the root:
 * its presence is what makes a directory a registry. Written once by init.
 */
import { At1Error } from '../errors.js';
import type { Level } from '../codec/types.js';
import { describeJson } from '../format/strict-json.js';

export const CONFIG_KEY = 'at1-registry.json';
export const CONFIG_FORMAT = 'at1.registry';
export const CONFIG_FORMAT_VERSION = 1;

/** 2^21 elements: 4 MiB of bf16, 8 MiB of f32. Large enough for codec context, small enough that a row range decodes little. */
export const DEFAULT_CHUNK_ELEMENTS = 1 << 21;
export const DEFAULT_MAX_CHAIN_DEPTH = 8;
/** Bytes per chunk of non-tensor blobs (headers, side files). */
export const BLOB_CHUNK_BYTES = 1 << 22;

export interface RegistryConfig {
  format: typeof CONFIG_FORMAT;
  formatVersion: typeof CONFIG_FORMAT_VERSION;
  createdAt: string;
  /** Elements per tensor chunk; a multiple of 8 so sub-byte dtypes split on whole bytes. */
  chunkElements: number;
  /** Longest chain of deltas a restore may have to follow. */
  maxChainDepth: number;
  /** Default codec level for add. */
  level: Level;
}

export function parseConfig(bytes: Uint8Array, where: string): RegistryConfig {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes)) as Record<string, unknown>;
  } catch (e) {
    throw new At1Error('E_CORRUPT', `${where}/${CONFIG_KEY} is not valid JSON: ${(e as Error).message}`);
  }
  if (typeof o !== 'object' || o === null || o.format !== CONFIG_FORMAT) {
    throw new At1Error('E_CORRUPT', `${where}/${CONFIG_KEY} is not an at1 registry configuration`);
  }
  if (o.formatVersion !== CONFIG_FORMAT_VERSION) {
    throw new At1Error('E_UNSUPPORTED', `${where}: registry format version ${describeJson(o.formatVersion)} is not supported by this build`);
  }
  const { chunkElements, maxChainDepth, level, createdAt } = o;
  if (typeof chunkElements !== 'number' || !checkChunkElements(chunkElements)) throw new At1Error('E_CORRUPT', `${where}: bad chunkElements`);
  if (typeof maxChainDepth !== 'number' || !checkDepth(maxChainDepth)) throw new At1Error('E_CORRUPT', `${where}: bad maxChainDepth`);
  if (level !== 'fast' && level !== 'max') throw new At1Error('E_CORRUPT', `${where}: bad level`);
  return { format: CONFIG_FORMAT, formatVersion: CONFIG_FORMAT_VERSION, createdAt: typeof createdAt === 'string' ? createdAt : '', chunkElements, maxChainDepth, level };
}

export function checkChunkElements(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 8 && n % 8 === 0 && n <= 1 << 26;
}

export function checkDepth(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 1 && n <= 32;
}
