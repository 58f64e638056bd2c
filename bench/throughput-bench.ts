/**
 * Speed and memory on a large synthetic bf16 family (a base and one
 * fine-tune, Llama-shaped, default 1B parameters): `at1 registry add` and
 * `at1 registry get` (full SHA-256 verification) run as child processes,
 * each timed and its peak RSS recorded; next to them, in the same run, the
 * practical limits: `zstd -3 -T2` + `sha256sum` of the fine-tune (what add
 * is held to) and `zstd -dc | sha256sum` of it (what get is held to).
 *
 * At the first level the add and the get also run with AT1_KERNELS=js (the
 * plain-JS reference loops instead of the compiled kernels), into a second
 * registry whose objects must be byte-identical to the first's: the gain of
 * the kernels, and proof at scale that they store the same bytes.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Level } from '../src/codec/types.js';
import { zstdCompress } from '../src/codec/zstd.js';
import { hasCommand } from './baselines.js';
import { open } from 'node:fs/promises';
import { readSafetensorsHeader } from '../src/format/safetensors.js';
import { Registry } from '../src/registry/registry.js';
import { listRegistry } from '../src/registry/list.js';
import { findTensor, readTensorBytes } from '../src/registry/tensor-access.js';
import { headerBytesFor, llamaShapes, paramCount, writeChain } from './synthetic.js';

const REPO = fileURLToPath(new URL('..', import.meta.url));

export interface Measured {
  what: string;
  bytes: number;
  seconds: number;
  mbPerSec: number;
  peakRssBytes?: number;
  /** Which baseline row this one is compared with ('add': zstd -3 -T2 + sha256sum, 'get': zstd -dc | sha256sum). */
  kind?: 'add' | 'get' | 'baseline-add' | 'baseline-get' | 'tensor';
  /** The fine-tune's bytes on disk in this row's registry, and that over its raw size. */
  storedBytes?: number;
}

function runAt1(args: string[], kernels: 'auto' | 'js' = 'auto'): { seconds: number; peakRssBytes: number } {
  const t0 = performance.now();
  const env = { ...process.env, AT1_KERNELS: kernels === 'js' ? 'js' : (process.env['AT1_KERNELS'] ?? '') };
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(REPO, 'bench/measured-cli.ts'), ...args], { encoding: 'utf8', cwd: REPO, maxBuffer: 1 << 26, env });
  const wall = (performance.now() - t0) / 1000;
  const line = r.stderr.split('\n').find((l) => l.startsWith('AT1-MEASURE '));
  if (r.status !== 0 || !line) throw new Error(`at1 ${args.join(' ')} failed: ${r.stderr}`);
  const m = JSON.parse(line.slice('AT1-MEASURE '.length)) as { maxRssBytes: number; exitCode: number };
  if (m.exitCode !== 0) throw new Error(`at1 ${args.join(' ')} exited ${m.exitCode}: ${r.stderr}`);
  return { seconds: wall, peakRssBytes: m.maxRssBytes };
}

function timeShell(cmd: string): number {
  const t0 = performance.now();
  const r = spawnSync('sh', ['-c', cmd], { stdio: 'ignore' });
  if (r.status !== 0) throw new Error(`${cmd} failed`);
  return (performance.now() - t0) / 1000;
}

/**
 * One tensor out of the 2 GB model: at1 (open the registry, find the tensor,
 * decode and verify its chunks and their references) against reading the
 * same bytes from the raw safetensors file, both in this process.
 */
async function tensorFetchRows(regDir: string, rawFile: string, level: Level): Promise<Measured[]> {
  const header = await readSafetensorsHeader(rawFile);
  const out: Measured[] = [];
  for (const name of ['model.layers.10.mlp.up_proj.weight', 'model.embed_tokens.weight']) {
    const t = header.tensors.find((x) => x.name === name);
    if (!t) continue;
    const t0 = performance.now();
    const reg = await Registry.open(regDir);
    const bytes = await readTensorBytes(reg, await findTensor(reg, 'ft', name));
    const at1s = (performance.now() - t0) / 1000;
    const t1 = performance.now();
    const fh = await open(rawFile, 'r');
    const raw = new Uint8Array(t.end - t.begin);
    await fh.read(raw, 0, raw.length, header.dataStart + t.begin);
    await fh.close();
    const raws = (performance.now() - t1) / 1000;
    if (Buffer.compare(bytes, raw) !== 0) throw new Error(`tensor ${name} differs from the raw file`);
    out.push(row(`at1 tensor get ${name} --level ${level}`, raw.length, at1s, undefined, 'tensor'));
    out.push(row(`read the same bytes from the .safetensors file`, raw.length, raws, undefined, 'tensor'));
  }
  return out;
}

const row = (what: string, bytes: number, seconds: number, peakRssBytes?: number, kind?: Measured['kind'], storedBytes?: number): Measured => ({ what, bytes, seconds, mbPerSec: bytes / 1e6 / seconds, peakRssBytes, kind, storedBytes });

/** Every file under dir (path and SHA-256), sorted: two registries with the same digest hold the same bytes. */
function treeDigest(dir: string): { digest: string; bytes: number } {
  const h = createHash('sha256');
  let bytes = 0;
  const walk = (d: string, rel: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p, `${rel}${e.name}/`);
      else if (e.isFile()) {
        const b = readFileSync(p);
        bytes += b.length;
        h.update(`${rel}${e.name}\0${createHash('sha256').update(b).digest('hex')}\n`);
      }
    }
  };
  walk(dir, '');
  return { digest: h.digest('hex'), bytes };
}

