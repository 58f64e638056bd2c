/**
 * The .at1z container: round trips through the file writer and reader, the
 * byte layout checked against an assembly written here from the spec
 * (docs/FORMAT.md §14), and every refusal of a hand-made bad archive.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './helpers.js';
import { At1Error, IntegrityError } from '../src/errors.js';
import {
  ArchiveReader,
  ArchiveWriter,
  readArchiveBytes,
  writeArchiveBytes,
  type ArchiveTrailer,
  type ArchiveTrailerFields,
  type FrameMeta,
} from '../src/lmcodec/container.js';

const sha = (b: Uint8Array | string): string => createHash('sha256').update(b).digest('hex');

/** Raw input cut into frames of `frameSize`, each "coded" as some payload bytes (here: the raw bytes reversed, or empty). */
function frames(input: Uint8Array, frameSize: number, emptyAt = -1): { payload: Uint8Array; meta: FrameMeta }[] {
  const out: { payload: Uint8Array; meta: FrameMeta }[] = [];
  for (let off = 0, i = 0; off < input.length; off += frameSize, i++) {
    const raw = input.subarray(off, Math.min(input.length, off + frameSize));
    const payload = i === emptyAt ? new Uint8Array(0) : Uint8Array.from(raw).reverse();
    out.push({ payload, meta: { rawLength: raw.length, rawSha256: sha(raw), tokens: raw.length >> 2 } });
  }
  return out;
}

function fields(input: Uint8Array, frameSize: number): ArchiveTrailerFields {
  return {
    format: 'at1z',
    codec: 'lm-mix/1',
    codecParams: { order: 3, alpha: 0.25, escape: true, mixer: 'lr', __proto__: 7 } as unknown as Record<string, number | string | boolean>,
    model: { version: 'prose-step0150', weightsSha256: sha('m'), tokenizerSha256: sha('t'), configSha256: sha('c') },
    input: { kind: 'bytes', length: input.length, sha256: sha(input) },
    frameSize,
    createdBy: 'at1 0.1.0',
  };
}

/** header + payloads + trailer JSON + u32 LE length + SHA-256 + end magic, from the spec, for any trailer text. */
function assemble(payloads: Uint8Array[], trailer: Buffer | string | object, o: { magic?: string; version?: number; reserved?: number; end?: string } = {}): Buffer {
  const json = Buffer.isBuffer(trailer) ? trailer : Buffer.from(typeof trailer === 'string' ? trailer : JSON.stringify(trailer), 'utf8');
  const len = Buffer.alloc(4);
  len.writeUInt32LE(json.length);
  return Buffer.concat([
    Buffer.from(o.magic ?? 'AT1Z', 'latin1'),
    Buffer.from([o.version ?? 1, o.reserved ?? 0, 0, 0]),
    ...payloads,
    json,
    len,
    createHash('sha256').update(json).digest(),
    Buffer.from(o.end ?? 'Z1TA', 'latin1'),
  ]);
}

/** The trailer object the writer records for these frames (what the spec says the offsets are). */
function expectedTrailer(fr: { payload: Uint8Array; meta: FrameMeta }[], f: ArchiveTrailerFields): ArchiveTrailer {
  let raw = 0;
  let pos = 8;
  return {
    ...f,
    frames: fr.map(({ payload, meta }) => {
      const e = { rawOffset: raw, rawLength: meta.rawLength, rawSha256: meta.rawSha256, tokens: meta.tokens, payloadOffset: pos, payloadLength: payload.length, payloadSha256: sha(payload) };
      raw += meta.rawLength;
      pos += payload.length;
      return e;
    }),
  };
}

async function writeArchive(path: string, input: Uint8Array, frameSize: number, emptyAt = -1): Promise<{ fr: ReturnType<typeof frames>; trailer: ArchiveTrailer }> {
  const fr = frames(input, frameSize, emptyAt);
  const w = await ArchiveWriter.create(path);
  for (const f of fr) await w.appendFrame(f.payload, f.meta);
  const trailer = await w.finish(fields(input, frameSize));
  return { fr, trailer };
}

