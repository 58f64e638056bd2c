/**
 * `at1 demo`: the main job on the embedded example family. Builds a
 * registry from fixtures/tinystories (or --family DIR), lists it, verifies
 * it, and restores every version, checking each file's SHA-256 against
 * family.json. Exits non-zero if anything is not byte-exact.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { add, getVersion, initRegistry, listRegistry, verifyRegistry } from '../index.js';
import { cliOpenOptions } from './env.js';
import { EMBEDDED_FAMILY_DIR, loadFamily } from './family.js';
import { EXIT, printJson, say } from './output.js';
import { printListing, printVerify } from './registry-commands.js';

async function fileSha256(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

export function demoCommand(): Command {
  return new Command('demo')
    .description('build a registry from the example family, list it, verify it, restore every version byte-exact')
    .option('--family <dir>', 'a family directory with family.json (default: the example carried in the repository)')
    .option('--dir <dir>', 'where to build the registry (default: a temporary directory, removed afterwards)')
    .option('--json', 'print the results as JSON')
    .action(async (o: { family?: string; dir?: string; json?: boolean }) => {
      const family = await loadFamily(o.family ?? EMBEDDED_FAMILY_DIR);
      const dir = o.dir ?? (await mkdtemp(join(tmpdir(), 'at1-demo-')));
      const log = (s: string): void => {
        if (!o.json) say(s);
      };
      try {
        const [base, ...rest] = family.versions;
        if (!base) throw new Error(`${family.dir}: family.json lists no versions`);
        log(`# at1 demo: family ${family.name} (${family.versions.length} versions) -> registry ${dir}`);
        const { registry } = await initRegistry(dir, join(family.dir, base.file), { name: base.name, ...cliOpenOptions() });
        log(`$ at1 registry init ${base.file} ${dir}`);
        for (const v of rest) {
          const r = await add(registry, join(family.dir, v.file), { name: v.name, parent: v.parent ?? undefined });
          log(`$ at1 registry add ${dir} ${v.file} --name ${v.name} --parent ${r.manifest.parent}`);
        }
        const listing = await listRegistry(registry);
        log(`\n$ at1 registry list ${dir}`);
        if (!o.json) printListing(listing);
        const report = await verifyRegistry(registry, undefined);
        log(`\n$ at1 registry verify ${dir}`);
        if (!o.json) printVerify(report);
        log(`\n$ at1 registry get ${dir} NAME --out NAME.safetensors   (for every version, checked against family.json)`);
        const restores = [];
        // Restores go outside the registry: at1 refuses to write into one (docs/FORMAT.md §7).
        const outDir = await mkdtemp(join(tmpdir(), 'at1-demo-restored-'));
        for (const v of family.versions) {
          const out = join(outDir, `${v.name}.safetensors`);
          await getVersion(registry, v.name, out);
          const sha = await fileSha256(out);
          await rm(out);
          restores.push({ name: v.name, sha256: sha, byteExact: sha === v.sha256 });
          log(`${v.name}: sha256 ${sha} ${sha === v.sha256 ? 'matches family.json (byte-exact)' : 'DIFFERS from family.json'}`);
        }
        await rm(outDir, { recursive: true, force: true });
        const ok = report.ok && restores.every((r) => r.byteExact);
        if (o.json) printJson({ registry: dir, listing, verify: report, restores, ok });
        else say(`\ndemo: ${ok ? 'PASS' : 'FAIL'} — family stored at ${listing.total.ratio.toFixed(3)} of raw; every version restored byte-exact: ${restores.every((r) => r.byteExact) ? 'yes' : 'no'}`);
        if (!ok) process.exitCode = EXIT.integrity;
      } finally {
        if (!o.dir) await rm(dir, { recursive: true, force: true });
      }
    });
}
