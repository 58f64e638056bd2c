#!/usr/bin/env node
// Builds at1's compiled codec kernels (src/kernels/native/codec-kernels.c, see
// binding.gyp) with node-gyp; `npm ci` runs this as the package's install step.
// Without a C compiler the build fails and at1 runs its plain-JS kernels, which
// give the same bytes, only slower: so a failure here is a warning, unless
// AT1_REQUIRE_NATIVE=1 (CI), where it fails the install.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
// npm sets npm_config_node_gyp to its bundled node-gyp for lifecycle scripts; otherwise node-gyp on PATH.
const gyp = process.env.npm_config_node_gyp;
const [cmd, args] = gyp ? [process.execPath, [gyp, 'rebuild']] : ['node-gyp', ['rebuild']];
const quiet = process.env.AT1_BUILD_VERBOSE !== '1';
const r = spawnSync(cmd, args, { cwd: root, stdio: quiet ? ['ignore', 'pipe', 'pipe'] : 'inherit', encoding: 'utf8' });
if (r.status === 0) {
  console.log('at1: built the compiled codec kernels (build/Release/at1_codec_kernels.node)');
  process.exit(0);
}
const why = r.error ? r.error.message : `${r.stderr ?? ''}`.trim().split('\n').slice(-12).join('\n');
const required = process.env.AT1_REQUIRE_NATIVE === '1';
console.error(`at1: ${required ? 'error' : 'warning'}: the compiled codec kernels did not build${required ? '' : '; at1 will run its JS kernels (the same bytes, about 3x slower)'}.\n${why}`);
process.exit(required ? 1 : 0);
