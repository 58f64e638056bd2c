/**
 * Writes: `PUT /v1/versions/{name}` adds a version from the body (a
 * safetensors file, or with `Content-Type: application/x-tar` a model
 * directory), `DELETE /v1/versions/{name}` removes one as `at1 registry rm`
 * does (refused while other versions are coded against it).
 *
 * Both need the bearer token (auth.ts), checked before a byte of the body
 * is read. The body is received completely into a temporary area first;
 * only then does the add start, validate, and take the registry lock, so a
 * slow or stalled upload never holds the lock while bytes trickle in. The
 * version is visible only once its manifest lands (the add's write order).
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { add, At1Error, checkVersionName, nameProblem, removeVersion, type Level } from '../index.js';
import { checkWriteAuth } from './auth.js';
import type { ServerContext } from './context.js';
import { badRequest, HttpError } from './http-errors.js';
import { receiveFile, receiveTar, uploadArea } from './uploads.js';
import { registryFor } from './v1-routes.js';

const SAFETENSORS_TYPES = new Set(['application/octet-stream', 'application/vnd.safetensors', 'application/safetensors']);

function mediaType(req: FastifyRequest): string {
  return (req.headers['content-type'] ?? 'application/octet-stream').split(';')[0]!.trim().toLowerCase();
}

export function writeRoutes(app: FastifyInstance, ctx: ServerContext): void {
  // Auth runs on request, before the body is read; a refused upload never reaches the disk.
  const auth = async (req: FastifyRequest): Promise<void> => checkWriteAuth(ctx.token, req.headers.authorization);

  app.register(async (child) => {
    // Bodies stay streams: uploads.ts reads them (and enforces the byte limit) itself.
    child.addContentTypeParser('*', (_req, payload, done) => done(null, payload));
    child.put<{ Params: { name: string }; Querystring: { parent?: string; level?: string; filename?: string; repo?: string } }>('/v1/versions/:name', { onRequest: auth, bodyLimit: Number.MAX_SAFE_INTEGER }, async (req, reply) => {
      const name = req.params.name;
      checkVersionName(name);
      const { parent, level, filename } = req.query;
      if (parent !== undefined && nameProblem(parent) !== undefined) throw badRequest(`?parent=${JSON.stringify(parent)} is not a version name`);
      if (level !== undefined && level !== 'fast' && level !== 'max') throw badRequest(`?level must be fast or max, not ${JSON.stringify(level)}`);
      const file = filename ?? `${name}.safetensors`;
      if (!/^[A-Za-z0-9][A-Za-z0-9._+=@-]{0,200}\.safetensors$/.test(file)) throw badRequest(`?filename=${JSON.stringify(file)} must be a plain name ending in .safetensors`);
      const type = mediaType(req);
      const isTar = type === 'application/x-tar' || type === 'application/tar';
      if (!isTar && !SAFETENSORS_TYPES.has(type)) throw new HttpError(415, 'E_MEDIA_TYPE', `Content-Type ${type} is not accepted: send a safetensors file (application/octet-stream) or a tar of a model directory (application/x-tar)`);
      const declared = Number(req.headers['content-length'] ?? NaN);
      if (Number.isFinite(declared) && declared > ctx.limits.maxUploadBytes) throw new HttpError(413, 'E_TOO_LARGE', `the upload of ${declared} bytes exceeds the ${ctx.limits.maxUploadBytes}-byte limit; nothing was added`);
      const { reg } = await registryFor(ctx, req);
      if (await reg.hasVersion(name)) throw new At1Error('E_EXISTS', `version ${JSON.stringify(name)} already exists in ${reg.location}`);
      if (parent !== undefined && !(await reg.hasVersion(parent))) throw new At1Error('E_NOT_FOUND', `?parent=${JSON.stringify(parent)} is not a version`);
      const area = await uploadArea(ctx.limits.uploadDir);
      try {
        let input: string;
        if (isTar) {
          input = join(area.dir, name);
          await mkdir(input);
          await receiveTar(req.raw, input, ctx.limits.maxUploadBytes);
        } else {
          input = join(area.dir, file);
          await receiveFile(req.raw, input, ctx.limits.maxUploadBytes);
        }
        // The whole body is here: only now does the add validate it and take the lock.
        const r = await add(reg, input, { name, parent, level: level as Level | undefined });
        const m = r.manifest;
        reply.code(201).header('location', `/v1/versions/${encodeURIComponent(m.name)}`);
        return { name: m.name, parent: m.parent, layout: m.layout, rawBytes: m.stats.rawBytes, storedBytes: r.storedBytes, files: m.files.map((f) => ({ path: f.path, size: f.size, sha256: f.sha256 })) };
      } finally {
        await area.remove();
      }
    });
  });

  app.delete<{ Params: { name: string } }>('/v1/versions/:name', { onRequest: auth }, async (req) => {
    const name = req.params.name;
    checkVersionName(name);
    const { reg } = await registryFor(ctx, req);
    try {
      const r = await removeVersion(reg, name);
      return { removed: r.removed, reparented: r.reparented, freedObjects: r.gc.removedObjects, freedBytes: r.gc.removedBytes };
    } catch (e) {
      if (e instanceof At1Error && e.code === 'E_INPUT' && /is the reference of/.test(e.message)) throw new HttpError(409, 'E_IN_USE', e.message);
      throw e;
    }
  });
}
