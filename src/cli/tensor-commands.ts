/** `at1 tensor …`: list a version's tensors; get one tensor, or a row or byte range of it, as raw bytes or .npy. */
import { Command, InvalidArgumentError, Option } from 'commander';
import { AtomicFileWriter, At1Error, checkOutputPath, findTensor, npyData, npyHeader, readTensorRange, Registry, removeStaleTemps, rowRange, tensorObjects, tensorsOf, tensorStoredBytes, type ByteRange } from '../index.js';
import { cliOpenOptions } from './env.js';
import { displayName, escapeControl, printJson, say, table } from './output.js';
import { LOCATIONS_HELP } from './registry-commands.js';

function rangeArg(v: string): [number, number] {
  const m = /^(\d+):(\d+)$/.exec(v);
  if (!m) throw new InvalidArgumentError('expected START:END (whole numbers, END exclusive)');
  return [Number(m[1]), Number(m[2])];
}

export function tensorCommand(): Command {
  const cmd = new Command('tensor').description('read single tensors of a version without restoring the rest').addHelpText('after', LOCATIONS_HELP);

  cmd
    .command('list')
    .description("a version's tensors: name, dtype, shape, bytes, SHA-256, stored bytes")
    .argument('<dir>', 'the registry')
    .argument('<version>', 'the version')
    .option('--json', 'print the list as JSON')
    .action(async (dir: string, version: string, o: { json?: boolean }) => {
      const reg = await Registry.open(dir, cliOpenOptions());
      const sizes = await reg.store.list();
      const rows = tensorsOf(await reg.manifest(version)).map(({ file, tensor: t }) => ({
        name: t.name,
        file: file.path,
        dtype: t.dtype,
        shape: t.shape,
        bytes: t.length,
        sha256: t.sha256,
        storedBytes: tensorStoredBytes({ file, tensor: t }, sizes),
        chunks: tensorObjects({ file, tensor: t }).length,
        packed: t.pack !== undefined,
      }));
      if (o.json) return printJson(rows);
      const out = [['TENSOR', 'DTYPE', 'SHAPE', 'BYTES', 'STORED', 'SHA-256']];
      // Names come from stored data: control characters are shown escaped (JSON output above keeps them exact).
      for (const r of rows) out.push([displayName(r.name), displayName(r.dtype), `[${r.shape.join(', ')}]`, String(r.bytes), String(r.storedBytes), r.sha256.slice(0, 16) + '…']);
      say(table(out, [false, false, false, true, true, false]));
    });

  cmd
    .command('get')
    .description('write one tensor (or rows or bytes of it) to --out, verified')
    .argument('<dir>', 'the registry')
    .argument('<version>', 'the version')
    .argument('<name>', 'the tensor')
    .requiredOption('--out <file>', 'output file (written atomically)')
    .addOption(new Option('--format <format>', 'raw bytes (little-endian, row-major) or .npy').choices(['raw', 'npy']).default('raw'))
    .option('--rows <start:end>', 'rows [start, end) of the first dimension', rangeArg)
    .option('--bytes <start:end>', 'bytes [start, end) of the tensor (raw format only)', rangeArg)
    .option('--json', 'print what was written as JSON')
    .action(async (dir: string, version: string, name: string, o: { out: string; format: 'raw' | 'npy'; rows?: [number, number]; bytes?: [number, number]; json?: boolean }) => {
      if (o.rows && o.bytes) throw new At1Error('E_INPUT', 'give --rows or --bytes, not both');
      if (o.bytes && o.format === 'npy') throw new At1Error('E_INPUT', '--bytes gives no shape: use --rows with --format npy, or --format raw');
      const reg = await Registry.open(dir, cliOpenOptions());
      // Every output check before anything is read or decoded.
      const checked = await checkOutputPath(o.out, { kind: 'file', registryRoot: reg.location });
      // One reader lease from finding the tensor to its last byte: gc and rm leave what this read needs.
      await reg.reading(`tensor get ${version}`, [version], async () => {
        const loc = await findTensor(reg, version, name);
        const t = loc.tensor;
        let range: ByteRange | undefined;
        let shape = t.shape;
        if (o.rows) {
          range = rowRange(t, o.rows[0], o.rows[1]);
          shape = [o.rows[1] - o.rows[0], ...t.shape.slice(1)];
        } else if (o.bytes) range = { start: o.bytes[0], end: o.bytes[1] };
        await removeStaleTemps(checked.path);
        const w = await AtomicFileWriter.create(o.out);
        try {
          if (o.format === 'npy') await w.write(npyHeader(t.dtype, shape));
          for await (const part of readTensorRange(reg, loc, range)) await w.write(o.format === 'npy' ? npyData(t.dtype, part) : part);
          await w.commit();
        } catch (e) {
          await w.abort();
          throw e;
        }
        const result = { version, tensor: name, dtype: t.dtype, shape, format: o.format, range: range ?? null, bytes: w.bytesWritten, out: o.out, verified: range ? 'every chunk read (SHA-256)' : 'tensor SHA-256' };
        if (o.json) printJson(result);
        else say(`wrote ${displayName(name)} of ${displayName(version)}${o.rows ? ` rows ${o.rows[0]}:${o.rows[1]}` : o.bytes ? ` bytes ${o.bytes[0]}:${o.bytes[1]}` : ''} to ${escapeControl(o.out)} (${w.bytesWritten} bytes, ${o.format}); integrity: PASS (SHA-256)`);
      });
    });
  return cmd;
}
