#!/usr/bin/env bash
# Memory-safety check of the compiled codec kernels: builds src/kernels/native/codec-kernels.c
# with AddressSanitizer and UndefinedBehaviorSanitizer (gcc), then runs the kernel tests and the
# codec fuzz targets against that build (AT1_KERNELS_ADDON), any report failing the run.
#   scripts/kernels-sanitized.sh [RUNS]     (fuzz cases per target, default 20000)
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-20000}"
out="$(mktemp -d)/at1_codec_kernels_sanitized.node"
node_include="$(node -p "require('path').join(process.execPath, '../../include/node')")"
[ -f "$node_include/node_api.h" ] || node_include=/usr/include/node
gcc -shared -fPIC -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined \
  -I"$node_include" src/kernels/native/codec-kernels.c -o "$out"
export LD_PRELOAD="$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so)"
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export AT1_KERNELS_ADDON="$out" AT1_KERNELS=native
node -e "require(process.env.AT1_KERNELS_ADDON); if (!require('fs').readFileSync('/proc/self/maps', 'utf8').includes('libasan')) { console.error('ASan is not loaded'); process.exit(1); }"
node --import tsx --test test/codec-kernels-native.test.ts
npm run fuzz -- --target codec-kernels --runs "$runs"
npm run fuzz -- --target codec-payloads --runs "$runs"
echo "sanitized kernels: no reports"