for (const [name, size, frameSize, emptyAt] of [
  ['0 frames (empty input)', 0, 1024, -1],
  ['1 frame', 700, 1024, -1],
  ['many frames, one with an empty payload, a short last frame', 100_003, 997, 5],
] as const) {
  test(`round trip: ${name}`, async (t) => {
    const dir = tempDir(t);
    const path = join(dir, 'out.at1z');
    const input = randomBytes(size);
    const { fr, trailer } = await writeArchive(path, input, frameSize, emptyAt);
    assert.deepEqual(readdirSync(dir), ['out.at1z'], 'no temp file left beside the archive');

    const f = fields(input, frameSize);
    const want = expectedTrailer(fr, f);
    assert.deepEqual(trailer, want);
    assert.equal(Object.getPrototypeOf(trailer.codecParams), Object.prototype, 'a "__proto__" codec parameter stays a plain key');
    // The bytes are exactly the spec's layout of the trailer with keys in the documented order and codecParams sorted.
    const ordered = {
      format: want.format,
      codec: want.codec,
      codecParams: Object.fromEntries(Object.entries(want.codecParams).sort(([a], [b]) => (a < b ? -1 : 1))),
      model: want.model,
      input: want.input,
      frameSize: want.frameSize,
      frames: want.frames,
      createdBy: want.createdBy,
    };
    const file = readFileSync(path);
    assert.deepEqual(file, assemble(fr.map((x) => x.payload), ordered));
    assert.deepEqual(Buffer.from(writeArchiveBytes(fr, f)), file, 'the in-memory writer gives the same bytes');

    const r = await ArchiveReader.open(path);
    try {
      assert.deepEqual(r.trailer, want);
      const back = Buffer.concat(await Promise.all(fr.map((_, i) => r.readPayload(i))));
      assert.deepEqual(back, Buffer.concat(fr.map((x) => x.payload)));
      if (emptyAt >= 0) assert.equal((await r.readPayload(emptyAt)).length, 0);
      await assert.rejects(r.readPayload(fr.length), /there is no frame/);
    } finally {
      await r.close();
    }
    const mem = readArchiveBytes(file);
    assert.deepEqual(mem.trailer, want);
    fr.forEach((x, i) => assert.deepEqual(Buffer.from(mem.payload(i)), Buffer.from(x.payload)));
  });
}

test('writer: refuses an existing output unless overwrite; abort and invalid trailers leave nothing', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'a.at1z');
  writeFileSync(path, 'keep me');
  await assert.rejects(ArchiveWriter.create(path), (e: unknown) => e instanceof At1Error && e.code === 'E_EXISTS' && e.message.includes(path));
  assert.equal(readFileSync(path, 'utf8'), 'keep me');

  const input = randomBytes(3000);
  await writeArchiveTo(path, input, { overwrite: true });
  assert.equal((await ArchiveReader.open(path).then(async (r) => (await r.close(), r.trailer))).input.length, 3000);

  // A file that appears at the output while the archive is written is not replaced.
  const late = join(dir, 'late.at1z');
  const w = await ArchiveWriter.create(late);
  writeFileSync(late, 'someone else');
  await assert.rejects(w.finish(fields(new Uint8Array(0), 10)), (e: unknown) => e instanceof At1Error && e.code === 'E_EXISTS');
  assert.equal(readFileSync(late, 'utf8'), 'someone else');

  const b = join(dir, 'b.at1z');
  const w2 = await ArchiveWriter.create(b);
  await w2.appendFrame(new Uint8Array([1, 2, 3]), { rawLength: 10, rawSha256: sha('x'), tokens: 2 });
  await w2.abort();
  await w2.abort();

  // Frames that do not add up to the input length are refused before anything is written.
  const c = join(dir, 'c.at1z');
  const w3 = await ArchiveWriter.create(c);
  await w3.appendFrame(new Uint8Array([1]), { rawLength: 10, rawSha256: sha('x'), tokens: 2 });
  await assert.rejects(w3.finish(fields(new Uint8Array(11), 64)), (e: unknown) => e instanceof At1Error && e.code === 'E_INPUT' && /cover 10 bytes of input/.test(e.message));
  await assert.rejects(w3.appendFrame(new Uint8Array([1]), { rawLength: 1, rawSha256: sha('x'), tokens: 0 }), /already finished or aborted/);
  // A frame over frameSize, a malformed digest.
  const w4 = await ArchiveWriter.create(c);
  await w4.appendFrame(new Uint8Array([1]), { rawLength: 100, rawSha256: sha('x'), tokens: 2 });
  await assert.rejects(w4.finish(fields(new Uint8Array(100), 64)), /more than the frame size 64/);
  const w5 = await ArchiveWriter.create(c);
  await assert.rejects(w5.appendFrame(new Uint8Array([1]), { rawLength: 1, rawSha256: 'ABC', tokens: 0 }), /rawSha256/);
  await w5.abort();
  assert.deepEqual(readdirSync(dir).sort(), ['a.at1z', 'late.at1z'], 'aborted and refused writes leave no file and no temp');
});

