/** The at1 command line: parse, run, and turn errors into one clear line and an exit code. */
import { Command } from 'commander';
import { At1Error, errnoOf, fsError } from '../index.js';
import { registryCommand } from './registry-commands.js';
import { perplexityCommand, runCommand } from './model-commands.js';
import { demoCommand } from './demo.js';
import { archiveCommand } from './archive-commands.js';
import { tensorCommand } from './tensor-commands.js';
import { serveCommand } from './serve-commands.js';
import { EXIT, escapeControl, exitCodeFor } from './output.js';

/** The stack of `e` and of every cause under it, for AT1_DEBUG=1. */
function stackOf(e: unknown): string {
  const parts: string[] = [];
  let cur: unknown = e;
  for (let depth = 0; cur !== undefined && depth < 8; depth++) {
    parts.push(cur instanceof Error ? (cur.stack ?? `${cur.name}: ${cur.message}`) : String(cur));
    cur = cur instanceof Error ? cur.cause : undefined;
  }
  return parts.join('\ncaused by: ');
}

/**
 * What the CLI prints for an error and the exit code it exits with. An
 * At1Error prints its message; an error that is not one but carries an
 * errno code (a file-system call nothing wrapped) is turned into fsError's
 * message, naming its path, with that error's exit code; anything else is a
 * bug: `internal error`, exit 4. No stack trace unless `debug`
 * (AT1_DEBUG=1). Control characters are escaped: messages may quote names
 * from stored data.
 */
export function describeError(e: unknown, debug = process.env.AT1_DEBUG === '1'): { text: string; exitCode: number } {
  let typed: At1Error | undefined = e instanceof At1Error ? e : undefined;
  if (!typed && /^E[A-Z0-9]+$/.test(errnoOf(e) ?? '')) {
    const ne = e as NodeJS.ErrnoException & { dest?: unknown };
    const where = typeof ne.path === 'string' ? ne.path : typeof ne.dest === 'string' ? ne.dest : '(a path the system did not name)';
    typed = fsError(e, typeof ne.syscall === 'string' ? ne.syscall : 'access', where);
  }
  const lines = typed
    ? [`at1: error: ${escapeControl(typed.message)}`]
    : [`at1: internal error: ${escapeControl(e instanceof Error ? e.message : String(e))}`, ...(debug ? [] : ['at1: set AT1_DEBUG=1 for the stack'])];
  if (debug) lines.push(stackOf(e));
  return { text: lines.join('\n') + '\n', exitCode: typed ? exitCodeFor(typed) : EXIT.internal };
}

function report(e: unknown): void {
  const { text, exitCode } = describeError(e);
  process.stderr.write(text);
  process.exitCode = exitCode;
}

export async function main(argv: string[]): Promise<void> {
  const program = new Command('at1')
    .description('a verified, delta-compressed registry for model families')
    .version('0.1.0')
    .showHelpAfterError()
    .configureOutput({ outputError: (s, write) => write(s) })
    .option('--endpoint <url>', 'S3-compatible service for s3://bucket/prefix locations (path-style; default: AT1_S3_ENDPOINT, AWS_ENDPOINT_URL, else AWS)')
    .exitOverride();
  // Accepted anywhere on the line (`at1 registry add s3://b/p v.safetensors --endpoint URL`); the S3 backend reads it as AT1_S3_ENDPOINT.
  program.hook('preAction', () => {
    const endpoint = program.opts<{ endpoint?: string }>().endpoint;
    if (endpoint !== undefined) process.env.AT1_S3_ENDPOINT = endpoint;
  });
  program.addCommand(registryCommand());
  program.addCommand(tensorCommand());
  program.addCommand(runCommand());
  program.addCommand(perplexityCommand());
  program.addCommand(archiveCommand());
  program.addCommand(serveCommand());
  program.addCommand(demoCommand());
  // Commands added with addCommand do not inherit these settings: a usage error anywhere must exit 2 through main, not 1 from commander.
  const inherit = (c: Command): void => {
    for (const sub of c.commands) {
      sub.exitOverride().showHelpAfterError().configureOutput({ outputError: (s, write) => write(s) });
      inherit(sub);
    }
  };
  inherit(program);
  // Failures outside the awaited chain (a stray rejection, a worker's error event) get the same one clear line.
  const stray = (e: unknown): void => {
    report(e);
    process.exit();
  };
  process.on('uncaughtException', stray);
  process.on('unhandledRejection', stray);
  try {
    await program.parseAsync(argv);
  } catch (e) {
    const ce = e as { code?: string; exitCode?: number };
    if (typeof ce.code === 'string' && ce.code.startsWith('commander.')) {
      // help and version exit 0; usage errors were already printed by commander
      process.exitCode = ce.exitCode === 0 ? EXIT.ok : EXIT.input;
      return;
    }
    report(e);
  }
}
