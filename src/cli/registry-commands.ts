/** `at1 registry …`: init, add, get, verify, list. Each is a thin wrapper over the library call of the same name. */
import { Command, InvalidArgumentError, Option } from 'commander';
import { add, addMany, At1Error, fsckRegistry, gcRegistry, getVersion, initRegistry, listRegistry, Registry, removeVersion, verifyRegistry, type AddOrder, type AddResult, type FamilyListing, type FsckReport, type ProgressEvent, type GcResult, type Level, type VerifyReport } from '../index.js';
import { cliOpenOptions } from './env.js';
import { displayName, escapeControl, EXIT, formatBytes, printJson, progressBar, say, table } from './output.js';

function intArg(v: string): number {
  if (!/^\d+$/.test(v)) throw new InvalidArgumentError('expected a whole number');
  return Number(v);
}

const levelOption = (): Option => new Option('--level <level>', 'codec effort: max (smallest) or fast').choices(['fast', 'max']);

function ratio(stored: number, raw: number): string {
  return (stored / Math.max(1, raw)).toFixed(3);
}

export function printListing(l: FamilyListing): void {
  const rows = [['VERSION', 'PARENT', 'RAW BYTES', 'STORED BYTES', 'RATIO']];
  for (const v of l.versions) rows.push([displayName(v.name), v.parent === null ? '-' : displayName(v.parent), String(v.rawBytes), String(v.storedBytes), v.ratio.toFixed(3)]);
  rows.push([`total (${l.total.versions} versions)`, '', String(l.total.rawBytes), String(l.total.storedBytes), l.total.ratio.toFixed(3)]);
  say(table(rows, [false, false, true, true, true]));
}

export function printVerify(r: VerifyReport): void {
  for (const v of r.versions) {
    // Names and reasons quote stored data: control characters are shown escaped.
    say(`${displayName(v.version)}: ${v.ok ? 'ok' : 'FAILED'} (${v.tensors} tensors, ${formatBytes(v.bytes)})`);
    for (const f of v.failures) say(`  ${f.tensor !== undefined ? `tensor ${displayName(JSON.stringify(f.tensor))}` : `file ${displayName(f.file)}`}: ${escapeControl(f.reason)}`);
  }
  say(r.ok ? 'integrity: PASS (SHA-256)' : 'integrity: FAIL');
}

/** A duration: a whole number with an optional unit ms, s, m or h (no unit: seconds). */
export function durationArg(v: string): number {
  const m = /^(\d+)(ms|s|m|h)?$/.exec(v.trim());
  if (!m) throw new InvalidArgumentError('expected a duration such as 0, 500ms, 90s, 15m or 2h');
  const n = Number(m[1]);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 's') as 'ms' | 's' | 'm' | 'h'];
  return n * unit;
}

/** What gc or rm kept although nothing needs it, and why. */
function printKept(r: GcResult): void {
  if (r.keptForReaders > 0) say(`kept ${r.keptForReaders} unneeded objects while readers that started before the last removal run (${r.readers.map(displayName).join('; ')}); a later 'at1 registry gc' removes them`);
  if (r.keptYoung > 0) say(`kept ${r.keptYoung} unneeded objects younger than the grace period (a writer may still need them); 'at1 registry gc --grace 0' removes them when no writer can be running`);
}

/** Where a registry may live; shown under `registry --help` and `tensor --help`. */
export const LOCATIONS_HELP = `
A registry (DIR) is a local directory, a file:// URL, or s3://bucket/prefix on
S3 or any S3-compatible service: credentials and region from the AWS variables
and files, the service from --endpoint URL (given anywhere on the line) or
AT1_S3_ENDPOINT / AWS_ENDPOINT_URL (see docs/S3.md).`;

