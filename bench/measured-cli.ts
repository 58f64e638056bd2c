/**
 * Runs one at1 CLI command in this process and reports, on the last line of
 * stderr, its wall time and this process's peak RSS: the benchmark runs it
 * as a child so each command's memory is measured on its own.
 */
import { main } from '../src/cli/main.js';

const t0 = performance.now();
await main(['node', 'at1', ...process.argv.slice(2)]);
const ms = performance.now() - t0;
process.stderr.write(`\nAT1-MEASURE ${JSON.stringify({ ms, maxRssBytes: process.resourceUsage().maxRSS * 1024, exitCode: process.exitCode ?? 0 })}\n`);
