/**
 * `npm run bench:serve [-- FAMILY_DIR] [--params N] [--seconds S] [--repeat R]`
 *
 * at1 serve against what it is built on, measured in the same run:
 *  - file throughput: GET /v1/versions/V/files/F (reconstructed on the fly,
 *    every chunk checked before it is sent) vs `at1 registry get` of the
 *    same version to a file (same decode and checks, written to disk; a
 *    fresh process each time, as a user runs it) and vs the library's
 *    getVersion in-process (the decode and checks without a process start);
 *  - tensor throughput: every tensor of the version, one GET each (1 and 4
 *    clients), vs the same restores;
 * Each HTTP pass runs against a freshly started server, so nothing it
 * decoded for an earlier pass is in its chunk cache.
 *  - small range reads: 4 KiB ranges at random offsets of the largest
 *    tensor, 16 concurrent clients (autocannon, against 127.0.0.1), vs the
 *    library reading the same ranges in-process (readTensorBytes, 16 at once).
 *
 * Data: a synthetic bf16 Llama-shaped model of --params parameters (base +
 * one fine-tune step, the fine-tune stored as a delta; the default 5e7
 * gives llamaShapes' 78M parameters, 156 MB per version) and the fixture
 * family's largest version (FAMILY_DIR,
 * default ../shared/fixtures/tinystories). The server runs as `at1 serve`
 * in its own process so the load generator does not share its event loop.
 * Not part of `npm test`.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { add, findTensor, getVersion, initRegistry, openRegistry, readTensorBytes, tensorsOf } from '../src/index.js';
import { table } from '../src/cli/output.js';
import { llamaShapes, writeChain } from './synthetic.js';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { params: { type: 'string', default: '5e7' }, seconds: { type: 'string', default: '5' }, repeat: { type: 'string', default: '3' } },
});
const familyDir = resolve(positionals[0] ?? (existsSync(join(REPO, '../shared/fixtures/tinystories')) ? join(REPO, '../shared/fixtures/tinystories') : join(REPO, 'fixtures/tinystories')));
const params = Number(values.params);
const seconds = Number(values.seconds);
const repeat = Number(values.repeat);
const log = (s: string): void => void process.stderr.write(s + '\n');
const MB = 1e6;
const at1Bin = join(REPO, 'bin/at1.js');

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function timed(fn: () => Promise<void> | void): Promise<number> {
  const t0 = performance.now();
  await fn();
  return (performance.now() - t0) / 1000;
}

/** The median of `repeat` timed runs, one after the other. */
async function medianOf(fn: () => Promise<void> | void): Promise<number> {
  const xs: number[] = [];
  for (let i = 0; i < repeat; i++) xs.push(await timed(fn));
  return median(xs);
}

async function startServe(dir: string): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, [at1Bin, 'serve', dir, '--port', '0', '--json'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const line = await new Promise<string>((res, rej) => {
    createInterface({ input: child.stdout! }).once('line', res);
    child.once('exit', (c) => rej(new Error(`at1 serve exited with ${c}`)));
  });
  return { url: (JSON.parse(line) as { url: string }).url, child };
}

async function stopServe(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((res) => child.once('exit', res));
  child.kill('SIGTERM');
  await exited;
}

async function drain(url: string, headers: Record<string, string> = {}): Promise<number> {
  const r = await fetch(url, { headers });
  if (!r.ok) throw new Error(`${url}: ${r.status}`);
  let n = 0;
  for await (const c of r.body!) n += (c as Uint8Array).length;
  return n;
}

interface Case {
  label: string;
  reg: string;
  version: string;
  file: string;
  size: number;
}

/** Run `fn` against a freshly started server (cold: nothing decoded yet), timing only `fn`. */
async function onFreshServer(reg: string, fn: (url: string) => Promise<void>): Promise<number> {
  const s = await startServe(reg);
  try {
    await fetch(`${s.url}/v1/versions`); // the server is up and its registry open
    return await timed(() => fn(s.url));
  } finally {
    await stopServe(s.child);
  }
}

async function medianFresh(reg: string, fn: (url: string) => Promise<void>): Promise<number> {
  const xs: number[] = [];
  for (let i = 0; i < repeat; i++) xs.push(await onFreshServer(reg, fn));
  return median(xs);
}

