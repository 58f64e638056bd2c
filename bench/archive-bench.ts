/**
 * LM-codec bench (`npm run bench:archive [-- CORPUS_DIR] [--models a,b] [--threads N] [--best-only]`),
 * issue 10 "Proof". Not part of `npm test`.
 *
 * Builds a registry of the fixture family (base, prose-step0150, code-full)
 * and compresses every corpus file (prose/*, code/*) with each model through
 * `benchArchive`: at1z bytes next to xz -9e, zstd -19, zpaq -m5, PPMd order 6
 * and bzip3 measured in the same run, compress and decompress bytes/s, and
 * each round trip checked. Then the summary the issue asks for: per kind,
 * the mean ratio vs xz with the best model for the kind, whether every file
 * beats xz, and the gap to the strongest general compressor.
 *
 * --best-only runs each file with the model of its kind only (prose →
 * prose-step0150, code → code-full): the pass that decides the targets,
 * a third of the time.
 */
import { readdirSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, basename } from 'node:path';
import { add, benchArchive, initRegistry, type BenchRow } from '../src/index.js';

const args = process.argv.slice(2);
const flag = (n: string): string | undefined => {
  const i = args.indexOf(n);
  return i >= 0 ? args[i + 1] : undefined;
};
const corpus = resolve(args.find((a, i) => !a.startsWith('--') && (i === 0 || !args[i - 1]!.startsWith('--'))) ?? '../shared/fixtures/corpus');
const family = resolve(flag('--family') ?? join(corpus, '..', 'tinystories'));
const models = (flag('--models') ?? 'base,prose-step0150,code-full').split(',');
const threads = Number(flag('--threads') ?? 2);
const bestOnly = args.includes('--best-only');
const BEST: Record<string, string> = { prose: 'prose-step0150', code: 'code-full' };

if (!existsSync(join(corpus, 'prose')) || !existsSync(join(family, 'base.safetensors'))) {
  process.stderr.write(`bench:archive needs a corpus (prose/, code/) and the fixture family; not found at ${corpus} and ${family}\n`);
  process.exit(2);
}

const tmp = mkdtempSync(join(tmpdir(), 'at1-archive-bench-'));
try {
  const reg = join(tmp, 'reg');
  const { registry } = await initRegistry(reg, join(family, 'base.safetensors'), { name: 'base' });
  for (const m of models) if (m !== 'base') await add(registry, join(family, `${m}.safetensors`), { name: m });
  const coder = { configPath: join(family, 'config.json'), tokenizerPath: join(family, 'tokenizer.json'), threads };
  const kinds = ['prose', 'code'];
  const results: { kind: string; model: string; row: BenchRow }[] = [];
  for (const kind of kinds) {
    const files = readdirSync(join(corpus, kind)).sort().map((f) => join(corpus, kind, f));
    for (const model of bestOnly ? [BEST[kind]!] : models) {
      process.stderr.write(`${kind} with ${model} (${files.length} files) …\n`);
      for (const r of await benchArchive(reg, model, files, coder)) {
        results.push({ kind, model, row: r });
        process.stderr.write(`  ${basename(r.file)}: ${r.bytes} → ${r.at1zBytes} (xz ${r.baselines['xz -9e']}, zpaq ${r.baselines['zpaq -m5'] ?? '-'}) ${r.roundTrip ? 'ok' : 'ROUND TRIP FAILED'}\n`);
      }
    }
  }
  const names = [...new Set(results.flatMap((r) => Object.keys(r.row.baselines)))];
  const out: string[] = [];
  out.push(`\n## LM codec (lm-mix/1) on ${corpus}, ${threads} thread(s), node ${process.version}\n`);
  out.push(`| kind | file | model | bytes | ${names.join(' | ')} | at1z | vs xz | vs best other | bits/byte | compress B/s | decompress B/s | round trip |`);
  out.push(`|---|---|---|---|${names.map(() => '---|').join('')}---|---|---|---|---|---|---|`);
  for (const { kind, model, row: r } of results) {
    const others = Object.values(r.baselines);
    const bestOther = Math.min(...others);
    out.push(
      `| ${kind} | ${basename(r.file)} | ${model} | ${r.bytes} | ${names.map((n) => r.baselines[n] ?? '-').join(' | ')} | ${r.at1zBytes} | ` +
        `${(r.at1zBytes / r.baselines['xz -9e']!).toFixed(3)} | ${(r.at1zBytes / bestOther).toFixed(3)} | ${r.bitsPerByte.toFixed(3)} | ` +
        `${r.compressBytesPerSecond.toFixed(0)} | ${r.decompressBytesPerSecond.toFixed(0)} | ${r.roundTrip ? 'ok' : 'FAILED'} |`,
    );
  }
  out.push('\n### Summary (best fixture model for the kind)\n');
  out.push('| kind | model | files | mean at1z/xz | every file < xz | mean at1z/zpaq -m5 | files < zpaq -m5 | mean bits/byte |');
  out.push('|---|---|---|---|---|---|---|---|');
  for (const kind of kinds) {
    const rows = results.filter((r) => r.kind === kind && r.model === BEST[kind]).map((r) => r.row);
    if (rows.length === 0) continue;
    const mean = (f: (r: BenchRow) => number): number => rows.reduce((a, r) => a + f(r), 0) / rows.length;
    const hasZpaq = rows.every((r) => r.baselines['zpaq -m5'] !== undefined);
    out.push(
      `| ${kind} | ${BEST[kind]} | ${rows.length} | ${mean((r) => r.at1zBytes / r.baselines['xz -9e']!).toFixed(3)} | ${rows.every((r) => r.at1zBytes < r.baselines['xz -9e']!) ? 'yes' : 'NO'} | ` +
        `${hasZpaq ? mean((r) => r.at1zBytes / r.baselines['zpaq -m5']!).toFixed(3) : '-'} | ${hasZpaq ? rows.filter((r) => r.at1zBytes < r.baselines['zpaq -m5']!).length : '-'} | ${mean((r) => r.bitsPerByte).toFixed(3)} |`,
    );
  }
  if (!bestOnly) {
    out.push('\n### Bits per byte by model (all files of a kind)\n');
    out.push(`| kind | ${models.join(' | ')} |`);
    out.push(`|---|${models.map(() => '---|').join('')}`);
    for (const kind of kinds) {
      const cell = (m: string): string => {
        const rows = results.filter((r) => r.kind === kind && r.model === m).map((r) => r.row);
        const bytes = rows.reduce((a, r) => a + r.bytes, 0);
        return bytes ? ((rows.reduce((a, r) => a + r.at1zBytes, 0) * 8) / bytes).toFixed(3) : '-';
      };
      out.push(`| ${kind} | ${models.map(cell).join(' | ')} |`);
    }
  }
  process.stdout.write(out.join('\n') + '\n');
  if (results.some((r) => !r.row.roundTrip)) process.exitCode = 1;
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