export function registryCommand(): Command {
  const reg = new Command('registry')
    .description('keep a model family: the base once, every version as a verified delta')
    .addHelpText('after', LOCATIONS_HELP);

  reg
    .command('init')
    .description('create a registry in DIR with BASE as its first version')
    .argument('<base>', 'the base model: a .safetensors file')
    .argument('<dir>', 'a new or empty directory for the registry')
    .option('--name <name>', "the base version's name (default: the file's stem)")
    .option('--chunk-elements <n>', 'elements per stored chunk (multiple of 8; default 2097152)', intArg)
    .option('--max-chain-depth <n>', 'longest delta chain a restore may follow (default 8)', intArg)
    .addOption(levelOption().default(undefined, 'max')) // no value unless given, so a resumed init can tell a changed option from the default
    .option('--json', 'print the result as JSON')
    .action(async (base: string, dir: string, o: { name?: string; chunkElements?: number; maxChainDepth?: number; level?: Level; json?: boolean }) => {
      const p = progressBar(o);
      try {
        const { base: r } = await initRegistry(dir, base, { name: o.name, chunkElements: o.chunkElements, maxChainDepth: o.maxChainDepth, level: o.level, onProgress: p.onProgress, ...cliOpenOptions() });
        p.stop();
        const m = r.manifest;
        if (o.json) printJson({ registry: dir, base: m.name, rawBytes: m.stats.rawBytes, storedBytes: r.storedBytes, ratio: r.storedBytes / m.stats.rawBytes });
        else say(`created registry ${dir} with base ${m.name}: ${m.stats.rawBytes} bytes stored in ${r.storedBytes} (ratio ${ratio(r.storedBytes, m.stats.rawBytes)})`);
      } finally {
        p.stop();
      }
    });

  reg
    .command('add')
    .description('add FILE (a .safetensors file or a model directory) as a new version, delta-coded against its nearest relative; several FILEs (a glob such as out/checkpoint-*) each become a version of their own, in --order')
    .argument('<dir>', 'the registry')
    .argument('<file...>', 'a .safetensors file, or a model directory (model.safetensors or sharded, with config and tokenizer files); several are added one by one')
    .option('--name <name>', "the version's name (default: the file's stem; one FILE only)")
    .option('--parent <name>', 'the version to encode against (default: the nearest relative, chosen by sampling; one FILE only)')
    .addOption(new Option('--order <order>', 'with several FILEs: by name (digit runs as numbers: checkpoint-500 before checkpoint-1000) or by modification time').choices(['name', 'mtime']).default('name'))
    .option('--skip-existing', 'with several FILEs: skip those whose version name exists already (resuming a bulk add)')
    .addOption(levelOption())
    .option('--json', 'print the result as JSON')
    .action(async (dir: string, files: string[], o: { name?: string; parent?: string; order: AddOrder; skipExisting?: boolean; level?: Level; json?: boolean }) => {
      const summary = (r: AddResult): Record<string, unknown> => {
        const m = r.manifest;
        return { name: m.name, parent: m.parent, rawBytes: m.stats.rawBytes, storedBytes: r.storedBytes, ratio: r.storedBytes / m.stats.rawBytes, sha256: m.files[0]?.sha256 };
      };
      const line = (r: AddResult): string => `added ${r.manifest.name} (parent ${r.manifest.parent}): ${r.manifest.stats.rawBytes} bytes stored in ${r.storedBytes} (ratio ${ratio(r.storedBytes, r.manifest.stats.rawBytes)})`;
      if (files.length > 1 && (o.name !== undefined || o.parent !== undefined)) {
        throw new At1Error('E_INPUT', `--name and --parent apply to one FILE; ${files.length} were given (each is named by its stem and coded against its nearest relative); nothing was added`);
      }
      const registry = await Registry.open(dir, cliOpenOptions());
      const p = progressBar(o);
      try {
        if (files.length === 1 && !o.skipExisting) {
          const r = await add(registry, files[0]!, { name: o.name, parent: o.parent, level: o.level, onProgress: p.onProgress });
          p.stop();
          if (o.json) printJson(summary(r));
          else say(line(r));
          return;
        }
        const added: AddResult[] = [];
        let prefix = '';
        const onProgress = p.onProgress && ((e: ProgressEvent) => p.onProgress!({ ...e, label: `${prefix}${e.label}` }));
        try {
          const r = await addMany(registry, files, {
            order: o.order,
            skipExisting: o.skipExisting,
            level: o.level,
            onProgress,
            onStart: (i, n) => {
              prefix = `[${i}/${n}] `;
            },
            onAdded: (r, _path, i, n) => {
              added.push(r);
              p.stop();
              if (!o.json) say(`[${i}/${n}] ${line(r)}`);
            },
          });
          if (o.json) printJson({ versions: added.map(summary), skipped: r.skipped });
          else for (const s of r.skipped) say(`skipped ${s.name} (${escapeControl(s.path)}): the version exists`);
        } catch (e) {
          p.stop();
          if (o.json) printJson({ versions: added.map(summary), failed: { message: e instanceof Error ? e.message : String(e), code: e instanceof At1Error ? e.code : 'E_IO' } });
          throw e;
        }
      } finally {
        p.stop();
      }
    });

  reg
    .command('get')
    .description('restore version NAME byte-exact to --out, verifying every SHA-256 on the way')
    .argument('<dir>', 'the registry')
    .argument('<name>', 'the version')
    .requiredOption('--out <path>', 'where to write the restored file, or the directory for a model-directory version (written atomically)')
    .option('--json', 'print the result as JSON')
    .action(async (dir: string, name: string, o: { out: string; json?: boolean }) => {
      const registry = await Registry.open(dir, cliOpenOptions());
      const p = progressBar(o);
      try {
        const r = await getVersion(registry, name, o.out, { onProgress: p.onProgress });
        p.stop();
        if (o.json) printJson({ ...r, integrity: 'PASS' });
        else {
          if (r.files) say(`restored ${displayName(name)} to ${escapeControl(o.out)}/: ${r.files.length} files, ${r.bytes} bytes`);
          else say(`restored ${displayName(name)} to ${escapeControl(o.out)}: ${r.bytes} bytes, sha256 ${r.sha256}`);
          say('integrity: PASS (SHA-256)');
        }
      } finally {
        p.stop();
      }
    });

  reg
    .command('verify')
    .description('recompute every SHA-256 of one version (or all) from the stored objects')
    .argument('<dir>', 'the registry')
    .argument('[name]', 'one version (default: every version)')
    .option('--json', 'print the report as JSON')
    .action(async (dir: string, name: string | undefined, o: { json?: boolean }) => {
      const registry = await Registry.open(dir, cliOpenOptions());
      const p = progressBar(o);
      let report: VerifyReport;
      try {
        report = await verifyRegistry(registry, name, p.onProgress);
      } finally {
        p.stop();
      }
      if (o.json) printJson({ integrity: report.ok ? 'PASS' : 'FAIL', ...report });
      else printVerify(report);
      if (!report.ok) process.exitCode = EXIT.integrity;
    });

  reg
    .command('list')
    .description('every version: its parent, raw size, size on disk and ratio; and the family total')
    .argument('<dir>', 'the registry')
    .option('--json', 'print the listing as JSON')
    .action(async (dir: string, o: { json?: boolean }) => {
      const l = await listRegistry(await Registry.open(dir, cliOpenOptions()));
      if (o.json) printJson(l);
      else printListing(l);
    });

  reg
    .command('rm')
    .description('remove a version; refuses while others are encoded against it, unless --rebase')
    .argument('<dir>', 'the registry')
    .argument('<name>', 'the version')
    .option('--rebase', 're-encode the versions coded against it against another relative first (verified before anything is deleted)')
    .option('--json', 'print the result as JSON')
    .action(async (dir: string, name: string, o: { rebase?: boolean; json?: boolean }) => {
      const r = await removeVersion(await Registry.open(dir, cliOpenOptions()), name, { rebase: o.rebase });
      if (o.json) return printJson(r);
      if (r.rebasedObjects > 0) say(`re-encoded ${r.rebasedObjects} objects of ${r.rebasedVersions.join(', ')} against other relatives`);
      say(`removed ${name}; freed ${r.gc.removedBytes} bytes (${r.gc.removedObjects} objects)`);
      printKept(r.gc);
    });

  reg
    .command('gc')
    .description('delete objects no version needs and leftovers of interrupted writes (sparing what running commands may still need)')
    .argument('<dir>', 'the registry')
    .option('--grace <duration>', 'keep unneeded objects younger than this, e.g. 0, 90s, 15m, 2h (default 15m: a writer that lost its lock may still need them)', durationArg)
    .option('--json', 'print the result as JSON')
    .action(async (dir: string, o: { grace?: number; json?: boolean }) => {
      const r = await gcRegistry(await Registry.open(dir, cliOpenOptions()), { graceMs: o.grace });
      if (o.json) return printJson(r);
      say(`gc: removed ${r.removedObjects} objects (${r.removedBytes} bytes) and ${r.removedLeftovers} leftover files; ${r.keptObjects} objects in use`);
      printKept(r);
    });

  reg
    .command('fsck')
    .description('check the registry is whole: manifests, parents, objects, depths; --read-data re-hashes every object')
    .argument('<dir>', 'the registry')
    .option('--read-data', 'decode every needed object and check its SHA-256')
    .option('--json', 'print the report as JSON')
    .action(async (dir: string, o: { readData?: boolean; json?: boolean }) => {
      const p = progressBar(o);
      let r: FsckReport;
      try {
        r = await fsckRegistry(dir, { readData: o.readData, onProgress: p.onProgress, ...cliOpenOptions() });
      } finally {
        p.stop();
      }
      if (o.json) printJson(r);
      else {
        say(`${r.versions} versions, ${r.objects.needed} objects needed, ${r.objects.stored} stored${o.readData ? `, ${r.objects.checkedData} re-hashed` : ''}`);
        if (r.objects.orphans > 0) say(`${r.objects.orphans} orphan objects (${r.objects.orphanBytes} bytes): 'at1 registry gc' removes them`);
        if (r.leftovers.length > 0) say(`${r.leftovers.length} leftovers of interrupted writes (${r.leftovers.slice(0, 3).join(', ')}${r.leftovers.length > 3 ? ', …' : ''}): 'at1 registry gc' removes them`);
        if (r.strays.length > 0) say(`${r.strays.length} stray files that are neither manifests nor objects (ignored by every command): ${r.strays.slice(0, 5).map(displayName).join(', ')}${r.strays.length > 5 ? ', …' : ''}`);
        // Messages, versions and tensors quote stored data: control characters are shown escaped.
        for (const x of r.problems) say(`  ${x.kind}: ${escapeControl(x.message)}${x.tensor ? ` (version ${displayName(String(x.version))}, tensor ${displayName(JSON.stringify(x.tensor))})` : x.version ? ` (version ${displayName(x.version)})` : ''}`);
        say(`fsck: ${r.status.toUpperCase()}`);
      }
      process.exitCode = r.status === 'clean' ? EXIT.ok : r.status === 'damaged' ? EXIT.integrity : EXIT.input;
    });

  return reg;
}
