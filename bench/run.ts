/**
 * `npm run bench [-- FAMILY_DIR] [--params N] [--checkpoints N] [--levels fast,max] [--only family,speed,checkpoints,s3,search] [--s3-params N] [--search-params N] [--no-xz] [--no-js-rows] [--speed-data DIR]`
 * (--no-js-rows: skip the speed rows that force the JS kernels, for very large --params;
 *  --speed-data DIR: keep the generated speed pair in DIR and reuse it on the next run)
 *
 * `search` (not in the default set) compares the encoder search at 'max'
 * with the exhaustive one on the same chunks (search-bench.ts).
 *
 * `s3` runs when an S3 service is configured (AT1_S3_TEST_BUCKET from
 * scripts/ceph-test-cluster.sh, or AT1_S3_BENCH_BUCKET with the AWS
 * variables); without one it is skipped with a note.
 *
 * Prints a table per section with at1 against baselines measured in the
 * same run, and writes every figure as JSON to bench/results/latest.json
 * (and a timestamped copy) for later comparison.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { Level } from '../src/codec/types.js';
import { table } from '../src/cli/output.js';
import { checkpointBench } from './checkpoint-bench.js';
import { familyBench, type FamilyResult } from './family-bench.js';
import { throughputBench } from './throughput-bench.js';
import { loadNativeCodecKernels } from '../src/kernels/codec-native.js';
import { s3Bench } from './s3-bench.js';
import { searchBench } from './search-bench.js';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    params: { type: 'string', default: '1e9' },
    checkpoints: { type: 'string', default: '100' },
    'ckpt-params': { type: 'string', default: '1e7' },
    levels: { type: 'string', default: 'max,fast' },
    only: { type: 'string', default: 'family,speed,checkpoints,s3' },
    's3-params': { type: 'string', default: '5e7' },
    'search-params': { type: 'string', default: '1e8' },
    'no-xz': { type: 'boolean', default: false },
    'no-js-rows': { type: 'boolean', default: false },
    'speed-data': { type: 'string' },
  },
});
const familyDir = resolve(positionals[0] ?? join(REPO, '../shared/fixtures/tinystories'));
const levels = values.levels.split(',') as Level[];
const only = new Set(values.only.split(','));
const log = (s: string): void => void process.stderr.write(s + '\n');
const r3 = (x: number): string => x.toFixed(3);
/** Which codec kernels the at1 child processes use (they inherit AT1_KERNELS). */
function kernelsNote(): string {
  const env = process.env['AT1_KERNELS'];
  if (env === 'js') return 'JS reference (AT1_KERNELS=js)';
  return loadNativeCodecKernels().kernels ? 'compiled (Node-API addon)' : 'JS reference (the addon is not built)';
}
const results: Record<string, unknown> = { date: new Date().toISOString(), familyDir, node: process.version };

function printFamily(f: FamilyResult): void {
  console.log(`\n## Family storage (${familyDir}), level ${f.level}: stored / raw; at1 against its chosen reference, BitX against family.json's parent\n`);
  const rows = [['version', 'at1 parent', 'BitX parent', 'raw bytes', 'at1 bytes', 'BitX bytes', 'at1', 'BitX', 'zstd-19', 'xz-9e', 'at1/BitX']];
  for (const r of f.rows) {
    rows.push([r.name, r.at1Parent ?? '-', r.familyParent ?? '-', String(r.raw), String(r.at1), String(r.bitx), r3(r.at1 / r.raw), r3(r.bitx / r.raw), r3(r.zstd19 / r.raw), r.xz ? r3(r.xz / r.raw) : '-', r3(r.at1 / r.bitx)]);
  }
  const t = f.total;
  rows.push(['whole family', '', '', String(t.raw), String(t.at1), String(t.bitx), r3(t.at1 / t.raw), r3(t.bitx / t.raw), r3(t.zstd19 / t.raw), t.xz ? r3(t.xz / t.raw) : '-', r3(t.at1 / t.bitx)]);
  console.log(table(rows, [false, false, false, true, true, true, true, true, true, true, true]));
  const withRelative = f.rows.filter((r) => r.familyParent !== null);
  const worst = withRelative.reduce((a, r) => Math.max(a, r.at1 / r.bitx), 0);
  console.log(`\ntargets: family ${r3(t.at1 / t.raw)} of raw (target <= 0.26; BitX ${r3(t.bitx / t.raw)}); worst version with a relative at ${r3(worst)} x its BitX size (target <= 0.80)`);
  if (f.standaloneBf16) {
    const s = f.standaloneBf16;
    console.log(`standalone bf16 tensors: at1 ${r3(s.at1 / s.raw)} of raw, byte-grouped zstd -3 ${r3(s.groupedZstd / s.raw)} (target <= 0.66; ZipNN reports 0.663)`);
  }
  if (f.crossDtype) console.log(`cross-dtype: ${f.crossDtype.name} against ${f.crossDtype.parent}: ${r3(f.crossDtype.at1 / f.crossDtype.raw)} of raw (target <= 0.01)`);
}

