/**
 * Where frames are coded: in this thread (one coder) or on worker threads,
 * each with its own coder opened from the same registry version. Frames are
 * independent, so `threads` frames run at once; results come back in frame
 * order (parallelMap keeps it). The coded bits do not depend on where a
 * frame ran: the thread count is not part of the format.
 */
import { Worker } from 'node:worker_threads';
import { At1Error, type ErrorCode } from '../errors.js';
import type { ArchiveModel } from './container.js';
import { openCoder, type Coder, type CoderOptions } from './coder.js';
import { decodeFrame, encodeFrame, type EncodedFrame } from './frame-codec.js';

export interface FramePool {
  identity: ArchiveModel;
  params: Coder['params'];
  /** coders running at once */
  size: number;
  encode(bytes: Uint8Array, onTokens?: (n: number) => void): Promise<EncodedFrame>;
  decode(payload: Uint8Array, rawLength: number, onTokens?: (n: number) => void): Promise<Uint8Array>;
  close(): Promise<void>;
}

export interface FramePoolOptions extends CoderOptions {
  /** frames coded at once: 1 = this thread; more = that many worker threads */
  threads?: number;
  signal?: AbortSignal;
}

/** Opens the coders: the model is loaded (and verified) once per thread. */
export async function openFramePool(location: string, version: string, opts: FramePoolOptions = {}): Promise<FramePool> {
  const threads = opts.threads ?? 1;
  if (!Number.isInteger(threads) || threads < 1 || threads > 64) throw new At1Error('E_INPUT', `threads must be a whole number from 1 to 64, is ${String(opts.threads)}`);
  const coderOpts: CoderOptions = { configPath: opts.configPath, tokenizerPath: opts.tokenizerPath, kernels: opts.kernels, context: opts.context, settings: opts.settings };
  if (threads === 1) return inProcessPool(await openCoder(location, version, coderOpts), opts.signal);
  return workerPool(location, version, coderOpts, threads);
}

function progressOf(onTokens?: (n: number) => void): ((done: number) => void) | undefined {
  if (!onTokens) return undefined;
  let last = 0;
  return (done) => {
    onTokens(done - last);
    last = done;
  };
}

function inProcessPool(coder: Coder, signal?: AbortSignal): FramePool {
  let busy: Promise<unknown> = Promise.resolve();
  // one coder, one frame at a time
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = busy.then(fn, fn);
    busy = run.catch(() => undefined);
    return run;
  };
  return {
    identity: coder.identity,
    params: coder.params,
    size: 1,
    encode: (bytes, onTokens) => serial(() => encodeFrame(bytes, { ...coder.frame, signal, onProgress: progressOf(onTokens) })),
    decode: (payload, rawLength, onTokens) => serial(() => decodeFrame(payload, rawLength, { ...coder.frame, signal, onProgress: progressOf(onTokens) })),
    close: () => coder.close(),
  };
}

// ---------------------------------------------------------------- workers

type Job = { kind: 'encode'; bytes: Uint8Array } | { kind: 'decode'; payload: Uint8Array; rawLength: number };
type Reply =
  | { kind: 'ready'; identity: ArchiveModel; params: Coder['params'] }
  | { kind: 'progress'; id: number; done: number }
  | { kind: 'done'; id: number; result: EncodedFrame | Uint8Array }
  | { kind: 'error'; id: number; code: ErrorCode; message: string };

function workerSource(): string {
  const tsx = import.meta.resolve('tsx/esm/api');
  const body = new URL('./frame-worker.ts', import.meta.url).href;
  return `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(body)}); }).then((m) => m.start());`;
}

interface Pending {
  resolve: (r: EncodedFrame | Uint8Array) => void;
  reject: (e: unknown) => void;
  onDone?: (done: number) => void;
}

async function workerPool(location: string, version: string, opts: CoderOptions, threads: number): Promise<FramePool> {
  const workers: Worker[] = [];
  const idle: Worker[] = [];
  const waiting: ((w: Worker) => void)[] = [];
  const pending = new Map<number, Pending>();
  let nextId = 1;
  let ready: { identity: ArchiveModel; params: Coder['params'] } | undefined;
  const starts: Promise<void>[] = [];
  for (let i = 0; i < threads; i++) {
    const w = new Worker(workerSource(), { eval: true, workerData: { location, version, opts } });
    workers.push(w);
    starts.push(
      new Promise<void>((resolve, reject) => {
        w.on('message', (m: Reply) => {
          if (m.kind === 'ready') {
            ready = { identity: m.identity, params: m.params };
            idle.push(w);
            resolve();
            return;
          }
          if (m.kind === 'error' && m.id === 0) {
            reject(new At1Error(m.code, m.message));
            return;
          }
          const p = pending.get(m.id);
          if (!p) return;
          if (m.kind === 'progress') {
            p.onDone?.(m.done);
            return;
          }
          pending.delete(m.id);
          const give = waiting.shift();
          if (give) give(w);
          else idle.push(w);
          if (m.kind === 'done') p.resolve(m.result);
          else p.reject(new At1Error(m.code, m.message));
        });
        w.on('error', (e) => {
          reject(e);
          for (const p of pending.values()) p.reject(e);
          pending.clear();
        });
      }),
    );
  }
  try {
    await Promise.all(starts);
  } catch (e) {
    await Promise.all(workers.map((w) => w.terminate()));
    throw e;
  }
  const acquire = (): Promise<Worker> => {
    const w = idle.pop();
    return w ? Promise.resolve(w) : new Promise((r) => waiting.push(r));
  };
  const run = async (job: Job, onTokens?: (n: number) => void): Promise<EncodedFrame | Uint8Array> => {
    const w = await acquire();
    const id = nextId++;
    return new Promise((resolve, reject) => {
      pending.set(id, { resolve, reject, onDone: progressOf(onTokens) });
      w.postMessage({ id, job });
    });
  };
  return {
    identity: ready!.identity,
    params: ready!.params,
    size: threads,
    encode: async (bytes, onTokens) => (await run({ kind: 'encode', bytes }, onTokens)) as EncodedFrame,
    decode: async (payload, rawLength, onTokens) => (await run({ kind: 'decode', payload, rawLength }, onTokens)) as Uint8Array,
    close: async () => {
      await Promise.all(workers.map((w) => w.terminate()));
    },
  };
}

export type { Job as FrameJob, Reply as FrameReply };
