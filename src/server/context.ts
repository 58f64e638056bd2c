/** What every route shares: the repositories, limits, counters, the write token and the decode slots. */
import { SharedChunkSources, type ChunkSource, type Registry } from '../index.js';
import type { FastifyReply } from 'fastify';
import { CodecCache } from './catalog.js';
import { HttpError } from './http-errors.js';
import type { Limits } from './options.js';
import type { Metrics } from './metrics.js';
import type { RepoSet } from './repos.js';

/** A counting semaphore with a bounded wait: at most `size` holders; a waiter that waits too long gets a 503. */
export class Slots {
  private held = 0;
  private readonly waiting: (() => void)[] = [];
  constructor(readonly size: number) {}

  get inUse(): number {
    return this.held;
  }

  async acquire(timeoutMs: number): Promise<() => void> {
    if (this.held >= this.size) {
      await new Promise<void>((resolve, reject) => {
        const wake = (): void => {
          clearTimeout(timer);
          resolve();
        };
        const timer = setTimeout(() => {
          const i = this.waiting.indexOf(wake);
          if (i >= 0) this.waiting.splice(i, 1);
          reject(new HttpError(503, 'E_BUSY', `all ${this.size} decode slots stayed busy for ${timeoutMs} ms; try again`, undefined, { 'retry-after': '1' }));
        }, timeoutMs);
        this.waiting.push(wake);
      });
    } else this.held++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      if (next) next(); // the slot passes straight to the next waiter
      else this.held--;
    };
  }
}

export interface ServerContext {
  repos: RepoSet;
  limits: Limits;
  metrics: Metrics;
  token: string | undefined;
  codecs: CodecCache;
  slots: Slots;
  /** Per registry: in-process decoding for small responses, one shared worker pool for large ones (closed with the server). */
  sources: Map<Registry, SharedChunkSources>;
}

/** Run `fn` when the response is finished or abandoned, once. */
export function onResponseDone(reply: FastifyReply, fn: () => void | Promise<void>): void {
  let done = false;
  const run = (): void => {
    if (done) return;
    done = true;
    void Promise.resolve()
      .then(fn)
      .catch(() => undefined);
  };
  reply.raw.once('close', run);
  reply.raw.once('finish', run);
}

/**
 * How long a reader lease outlives the last response that used it. A lease
 * is a file written on take and removed on release; requests arriving
 * back to back (a client reading a model tensor by tensor, many small
 * ranges) share one lease instead of writing one each. Short, so gc and rm
 * are held up by at most this long after the server goes idle.
 */
export const LEASE_LINGER_MS = 2000;

/**
 * Hold a reader lease on `reg` for `versions` until the response is done
 * (and LEASE_LINGER_MS more): taken before the manifest is read, so gc and
 * rm leave everything this response may still decode, however slowly the
 * client reads. The registry shares one lease among all its readers.
 */
export async function leaseForResponse(reg: Registry, what: string, versions: string[], reply: FastifyReply): Promise<void> {
  const release = await reg.holdReadLease(`serve ${what}`, versions);
  onResponseDone(reply, () => void setTimeout(() => void release().catch(() => undefined), LEASE_LINGER_MS).unref());
}

/** A chunk source for one response, its reads timed into the metrics. */
export function timedSource(ctx: ServerContext, reg: Registry, expectedBytes: number): ChunkSource {
  let shared = ctx.sources.get(reg);
  if (!shared) ctx.sources.set(reg, (shared = new SharedChunkSources(reg.reader, reg.settings)));
  const inner = shared.sourceFor(expectedBytes);
  const timed = async <T>(p: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    try {
      return await p();
    } finally {
      ctx.metrics.decodeSeconds.add((performance.now() - t0) / 1000);
      ctx.metrics.decodedChunks.add(1);
    }
  };
  return {
    read: (d, n) => timed(() => inner.read(d, n)),
    readInto: (d, out) => timed(() => inner.readInto(d, out)),
    readUnverified: (d, n, out) => timed(() => inner.readUnverified(d, n, out)),
    window: inner.window,
    close: async () => undefined, // shared: closed with the server
  };
}
