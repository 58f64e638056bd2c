/**
 * The bench-only references (bench/peer/package.json: node-llama-cpp,
 * onnxruntime-node) are not dependencies of at1: node-llama-cpp with its
 * prebuilt llama.cpp builds is ≈ 1 GB, and onnxruntime-node's install script
 * downloads from outside the npm registry unless told not to. A bench that
 * wants them installs them here, from bench/peer's own lock file, the first
 * time it runs (`npm ci` in bench/peer; node_modules/ is git-ignored).
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const PEER_DIR = dirname(fileURLToPath(import.meta.url));

const installed = (pkg: string): boolean => existsSync(join(PEER_DIR, 'node_modules', pkg, 'package.json'));

/**
 * Makes sure `pkg` is installed in bench/peer (running `npm ci` there once if
 * not). Returns undefined when it is, else why not (the caller prints it).
 */
export function ensurePeerPackage(pkg: 'node-llama-cpp' | 'onnxruntime-node', opts: { install?: boolean } = {}): string | undefined {
  if (installed(pkg)) return undefined;
  const how = `ONNXRUNTIME_NODE_INSTALL=skip NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm ci --prefix bench/peer`;
  if (opts.install === false) return `${pkg} is not installed in bench/peer (install it with: ${how})`;
  process.stderr.write(`installing the bench-only references in bench/peer (npm ci, ≈ 1 GB, once) …\n`);
  const r = spawnSync('npm', ['ci', '--no-audit', '--no-fund'], {
    cwd: PEER_DIR,
    stdio: ['ignore', 'inherit', 'inherit'],
    // onnxruntime-node's postinstall would fetch CUDA libraries from outside the npm registry;
    // node-llama-cpp ships prebuilt CPU builds as npm packages and must not try to build or download.
    env: { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'skip', NODE_LLAMA_CPP_SKIP_DOWNLOAD: 'true' },
  });
  if (r.error || r.status !== 0) return `npm ci in bench/peer failed (${r.error?.message ?? `exit ${r.status}`}); install by hand with: ${how}`;
  return installed(pkg) ? undefined : `npm ci in bench/peer did not install ${pkg}`;
}