if (only.has('family')) {
  const fam: FamilyResult[] = [];
  for (const level of levels) {
    log(`family storage, level ${level}`);
    const f = await familyBench(familyDir, level, !values['no-xz'], log);
    printFamily(f);
    fam.push(f);
  }
  results.family = fam;
}

if (only.has('speed')) {
  log(`throughput (${values.params} parameters)`);
  const s = await throughputBench(Number(values.params), levels, log, !values['no-js-rows'], values['speed-data'] ? resolve(values['speed-data']) : undefined);
  console.log(`\n## Throughput and memory, synthetic ${(s.params / 1e9).toFixed(2)}B-parameter bf16 family (MB/s of the fine-tune's raw size; kernels: ${kernelsNote()})\n`);
  const addLimit = s.rows.find((r) => r.kind === 'baseline-add');
  const getLimit = s.rows.find((r) => r.kind === 'baseline-get');
  const rows = [['what', 'bytes', 'seconds', 'MB/s', 'peak RSS MB', 'vs its baseline', 'fine-tune stored', 'of raw']];
  for (const r of s.rows) {
    const lim = r.kind === 'add' ? addLimit : r.kind === 'get' ? getLimit : undefined;
    const vs = lim ? `${r3(r.mbPerSec / lim.mbPerSec)} of ${lim === addLimit ? 'zstd -3 -T2 + sha256sum' : 'zstd -dc | sha256sum'}` : '-';
    rows.push([r.what, String(r.bytes), r.seconds.toFixed(2), r.mbPerSec.toFixed(0), r.peakRssBytes ? (r.peakRssBytes / 1e6).toFixed(0) : '-', vs, r.storedBytes !== undefined ? String(r.storedBytes) : '-', r.storedBytes !== undefined ? r3(r.storedBytes / r.bytes) : '-']);
  }
  console.log(table(rows, [false, true, true, true, true, false, true, true]));
  if (s.sameObjectsWithJs !== undefined) console.log(`\nobjects stored with the JS kernels forced ${s.sameObjectsWithJs ? 'are byte-identical to' : 'DIFFER FROM'} those stored with the compiled kernels`);
  console.log('targets (issue 14): get + verify at the default level >= 1.0 of zstd -dc | sha256sum; add at the default level >= 0.6 of zstd -3 -T2 + sha256sum; peak RSS <= 1 GiB');
  results.throughput = s;
}

if (only.has('checkpoints')) {
  const n = Number(values.checkpoints);
  const params = Number(values['ckpt-params']);
  log(`checkpoint run (${n} checkpoints)`);
  const c = await checkpointBench(n, levels[0]!, log, params);
  console.log(`\n## A training run of ${n} checkpoints (synthetic ${(c.params / 1e6).toFixed(1)}M-parameter bf16 Llama shape, ${(c.rawPerCheckpoint / 1e6).toFixed(1)} MB each, momentum steps), level ${levels[0]}\n`);
  console.log(
    table(
      [['version', 'add s', 'stored bytes', 'of raw', 'chain depth', 'get s'], ...c.rows.map((r) => [String(r.version), r.addSeconds.toFixed(2), String(r.storedBytes), r3(r.ratio), String(r.depth), r.getSeconds.toFixed(2)])],
      [false, true, true, true, true, true],
    ),
  );
  console.log('');
  console.log(
    table(
      [
        ['per checkpoint, whole run', 'bytes', 'of raw', 'at1 / this'],
        ['raw', String(c.rawPerCheckpoint), '1.000', r3(c.at1PerCheckpoint / c.rawPerCheckpoint)],
        ['zstd -19 (each alone; mean of ' + c.zstd19Sampled + ' sampled)', String(Math.round(c.zstd19PerCheckpoint)), r3(c.zstd19PerCheckpoint / c.rawPerCheckpoint), r3(c.at1PerCheckpoint / c.zstd19PerCheckpoint)],
        ['BitX (each against the previous, unbounded chain)', String(Math.round(c.bitxPerCheckpoint)), r3(c.bitxPerCheckpoint / c.rawPerCheckpoint), r3(c.at1PerCheckpoint / c.bitxPerCheckpoint)],
        ['at1', String(Math.round(c.at1PerCheckpoint)), r3(c.at1PerCheckpoint / c.rawPerCheckpoint), '1.000'],
      ],
      [false, true, true, true],
    ),
  );
  const a2 = c.addSeconds[2] ?? NaN;
  const deepest = c.rows.reduce((a, r) => (r.depth > a.depth ? r : a), c.rows[0]!);
  const shallowest = c.rows.reduce((a, r) => (r.depth < a.depth ? r : a), c.rows[0]!);
  console.log(`\ndeepest delta chain: ${c.maxDepth} (bound ${c.maxChainDepthSetting})`);
  console.log(`targets: add of version ${c.checkpoints} ${r3(c.addSeconds[c.checkpoints]! / a2)} x version 2's (target <= 1.2); at1 ${r3(c.at1PerCheckpoint / c.bitxPerCheckpoint)} x BitX (target <= 0.7); get of the deepest (depth ${deepest.depth}) ${r3(deepest.getSeconds / shallowest.getSeconds)} x the shallowest (depth ${shallowest.depth}) (target <= 2)`);
  console.log(`list: ${(c.listSecondsPerVersion * 1000).toFixed(1)} ms per version; verify: ${c.verifySecondsPerVersion.toFixed(2)} s per version (${((c.rawPerCheckpoint / c.verifySecondsPerVersion) / 1e6).toFixed(1)} MB/s)`);
  results.checkpoints = c;
}

