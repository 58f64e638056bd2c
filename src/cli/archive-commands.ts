/**
 * `at1 archive compress | decompress | verify | bench`: the LM-codec
 * archival tier. Thin over the library (compressToArchive,
 * decompressArchive, verifyArchive, benchArchive); progress with tokens/s
 * and ETA on a terminal only.
 */
import { Command, Option } from 'commander';
import { At1Error, benchArchive, compressToArchive, decompressArchive, verifyArchive, type ArchiveProgress } from '../index.js';
import { cliOpenOptions } from './env.js';
import { formatBytes, printJson, table } from './output.js';
import { intArg, parseByteSize } from './model-commands.js';

interface CommonOptions {
  threads: number;
  kernels?: 'wasm' | 'js';
  config?: string;
  tokenizer?: string;
  json?: boolean;
}

function withCommon(c: Command): Command {
  return c
    .option('--threads <n>', 'frames coded at once, each on its own worker thread (the archive is the same for any count)', intArg(1, 64), 1)
    .addOption(new Option('--kernels <kind>', 'numeric kernels (same bits either way)').choices(['wasm', 'js']).default('wasm'))
    .option('--config <path>', 'config.json, for a version that does not hold one (a one-file version)')
    .option('--tokenizer <path>', 'tokenizer.json (or its directory), for a version that does not hold one')
    .option('--json', 'print one JSON object at the end');
}

/** One status line on stderr, redrawn: bytes, tokens/s and ETA (a terminal only, never with --json or in CI). */
function progressLine(json: boolean | undefined): { onProgress?: (p: ArchiveProgress) => void; stop: () => void } {
  if (json || !process.stderr.isTTY || process.env.CI) return { stop: () => undefined };
  const t0 = Date.now();
  let last = 0;
  let drawn = false;
  const onProgress = (p: ArchiveProgress): void => {
    const now = Date.now();
    if (now - last < 100 && p.bytesDone < p.bytesTotal) return;
    last = now;
    const secs = Math.max(0.001, (now - t0) / 1000);
    const rate = p.tokensDone / secs;
    const frac = p.bytesTotal > 0 ? p.bytesDone / p.bytesTotal : 1;
    const eta = frac > 0.01 ? (secs / frac) * (1 - frac) : undefined;
    process.stderr.write(`\r${p.phase} ${(frac * 100).toFixed(1)}% | ${formatBytes(p.bytesDone)}/${formatBytes(p.bytesTotal)} | ${rate.toFixed(0)} tokens/s | ETA ${eta === undefined ? '…' : `${eta.toFixed(0)} s`}   `);
    drawn = true;
  };
  return { onProgress, stop: () => void (drawn && process.stderr.write('\r\x1b[K')) };
}

function compressCommand(): Command {
  const c = new Command('compress')
    .description('compress a file or directory with a language model from the registry (lossless, decode-verified)')
    .argument('<dir>', 'the registry')
    .argument('<version>', 'the model version to compress with (recorded in the archive)')
    .argument('<input>', 'a file, or a directory (archived as a stream of its files: paths, modes, sizes)')
    .requiredOption('-o, --out <file>', 'the archive to write (.at1z)')
    .option('--frame-size <size>', 'bytes per independently decodable frame, e.g. 1MiB', parseByteSize, 1 << 20)
    .option('--context <n>', "context positions the model sees (default min(256, the model's); recorded in the archive)", intArg(2, 1 << 20))
    .option('--force', 'replace an existing archive');
  return withCommon(c).action(async (dir: string, version: string, input: string, o: CommonOptions & { out: string; frameSize: number; context?: number; force?: boolean }) => {
    const bar = progressLine(o.json);
    try {
      const r = await compressToArchive(dir, version, input, o.out, {
        frameSize: o.frameSize, threads: o.threads, settings: cliOpenOptions().settings, kernels: o.kernels, configPath: o.config, tokenizerPath: o.tokenizer, context: o.context, overwrite: o.force, onProgress: bar.onProgress,
      });
      bar.stop();
      const summary = {
        archive: o.out, version, input, inputBytes: r.inputBytes, archiveBytes: r.archiveBytes, ratio: r.inputBytes ? r.archiveBytes / r.inputBytes : 0,
        bitsPerByte: r.inputBytes ? (r.archiveBytes * 8) / r.inputBytes : 0, frames: r.trailer.frames.length, tokens: r.tokens, byteFrames: r.byteFrames,
        seconds: r.seconds, bytesPerSecond: r.inputBytes / Math.max(r.seconds, 1e-9), sha256: r.trailer.input.sha256, verified: true,
        // where the bytes went (ideal code lengths): vocabulary tokens, escape symbols, escape bytes
        bytesFor: { tokens: Math.round(r.bits.tokens / 8), escapes: Math.round(r.bits.escapes / 8), escapeBytes: Math.round(r.bits.escapeBytes / 8) },
      };
      if (o.json) return printJson(summary);
      process.stdout.write(
        `${o.out}: ${formatBytes(r.inputBytes)} → ${formatBytes(r.archiveBytes)} (${(summary.ratio * 100).toFixed(1)}%, ${summary.bitsPerByte.toFixed(3)} bits/byte), ` +
          `${r.trailer.frames.length} frame(s), ${r.tokens} tokens, ${r.seconds.toFixed(1)} s; every frame decode-verified\n`,
      );
    } finally {
      bar.stop();
    }
  });
}

