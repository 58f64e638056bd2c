/**
 * Assembles wasm-source.ts's text into matmul.wasm with wabt (a devDependency):
 *   node --import tsx src/kernels/build-wasm.ts
 * The output is committed; test/kernels-wasm.test.ts checks that rebuilding gives the same bytes.
 */
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { wasmSource } from './wasm-source.js';

export const WASM_PATH = fileURLToPath(new URL('./matmul.wasm', import.meta.url));

/** The module's bytes, assembled from the generated text. */
export async function buildWasm(): Promise<Uint8Array> {
  const wabt = await (await import('wabt')).default();
  const features = { simd: true, threads: true };
  const mod = wabt.parseWat('matmul.wat', wasmSource(), features);
  try {
    // wabt's typings omit validate's features argument, which shared memory needs
    (mod.validate as (f: typeof features) => void)(features);
    return new Uint8Array(mod.toBinary({ log: false, write_debug_names: false }).buffer);
  } finally {
    mod.destroy();
  }
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const bytes = await buildWasm();
  writeFileSync(WASM_PATH, bytes);
  console.log(`wrote ${WASM_PATH} (${bytes.byteLength} bytes)`);
}