if (only.has('s3')) {
  if (!process.env.AT1_S3_TEST_BUCKET && !process.env.AT1_S3_BENCH_BUCKET) {
    log('s3: skipped, no S3 service configured (eval "$(scripts/ceph-test-cluster.sh start)" first)');
  } else {
    log(`S3 (${values['s3-params']} parameters)`);
    const s = await s3Bench(Number(values['s3-params']), log);
    console.log(`\n## S3 (${s.endpoint ?? 'AWS'}) against a local directory, synthetic ${(s.params / 1e6).toFixed(0)}M-parameter bf16 base + fine-tune, level fast (input MB/s for add, output MB/s for get)\n`);
    const sdkPut = s.rows.find((r) => r.what.startsWith('SDK PutObject'))!;
    const sdkGet = s.rows.find((r) => r.what.startsWith('SDK GetObject'))!;
    const rows = [['what', 'bytes', 'seconds', 'MB/s', 'vs same on local dir', 'vs plain SDK transfer']];
    for (const r of s.rows) {
      const kind = r.what.startsWith('at1 add') ? 'at1 add' : r.what.startsWith('at1 get') ? 'at1 get' : undefined;
      const local = kind ? s.rows.find((x) => x.what.startsWith(kind) && x.what.endsWith('local directory')) : undefined;
      const sdk = kind === 'at1 add' ? sdkPut : kind === 'at1 get' ? sdkGet : undefined;
      rows.push([r.what, String(r.bytes), r.seconds.toFixed(2), r.mbPerSec.toFixed(1), local ? r3(r.mbPerSec / local.mbPerSec) : '-', sdk ? r3(r.mbPerSec / sdk.mbPerSec) : '-']);
    }
    console.log(table(rows, [false, true, true, true, true, true]));
    console.log('\nat1 rows move both files (base + fine-tune); the SDK rows move the raw base file once, uncompressed, unverified.');
    results.s3 = s;
  }
}

if (only.has('search')) {
  log(`encoder search (${familyDir}, synthetic ${values['search-params']} parameters)`);
  const s = await searchBench(familyDir, Number(values['search-params']), log);
  const rows = [['chunks of', 'chunks', 'raw bytes', 'exhaustive bytes', 'search bytes', 'search / exhaustive', 'other winner', 'exhaustive s', 'search s', 'speed-up']];
  for (const r of [...s.family, ...s.synthetic]) {
    rows.push([r.what, String(r.chunks), String(r.raw), String(r.exhaustiveBytes), String(r.estimateBytes), (r.estimateBytes / r.exhaustiveBytes).toFixed(4), String(r.differentWinner), r.exhaustiveSeconds.toFixed(2), r.estimateSeconds.toFixed(2), r3(r.exhaustiveSeconds / r.estimateSeconds)]);
  }
  console.log(`\n## Encoder search at max against trying every codec, same chunks, same run (payload bytes; single-thread encode seconds); family ${familyDir}, synthetic ${(s.params / 1e9).toFixed(2)}B bf16 pair\n`);
  console.log(table(rows, [false, true, true, true, true, true, true, true, true, true]));
  console.log('\ntarget: search / exhaustive <= 1.01 on every row');
  results.search = s;
}

const dir = join(REPO, 'bench/results');
mkdirSync(dir, { recursive: true });
const json = JSON.stringify(results, null, 2);
writeFileSync(join(dir, 'latest.json'), json);
writeFileSync(join(dir, `bench-${results.date as string}.json`.replace(/:/g, '-')), json);
log(`\nfigures written to ${join(dir, 'latest.json')}`);