async function writeArchiveTo(path: string, input: Uint8Array, opts: { overwrite?: boolean }): Promise<void> {
  const w = await ArchiveWriter.create(path, opts);
  for (const f of frames(input, 1000)) await w.appendFrame(f.payload, f.meta);
  await w.finish(fields(input, 1000));
}

test('a damaged payload is named by frame index and archive; the other frames still read', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'd.at1z');
  const input = randomBytes(5000);
  const { trailer } = await writeArchive(path, input, 1000);
  const bytes = readFileSync(path);
  bytes[trailer.frames[2]!.payloadOffset + 17]! ^= 0x40;
  writeFileSync(path, bytes);
  const r = await ArchiveReader.open(path);
  try {
    await assert.rejects(r.readPayload(2), (e: unknown) => {
      assert.ok(e instanceof IntegrityError);
      assert.equal(e.code, 'E_INTEGRITY');
      assert.match(e.message, /frame 2 \(input bytes 2000\.\.3000\) is damaged/);
      assert.ok(e.message.includes(path));
      return true;
    });
    for (const i of [0, 1, 3, 4]) assert.equal((await r.readPayload(i)).length, 1000);
  } finally {
    await r.close();
  }
  assert.throws(() => readArchiveBytes(bytes, 'mem').payload(2), /frame 2/);
});

/** A valid small archive's parts, to be broken one way at a time. */
function parts(): { payloads: Buffer[]; trailer: ArchiveTrailer } {
  const input = randomBytes(2500);
  const fr = frames(input, 1000);
  return { payloads: fr.map((f) => Buffer.from(f.payload)), trailer: expectedTrailer(fr, fields(input, 1000)) };
}

function clone<T>(x: T): T {
  return JSON.parse(JSON.stringify(x)) as T;
}

