/** The at1 command line: parse, run, and turn errors into one clear line and an exit code. */
import { Command } from 'commander';
import { At1Error } from '../errors.js';
import { registryCommand } from './registry-commands.js';
import { demoCommand } from './demo.js';
import { tensorCommand } from './tensor-commands.js';
import { EXIT, exitCodeFor } from './output.js';

export async function main(argv: string[]): Promise<void> {
  const program = new Command('at1')
    .description('a verified, delta-compressed registry for model families')
    .version('0.1.0')
    .showHelpAfterError()
    .configureOutput({ outputError: (s, write) => write(s) })
    .exitOverride();
  program.addCommand(registryCommand());
  program.addCommand(tensorCommand());
  program.addCommand(demoCommand());
  try {
    await program.parseAsync(argv);
  } catch (e) {
    const ce = e as { code?: string; exitCode?: number };
    if (typeof ce.code === 'string' && ce.code.startsWith('commander.')) {
      // help and version exit 0; usage errors were already printed by commander
      process.exitCode = ce.exitCode === 0 ? EXIT.ok : EXIT.input;
      return;
    }
    const msg = e instanceof At1Error ? e.message : e instanceof Error ? (e.stack ?? e.message) : String(e);
    process.stderr.write(`at1: error: ${msg}\n`);
    process.exitCode = exitCodeFor(e);
  }
}
