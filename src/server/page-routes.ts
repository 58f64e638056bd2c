/**
 * The page at `/`: one static file (page/index.html, its CSS and script
 * inline, no CDN, nothing fetched but this server's own /v1 API), read once
 * at start. It draws the family from /v1/versions, /v1/versions/{name},
 * /v1/diff and /v1/verify.
 */
import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import type { ServerContext } from './context.js';

let page: Buffer | undefined;

export function pageRoutes(app: FastifyInstance, _ctx: ServerContext): void {
  app.get('/', async (_req, reply) => {
    reply.header('content-type', 'text/html; charset=utf-8');
    reply.header('content-security-policy', "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:; connect-src 'self'");
    reply.header('x-content-type-options', 'nosniff');
    return reply.send((page ??= readFileSync(new URL('./page/index.html', import.meta.url))));
  });
  app.get('/favicon.ico', async (_req, reply) => reply.code(204).send());
}
