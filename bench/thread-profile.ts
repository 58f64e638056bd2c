/**
 * Per-thread busy and idle shares of a run profiled with
 * `node --cpu-prof --cpu-prof-dir=DIR` (one .cpuprofile per thread: the
 * main thread, the loader's, each worker): where a restore's time goes, and
 * whether the main thread serialises what workers could do.
 *
 *   node --cpu-prof --cpu-prof-dir=/tmp/prof --import tsx bench/measured-cli.ts registry get REG NAME --out OUT
 *   node --import tsx bench/thread-profile.ts /tmp/prof [top]
 *
 * Threads that were idle over 90% of their life (the module loader's,
 * helper threads) are summarised in one line.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface ThreadShare {
  file: string;
  seconds: number;
  idle: number;
  top: { what: string; share: number }[];
}

export function threadShares(dir: string, top = 6): ThreadShare[] {
  const out: ThreadShare[] = [];
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')).sort()) {
    const p = JSON.parse(readFileSync(join(dir, file), 'utf8')) as Profile;
    const byId = new Map(p.nodes.map((n) => [n.id, n]));
    const self = new Map<string, number>();
    let total = 0;
    for (let i = 0; i < p.samples.length; i++) {
      const n = byId.get(p.samples[i]!)!;
      const d = p.timeDeltas[i + 1] ?? 0;
      total += d;
      const where = n.callFrame.url ? ` ${n.callFrame.url.split('/').slice(-2).join('/')}` : '';
      const key = `${n.callFrame.functionName || '(anonymous)'}${where}`;
      self.set(key, (self.get(key) ?? 0) + d);
    }
    const idle = (self.get('(idle)') ?? 0) / Math.max(1, total);
    const ranked = [...self].filter(([k]) => k !== '(idle)').sort((a, b) => b[1] - a[1]);
    out.push({ file, seconds: total / 1e6, idle, top: ranked.slice(0, top).map(([what, t]) => ({ what, share: t / Math.max(1, total) })) });
  }
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const dir = process.argv[2];
  if (!dir) {
    process.stderr.write('usage: thread-profile.ts PROFILE_DIR [top]\n');
    process.exit(2);
  }
  const shares = threadShares(dir, Number(process.argv[3] ?? 6));
  const quiet = shares.filter((s) => s.idle > 0.9);
  for (const s of shares.filter((x) => x.idle <= 0.9)) {
    console.log(`${s.file}: ${s.seconds.toFixed(2)} s, busy ${(100 * (1 - s.idle)).toFixed(1)}%, idle ${(100 * s.idle).toFixed(1)}%`);
    for (const t of s.top) console.log(`  ${(100 * t.share).toFixed(1).padStart(5)}%  ${t.what}`);
  }
  if (quiet.length) console.log(`${quiet.length} more threads idle > 90% (module loader, helpers): ${quiet.map((s) => `${(100 * s.idle).toFixed(0)}%`).join(', ')}`);
}
