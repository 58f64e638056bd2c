/**
 * The Hugging Face Hub's download endpoints, so its clients load a version
 * as a model repository at a revision (revision = version name, or the
 * commit id catalog.ts gives it, or `main`/`HEAD` for the newest version):
 *
 *   GET|HEAD /{org}/{name}/resolve/{rev}/{path}       the file (Range, ETag, X-Repo-Commit, X-Linked-Size/-Etag)
 *   GET /api/models/{org}/{name}[/revision/{rev}]      model info (sha, siblings)
 *   GET /api/models/{org}/{name}/tree/{rev}[/{path}]   file listing (?recursive=, ?expand=)
 *   POST /api/models/{org}/{name}/paths-info/{rev}     what the cache download asks first
 *
 * Every file is presented as a Git LFS file: `lfs.oid` and the ETag are its
 * SHA-256 (what at1 already verifies), `oid` the git blob id of its LFS
 * pointer, as on the Hub. Errors carry the Hub's `X-Error-Code`
 * (RepoNotFound, RevisionNotFound, EntryNotFound) and `{ "error": message }`.
 */
import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { readFileRange, type FileEntry, type Registry, type VersionManifest } from '../index.js';
import { commitOf, manifestOf, resolveRevision } from './catalog.js';
import { leaseForResponse, type ServerContext } from './context.js';
import { badRequest, notFound } from './http-errors.js';
import { sendBytes } from './send-bytes.js';
import { contentTypeOf } from './v1-routes.js';

export const HUB_CONFIG = { hub: true };

function lfsPointer(f: FileEntry): string {
  return `version https://git-lfs.github.com/spec/v1\noid sha256:${f.sha256}\nsize ${f.size}\n`;
}

function gitBlobOid(text: string): string {
  const body = Buffer.from(text, 'utf8');
  return createHash('sha1').update(`blob ${body.length}\0`).update(body).digest('hex');
}

interface Revision {
  reg: Registry;
  repo: string;
  m: VersionManifest;
  commit: string;
}

/** Repo (404 RepoNotFound), then revision (404 RevisionNotFound), under a reader lease for the response. */
async function revisionFor(ctx: ServerContext, reply: FastifyReply, org: string, name: string, rev: string): Promise<Revision> {
  const repo = `${org}/${name}`;
  const reg = await ctx.repos.open(repo);
  const version = await resolveRevision(reg, rev);
  await leaseForResponse(reg, version, [version], reply);
  const m = await manifestOf(reg, version);
  return { reg, repo, m, commit: await commitOf(reg, version) };
}

function fileEntry(f: FileEntry, r: Revision, expand: boolean): Record<string, unknown> {
  const pointer = lfsPointer(f);
  return {
    type: 'file',
    oid: gitBlobOid(pointer),
    size: f.size,
    path: f.path,
    lfs: { oid: f.sha256, size: f.size, pointerSize: Buffer.byteLength(pointer) },
    ...(expand ? { lastCommit: { id: r.commit, title: `at1 version ${r.m.name}`, date: r.m.createdAt } } : {}),
  };
}

function dirEntry(path: string, r: Revision, expand: boolean): Record<string, unknown> {
  return {
    type: 'directory',
    oid: createHash('sha1').update(`${r.commit}/${path}`).digest('hex'),
    size: 0,
    path,
    ...(expand ? { lastCommit: { id: r.commit, title: `at1 version ${r.m.name}`, date: r.m.createdAt } } : {}),
  };
}

/** The directories holding a version's files ('a/b/c.json' → 'a', 'a/b'). */
function dirsOf(m: VersionManifest): Set<string> {
  const dirs = new Set<string>();
  for (const f of m.files) {
    const segs = f.path.split('/');
    for (let i = 1; i < segs.length; i++) dirs.add(segs.slice(0, i).join('/'));
  }
  return dirs;
}

function truthy(v: unknown): boolean {
  return v === true || v === 'true' || v === '1' || v === 'True';
}

async function modelInfo(ctx: ServerContext, reply: FastifyReply, org: string, name: string, rev: string): Promise<Record<string, unknown>> {
  const r = await revisionFor(ctx, reply, org, name, rev);
  const params: Record<string, number> = {};
  for (const f of r.m.files) if (f.kind === 'safetensors') for (const t of f.tensors) params[t.dtype] = (params[t.dtype] ?? 0) + t.shape.reduce((a, d) => a * d, 1);
  return {
    _id: createHash('sha256').update(r.repo).digest('hex').slice(0, 24),
    id: r.repo,
    modelId: r.repo,
    author: org,
    sha: r.commit,
    lastModified: r.m.createdAt,
    createdAt: r.m.createdAt,
    private: false,
    disabled: false,
    gated: false,
    downloads: 0,
    likes: 0,
    tags: ['at1', 'safetensors'],
    library_name: 'at1',
    siblings: r.m.files.map((f) => ({ rfilename: f.path })),
    safetensors: { parameters: params, total: Object.values(params).reduce((a, b) => a + b, 0) },
    cardData: { at1: { version: r.m.name, parent: r.m.parent } },
  };
}

