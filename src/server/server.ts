/**
 * `at1 serve`: one fastify app over a set of repositories (repos.ts). The
 * HTTP server is Node's own, created here so its parser enforces the
 * header-size limit (431) and the whole-request timeout (408): a client
 * that trickles a body is cut off, and holds no lock meanwhile (uploads are
 * received before an add starts).
 *
 * Every error becomes JSON `{ "error": { "code", "message" } }` with its
 * status (http-errors.ts); on the Hub routes, the Hub's own error shape.
 * Paths are checked before routing: a `.` or `..` segment, literal or
 * percent-encoded, or an encoded NUL or backslash, is a 400.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import Fastify, { LogController, type FastifyInstance } from 'fastify';
import { CodecCache } from './catalog.js';
import { Slots, type ServerContext } from './context.js';
import { badRequest, jsonErrorBody, toHttpError } from './http-errors.js';
import { hubRoutes } from './hub-routes.js';
import { Metrics } from './metrics.js';
import { DEFAULT_LIMITS, type Limits, type ServeOptions } from './options.js';
import { pageRoutes } from './page-routes.js';
import { RepoSet } from './repos.js';
import { v1Routes } from './v1-routes.js';
import { writeRoutes } from './write-routes.js';

export interface RunningServer {
  app: FastifyInstance;
  /** `http://host:port` */
  url: string;
  repos: RepoSet;
  metrics: Metrics;
  close(): Promise<void>;
}

/** Why a raw request path is refused before routing, or undefined. */
export function pathProblemOf(rawUrl: string): string | undefined {
  const path = rawUrl.split('?')[0]!;
  for (const seg of path.split('/')) {
    let decoded: string;
    try {
      decoded = decodeURIComponent(seg);
    } catch {
      return 'it has a malformed percent-encoding';
    }
    if (decoded === '.' || decoded === '..') return 'it has a "." or ".." segment';
    if (/[\u0000\\]/.test(decoded)) return 'it has a NUL or a backslash';
    if (decoded !== seg && /(^|\/)\.\.?(\/|$)/.test(decoded)) return 'it has an encoded ".." segment';
  }
  return undefined;
}

export function buildApp(opts: ServeOptions): { app: FastifyInstance; ctx: ServerContext } {
  const limits: Limits = { ...DEFAULT_LIMITS, ...opts.limits };
  const repos = RepoSet.scan(opts.path, opts.repo, opts.settings);
  const metrics = new Metrics();
  const ctx: ServerContext = { repos, limits, metrics, token: opts.token, codecs: new CodecCache(), slots: new Slots(limits.maxConcurrentDecodes), sources: new Map() };
  const app = Fastify({
    logger: opts.jsonLogs ? { level: 'info', stream: process.stderr } : false, // stdout is for data (the --json start line)
    logController: new LogController({ disableRequestLogging: true }), // one line per request, written in onResponse below
    bodyLimit: limits.maxJsonBytes,
    routerOptions: { maxParamLength: 70_000 }, // tensor names may be long (manifests allow 65536 characters)
    return503OnClosing: true,
    // Errors fastify raises before routing (a malformed percent-encoding, a bad Content-Type) get the same JSON shape.
    frameworkErrors: (err, _req, reply) => {
      const status = typeof (err as { statusCode?: unknown }).statusCode === 'number' ? (err as { statusCode: number }).statusCode : 400;
      reply.raw.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
      reply.raw.end(JSON.stringify({ error: { code: status === 415 ? 'E_MEDIA_TYPE' : 'E_INPUT', message: err.message } }));
    },
    serverFactory: (handler) =>
      createServer(
        {
          maxHeaderSize: limits.maxHeaderBytes,
          requestTimeout: limits.requestTimeoutMs,
          headersTimeout: Math.min(60_000, limits.requestTimeoutMs),
          // Node checks the timeouts this often (default 30 s): often enough that a short limit is a limit.
          connectionsCheckingInterval: Math.max(100, Math.min(30_000, Math.floor(limits.requestTimeoutMs / 4))),
        },
        handler as (req: IncomingMessage, res: ServerResponse) => void,
      ),
  });

  // The Python Hub client posts paths-info as a form.
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: limits.maxJsonBytes }, (_req, body, done) => {
    const form = new URLSearchParams(body as string);
    done(null, { paths: form.getAll('paths'), expand: form.get('expand') ?? undefined });
  });

  app.addHook('onRequest', async (req) => {
    const why = pathProblemOf(req.raw.url ?? '/');
    if (why) throw badRequest(`path ${JSON.stringify((req.raw.url ?? '').slice(0, 200))} refused: ${why}`);
  });

  app.addHook('onResponse', async (req, reply) => {
    metrics.requests.add(1, { method: req.method, route: req.routeOptions.url ?? 'unmatched', status: String(reply.statusCode) });
    if (opts.jsonLogs) req.log.info({ method: req.method, url: req.raw.url, status: reply.statusCode, bytes: Number(reply.getHeader('content-length') ?? 0), ms: Math.round(reply.elapsedTime * 10) / 10, remote: req.ip }, 'request');
  });

  app.setErrorHandler(async (err, req, reply) => {
    const e = toHttpError(err);
    if (e.code === 'E_INTEGRITY' || e.code === 'E_CORRUPT') metrics.verifyFailures.add(1);
    if (e.status >= 500) req.log.error({ err }, e.message);
    for (const [k, v] of Object.entries(e.headers)) reply.header(k, v);
    reply.code(e.status);
    reply.removeHeader('etag');
    reply.removeHeader('repr-digest');
    reply.removeHeader('content-length');
    reply.header('content-type', 'application/json; charset=utf-8');
    const hub = (req.routeOptions.config as { hub?: boolean } | undefined)?.hub === true;
    if (hub) {
      if (e.hub) reply.header('x-error-code', e.hub);
      reply.header('x-error-message', e.message.replace(/[^\x20-\x7e]/g, '?').slice(0, 500));
      return reply.send({ error: e.message });
    }
    return reply.send(jsonErrorBody(e));
  });

  app.setNotFoundHandler(async (req, reply) => {
    reply.code(404).header('content-type', 'application/json; charset=utf-8');
    return { error: { code: 'E_NOT_FOUND', message: `no route ${req.method} ${(req.raw.url ?? '').split('?')[0]}` } };
  });

  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', 'text/plain; version=0.0.4; charset=utf-8');
    return metrics.render();
  });

  app.addHook('onClose', async () => {
    await Promise.all([...ctx.sources.values()].map((s) => s.close()));
    ctx.sources.clear();
  });

  v1Routes(app, ctx);
  writeRoutes(app, ctx);
  hubRoutes(app, ctx);
  pageRoutes(app, ctx);
  return { app, ctx };
}

/** Build and listen; `port` 0 picks a free port (tests). Only loopback unless a host is given. */
export async function startServer(opts: ServeOptions): Promise<RunningServer> {
  const { app, ctx } = buildApp(opts);
  const host = opts.host ?? '127.0.0.1';
  await app.listen({ host, port: opts.port ?? 8080 });
  const addr = (app.server as Server).address() as AddressInfo;
  const shownHost = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return {
    app,
    url: `http://${shownHost}:${addr.port}`,
    repos: ctx.repos,
    metrics: ctx.metrics,
    close: async () => {
      await app.close();
    },
  };
}
