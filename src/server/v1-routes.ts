/**
 * The at1 API, `/v1/…`: versions, one version's files and tensors, the raw
 * bytes of a tensor or a file (ranges decoding only the chunks they touch),
 * a diff of two versions and a verify that streams its progress (SSE).
 * With several repositories served, `?repo=ORG/NAME` picks one.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { checkVersionName, listRegistry, readFileRange, TensorReader, tensorsOf, verifyRegistry, type Registry, type VersionManifest } from '../index.js';
import { commitOf, manifestOf, versionDetail } from './catalog.js';
import { leaseForResponse, type ServerContext } from './context.js';
import { diffVersions } from './diff.js';
import { badRequest, notFound } from './http-errors.js';
import { sendBytes } from './send-bytes.js';

type Q = { repo?: string };

export async function registryFor(ctx: ServerContext, req: FastifyRequest): Promise<{ id: string; reg: Registry }> {
  const q = req.query as Q;
  const id = ctx.repos.resolve(typeof q.repo === 'string' ? q.repo : undefined);
  return { id, reg: await ctx.repos.open(id) };
}

/** A version named in the URL: valid (400 otherwise) and present (404), read under a lease held until the response ends. */
async function versionFor(ctx: ServerContext, req: FastifyRequest, reply: FastifyReply, name: string): Promise<{ reg: Registry; m: VersionManifest }> {
  checkVersionName(name);
  const { reg } = await registryFor(ctx, req);
  await leaseForResponse(reg, name, [name], reply);
  return { reg, m: await manifestOf(reg, name) };
}

export function v1Routes(app: FastifyInstance, ctx: ServerContext): void {
  app.get('/v1/repos', async () => ({ repos: ctx.repos.entries.map((e) => ({ id: e.id })) }));

  app.get('/v1/versions', async (req) => {
    const { id, reg } = await registryFor(ctx, req);
    const listing = await listRegistry(reg);
    const versions = await Promise.all(listing.versions.map(async (v) => ({ ...v, commit: await commitOf(reg, v.name) })));
    return { repo: id, versions, total: { ...listing.total, savedBytes: listing.total.rawBytes - listing.total.storedBytes } };
  });

  app.get<{ Params: { name: string } }>('/v1/versions/:name', async (req, reply) => {
    const { reg, m } = await versionFor(ctx, req, reply, req.params.name);
    return versionDetail(reg, m, await listRegistry(reg), ctx.codecs);
  });

  // GET and HEAD declared together: fastify's own HEAD route would answer Content-Length: 0.
  app.route<{ Params: { name: string; '*': string } }>({ method: ['GET', 'HEAD'], url: '/v1/versions/:name/tensors/*', handler: async (req, reply) => {
    const { reg, m } = await versionFor(ctx, req, reply, req.params.name);
    const tensorName = req.params['*'];
    const loc = tensorsOf(m).find((l) => l.tensor.name === tensorName);
    if (!loc) throw notFound(`version ${m.name} has no tensor ${JSON.stringify(tensorName)}`, 'EntryNotFound');
    return sendBytes(ctx, req, reply, {
      registry: reg,
      kind: 'tensor',
      size: loc.tensor.length,
      sha256: loc.tensor.sha256,
      contentType: 'application/octet-stream',
      headers: { 'x-at1-dtype': loc.tensor.dtype, 'x-at1-shape': JSON.stringify(loc.tensor.shape) },
      read: (span, source) => new TensorReader(source).stream(loc, { range: span, eachChunk: true }),
    });
  } });

  app.route<{ Params: { name: string; '*': string } }>({ method: ['GET', 'HEAD'], url: '/v1/versions/:name/files/*', handler: async (req, reply) => {
    const { reg, m } = await versionFor(ctx, req, reply, req.params.name);
    const path = req.params['*'];
    const f = m.files.find((x) => x.path === path);
    if (!f) throw notFound(`version ${m.name} has no file ${JSON.stringify(path)}`, 'EntryNotFound');
    return sendBytes(ctx, req, reply, {
      registry: reg,
      kind: 'file',
      size: f.size,
      sha256: f.sha256,
      contentType: contentTypeOf(f.path),
      read: (span, source) => readFileRange(reg, m, f, span, { source }),
    });
  } });

  app.get('/v1/diff', async (req, reply) => {
    const q = req.query as { a?: unknown; b?: unknown };
    if (typeof q.a !== 'string' || typeof q.b !== 'string') throw badRequest('give two versions: /v1/diff?a=OLD&b=NEW');
    checkVersionName(q.a);
    checkVersionName(q.b);
    const { reg } = await registryFor(ctx, req);
    await leaseForResponse(reg, `diff ${q.a} ${q.b}`, [q.a, q.b], reply);
    const [ma, mb] = await Promise.all([manifestOf(reg, q.a), manifestOf(reg, q.b)]);
    const release = await ctx.slots.acquire(ctx.limits.decodeQueueMs);
    try {
      return await diffVersions(reg, ma, mb);
    } finally {
      release();
    }
  });

  // Verify with progress as server-sent events: `progress` events, then one `result` whose `line` is what `at1 registry verify` prints.
  app.get('/v1/verify', async (req, reply) => {
    const q = req.query as { version?: unknown };
    const version = typeof q.version === 'string' && q.version !== '' ? q.version : undefined;
    if (version !== undefined) checkVersionName(version);
    const { reg } = await registryFor(ctx, req);
    if (version !== undefined) await manifestOf(reg, version);
    const release = await ctx.slots.acquire(ctx.limits.decodeQueueMs);
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'x-accel-buffering': 'no' });
    const send = (event: string, data: unknown): void => {
      res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    };
    let last = 0;
    const gone = new AbortController(); // the client closed the page: stop verifying
    res.once('close', () => gone.abort());
    try {
      send('start', { version: version ?? null });
      const report = await verifyRegistry(reg, version, (p) => {
        const now = Date.now();
        if (now - last < 100 && p.done < p.total) return;
        last = now;
        send('progress', { label: p.label, done: p.done, total: p.total });
      }, { signal: gone.signal });
      const failures = report.versions.flatMap((v) => v.failures);
      if (!report.ok) ctx.metrics.verifyFailures.add(failures.length);
      const bytes = report.versions.reduce((a, v) => a + v.bytes, 0);
      send('progress', { label: 'verify', done: bytes, total: bytes });
      send('result', {
        ok: report.ok,
        line: report.ok ? 'integrity: PASS (SHA-256)' : `integrity: FAIL (${failures.length} failure${failures.length === 1 ? '' : 's'})`,
        versions: report.versions.map((v) => ({ version: v.version, ok: v.ok, bytes: v.bytes, tensors: v.tensors })),
        failures,
      });
    } catch (e) {
      if (gone.signal.aborted) return;
      send('error', { code: (e as { code?: string }).code ?? 'E_INTERNAL', message: e instanceof Error ? e.message : String(e) });
    } finally {
      release();
      res.end();
    }
  });
}

export function contentTypeOf(path: string): string {
  if (path.endsWith('.json')) return 'application/json';
  if (path.endsWith('.txt') || path.endsWith('.md')) return 'text/plain; charset=utf-8';
  return 'application/octet-stream';
}
