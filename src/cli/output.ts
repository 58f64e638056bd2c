/**
 * How the CLI talks: data on stdout (text, or JSON with --json), progress
 * and errors on stderr. Progress bars only on a terminal and never with
 * --json, so pipes and scripts see clean output.
 */
import cliProgress from 'cli-progress';
import { At1Error, type ProgressFn } from '../index.js';

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

const NAMED_ESCAPES: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };
/**
 * Characters a terminal may act on rather than show: C0 controls (ESC
 * among them, so every escape sequence is defused), DEL, C1 controls (U+0080
 * to U+009F: 8-bit CSI and friends), the line and paragraph separators, and
 * the bidirectional overrides and isolates that reorder what is shown.
 */
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/**
 * `s` with every control character written out as an escape: `\n`, `\r`,
 * `\t`, `\x1b` (other C0 and DEL), `\u0085` (C1 and the Unicode ones
 * above). For text from stored data (tensor names, file paths, messages
 * quoting them) on its way to a terminal, so a crafted name cannot move the
 * cursor, clear the screen or forge a line such as `integrity: PASS`. JSON
 * output does not need it: JSON.stringify escapes what JSON requires and
 * --json output stays exact.
 */
export function escapeControl(s: string): string {
  return s.replace(CONTROL, (c) => {
    const n = c.charCodeAt(0);
    return NAMED_ESCAPES[c] ?? (n < 0x80 ? `\\x${n.toString(16).padStart(2, '0')}` : `\\u${n.toString(16).padStart(4, '0')}`);
  });
}

/** A name from stored data, ready for a terminal (see escapeControl). */
export function displayName(name: string): string {
  return escapeControl(name);
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