const BAD: [string, () => Buffer, RegExp, string?][] = [
  ['wrong magic', () => assemble(parts().payloads, parts().trailer, { magic: 'AT1X' }), /does not start with the magic "AT1Z"/],
  ['wrong end magic', () => assemble(parts().payloads, parts().trailer, { end: 'Z1TB' }), /does not end with the magic "Z1TA"/],
  ['unknown container version', () => assemble(parts().payloads, parts().trailer, { version: 2 }), /container version 2 is not supported/, 'E_UNSUPPORTED'],
  ['reserved bytes not zero', () => assemble(parts().payloads, parts().trailer, { reserved: 1 }), /reserved header bytes/],
  ['truncated below the fixed parts', () => assemble([], parts().trailer).subarray(0, 47), /shorter than the 48 of an empty archive/],
  ['truncated by one byte', () => { const b = assemble(parts().payloads, parts().trailer); return b.subarray(0, b.length - 1); }, /does not end with the magic/],
  ['cut in the middle (tail kept)', () => { const b = assemble(parts().payloads, parts().trailer); return Buffer.concat([b.subarray(0, 1200), b.subarray(1300)]); }, /unaccounted|past the start of the trailer|SHA-256/],
  ['trailer length larger than the file', () => { const b = assemble(parts().payloads, parts().trailer); b.writeUInt32LE(0x7fffffff, b.length - 40); return b; }, /trailer length 2147483647 is more than/],
  ['wrong trailer digest', () => { const b = assemble(parts().payloads, parts().trailer); b[b.length - 30]! ^= 1; return b; }, /trailer's SHA-256 is [0-9a-f]{64}, but the tail records/],
  ['trailer byte changed, digest not updated', () => { const b = assemble(parts().payloads, parts().trailer); b[b.length - 60]! ^= 1; return b; }, /damaged trailer/],
  ['duplicate JSON key', () => { const p = parts(); return assemble(p.payloads, JSON.stringify(p.trailer).replace('"codec":', '"codec":"x","codec":')); }, /duplicate key "codec"/],
  ['not UTF-8', () => { const p = parts(); const j = Buffer.from(JSON.stringify(p.trailer).replace('at1 0.1.0', 'at1 0.1.\u00e9')); j[j.indexOf(0xc3)] = 0xff; return assemble(p.payloads, j); }, /the trailer is not valid UTF-8/],
  ['inexact integer', () => { const p = parts(); return assemble(p.payloads, JSON.stringify(p.trailer).replace('"frameSize":1000', '"frameSize":9007199254740993')); }, /frameSize is 9007199254740993, not an integer/],
  ['integer written as 1e3', () => { const p = parts(); return assemble(p.payloads, JSON.stringify(p.trailer).replace('"frameSize":1000', '"frameSize":1e3')); }, /frameSize is 1e3/],
  ['unknown field', () => { const p = parts(); return assemble(p.payloads, { ...p.trailer, extra: 1 }); }, /unknown field "extra"/],
  ['missing field', () => { const p = parts(); const t: Partial<ArchiveTrailer> = clone(p.trailer); delete t.createdBy; return assemble(p.payloads, t); }, /has no field "createdBy"/],
  ['format not at1z', () => { const p = parts(); return assemble(p.payloads, { ...p.trailer, format: 'zip' }); }, /format is "zip", not "at1z"/],
  ['input kind unknown', () => { const p = parts(); return assemble(p.payloads, { ...p.trailer, input: { ...p.trailer.input, kind: 'pipe' } }); }, /input.kind is "pipe"/],
  ['digest not hex', () => { const p = parts(); const t = clone(p.trailer); t.frames[1]!.rawSha256 = 'F'.repeat(64); return assemble(p.payloads, t); }, /frames\[1\]\.rawSha256 is "FFFF/],
  ['codecParams value an object', () => { const p = parts(); return assemble(p.payloads, { ...p.trailer, codecParams: { a: { b: 1 } } }); }, /codecParams\.a is an object/],
  ['overlapping payload offsets', () => { const p = parts(); const t = clone(p.trailer); t.frames[1]!.payloadOffset -= 1; t.frames[1]!.payloadLength += 1; return assemble(p.payloads, t); }, /frames\[1\]\.payloadOffset is 1007, expected 1008: payloads must follow each other/],
  ['raw offsets not contiguous', () => { const p = parts(); const t = clone(p.trailer); t.frames[2]!.rawOffset += 1; return assemble(p.payloads, t); }, /frames\[2\]\.rawOffset is 2001, expected 2000/],
  ['frames not summing to the input length', () => { const p = parts(); const t = clone(p.trailer); t.input.length += 1; return assemble(p.payloads, t); }, /frames cover 2500 bytes of input, but trailer.input.length is 2501/],
  ['a frame longer than frameSize', () => { const p = parts(); const t = clone(p.trailer); t.frameSize = 999; return assemble(p.payloads, t); }, /rawLength 1000 is more than the frame size 999/],
  ['an empty raw frame', () => { const p = parts(); const t = clone(p.trailer); t.frames.push({ ...t.frames[2]!, rawOffset: 2500, rawLength: 0, payloadOffset: 2508, payloadLength: 0 }); return assemble(p.payloads, t); }, /frames\[3\]\.rawLength is 0/],
  ['payload running into the trailer', () => { const p = parts(); const t = clone(p.trailer); t.frames[2]!.payloadLength += 5; return assemble(p.payloads, t); }, /frames\[2\] ends at byte 2513, past the start of the trailer at 2508/],
  ['bytes between payloads and trailer', () => { const p = parts(); return assemble([...p.payloads, Buffer.from('junk')], p.trailer); }, /payloads end at byte 2508, but the trailer starts at byte 2512: 4 unaccounted bytes/],
  ['trailer not an object', () => assemble([], '[1,2]'), /trailer is an array, not an object/],
];

for (const [name, make, why, code = 'E_CORRUPT'] of BAD) {
  test(`refused: ${name}`, async (t) => {
    const path = join(tempDir(t), 'bad.at1z');
    const bytes = make();
    writeFileSync(path, bytes);
    const check = (e: unknown): boolean => {
      assert.ok(e instanceof At1Error, String(e));
      assert.equal(e.code, code, e.message);
      assert.match(e.message, why);
      assert.ok(e.message.startsWith(`${path}: `), e.message);
      return true;
    };
    await assert.rejects(ArchiveReader.open(path), check);
    assert.throws(() => readArchiveBytes(bytes, path), check);
  });
}

test('refused: not a regular file, or missing', async (t) => {
  const dir = tempDir(t);
  await assert.rejects(ArchiveReader.open(dir), /not a regular file/);
  await assert.rejects(ArchiveReader.open(join(dir, 'none.at1z')), (e: unknown) => e instanceof At1Error && e.code === 'E_NOT_FOUND');
  assert.equal(existsSync(join(dir, 'none.at1z')), false);
});
