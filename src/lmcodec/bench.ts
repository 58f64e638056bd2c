/**
 * `at1 archive bench`: each file compressed with the model and with the
 * general compressors a user would compare against, measured in the same
 * run: xz -9e and zstd -19 always; zpaq -m5 (Debian `zpaq`, the strongest
 * context-mixing compressor packaged), PPMd order 6 (`7zz`, Debian `7zip`)
 * and bzip3 when installed. Every at1 round trip is checked byte for byte.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { compressToArchive, decompressArchive, type ArchiveProgress } from './archive.js';
import type { CoderOptions } from './coder.js';

export interface BenchRow {
  file: string;
  bytes: number;
  /** compressed sizes by compressor ('xz -9e', 'zstd -19', 'zpaq -m5', 'ppmd o6', 'bzip3'); absent when not installed */
  baselines: Record<string, number>;
  at1zBytes: number;
  bitsPerByte: number;
  tokens: number;
  compressBytesPerSecond: number;
  decompressBytesPerSecond: number;
  roundTrip: boolean;
}

export interface BenchOptions extends CoderOptions {
  threads?: number;
  onProgress?: (p: ArchiveProgress) => void;
}

function has(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

/** The size a shell pipeline prints to stdout, or undefined when it fails. */
function sizeOf(cmd: string, args: string[], input?: Uint8Array): number | undefined {
  const r = spawnSync(cmd, args, { input, maxBuffer: 1 << 30 });
  return r.status === 0 ? r.stdout.length : undefined;
}

function baselines(file: string, tmp: string): Record<string, number> {
  const out: Record<string, number> = {};
  const bytes = readFileSync(file);
  const put = (name: string, v: number | undefined): void => {
    if (v !== undefined) out[name] = v;
  };
  if (has('xz')) put('xz -9e', sizeOf('xz', ['-9e', '-c', '-T1'], bytes));
  if (has('zstd')) put('zstd -19', sizeOf('zstd', ['-19', '-c', '-q'], bytes));
  if (has('zpaq')) {
    const a = join(tmp, 'b.zpaq');
    rmSync(a, { force: true });
    const r = spawnSync('zpaq', ['a', a, basename(file), '-m5'], { cwd: join(file, '..'), stdio: 'ignore' });
    if (r.status === 0) put('zpaq -m5', statSync(a).size);
  }
  if (has('7zz')) {
    const a = join(tmp, 'b.7z');
    rmSync(a, { force: true });
    const r = spawnSync('7zz', ['a', '-m0=PPMd:o=6:mem=256m', a, file], { stdio: 'ignore' });
    if (r.status === 0) put('ppmd o6', statSync(a).size);
  }
  if (has('bzip3')) put('bzip3', sizeOf('bzip3', ['-c', '-e'], bytes));
  return out;
}

export async function benchArchive(location: string, version: string, files: string[], opts: BenchOptions = {}): Promise<BenchRow[]> {
  const tmp = mkdtempSync(join(tmpdir(), 'at1-archive-bench-'));
  const rows: BenchRow[] = [];
  try {
    for (const file of files) {
      const bytes = readFileSync(file);
      const arch = join(tmp, 'a.at1z');
      const back = join(tmp, 'back');
      rmSync(arch, { force: true });
      rmSync(back, { force: true });
      const c = await compressToArchive(location, version, file, arch, { ...opts });
      const d = await decompressArchive(location, arch, back, { ...opts });
      const roundTrip = Buffer.compare(readFileSync(back), bytes) === 0;
      rows.push({
        file,
        bytes: bytes.length,
        baselines: baselines(file, tmp),
        at1zBytes: c.archiveBytes,
        bitsPerByte: bytes.length ? (c.archiveBytes * 8) / bytes.length : 0,
        tokens: c.tokens,
        compressBytesPerSecond: bytes.length / Math.max(c.seconds, 1e-9),
        decompressBytesPerSecond: bytes.length / Math.max(d.seconds, 1e-9),
        roundTrip,
      });
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return rows;
}
