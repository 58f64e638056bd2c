/** Shared by the server tests: the fixture family as a registry (small chunks, so ranges cross chunk boundaries), and a server on 127.0.0.1:0. */
import { cpSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { add, initRegistry, startServer, type Registry, type RunningServer, type ServeOptions } from '../src/index.js';
import { EMBEDDED, family, tempDir } from './helpers.js';

/** Elements per chunk in the test registries: lm_head (2048×128) spans 16 chunks, a layer's q_proj 1. */
export const TEST_CHUNK_ELEMENTS = 16384;

export const MODEL_DIR_VERSION = 'code-lora-dir';
export const MODEL_DIR_FILES = ['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.json', 'tokenizer/special_tokens_map.json'];

/**
 * The five fixture versions (level fast: the tests exercise serving, not
 * coding) plus a model-directory version: code-lora's weights as
 * model.safetensors beside config, tokenizer and a file in a sub-folder.
 */
export async function buildFixtureRegistry(t: { after: (fn: () => void) => void }, name = 'fam'): Promise<{ dir: string; root: string; reg: Registry }> {
  const root = tempDir(t, 'at1-serve-');
  const dir = join(root, name);
  const versions = family();
  const { registry: reg } = await initRegistry(dir, join(EMBEDDED, versions[0]!.file), { chunkElements: TEST_CHUNK_ELEMENTS, level: 'fast', name: versions[0]!.name });
  for (const v of versions.slice(1)) await add(reg, join(EMBEDDED, v.file), { name: v.name, parent: v.parent ?? undefined, level: 'fast' });
  const md = join(root, 'model-dir-src');
  mkdirSync(join(md, 'tokenizer'), { recursive: true });
  cpSync(join(EMBEDDED, 'code-lora.safetensors'), join(md, 'model.safetensors'));
  for (const f of ['config.json', 'generation_config.json', 'tokenizer.json']) cpSync(join(EMBEDDED, f), join(md, f));
  cpSync(join(EMBEDDED, 'special_tokens_map.json'), join(md, 'tokenizer/special_tokens_map.json'));
  await add(reg, md, { name: MODEL_DIR_VERSION, parent: 'code-lora', level: 'fast' });
  return { dir, root, reg };
}

/** A server on 127.0.0.1, any free port, closed when the test ends. */
export async function serve(t: { after: (fn: () => Promise<void>) => void }, opts: Omit<ServeOptions, 'port' | 'host'>): Promise<RunningServer> {
  const s = await startServer({ ...opts, host: '127.0.0.1', port: 0 });
  t.after(() => s.close());
  return s;
}