export function hubRoutes(app: FastifyInstance, ctx: ServerContext): void {
  type ResolveParams = { org: string; repo: string; rev: string; '*': string };
  // GET and HEAD declared together: fastify's own HEAD route would answer Content-Length: 0.
  app.route<{ Params: ResolveParams }>({ method: ['GET', 'HEAD'], url: '/:org/:repo/resolve/:rev/*', config: HUB_CONFIG, handler: async (req, reply) => {
    const { org, repo, rev } = req.params;
    const r = await revisionFor(ctx, reply, org, repo, rev);
    const path = req.params['*'];
    const f = r.m.files.find((x) => x.path === path);
    if (!f) throw notFound(`${path} is not a file of ${r.repo} at revision ${rev}`, 'EntryNotFound');
    const etag = `"${f.sha256}"`;
    return sendBytes(ctx, req, reply, {
      registry: r.reg,
      kind: 'file',
      size: f.size,
      sha256: f.sha256,
      contentType: contentTypeOf(f.path),
      headers: {
        'x-repo-commit': r.commit,
        'x-linked-etag': etag,
        'x-linked-size': String(f.size),
        'content-disposition': `inline; filename*=UTF-8''${encodeURIComponent(f.path.split('/').pop()!)}`,
        'access-control-expose-headers': 'ETag, X-Repo-Commit, X-Linked-Etag, X-Linked-Size, Content-Range, Repr-Digest, X-Error-Code',
      },
      read: (span, source) => readFileRange(r.reg, r.m, f, span, { source }),
      immutable: rev === r.commit,
    });
  } });

  const info = (req: FastifyRequest<{ Params: { org: string; repo: string; rev?: string } }>, reply: FastifyReply): Promise<Record<string, unknown>> => modelInfo(ctx, reply, req.params.org, req.params.repo, req.params.rev ?? 'main');
  app.get<{ Params: { org: string; repo: string } }>('/api/models/:org/:repo', { config: HUB_CONFIG }, info);
  app.get<{ Params: { org: string; repo: string; rev: string } }>('/api/models/:org/:repo/revision/:rev', { config: HUB_CONFIG }, info);

  const tree = async (req: FastifyRequest<{ Params: { org: string; repo: string; rev: string; '*'?: string }; Querystring: { recursive?: string; expand?: string } }>, reply: FastifyReply): Promise<unknown[]> => {
    const r = await revisionFor(ctx, reply, req.params.org, req.params.repo, req.params.rev);
    const prefix = (req.params['*'] ?? '').replace(/\/+$/, '');
    const recursive = truthy(req.query.recursive);
    const expand = truthy(req.query.expand);
    const dirs = dirsOf(r.m);
    if (prefix !== '' && !dirs.has(prefix)) {
      if (r.m.files.some((f) => f.path === prefix)) throw badRequest(`${prefix} is a file, not a directory: use paths-info or resolve`);
      throw notFound(`${prefix} is not a directory of ${r.repo} at revision ${req.params.rev}`, 'EntryNotFound');
    }
    const under = (p: string): string | undefined => (prefix === '' ? p : p.startsWith(prefix + '/') ? p.slice(prefix.length + 1) : undefined);
    const out: unknown[] = [];
    for (const d of [...dirs].sort()) {
      const rest = under(d);
      if (rest !== undefined && (recursive || !rest.includes('/'))) out.push(dirEntry(d, r, expand));
    }
    for (const f of r.m.files) {
      const rest = under(f.path);
      if (rest !== undefined && (recursive || !rest.includes('/'))) out.push(fileEntry(f, r, expand));
    }
    return out;
  };
  app.get('/api/models/:org/:repo/tree/:rev', { config: HUB_CONFIG }, tree);
  app.get('/api/models/:org/:repo/tree/:rev/*', { config: HUB_CONFIG }, tree);

  app.post<{ Params: { org: string; repo: string; rev: string }; Body: unknown }>('/api/models/:org/:repo/paths-info/:rev', { config: HUB_CONFIG }, async (req, reply) => {
    const r = await revisionFor(ctx, reply, req.params.org, req.params.repo, req.params.rev);
    const body = (req.body ?? {}) as { paths?: unknown; expand?: unknown };
    const paths = typeof body.paths === 'string' ? [body.paths] : body.paths;
    if (!Array.isArray(paths) || !paths.every((p): p is string => typeof p === 'string')) throw badRequest('paths-info needs { "paths": [ … ] }');
    if (paths.length > 10_000) throw badRequest(`paths-info takes at most 10000 paths, not ${paths.length}`);
    const expand = truthy(body.expand);
    const dirs = dirsOf(r.m);
    const out: unknown[] = [];
    for (const p of paths) {
      const clean = p.replace(/^\/+|\/+$/g, '');
      const f = r.m.files.find((x) => x.path === clean);
      if (f) out.push(fileEntry(f, r, expand));
      else if (dirs.has(clean)) out.push(dirEntry(clean, r, expand));
      // Paths that do not exist are left out, as the Hub does.
    }
    return out;
  });
}