function decompressCommand(): Command {
  const c = new Command('decompress')
    .description('restore an archive byte-exact (the model version is recorded in it; every digest is checked)')
    .argument('<dir>', 'the registry holding the model the archive was made with')
    .argument('<archive>', 'the .at1z archive')
    .requiredOption('-o, --out <path>', 'where to restore (a file, or a new directory for an archived directory)');
  return withCommon(c).action(async (dir: string, archive: string, o: CommonOptions & { out: string }) => {
    const bar = progressLine(o.json);
    try {
      const r = await decompressArchive(dir, archive, o.out, { settings: cliOpenOptions().settings, threads: o.threads, kernels: o.kernels, configPath: o.config, tokenizerPath: o.tokenizer, onProgress: bar.onProgress });
      bar.stop();
      const summary = { archive, out: o.out, kind: r.trailer.input.kind, bytes: r.outputBytes, sha256: r.trailer.input.sha256, model: r.trailer.model.version, seconds: r.seconds, integrity: 'PASS' };
      if (o.json) return printJson(summary);
      process.stdout.write(`${o.out}: ${formatBytes(r.outputBytes)} restored in ${r.seconds.toFixed(1)} s\nintegrity: PASS (SHA-256)\n`);
    } finally {
      bar.stop();
    }
  });
}

function verifyCommand(): Command {
  const c = new Command('verify')
    .description('decode an archive and check every digest, writing nothing')
    .argument('<dir>', 'the registry holding the model the archive was made with')
    .argument('<archive>', 'the .at1z archive');
  return withCommon(c).action(async (dir: string, archive: string, o: CommonOptions) => {
    const bar = progressLine(o.json);
    try {
      const r = await verifyArchive(dir, archive, { settings: cliOpenOptions().settings, threads: o.threads, kernels: o.kernels, configPath: o.config, tokenizerPath: o.tokenizer, onProgress: bar.onProgress });
      bar.stop();
      if (o.json) return printJson({ archive, frames: r.trailer.frames.length, bytes: r.outputBytes, model: r.trailer.model.version, seconds: r.seconds, integrity: 'PASS' });
      process.stdout.write(`${archive}: ${r.trailer.frames.length} frame(s), ${formatBytes(r.outputBytes)}, model ${r.trailer.model.version}\nintegrity: PASS (SHA-256)\n`);
    } finally {
      bar.stop();
    }
  });
}

function benchCommand(): Command {
  const c = new Command('bench')
    .description('compress files with the model and with general compressors (xz -9e, zstd -19, and zpaq -m5, PPMd, bzip3 when installed); round trips checked')
    .argument('<dir>', 'the registry')
    .argument('<version>', 'the model version')
    .argument('<files...>', 'files to compress');
  return withCommon(c).action(async (dir: string, version: string, files: string[], o: CommonOptions) => {
    const bar = progressLine(o.json);
    const rows = await benchArchive(dir, version, files, { settings: cliOpenOptions().settings, threads: o.threads, kernels: o.kernels, configPath: o.config, tokenizerPath: o.tokenizer, onProgress: bar.onProgress });
    bar.stop();
    if (o.json) return printJson(rows);
    const names = [...new Set(rows.flatMap((r) => Object.keys(r.baselines)))];
    const head = ['file', 'bytes', ...names, 'at1z', 'vs xz', 'bits/byte', 'compress B/s', 'decompress B/s', 'round trip'];
    const body = rows.map((r) => [
      r.file, String(r.bytes), ...names.map((n) => (r.baselines[n] === undefined ? '-' : String(r.baselines[n]))), String(r.at1zBytes),
      r.baselines['xz -9e'] ? (r.at1zBytes / r.baselines['xz -9e']!).toFixed(3) : '-', r.bitsPerByte.toFixed(3),
      r.compressBytesPerSecond.toFixed(0), r.decompressBytesPerSecond.toFixed(0), r.roundTrip ? 'ok' : 'FAILED',
    ]);
    process.stdout.write(table([head, ...body], head.map((_, i) => i > 0 && i < head.length - 1)) + '\n');
    if (rows.some((r) => !r.roundTrip)) throw new At1Error('E_INTEGRITY', 'a round trip failed');
  });
}

export function archiveCommand(): Command {
  return new Command('archive')
    .description('the LM-codec archival tier: lossless text compression driven by a model from the registry')
    .addCommand(compressCommand())
    .addCommand(decompressCommand())
    .addCommand(verifyCommand())
    .addCommand(benchCommand());
}
