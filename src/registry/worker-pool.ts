/**
 * A small pool of worker threads running chunk-worker.ts: decoding and
 * encoding chunks in parallel with the main thread's hashing and I/O. On a
 * 2-core machine this is the difference between one core's throughput and
 * two.
 *
 * Workers do no I/O and know no registry: chunk bytes go in, chunk bytes
 * come out (chunk-worker.ts), transferred rather than copied, so the pool
 * works the same over any backend.
 * Errors come back as {code, message, where} and are rebuilt as At1Error /
 * IntegrityError, so callers see the same typed errors as in-process calls.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { At1Error, IntegrityError, type ErrorCode } from '../errors.js';
import type { WorkerJob, WorkerReply } from './chunk-worker.js';

interface Pending {
  resolve: (r: WorkerReply) => void;
  reject: (e: unknown) => void;
}

function workerSource(): string {
  const tsx = import.meta.resolve('tsx/esm/api');
  const body = new URL('./chunk-worker.ts', import.meta.url).href;
  // The worker is started from a tiny script that first installs the TypeScript loader (when the sources run through tsx).
  return `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(body)}); }).then((m) => m.start());`;
}

/**
 * Worker threads per pool, or `threads` (a registry's settings.threads) when given. Decoding: one per core (at most
 * 4). Encoding: one more than that, because the main thread (reading and
 * hashing the input) leaves a core partly idle; measured on 2 cores, 1 GB:
 * add 12.0 s with 2 workers, 10.6 s with 3; get unchanged with 3.
 */
export function defaultPoolSize(kind: 'decode' | 'encode' = 'decode', threads?: number): number {
  const forced = Number(threads);
  if (Number.isInteger(forced) && forced >= 1 && forced <= 64) return forced;
  const cores = Math.max(1, Math.min(4, availableParallelism()));
  return kind === 'encode' ? cores + 1 : cores;
}

export class WorkerPool {
  private readonly workers: Worker[] = [];
  private readonly pending = new Map<number, Pending>();
  private readonly load: number[] = [];
  private nextId = 0;
  private failed: unknown;

  /** `source`: the workers' script (eval'd ES module text); default chunk-worker.ts through the TypeScript loader. */
  constructor(size = defaultPoolSize(), source = workerSource()) {
    for (let i = 0; i < size; i++) {
      const w = new Worker(source, { eval: true });
      w.on('message', (m: { id: number; ok: boolean; reply?: WorkerReply; error?: { code: ErrorCode; message: string; where?: Record<string, string> } }) => {
        const p = this.pending.get(m.id);
        if (!p) return;
        this.pending.delete(m.id);
        this.load[i]!--;
        if (m.ok) p.resolve(m.reply!);
        else if (m.error?.code === 'E_INTEGRITY') p.reject(new IntegrityError(m.error.message, m.error.where ?? {}));
        else p.reject(new At1Error(m.error?.code ?? 'E_IO', m.error?.message ?? 'worker failed'));
      });
      w.on('error', (e) => this.fail(e));
      this.workers.push(w);
      this.load.push(0);
    }
  }

  private fail(e: unknown): void {
    this.failed = e;
    for (const p of this.pending.values()) p.reject(new At1Error('E_IO', `a worker thread failed: ${(e as Error).message}`, { cause: e }));
    this.pending.clear();
  }

  run(job: WorkerJob, transfer: ArrayBuffer[] = []): Promise<WorkerReply> {
    if (this.failed) return Promise.reject(this.failed);
    let best = 0;
    for (let i = 1; i < this.workers.length; i++) if (this.load[i]! < this.load[best]!) best = i;
    const id = this.nextId++;
    this.load[best]!++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.workers[best]!.postMessage({ id, job }, transfer);
    });
  }

  get size(): number {
    return this.workers.length;
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}
