/**
 * Speed and memory on a large synthetic bf16 family (a base and one
 * fine-tune, Llama-shaped, default 1B parameters): `at1 registry add` and
 * `at1 registry get` (full SHA-256 verification) run as child processes,
 * each timed and its peak RSS recorded; next to them, in the same run, the
 * practical limits: zstd -3 compression + SHA-256, and `zstd -d` + SHA-256
 * of the same bytes.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
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
import { findTensor, readTensorBytes } from '../src/registry/tensor-access.js';
import { llamaShapes, paramCount, writeChain } from './synthetic.js';

const REPO = fileURLToPath(new URL('..', import.meta.url));

export interface Measured {
  what: string;
  bytes: number;
  seconds: number;
  mbPerSec: number;
  peakRssBytes?: number;
}

function runAt1(args: string[]): { seconds: number; peakRssBytes: number } {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(REPO, 'bench/measured-cli.ts'), ...args], { encoding: 'utf8', cwd: REPO, maxBuffer: 1 << 26 });
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
    out.push(row(`at1 tensor get ${name} --level ${level}`, raw.length, at1s));
    out.push(row(`read the same bytes from the .safetensors file`, raw.length, raws));
  }
  return out;
}

const row = (what: string, bytes: number, seconds: number, peakRssBytes?: number): Measured => ({ what, bytes, seconds, mbPerSec: bytes / 1e6 / seconds, peakRssBytes });

export async function throughputBench(params: number, levels: Level[], log: (s: string) => void): Promise<{ params: number; rows: Measured[] }> {
  const work = await mkdtemp(join(tmpdir(), 'at1-bench-speed-'));
  try {
    const shapes = llamaShapes(params);
    const base = join(work, 'base.safetensors');
    const ft = join(work, 'ft.safetensors');
    log(`  generating a ${(paramCount(shapes) / 1e9).toFixed(2)}B-parameter bf16 base and fine-tune in ${work}`);
    writeChain([base, ft], shapes);
    const size = statSync(ft).size;
    const rows: Measured[] = [];
    for (const level of levels) {
      const reg = join(work, `reg-${level}`);
      const init = runAt1(['registry', 'init', base, reg, '--level', level]);
      rows.push(row(`at1 init (base, standalone) --level ${level}`, size, init.seconds, init.peakRssBytes));
      const a = runAt1(['registry', 'add', reg, ft, '--name', 'ft', '--parent', 'base']);
      rows.push(row(`at1 add (delta) --level ${level}`, size, a.seconds, a.peakRssBytes));
      const out = join(work, 'out.safetensors');
      const g = runAt1(['registry', 'get', reg, 'ft', '--out', out]);
      rows.push(row(`at1 get + verify --level ${level}`, size, g.seconds, g.peakRssBytes));
      rows.push(...(await tensorFetchRows(reg, ft, level)));
      await rm(out, { force: true });
      await rm(reg, { recursive: true, force: true });
      log(`  measured level ${level}`);
    }
    const zst = join(work, 'ft.safetensors.zst');
    if (hasCommand('zstd') && hasCommand('sha256sum')) {
      rows.push(row('zstd -3 + sha256sum (CLI)', size, timeShell(`zstd -q -3 -T1 -f -o ${zst} ${ft} && sha256sum ${ft} >/dev/null`)));
      rows.push(row('zstd -d | sha256sum (CLI)', size, timeShell(`zstd -q -d -c ${zst} | sha256sum >/dev/null`)));
    } else {
      const data = new Uint8Array(readFileSync(ft));
      const t0 = performance.now();
      zstdCompress(data, 3);
      createHash('sha256').update(data).digest();
      rows.push(row('zstd -3 + SHA-256 (in process)', size, (performance.now() - t0) / 1000));
    }
    return { params: paramCount(shapes), rows };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
