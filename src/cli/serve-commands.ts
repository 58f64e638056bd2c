/** `at1 serve`: the registry (or a folder of registries) over HTTP, until SIGINT or SIGTERM. */
import { Command, InvalidArgumentError } from 'commander';
import { DEFAULT_LIMITS, readTokenFile, startServer, type Limits } from '../index.js';
import { cliOpenOptions } from './env.js';

function port(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n > 65535) throw new InvalidArgumentError('expected a port number from 0 to 65535');
  return n;
}

function bytes(v: string): number {
  const m = /^(\d+)\s*([KMGT]i?B?|B)?$/i.exec(v.trim());
  if (!m) throw new InvalidArgumentError('expected bytes, e.g. 500MB or 64GiB');
  const unit = (m[2] ?? 'B').toUpperCase().replace(/I?B$/, '');
  const mult = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 }[unit] ?? 1;
  return Number(m[1]) * mult;
}

function positive(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < 1) throw new InvalidArgumentError('expected a whole number of at least 1');
  return n;
}

export function serveCommand(): Command {
  return new Command('serve')
    .description('serve a registry (or a folder of registries) over HTTP: the /v1 API, Hugging Face Hub-compatible downloads, and a page at /')
    .argument('<dir>', 'a registry, or a folder whose sub-folders are registries')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--port <port>', 'port (0: any free port)', port, 8080)
    .option('--repo <org/name>', 'repository id of a single registry (default local/<directory name>)')
    .option('--token-file <file>', 'file holding the bearer token that PUT and DELETE need; without it the server is read-only')
    .option('--json-logs', 'one JSON line per request (and server event) on stderr')
    .option('--json', 'print where the server listens as one JSON line')
    .option('--max-upload <bytes>', `largest upload body (default ${DEFAULT_LIMITS.maxUploadBytes / 1024 ** 3}GiB)`, bytes)
    .option('--max-decodes <n>', `responses decoding at once (default ${DEFAULT_LIMITS.maxConcurrentDecodes})`, positive)
    .option('--request-timeout <seconds>', `time to receive a whole request, body included (default ${DEFAULT_LIMITS.requestTimeoutMs / 1000})`, positive)
    .option('--upload-dir <dir>', 'where uploads are received before they are added (default: the temp directory)')
    .action(async (dir: string, o: { host: string; port: number; repo?: string; tokenFile?: string; jsonLogs?: boolean; json?: boolean; maxUpload?: number; maxDecodes?: number; requestTimeout?: number; uploadDir?: string }) => {
      const token = o.tokenFile === undefined ? undefined : await readTokenFile(o.tokenFile);
      const limits: Partial<Limits> = {};
      if (o.maxUpload !== undefined) limits.maxUploadBytes = o.maxUpload;
      if (o.maxDecodes !== undefined) limits.maxConcurrentDecodes = o.maxDecodes;
      if (o.requestTimeout !== undefined) limits.requestTimeoutMs = o.requestTimeout * 1000;
      if (o.uploadDir !== undefined) limits.uploadDir = o.uploadDir;
      const server = await startServer({ path: dir, host: o.host, port: o.port, repo: o.repo, token, jsonLogs: o.jsonLogs, settings: cliOpenOptions().settings, limits });
      const repos = server.repos.entries.map((e) => e.id);
      if (o.json) process.stdout.write(JSON.stringify({ url: server.url, repos, writable: token !== undefined }) + '\n');
      else process.stderr.write(`at1 serve: ${server.url} (${repos.join(', ')}; ${token === undefined ? 'read-only' : 'writes need the bearer token'}); Ctrl-C stops\n`);
      await new Promise<void>((resolve) => {
        const stop = (): void => {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          void server.close().then(resolve, resolve);
        };
        process.on('SIGINT', stop);
        process.on('SIGTERM', stop);
      });
    });
}
