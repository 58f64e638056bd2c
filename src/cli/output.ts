/**
 * How the CLI talks: data on stdout (text, or JSON with --json), progress
 * and errors on stderr. Progress bars only on a terminal and never with
 * --json, so pipes and scripts see clean output.
 */
import cliProgress from 'cli-progress';
import { At1Error } from '../errors.js';
import type { ProgressFn } from '../registry/progress.js';

export interface OutputOptions {
  json?: boolean;
}

/** Exit codes, documented in the README: scripts may rely on them. */
export const EXIT = { ok: 0, integrity: 1, input: 2, locked: 3, internal: 4 } as const;

export function exitCodeFor(e: unknown): number {
  if (!(e instanceof At1Error)) return EXIT.internal;
  switch (e.code) {
    case 'E_INTEGRITY':
    case 'E_CORRUPT':
      return EXIT.integrity;
    case 'E_LOCKED':
      return EXIT.locked;
    case 'E_IO':
      return EXIT.internal;
    default:
      return EXIT.input;
  }
}

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + '\n');
}

export function say(line: string): void {
  process.stdout.write(line + '\n');
}

export function formatBytes(n: number): string {
  if (n < 1000) return `${n} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let v = n;
  let i = -1;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}

/** A progress callback drawing one bar on stderr, or a no-op off a terminal / with --json. */
export function progressBar(opts: OutputOptions): { onProgress: ProgressFn | undefined; stop: () => void } {
  if (opts.json || !process.stderr.isTTY || process.env.CI) return { onProgress: undefined, stop: () => undefined };
  let bar: cliProgress.SingleBar | undefined;
  let label = '';
  const onProgress: ProgressFn = (e) => {
    if (!bar || e.label !== label) {
      bar?.stop();
      label = e.label;
      bar = new cliProgress.SingleBar(
        { stream: process.stderr, format: `${e.label} [{bar}] {percentage}% | {value_h}/{total_h} | {speed}`, hideCursor: true, clearOnComplete: true, fps: 10 },
        cliProgress.Presets.shades_classic,
      );
      (bar as unknown as { startTime: number }).startTime = Date.now();
      bar.start(e.total, 0, { value_h: formatBytes(0), total_h: formatBytes(e.total), speed: '' });
    }
    const secs = Math.max(0.001, (Date.now() - (bar as unknown as { startTime: number }).startTime) / 1000);
    bar.update(e.done, { value_h: formatBytes(e.done), total_h: formatBytes(e.total), speed: `${formatBytes(e.done / secs)}/s` });
  };
  return { onProgress, stop: () => bar?.stop() };
}

export function table(rows: string[][], rightAlign: boolean[]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => r.map((cell, c) => (rightAlign[c] ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!))).join('  ').trimEnd()).join('\n');
}