/** Bytes on disk of the objects a version added (the registry's own accounting, as `at1 registry list` prints it). */
async function versionStoredBytes(regDir: string, name: string): Promise<number> {
  const reg = await Registry.open(regDir);
  const v = (await listRegistry(reg)).versions.find((r) => r.name === name);
  if (!v) throw new Error(`version ${name} is not listed`);
  return v.storedBytes;
}

/**
 * `dataDir`: where the generated pair is kept between runs (a 7B pair takes
 * minutes to write): base.safetensors and ft.safetensors there are reused
 * when their size is that of `params`' shapes, else written there. Without
 * it the pair goes to a temp directory that is removed afterwards.
 */
export async function throughputBench(params: number, levels: Level[], log: (s: string) => void, jsRows = true, dataDir?: string): Promise<{ params: number; rows: Measured[]; sameObjectsWithJs?: boolean }> {
  const work = await mkdtemp(join(dataDir ?? tmpdir(), 'at1-bench-speed-'));
  try {
    const shapes = llamaShapes(params);
    const base = join(dataDir ?? work, 'base.safetensors');
    const ft = join(dataDir ?? work, 'ft.safetensors');
    const expected = headerBytesFor(shapes) + 2 * paramCount(shapes);
    const have = (f: string): boolean => existsSync(f) && statSync(f).size === expected;
    if (have(base) && have(ft)) log(`  reusing the ${(paramCount(shapes) / 1e9).toFixed(2)}B-parameter pair in ${dataDir}`);
    else {
      log(`  generating a ${(paramCount(shapes) / 1e9).toFixed(2)}B-parameter bf16 base and fine-tune in ${dataDir ?? work}`);
      writeChain([base, ft], shapes);
    }
    const size = statSync(ft).size;
    const rows: Measured[] = [];
    const zst = join(work, 'ft.safetensors.zst');
    // the baselines first, while the fine-tune is in the page cache as it will be for at1
    if (hasCommand('zstd') && hasCommand('sha256sum')) {
      rows.push(row('zstd -3 -T2 + sha256sum (CLI)', size, timeShell(`zstd -q -3 -T2 -f -o ${zst} ${ft} && sha256sum ${ft} >/dev/null`), undefined, 'baseline-add', statSync(zst).size));
      rows.push(row('zstd -dc | sha256sum (CLI)', size, timeShell(`zstd -q -d -c ${zst} | sha256sum >/dev/null`), undefined, 'baseline-get', statSync(zst).size));
    } else {
      const data = new Uint8Array(readFileSync(ft));
      const t0 = performance.now();
      const z = zstdCompress(data, 3);
      createHash('sha256').update(data).digest();
      rows.push(row('zstd -3 + SHA-256 (in process, no zstd CLI)', size, (performance.now() - t0) / 1000, undefined, 'baseline-add', z.length));
    }
    await rm(zst, { force: true });
    let sameObjectsWithJs: boolean | undefined;
    for (const [li, level] of levels.entries()) {
      const reg = join(work, `reg-${level}`);
      const init = runAt1(['registry', 'init', base, reg, '--level', level]);
      rows.push(row(`at1 init (base, standalone) --level ${level}`, size, init.seconds, init.peakRssBytes, 'add'));
      const a = runAt1(['registry', 'add', reg, ft, '--name', 'ft', '--parent', 'base']);
      const stored = await versionStoredBytes(reg, 'ft');
      rows.push(row(`at1 add (delta) --level ${level}`, size, a.seconds, a.peakRssBytes, 'add', stored));
      const out = join(work, 'out.safetensors');
      const g = runAt1(['registry', 'get', reg, 'ft', '--out', out]);
      rows.push(row(`at1 get + verify --level ${level}`, size, g.seconds, g.peakRssBytes, 'get', stored));
      if (li === 0 && jsRows) {
        // the same work on the JS reference loops, into a registry that must come out byte-identical
        const regJs = join(work, `reg-${level}-js`);
        runAt1(['registry', 'init', base, regJs, '--level', level], 'js');
        const aj = runAt1(['registry', 'add', regJs, ft, '--name', 'ft', '--parent', 'base'], 'js');
        rows.push(row(`at1 add (delta) --level ${level}, JS kernels forced`, size, aj.seconds, aj.peakRssBytes, 'add', await versionStoredBytes(regJs, 'ft')));
        const gj = runAt1(['registry', 'get', reg, 'ft', '--out', out], 'js');
        rows.push(row(`at1 get + verify --level ${level}, JS kernels forced`, size, gj.seconds, gj.peakRssBytes, 'get', stored));
        const objects = (d: string): string => treeDigest(join(d, 'objects')).digest;
        sameObjectsWithJs = objects(reg) === objects(regJs);
        await rm(regJs, { recursive: true, force: true });
      }
      rows.push(...(await tensorFetchRows(reg, ft, level)));
      await rm(out, { force: true });
      await rm(reg, { recursive: true, force: true });
      log(`  measured level ${level}`);
    }
    return { params: paramCount(shapes), rows, sameObjectsWithJs };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
