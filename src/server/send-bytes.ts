/**
 * Sending a tensor or a file: validators (ETag = the SHA-256, Repr-Digest),
 * conditional requests (If-None-Match → 304, If-Range), ranges (one → 206
 * with Content-Range; several → multipart/byteranges; none satisfiable →
 * 416), HEAD, and the rule that no unchecked byte leaves the server.
 *
 * Bytes come from a `read(span)` that yields only verified pieces (each
 * chunk checked against its SHA-256 before it is handed on). A body up to
 * `limits.bufferBytes` is decoded completely before the status line goes
 * out, so a damaged object turns into a clean 500 E_INTEGRITY; a larger one
 * streams, and a failure mid-stream destroys the connection: the client
 * sees a transfer shorter than its Content-Length, never wrong bytes.
 */
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { At1Error, type ChunkSource, type Registry } from '../index.js';
import { onResponseDone, timedSource, type ServerContext } from './context.js';
import { HttpError } from './http-errors.js';
import { ifRangeHolds, noneMatchHits, parseRange, type Span } from './range.js';

export interface ByteResource {
  registry: Registry;
  kind: 'tensor' | 'file';
  size: number;
  /** Hex SHA-256 of the whole representation: the strong ETag and the Repr-Digest. */
  sha256: string;
  contentType: string;
  /** Verified pieces of bytes [start, end). */
  read(span: Span, source: ChunkSource): AsyncGenerator<Uint8Array>;
  /** More headers (the Hub's X-Repo-Commit, X-Linked-Size …). */
  headers?: Record<string, string>;
  /** The URL names this content for good (a commit id): cacheable forever. Otherwise caches revalidate with the ETag (a version name can be removed and added again with other bytes; `main` moves). */
  immutable?: boolean;
}

export function etagOf(sha256: string): string {
  return `"${sha256}"`;
}

export function reprDigest(sha256: string): string {
  return `sha-256=:${Buffer.from(sha256, 'hex').toString('base64')}:`;
}

function isIntegrity(e: unknown): boolean {
  return e instanceof At1Error && (e.code === 'E_INTEGRITY' || e.code === 'E_CORRUPT');
}

interface Part {
  span: Span;
  /** multipart/byteranges part header, or empty for a single body. */
  head: Buffer;
}

export async function sendBytes(ctx: ServerContext, req: FastifyRequest, reply: FastifyReply, res: ByteResource): Promise<FastifyReply> {
  const etag = etagOf(res.sha256);
  reply.header('etag', etag);
  reply.header('repr-digest', reprDigest(res.sha256));
  reply.header('accept-ranges', 'bytes');
  reply.header('cache-control', res.immutable ? 'public, max-age=31536000, immutable' : 'no-cache');
  for (const [k, v] of Object.entries(res.headers ?? {})) reply.header(k, v);

  if (noneMatchHits(req.headers['if-none-match'], etag)) return reply.code(304).send();

  const rangeHeader = typeof req.headers.range === 'string' && ifRangeHolds(req.headers['if-range'] as string | undefined, etag) ? req.headers.range : undefined;
  const range = parseRange(rangeHeader, res.size);
  if (range.kind === 'unsatisfiable') {
    throw new HttpError(416, 'E_RANGE', `range ${JSON.stringify(rangeHeader)} does not overlap the ${res.size} bytes of this ${res.kind}`, undefined, { 'content-range': `bytes */${res.size}` });
  }
  if (range.kind === 'ranges' && range.spans.length > ctx.limits.maxRanges) {
    throw new HttpError(416, 'E_RANGE', `${range.spans.length} ranges in one request; at most ${ctx.limits.maxRanges} are served`, undefined, { 'content-range': `bytes */${res.size}` });
  }

  const spans = range.kind === 'ranges' ? range.spans : [{ start: 0, end: res.size }];
  let parts: Part[];
  let tail = Buffer.alloc(0);
  if (spans.length === 1) {
    parts = [{ span: spans[0]!, head: Buffer.alloc(0) }];
    reply.header('content-type', res.contentType);
    if (range.kind === 'ranges') {
      reply.code(206);
      reply.header('content-range', `bytes ${spans[0]!.start}-${spans[0]!.end - 1}/${res.size}`);
    }
  } else {
    const boundary = `at1-${randomBytes(12).toString('hex')}`;
    parts = spans.map((s, i) => ({ span: s, head: Buffer.from(`${i === 0 ? '' : '\r\n'}--${boundary}\r\ncontent-type: ${res.contentType}\r\ncontent-range: bytes ${s.start}-${s.end - 1}/${res.size}\r\n\r\n`) }));
    tail = Buffer.from(`\r\n--${boundary}--\r\n`);
    reply.code(206);
    reply.header('content-type', `multipart/byteranges; boundary=${boundary}`);
  }
  const dataBytes = parts.reduce((a, p) => a + (p.span.end - p.span.start), 0);
  const length = dataBytes + parts.reduce((a, p) => a + p.head.length, 0) + tail.length;
  reply.header('content-length', String(length));
  if (req.method === 'HEAD') return reply.send();

  const release = await ctx.slots.acquire(ctx.limits.decodeQueueMs).catch((e: unknown) => {
    ctx.metrics.decodeRejected.add(1);
    throw e;
  });
  ctx.metrics.decodesInFlight.add(1);
  const source = timedSource(ctx, res.registry, dataBytes);
  onResponseDone(reply, async () => {
    ctx.metrics.decodesInFlight.add(-1);
    release();
    await source.close();
  });
  const kind = res.kind;
  const metrics = ctx.metrics;
  async function* body(): AsyncGenerator<Uint8Array> {
    try {
      for (const p of parts) {
        if (p.head.length) yield p.head;
        for await (const piece of res.read(p.span, source)) {
          metrics.bytesServed.add(piece.length, { kind });
          yield piece;
        }
      }
      if (tail.length) yield tail;
    } catch (e) {
      if (isIntegrity(e)) metrics.verifyFailures.add(1);
      throw e;
    }
  }

  if (dataBytes <= ctx.limits.bufferBytes) {
    const chunks: Uint8Array[] = [];
    for await (const c of body()) chunks.push(c); // an integrity failure throws here, before any byte is sent: a JSON 500
    return reply.send(Buffer.concat(chunks));
  }
  const stream = Readable.from(body(), { objectMode: false, highWaterMark: 1 << 20 });
  stream.on('error', (e) => {
    req.log.error({ err: e }, 'stream failed after the status line was sent; connection aborted');
    reply.raw.destroy(e); // the client sees a failed transfer, never a 200 with wrong or missing bytes
  });
  return reply.send(stream);
}