async function benchCase(c: Case, rows: string[][], rangeRows: string[][]): Promise<void> {
  const out = join(mkdtempSync(join(tmpdir(), 'at1-serve-bench-out-')), 'out.safetensors');
  // Baseline: the CLI restoring the same version (a fresh process each time, as a user runs it).
  const getS = await medianOf(() => {
    rmSync(out, { force: true });
    const r = spawnSync(process.execPath, [at1Bin, 'registry', 'get', c.reg, c.version, '--out', out], { stdio: 'ignore' });
    if (r.status !== 0 || statSync(out).size !== c.size) throw new Error('at1 registry get failed');
  });
  // The same restore in-process (no process start): the decode and checks alone.
  const libGetS = await medianOf(async () => {
    rmSync(out, { force: true });
    await getVersion(await openRegistry(c.reg), c.version, out);
  });
  const httpS = await medianFresh(c.reg, async (url) => {
    if ((await drain(`${url}/v1/versions/${c.version}/files/${encodeURIComponent(c.file)}`)) !== c.size) throw new Error('HTTP file: wrong size');
  });
  const reg = await openRegistry(c.reg);
  const tensors = tensorsOf(await reg.manifest(c.version)).map((l) => l.tensor);
  const tensorBytes = tensors.reduce((a, t) => a + t.length, 0);
  const tensorPass = async (url: string, clients: number): Promise<void> => {
    let next = 0;
    await Promise.all(
      Array.from({ length: clients }, async () => {
        while (next < tensors.length) {
          const t = tensors[next++]!;
          await drain(`${url}/v1/versions/${c.version}/tensors/${encodeURIComponent(t.name)}`);
        }
      }),
    );
  };
  const t1 = await medianFresh(c.reg, (url) => tensorPass(url, 1));
  const t4 = await medianFresh(c.reg, (url) => tensorPass(url, 4));
  const getMBs = c.size / MB / getS;
  const libMBs = c.size / MB / libGetS;
  const f = (x: number): string => x.toFixed(1);
  const ratio = (x: number): string => x.toFixed(2);
  const fileMBs = c.size / MB / httpS;
  const t1MBs = tensorBytes / MB / t1;
  const t4MBs = tensorBytes / MB / t4;
  rows.push([c.label, `${f(c.size / MB)} MB`, f(getMBs), f(libMBs), f(fileMBs), ratio(fileMBs / getMBs), ratio(fileMBs / libMBs), f(t1MBs), ratio(t1MBs / libMBs), f(t4MBs), ratio(t4MBs / libMBs)]);

  // Small range reads: 4 KiB at random offsets of the largest tensor.
  const big = tensors.reduce((a, t) => (t.length > a.length ? t : a));
  const span = 4096;
  const offsets = Array.from({ length: 4096 }, (_, i) => Math.floor(((i * 2654435761) % 2 ** 32) / 2 ** 32 * (big.length - span)));
  const loc = await findTensor(reg, c.version, big.name);
  const s = await startServe(c.reg);
  const url = s.url;
  let k = 0;
  const libS = await timed(async () => {
    await Promise.all(Array.from({ length: 16 }, async () => {
      while (k < offsets.length) {
        const o = offsets[k++]!;
        await readTensorBytes(reg, loc, { start: o, end: o + span });
      }
    }));
  });
  const libRate = offsets.length / libS;
  let j = 0;
  const result = await autocannon({
    url: `${url}/v1/versions/${c.version}/tensors/${encodeURIComponent(big.name)}`,
    connections: 16,
    duration: seconds,
    requests: [
      {
        setupRequest: (req) => {
          const o = offsets[j++ % offsets.length]!;
          return { ...req, headers: { ...req.headers, range: `bytes=${o}-${o + span - 1}` } };
        },
      },
    ],
  });
  if (result.non2xx > 0 || result.errors > 0) throw new Error(`range reads: ${result.non2xx} non-2xx, ${result.errors} errors`);
  await stopServe(s.child);
  rangeRows.push([c.label, big.name, `${(big.length / MB).toFixed(1)} MB`, String(Math.round(result.requests.average)), String(result.latency.p50), String(result.latency.p99), String(Math.round(libRate)), (result.requests.average / libRate).toFixed(2)]);
  rmSync(join(out, '..'), { recursive: true, force: true });
}

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'at1-serve-bench-'));
  try {
    const cases: Case[] = [];
    // Synthetic: base + one fine-tune step, the fine-tune a delta.
    log(`building a synthetic ${params.toExponential(1)}-parameter bf16 model (base + fine-tune)…`);
    const shapes = llamaShapes(params);
    const [b, f] = [join(work, 'base.safetensors'), join(work, 'ft.safetensors')];
    writeChain([b, f], shapes);
    const synth = join(work, 'synthetic');
    const { registry } = await initRegistry(synth, b, { level: 'fast' });
    await add(registry, f, { name: 'ft', parent: 'base', level: 'fast' });
    cases.push({ label: `synthetic ${params.toExponential(0)} (delta)`, reg: synth, version: 'ft', file: 'ft.safetensors', size: statSync(f).size });
    rmSync(b);
    rmSync(f);
    // The fixture family: its largest version, a delta against its parent.
    const fam = JSON.parse(readFileSync(join(familyDir, 'family.json'), 'utf8')) as { versions: { name: string; file: string; parent: string | null; bytes: number }[] };
    const biggest = fam.versions.filter((v) => v.parent !== null).reduce((a, v) => (v.bytes > a.bytes ? v : a));
    const famReg = join(work, 'family');
    const chain: typeof fam.versions = [];
    for (let v: (typeof fam.versions)[number] | undefined = biggest; v; v = fam.versions.find((x) => x.name === v!.parent)) chain.unshift(v);
    const { registry: fr } = await initRegistry(famReg, join(familyDir, chain[0]!.file), { name: chain[0]!.name, level: 'fast' });
    for (const v of chain.slice(1)) await add(fr, join(familyDir, v.file), { name: v.name, parent: v.parent ?? undefined, level: 'fast' });
    cases.push({ label: `fixture ${biggest.name}`, reg: famReg, version: biggest.name, file: biggest.file, size: biggest.bytes });

    const rows = [['data', 'file', 'at1 registry get MB/s', 'library get MB/s', 'HTTP file MB/s', 'file/CLI get', 'file/library get', 'HTTP tensors MB/s (1 client)', 'tensors/library get', 'HTTP tensors MB/s (4 clients)', 'tensors(4)/library get']];
    const rangeRows = [['data', 'tensor', 'size', 'HTTP 4 KiB ranges req/s (16 clients)', 'p50 ms', 'p99 ms', 'library reads/s (16 at once)', 'HTTP/library']];
    for (const c of cases) {
      log(`measuring ${c.label}…`);
      await benchCase(c, rows, rangeRows);
    }
    console.log(`\n## at1 serve: throughput over HTTP vs at1 registry get (median of ${repeat}; ${process.version}, 127.0.0.1)\n`);
    console.log(table(rows, rows[0]!.map((_, i) => i > 0)));
    console.log(`\n## Small range reads (4 KiB at random offsets, ${seconds} s, autocannon, 16 connections)\n`);
    console.log(table(rangeRows, rangeRows[0]!.map((_, i) => i > 1)));
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
