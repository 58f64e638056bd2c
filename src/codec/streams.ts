/**
 * A payload of several independently compressed streams: u8 count, then
 * count x u32 LE lengths, then the streams back to back. Used by codecs that
 * split bytes into planes (high bytes compress, low bytes barely do).
 */
import { At1Error } from '../errors.js';

export function packStreams(streams: readonly Uint8Array[]): Uint8Array {
  if (streams.length > 255) throw new Error('too many streams');
  let total = 1 + 4 * streams.length;
  for (const s of streams) total += s.length;
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  out[0] = streams.length;
  let p = 1 + 4 * streams.length;
  streams.forEach((s, i) => {
    view.setUint32(1 + 4 * i, s.length, true);
    out.set(s, p);
    p += s.length;
  });
  return out;
}

export function unpackStreams(payload: Uint8Array, expected: number, what: string): Uint8Array[] {
  const n = payload[0];
  if (n !== expected) throw new At1Error('E_CORRUPT', `${what}: ${n ?? 'no'} streams, expected ${expected}`);
  if (payload.length < 1 + 4 * n) throw new At1Error('E_CORRUPT', `${what}: truncated stream table`);
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const out: Uint8Array[] = [];
  let p = 1 + 4 * n;
  for (let i = 0; i < n; i++) {
    const len = view.getUint32(1 + 4 * i, true);
    if (p + len > payload.length) throw new At1Error('E_CORRUPT', `${what}: stream ${i} runs past the payload`);
    out.push(payload.subarray(p, p + len));
    p += len;
  }
  if (p !== payload.length) throw new At1Error('E_CORRUPT', `${what}: ${payload.length - p} stray bytes after the streams`);
  return out;
}
