/** Shared test fixtures: the embedded family, temp dirs, and a CLI runner. */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = fileURLToPath(new URL('..', import.meta.url));
export const EMBEDDED = join(REPO, 'fixtures/tinystories');
/** The larger shared family, present beside the repository on developer machines and CI, absent on a bare clone. */
export const SHARED = join(REPO, '../shared/fixtures/tinystories');
export const HAS_SHARED = existsSync(join(SHARED, 'family.json'));

export interface FamilyEntry {
  name: string;
  file: string;
  parent: string | null;
  bytes: number;
  sha256: string;
}

export function family(dir = EMBEDDED): FamilyEntry[] {
  return (JSON.parse(readFileSync(join(dir, 'family.json'), 'utf8')) as { versions: FamilyEntry[] }).versions;
}

export function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

export function tempDir(t: { after: (fn: () => void) => void }, prefix = 'at1-test-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

/** A digest of every file's path and bytes under `dir`: equal before and after means nothing changed. */
export function treeDigest(dir: string): string {
  const h = createHash('sha256');
  const walk = (d: string): void => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else h.update(relative(dir, p)).update('\0').update(readFileSync(p)).update('\0');
    }
  };
  walk(dir);
  return h.digest('hex');
}

export interface CliResult {
  status: number;
  stdout: string;
  stderr: string;
}

/** Run `at1 …` as a user would, in a child process. */
export function at1(...args: string[]): CliResult {
  const r = spawnSync(process.execPath, [join(REPO, 'bin/at1.js'), ...args], { encoding: 'utf8', env: { ...process.env, AT1_LOCK_WAIT_MS: '300' } });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** The tensors of a safetensors file, with their bytes. */
export function readTensors(path: string): { name: string; dtype: string; shape: number[]; data: Uint8Array }[] {
  const b = new Uint8Array(readFileSync(path));
  const n = Number(new DataView(b.buffer, b.byteOffset).getBigUint64(0, true));
  const h = JSON.parse(new TextDecoder().decode(b.subarray(8, 8 + n))) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  return Object.entries(h)
    .filter(([k]) => k !== '__metadata__')
    .map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape, data: b.subarray(8 + n + t.data_offsets[0], 8 + n + t.data_offsets[1]) }));
}

/** Bytes of a (possibly broken) safetensors file: u64 LE header length (or `declared`), the header, then `data` (bytes or a count of zero bytes). */
export function craftSafetensors(header: string | Uint8Array, data: Uint8Array | number = 0, declared?: bigint): Uint8Array {
  const h = typeof header === 'string' ? new TextEncoder().encode(header) : header;
  const d = typeof data === 'number' ? new Uint8Array(data) : data;
  const out = new Uint8Array(8 + h.length + d.length);
  new DataView(out.buffer).setBigUint64(0, declared ?? BigInt(h.length), true);
  out.set(h, 8);
  out.set(d, 8 + h.length);
  return out;
}
