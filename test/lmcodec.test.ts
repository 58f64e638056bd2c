/**
 * The LM-codec archival tier on the real fixture models: lossless round
 * trips of awkward inputs, the determinism the format depends on (batched
 * encoder logits = token-by-token decoder logits, bit for bit; another
 * process with another thread count decodes the same bytes), and refusals
 * of a wrong model and of damaged frames, each named.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync, statSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  ArithmeticDecoder,
  ArithmeticEncoder,
  ArchiveReader,
  IncrementalLogits,
  IntegrityError,
  compressToArchive,
  decompressArchive,
  detExp,
  detLog,
  detSinCos,
  initRegistry,
  add,
  openCoder,
  reconstruct,
  tokenizeFrame,
  TokenBytes,
  segmentLogits,
  segmentsOf,
  verifyArchive,
  type CompressOptions,
} from '../src/index.js';
import { EMBEDDED, REPO, at1, tempDir } from './helpers.js';

const CONFIG = join(EMBEDDED, 'config.json');
const TOKENIZER = join(EMBEDDED, 'tokenizer.json');
const SNIPPETS = join(REPO, 'test/fixtures/corpus-snippets');
const model = { configPath: CONFIG, tokenizerPath: TOKENIZER };

let reg = '';
const cleanups: (() => void)[] = [];
after(() => {
  for (const f of cleanups) f();
});
before(async () => {
  reg = join(tempDir({ after: (fn) => cleanups.push(fn) }, 'at1-lmcodec-'), 'reg');
  const { registry } = await initRegistry(reg, join(EMBEDDED, 'base.safetensors'), { name: 'base' });
  await add(registry, join(EMBEDDED, 'prose-step0050.safetensors'), { name: 'prose', parent: 'base' });
});

async function roundTrip(t: { after: (fn: () => void) => void }, bytes: Uint8Array, opts: CompressOptions = {}): Promise<{ archiveBytes: number; frames: number; back: Uint8Array }> {
  const dir = tempDir(t, 'at1-lmcodec-rt-');
  const input = join(dir, 'in.bin');
  writeFileSync(input, bytes);
  const arch = join(dir, 'in.at1z');
  const r = await compressToArchive(reg, 'prose', input, arch, { ...model, ...opts });
  const out = join(dir, 'out.bin');
  await decompressArchive(reg, arch, out, model);
  return { archiveBytes: r.archiveBytes, frames: r.trailer.frames.length, back: readFileSync(out) };
}

describe('deterministic arithmetic', () => {
  test('det-math exp, log, sin and cos agree with the engine to within one ulp over a wide range', () => {
    const o = { sin: 0, cos: 0 };
    let seed = 7;
    const rnd = (): number => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
    for (let i = 0; i < 20000; i++) {
      const x = (rnd() - 0.5) * 1400;
      const e = detExp(x);
      assert.ok(Math.abs(e - Math.exp(x)) <= Math.abs(Math.exp(x)) * 2.3e-16, `exp(${x})`);
      const y = rnd() * 1e6 + 1e-300;
      assert.ok(Math.abs(detLog(y) - Math.log(y)) <= Math.abs(Math.log(y)) * 2.3e-16 + 1e-300, `log(${y})`);
      const z = rnd() * 5000;
      detSinCos(z, o);
      assert.ok(Math.abs(o.sin - Math.sin(z)) < 1e-15 && Math.abs(o.cos - Math.cos(z)) < 1e-15, `sincos(${z})`);
    }
    assert.equal(detExp(0), 1);
    assert.equal(detExp(-800), 0);
    assert.equal(detExp(800), Infinity);
    assert.ok(Number.isNaN(detExp(NaN)));
    assert.equal(detLog(1), 0);
    assert.equal(detLog(0), -Infinity);
  });

  test('the arithmetic coder round-trips random intervals at totals from 2 to 2^24, within 0.5% of the ideal size', () => {
    let seed = 99;
    const rnd = (): number => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
    for (const total of [2, 3, 255, 65536, 1 << 20, 1 << 24]) {
      const enc = new ArithmeticEncoder(8);
      const syms: [number, number][] = [];
      let ideal = 0;
      for (let i = 0; i < 5000; i++) {
        const freq = Math.max(1, Math.min(total, rnd() < 0.5 ? Math.floor(total * (0.9 + 0.1 * rnd())) : 1 + Math.floor(rnd() * total)));
        const cum = Math.floor(rnd() * (total - freq + 1));
        syms.push([cum, freq]);
        enc.encode(cum, freq, total);
        ideal += Math.log2(total / freq);
      }
      const out = enc.finish();
      const dec = new ArithmeticDecoder(out);
      for (const [cum, freq] of syms) {
        const v = dec.target(total);
        assert.ok(v >= cum && v < cum + freq);
        dec.consume(cum, freq);
      }
      assert.ok(out.length <= Math.ceil(ideal / 8) * 1.005 + 8, `total ${total}: ${out.length} bytes for ${ideal / 8} ideal`);
    }
  });

  test('batched encoder logits equal token-by-token decoder logits bit for bit over 3,000 positions', async () => {
    const coder = await openCoder(reg, 'prose', model);
    try {
      const text = readFileSync(join(SNIPPETS, 'alice29-head.txt'), 'utf8') + readFileSync(join(SNIPPETS, 'decode-go-head.txt'), 'utf8');
      const ids = coder.opened.tokenizer.encode(text).slice(0, 3000);
      assert.ok(ids.length >= 3000, `only ${ids.length} tokens`);
      const m = coder.opened.model;
      const V = m.config.vocabSize;
      const segs = segmentsOf(ids.length, coder.params.context, coder.params.reuse);
      assert.ok(segs.length > 10, 'several context restarts are exercised');
      const inc = new IncrementalLogits(m, coder.params.bos);
      let compared = 0;
      for (const seg of segs) {
        const batched = new Uint32Array((await segmentLogits(m, coder.params.bos, ids, seg)).slice().buffer);
        let one = await inc.begin(ids, seg);
        for (let i = seg.a; i < seg.b; i++) {
          const row = new Uint32Array(one.slice().buffer);
          const want = batched.subarray((i - seg.a) * V, (i - seg.a + 1) * V);
          for (let k = 0; k < V; k++) if (row[k] !== want[k]) assert.fail(`position ${i}, logit ${k}: bits ${row[k]} vs ${want[k]}`);
          compared++;
          if (i + 1 < seg.b) one = await inc.next(ids[i]!);
        }
      }
      assert.equal(compared, ids.length);
    } finally {
      await coder.close();
    }
  });
});

describe('tokens as bytes', () => {
  test('a byte-level BPE vocabulary (GPT-2 / Llama 3 style) spells every byte; text maps with no escapes, invalid UTF-8 falls back', () => {
    // the 256 byte characters of GPT-2's table, then a few merged tokens; a greedy longest-match encoder over that alphabet
    const chars: string[] = [];
    const bs: number[] = [];
    for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
    for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
    for (let b = 0xae; b <= 0xff; b++) bs.push(b);
    const cs = [...bs];
    let n = 0;
    for (let b = 0; b < 256; b++) if (!bs.includes(b)) (bs.push(b), cs.push(256 + n++));
    const toChar = new Map<number, string>();
    bs.forEach((b, i) => toChar.set(b, String.fromCharCode(cs[i]!)));
    for (let b = 0; b < 256; b++) chars.push(toChar.get(b)!);
    const vocab = [...chars, 'Ġthe', 'Ġcat', 'at', toChar.get(0xc3)! + toChar.get(0xa9)!];
    const index = new Map(vocab.map((t, i) => [t, i]));
    const view = {
      vocabSize: vocab.length,
      unkId: -1,
      idToToken: (id: number) => vocab[id],
      encode: (text: string) => {
        const mapped = [...Buffer.from(text, 'utf8')].map((b) => toChar.get(b)!).join('');
        const ids: number[] = [];
        for (let i = 0; i < mapped.length; ) {
          let len = 4;
          while (len > 1 && !index.has(mapped.slice(i, i + len))) len--;
          ids.push(index.get(mapped.slice(i, i + len))!);
          i += len;
        }
        return ids;
      },
      spelling: { kind: 'bytelevel' as const, dummyPrefix: false },
    };
    const spell = new TokenBytes(view);
    const text = Buffer.from('the cat sat on the mat, café ☕ \t{x}\r\n');
    const frame = tokenizeFrame(text, view, spell);
    assert.ok(frame, 'valid UTF-8 maps onto byte-level tokens');
    assert.equal(frame.escapes.length, 0);
    assert.ok(frame.ids.includes(index.get('Ġcat')!), 'merged tokens are used');
    assert.ok(Buffer.from(reconstruct(frame, spell)).equals(text));
    assert.equal(tokenizeFrame(Buffer.from([0x61, 0xff, 0x62]), view, spell), undefined, 'invalid UTF-8: the frame is coded as bytes');
  });

  test('the fixture tokenizer (SentencePiece style): out-of-vocabulary characters and invalid bytes become escapes', async () => {
    const coder = await openCoder(reg, 'prose', model);
    try {
      const v = coder.frame.vocab;
      assert.deepEqual(v.spelling, { kind: 'metaspace', dummyPrefix: true });
      const bytes = Buffer.concat([Buffer.from(' if (x) {\n\treturn y;\n}'), Buffer.from([0xc3]), Buffer.from('end')]);
      const frame = tokenizeFrame(bytes, v, coder.frame.spell);
      assert.ok(frame);
      assert.ok(frame.escapes.some((e) => Buffer.from(e).toString('latin1').includes('{')), 'a brace is an escape');
      assert.ok(frame.escapes.some((e) => e.includes(0xc3)), 'the invalid byte is inside an escape');
      assert.ok(Buffer.from(reconstruct(frame, coder.frame.spell)).equals(bytes));
    } finally {
      await coder.close();
    }
  });
});

describe('lossless round trips', () => {
  test('empty input, one byte, and text compress and restore byte-exact', async (t) => {
    const empty = await roundTrip(t, new Uint8Array(0));
    assert.equal(empty.back.length, 0);
    assert.equal(empty.frames, 0);
    const one = await roundTrip(t, new Uint8Array([0x41]));
    assert.deepEqual([...one.back], [0x41]);
    const text = readFileSync(join(SNIPPETS, 'alice29-head.txt'));
    const r = await roundTrip(t, text);
    assert.ok(Buffer.from(r.back).equals(text));
    const xz = spawnSync('xz', ['-9e', '-c'], { input: text });
    if (xz.status === 0) assert.ok(r.archiveBytes < xz.stdout.length, `alice head: ${r.archiveBytes} bytes, xz -9e ${xz.stdout.length}`);
    else assert.ok(r.archiveBytes < text.length / 2, `alice head: ${r.archiveBytes} bytes for ${text.length}`);
  });

  test('binary input, invalid UTF-8 and characters outside the vocabulary round-trip', async (t) => {
    const bin = randomBytes(3000);
    assert.ok(Buffer.from((await roundTrip(t, bin)).back).equals(bin));
    const mixed = Buffer.concat([
      Buffer.from('Once upon a time {x = y[0] # tab\there}\r\n'),
      Buffer.from([0xff, 0xfe, 0xc3, 0x28, 0xe2, 0x82, 0xed, 0xa0, 0x80, 0xf4, 0x90, 0x80, 0x80]), // invalid sequences, a surrogate, beyond U+10FFFF
      Buffer.from(' the end ▁ ￿ \u{1F600} done '),
      readFileSync(join(SNIPPETS, 'unicode-mix.txt')),
    ]);
    assert.ok(Buffer.from((await roundTrip(t, mixed)).back).equals(mixed));
  });

  test('a frame boundary inside a multi-byte character: frames are cut before it, and every frame restores', async (t) => {
    const prefix = Buffer.alloc(1023, 'a'); // a 3-byte character straddles byte 1024
    const bytes = Buffer.concat([prefix, Buffer.from('€€€ and more text after the euro signs. '.repeat(60))]);
    const dir = tempDir(t, 'at1-lmcodec-fb-');
    writeFileSync(join(dir, 'in'), bytes);
    const r = await compressToArchive(reg, 'prose', join(dir, 'in'), join(dir, 'a.at1z'), { ...model, frameSize: 1024 });
    assert.ok(r.trailer.frames.length >= 3);
    assert.equal(r.trailer.frames[0]!.rawLength, 1023, 'the first frame ends before the euro sign');
    for (const f of r.trailer.frames) assert.notEqual(bytes[f.rawOffset]! & 0xc0, 0x80, `frame at ${f.rawOffset} starts inside a character`);
    await decompressArchive(reg, join(dir, 'a.at1z'), join(dir, 'out'), model);
    assert.ok(readFileSync(join(dir, 'out')).equals(bytes));
  });

  test('a directory is archived with its paths and modes and restored as a new directory', async (t) => {
    const dir = tempDir(t, 'at1-lmcodec-tree-');
    const src = join(dir, 'src');
    mkdirSync(join(src, 'sub', 'deeper'), { recursive: true });
    writeFileSync(join(src, 'a.txt'), 'The little dog ran to the park.\n');
    writeFileSync(join(src, 'sub', 'b.py'), 'def f(x):\n\treturn {x: x * 2}\n');
    writeFileSync(join(src, 'sub', 'deeper', 'empty'), '');
    chmodSync(join(src, 'sub', 'b.py'), 0o750);
    await compressToArchive(reg, 'prose', src, join(dir, 't.at1z'), model);
    await decompressArchive(reg, join(dir, 't.at1z'), join(dir, 'out'), model);
    assert.equal(readFileSync(join(dir, 'out', 'a.txt'), 'utf8'), 'The little dog ran to the park.\n');
    assert.equal(readFileSync(join(dir, 'out', 'sub', 'b.py'), 'utf8'), 'def f(x):\n\treturn {x: x * 2}\n');
    assert.equal(statSync(join(dir, 'out', 'sub', 'b.py')).mode & 0o777, 0o750);
    assert.equal(statSync(join(dir, 'out', 'sub', 'deeper', 'empty')).size, 0);
  });
});

describe('refusals and damage', () => {
  test('decompressing with another model, or another tokenizer, is refused naming what differs', async (t) => {
    const dir = tempDir(t, 'at1-lmcodec-wrong-');
    writeFileSync(join(dir, 'in'), 'Once upon a time there was a cat.');
    const arch = join(dir, 'a.at1z');
    await compressToArchive(reg, 'prose', join(dir, 'in'), arch, model);
    // another registry whose version "prose" holds other weights
    const other = join(dir, 'other');
    const { registry } = await initRegistry(other, join(EMBEDDED, 'base.safetensors'), { name: 'base' });
    await add(registry, join(EMBEDDED, 'code-lora.safetensors'), { name: 'prose', parent: 'base' });
    await assert.rejects(decompressArchive(other, arch, join(dir, 'out'), model), (e: Error) => /differs in weights/.test(e.message) && (e as { code?: string }).code === 'E_INPUT');
    // the same weights with a changed tokenizer.json
    const tk = JSON.parse(readFileSync(TOKENIZER, 'utf8')) as Record<string, unknown>;
    tk['truncation'] = null;
    const tk2 = join(dir, 'tokenizer.json');
    writeFileSync(tk2, JSON.stringify(tk));
    await assert.rejects(decompressArchive(reg, arch, join(dir, 'out'), { configPath: CONFIG, tokenizerPath: tk2 }), /differs in tokenizer\.json/);
    assert.throws(() => statSync(join(dir, 'out')), 'nothing was written');
  });

  test('a damaged frame is named by its index and nothing is written; verify says so too', async (t) => {
    const dir = tempDir(t, 'at1-lmcodec-dmg-');
    const text = readFileSync(join(SNIPPETS, 'decode-go-head.txt'));
    writeFileSync(join(dir, 'in'), text);
    const arch = join(dir, 'a.at1z');
    const r = await compressToArchive(reg, 'prose', join(dir, 'in'), arch, { ...model, frameSize: 2048 });
    assert.ok(r.trailer.frames.length >= 3);
    assert.ok((await verifyArchive(reg, arch, model)).outputBytes === text.length);
    const f = r.trailer.frames[1]!;
    const bytes = readFileSync(arch);
    bytes[f.payloadOffset + Math.floor(f.payloadLength / 2)]! ^= 0x10;
    writeFileSync(arch, bytes);
    await assert.rejects(decompressArchive(reg, arch, join(dir, 'out'), model), (e: Error) => e instanceof IntegrityError && /frame 1\b/.test(e.message));
    assert.throws(() => statSync(join(dir, 'out')), 'no partial output');
    await assert.rejects(verifyArchive(reg, arch, model), /frame 1\b/);
    // the archive's own digests point at the frame before any model runs
    const reader = await ArchiveReader.open(arch);
    try {
      await reader.readPayload(0);
      await assert.rejects(reader.readPayload(1), /frame 1/);
    } finally {
      await reader.close();
    }
  });

  test('the CLI: compress in this thread, decompress in another process on two worker threads, same bytes; bad input exits 2', (t) => {
    const dir = tempDir(t, 'at1-lmcodec-cli-');
    const input = join(SNIPPETS, 'decode-go-head.txt');
    const arch = join(dir, 'a.at1z');
    const c = at1('archive', 'compress', reg, 'prose', input, '-o', arch, '--config', CONFIG, '--tokenizer', TOKENIZER, '--frame-size', '2KiB', '--json');
    assert.equal(c.status, 0, c.stderr);
    const summary = JSON.parse(c.stdout) as { archiveBytes: number; inputBytes: number; frames: number };
    assert.ok(summary.frames >= 3 && summary.archiveBytes < summary.inputBytes);
    const d = at1('archive', 'decompress', reg, arch, '-o', join(dir, 'out'), '--config', CONFIG, '--tokenizer', TOKENIZER, '--threads', '2');
    assert.equal(d.status, 0, d.stderr);
    assert.match(d.stdout, /integrity: PASS \(SHA-256\)/);
    assert.ok(readFileSync(join(dir, 'out')).equals(readFileSync(input)));
    const again = at1('archive', 'compress', reg, 'prose', input, '-o', arch, '--config', CONFIG, '--tokenizer', TOKENIZER);
    assert.equal(again.status, 2, 'an existing archive is not replaced without --force');
    const missing = at1('archive', 'compress', reg, 'prose', join(dir, 'nope.txt'), '-o', join(dir, 'b.at1z'), '--config', CONFIG, '--tokenizer', TOKENIZER);
    assert.equal(missing.status, 2);
    assert.match(missing.stderr, /nope\.txt/);
  });
});
