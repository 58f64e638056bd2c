/**
 * The body of a frame worker (frame-pool.ts): opens its own coder from the
 * registry version (weights read and verified in this thread), then codes
 * the frames it is sent, one at a time.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { At1Error } from '../errors.js';
import { openCoder, type CoderOptions } from './coder.js';
import { decodeFrame, encodeFrame } from './frame-codec.js';
import type { FrameJob, FrameReply } from './frame-pool.js';

export async function start(): Promise<void> {
  const port = parentPort!;
  const send = (m: FrameReply, transfer: ArrayBuffer[] = []): void => port.postMessage(m, transfer);
  const fail = (id: number, e: unknown): void =>
    send({ kind: 'error', id, code: e instanceof At1Error ? e.code : 'E_IO', message: e instanceof Error ? e.message : String(e) });
  const { location, version, opts } = workerData as { location: string; version: string; opts: CoderOptions };
  let coder;
  try {
    coder = await openCoder(location, version, opts);
  } catch (e) {
    fail(0, e);
    return;
  }
  const c = coder;
  send({ kind: 'ready', identity: c.identity, params: c.params });
  let queue = Promise.resolve();
  port.on('message', ({ id, job }: { id: number; job: FrameJob }) => {
    queue = queue.then(async () => {
      try {
        const onProgress = (done: number): void => send({ kind: 'progress', id, done });
        if (job.kind === 'encode') {
          const r = await encodeFrame(job.bytes, { ...c.frame, onProgress });
          send({ kind: 'done', id, result: r }, [r.payload.buffer as ArrayBuffer]);
        } else {
          const out = await decodeFrame(job.payload, job.rawLength, { ...c.frame, onProgress });
          send({ kind: 'done', id, result: out }, [out.buffer as ArrayBuffer]);
        }
      } catch (e) {
        fail(id, e);
      }
    });
  });
}
