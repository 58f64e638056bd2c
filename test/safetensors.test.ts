import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { craftSafetensors } from './helpers.js';
import { At1Error } from '../src/errors.js';
import {
  SafetensorsError,
  parseSafetensorsHeader,
  readSafetensorsHeader,
  serializeSafetensors,
  type TensorToWrite,
} from '../src/format/safetensors.js';

const FILE = 'bad.safetensors';
const enc = new TextEncoder();

/** Bytes of a file: u64 LE length of `header`, the header, then `data`. */
const build = craftSafetensors;

/** One tensor entry as hand-written JSON. */
function ent(dtype: string, shape: string, offsets: string): string {
  return `{"dtype":"${dtype}","shape":${shape},"data_offsets":${offsets}}`;
}

function parse(bytes: Uint8Array, fileSize = bytes.length) {
  return parseSafetensorsHeader(bytes, fileSize, FILE);
}

function expectRule(bytes: Uint8Array, rule: string, fileSize = bytes.length): SafetensorsError {
  try {
    parse(bytes, fileSize);
  } catch (e) {
    assert.ok(e instanceof SafetensorsError, `expected SafetensorsError, got ${String(e)}`);
    assert.equal(e.rule, rule, e.message);
    assert.equal(e.code, 'E_SAFETENSORS');
    assert.equal(e.file, FILE);
    assert.ok(e.message.startsWith(`${FILE}: rule ${rule} (`), e.message);
    return e;
  }
  assert.fail(`expected rule ${rule} to be broken, but the file parsed`);
}

function tensor(name: string, dtype: string, shape: number[], fill = 1): TensorToWrite {
  const bytes = ({ BOOL: 1, U8: 1, BF16: 2, F16: 2, F32: 4, I32: 4, I64: 8, F64: 8 } as Record<string, number>)[dtype]!;
  const count = shape.reduce((a, b) => a * b, 1);
  return { name, dtype, shape, data: new Uint8Array(count * bytes).fill(fill) };
}

describe('serialize and parse', () => {
  test('round trip: BF16, F32, I64, empty, scalar, BOOL', () => {
    const input = [
      tensor('w.bf16', 'BF16', [3, 5], 1),
      tensor('w.f32', 'F32', [2, 3], 2),
      tensor('idx', 'I64', [4], 3),
      tensor('empty', 'F32', [0, 7], 4),
      tensor('scalar', 'F32', [], 5),
      tensor('mask', 'BOOL', [3, 1], 6),
    ];
    const bytes = serializeSafetensors(input, { format: 'pt', note: 'x' });
    const h = parse(bytes);

    assert.equal((h.dataStart - 8) % 8, 0, 'header length is a multiple of 8');
    assert.deepEqual(h.metadata, { format: 'pt', note: 'x' });
    // Descending alignment (I64, then F32s by name, BF16, BOOL).
    assert.deepEqual(h.tensors.map((t) => t.name), ['idx', 'empty', 'scalar', 'w.f32', 'w.bf16', 'mask']);
    let prev = 0;
    for (const t of h.tensors) {
      assert.equal(t.begin, prev, 'contiguous');
      prev = t.end;
      const src = input.find((x) => x.name === t.name)!;
      assert.equal(t.dtype, src.dtype);
      assert.deepEqual(t.shape, src.shape);
      assert.deepEqual(bytes.subarray(h.dataStart + t.begin, h.dataStart + t.end), src.data);
    }
    assert.equal(h.dataStart + prev, bytes.length);
    assert.deepEqual(h.headerBytes, bytes.subarray(0, h.dataStart));
  });

  test('writer matches the reference library byte for byte', () => {
    const data = new Uint8Array(new Float32Array([0, 1, 2, 3, 4, 5]).buffer);
    const one = serializeSafetensors([{ name: 'attn.0', dtype: 'F32', shape: [1, 2, 3], data }]);
    assert.deepEqual(one, build('{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}', data));
    const padded = serializeSafetensors([{ name: 'attn0', dtype: 'F32', shape: [1, 1, 2, 3], data }]);
    assert.deepEqual(padded, build('{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}       ', data));
    assert.deepEqual(serializeSafetensors([]), build('{}      '));
    assert.deepEqual(serializeSafetensors([], { framework: 'pt' }), build('{"__metadata__":{"framework":"pt"}}     '));
  });

  test('writer validates its input', () => {
    const t = tensor('a', 'F32', [2]);
    const rule = (fn: () => unknown, r: string) =>
      assert.throws(fn, (e: unknown) => e instanceof SafetensorsError && e.rule === r);
    rule(() => serializeSafetensors([{ ...t, data: new Uint8Array(7) }]), 'S8-size');
    rule(() => serializeSafetensors([t, t]), 'S6-duplicate');
    rule(() => serializeSafetensors([{ ...t, name: '' }]), 'S5-name');
    rule(() => serializeSafetensors([{ ...t, name: '__metadata__' }]), 'S5-name');
    rule(() => serializeSafetensors([{ ...t, name: 'x\ud800' }]), 'S5-name');
    rule(() => serializeSafetensors([{ ...t, dtype: 'F33' }]), 'S5-dtype');
    rule(() => serializeSafetensors([{ ...t, shape: [-2] }]), 'S5-shape');
    rule(() => serializeSafetensors([{ ...t, shape: [1.5] }]), 'S5-shape');
    rule(() => serializeSafetensors([{ name: 'f4', dtype: 'F4', shape: [3], data: new Uint8Array(2) }]), 'S8-bits');
    rule(() => serializeSafetensors([{ ...t, shape: [2 ** 40, 2 ** 40] }]), 'S8-overflow');
    rule(() => serializeSafetensors([], { a: 1 as unknown as string }), 'S4-metadata');
  });

  test('writer escapes names like serde_json and sorts by code point', () => {
    const names = ['b', 'a"\\\n\u0001é', '\u{1F600}', '\uFF01'];
    const bytes = serializeSafetensors(names.map((n) => tensor(n, 'U8', [1])));
    const h = parse(bytes);
    // U+FF01 sorts before U+1F600 by code point (UTF-16 order would invert them).
    assert.deepEqual(h.tensors.map((t) => t.name), ['a"\\\n\u0001é', 'b', '\uFF01', '\u{1F600}']);
    const text = new TextDecoder().decode(h.headerBytes.subarray(8));
    assert.ok(text.includes('"a\\"\\\\\\n\\u0001é"'), text);
  });
});

describe('real file', () => {
  const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
  const fixture = resolve(repoRoot, '../shared/fixtures/tinystories/base.safetensors');

  test('reads only the header and keeps its bytes verbatim', async () => {
    let path = fixture;
    let tmp: string | undefined;
    if (!existsSync(path)) {
      // Stand-in with the same shape of content when the shared fixtures are absent.
      tmp = mkdtempSync(join(tmpdir(), 'at1-st-'));
      path = join(tmp, 'base.safetensors');
      const ts = [tensor('lm_head.weight', 'BF16', [2048, 128]), tensor('model.norm.weight', 'BF16', [128])];
      for (let l = 0; l < 2; l++) {
        for (const p of ['q', 'k', 'v', 'o']) ts.push(tensor(`model.layers.${l}.self_attn.${p}_proj.weight`, 'BF16', [64, 128]));
        for (const p of ['gate', 'up', 'down']) ts.push(tensor(`model.layers.${l}.mlp.${p}_proj.weight`, 'BF16', [384, 128]));
        for (const p of ['input', 'post_attention']) ts.push(tensor(`model.layers.${l}.${p}_layernorm.weight`, 'BF16', [128]));
      }
      writeFileSync(path, serializeSafetensors(ts, { format: 'pt', 'model.embed_tokens.weight': 'lm_head.weight' }));
    }
    try {
      const h = await readSafetensorsHeader(path);
      const file = readFileSync(path);
      assert.equal(h.fileSize, file.length);
      assert.equal(h.tensors.length, 20);
      assert.ok(h.tensors.every((t) => t.dtype === 'BF16'));
      assert.equal(h.metadata?.format, 'pt');
      assert.deepEqual(h.headerBytes, new Uint8Array(file.subarray(0, h.dataStart)));
      // Re-serialising the same tensors reproduces the PyTorch-written file exactly.
      const again = serializeSafetensors(
        h.tensors.map((t) => ({ ...t, data: file.subarray(h.dataStart + t.begin, h.dataStart + t.end) })),
        h.metadata ?? undefined,
      );
      assert.deepEqual(again, new Uint8Array(file));
    } finally {
      if (tmp) rmSync(tmp, { recursive: true, force: true });
    }
  });

  test('missing file is E_NOT_FOUND naming the file', async () => {
    await assert.rejects(readSafetensorsHeader('/nonexistent/x.safetensors'), (e: unknown) => {
      return e instanceof At1Error && e.code === 'E_NOT_FOUND' && e.message.includes('/nonexistent/x.safetensors');
    });
  });

  test('reader refuses a huge N and a truncated file from disk', async () => {
    const tmp = mkdtempSync(join(tmpdir(), 'at1-st-'));
    try {
      const huge = join(tmp, 'huge.safetensors');
      writeFileSync(huge, build('{}', 0, 2n ** 63n));
      await assert.rejects(readSafetensorsHeader(huge), (e: unknown) => e instanceof SafetensorsError && e.rule === 'S2-cap' && e.file === huge);
      const cut = join(tmp, 'cut.safetensors');
      writeFileSync(cut, build(`{"a":${ent('F32', '[2]', '[0,8]')}}`, 4));
      await assert.rejects(readSafetensorsHeader(cut), (e: unknown) => e instanceof SafetensorsError && e.rule === 'S9-truncated');
      const short = join(tmp, 'short.safetensors');
      writeFileSync(short, new Uint8Array(3));
      await assert.rejects(readSafetensorsHeader(short), (e: unknown) => e instanceof SafetensorsError && e.rule === 'S1-short');
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});

describe('each rule refuses a crafted file', () => {
  const A = (offsets = '[0,8]', shape = '[2]', dtype = 'F32') => `{"a":${ent(dtype, shape, offsets)}}`;

  test('S1: shorter than 8 bytes', () => {
    expectRule(new Uint8Array(5), 'S1-short');
    expectRule(new Uint8Array(0), 'S1-short');
  });

  test('S2: header length over the cap, or past the end', () => {
    expectRule(build('{}', 0, 100_000_001n), 'S2-cap');
    expectRule(build('{}', 0, 2n ** 64n - 1n), 'S2-cap');
    expectRule(build('{}', 0, 100n), 'S2-bounds');
  });

  test('S3: invalid UTF-8', () => {
    const h = enc.encode(`{"a\u00ff":${ent('U8', '[0]', '[0,0]')}}`);
    const bad = h.map((b, i) => (i === 3 ? 0xff : b)); // a lone 0xff byte in the name
    expectRule(build(bad), 'S3-utf8');
    expectRule(build(new Uint8Array([0x7b, 0xc0, 0xaf, 0x7d])), 'S3-utf8'); // overlong encoding
  });

  test('S3: must start with {', () => {
    expectRule(build('[1,2]'), 'S3-start'); // an array, not an object
    expectRule(build(' {}'), 'S3-start'); // leading whitespace
    expectRule(build('\n{}'), 'S3-start');
    expectRule(build(''), 'S3-start'); // N = 0
    expectRule(build('\ufeff{}'), 'S3-start'); // a BOM is not stripped
  });

  test('S3: not JSON', () => {
    expectRule(build('{"a":}'), 'S3-json');
    expectRule(build('{"a":1,}'), 'S3-json');
    expectRule(build(`{"a":${ent('F32', '[2]', '[0,8]')}`, 8), 'S3-json'); // unterminated
    expectRule(build("{'a':1}"), 'S3-json');
    expectRule(build('{"a":[01]}'), 'S3-json');
    expectRule(build('{"a\\ud800":1}'), 'S3-json'); // lone surrogate escape
    expectRule(build(`{"a":${'['.repeat(100_000)}`), 'S3-json'); // too deep, no stack overflow
  });

  test('S3: only spaces may follow the object', () => {
    expectRule(build('{}x'), 'S3-trailing');
    expectRule(build('{}  \n'), 'S3-trailing');
    expectRule(build('{}\t'), 'S3-trailing');
    expectRule(build('{}{}'), 'S3-trailing');
    expectRule(build('{}\u0000'), 'S3-trailing');
  });

  test('S4: metadata maps strings to strings', () => {
    expectRule(build('{"__metadata__":{"a":1}}'), 'S4-metadata');
    expectRule(build('{"__metadata__":{"a":["b"]}}'), 'S4-metadata');
    expectRule(build('{"__metadata__":"pt"}'), 'S4-metadata');
    expectRule(build('{"__metadata__":null}'), 'S4-metadata');
  });

  test('S5: dtype from the table', () => {
    expectRule(build(A('[0,8]', '[2]', 'F33'), 8), 'S5-dtype');
    expectRule(build(A('[0,8]', '[2]', 'f32'), 8), 'S5-dtype');
    expectRule(build(`{"a":{"dtype":4,"shape":[2],"data_offsets":[0,8]}}`, 8), 'S5-dtype');
  });

  test('S5: shape is an array of exact non-negative integers', () => {
    expectRule(build(A('[0,8]', '[-2]'), 8), 'S5-shape');
    expectRule(build(A('[0,8]', '[2.0]'), 8), 'S5-shape');
    expectRule(build(A('[0,8]', '[1.5]'), 8), 'S5-shape');
    expectRule(build(A('[0,8]', '[2e0]'), 8), 'S5-shape');
    expectRule(build(A('[0,0]', '[-0]'), 0), 'S5-shape');
    expectRule(build(A('[0,8]', '2'), 8), 'S5-shape');
    expectRule(build(A('[0,8]', '"[2]"'), 8), 'S5-shape');
    expectRule(build(A('[0,8]', '[2,null]'), 8), 'S5-shape');
    expectRule(build(A('[0,0]', '[0,9007199254740993]'), 0), 'S5-shape'); // beyond 2^53-1 (would round)
    expectRule(build(A('[0,0]', '[0,99999999999999999999999]'), 0), 'S5-shape');
  });

  test('S5: data_offsets is exactly two exact non-negative integers, begin <= end', () => {
    expectRule(build(A('[0]'), 8), 'S5-offsets');
    expectRule(build(A('[0,8,8]'), 8), 'S5-offsets');
    expectRule(build(A('{"0":0,"1":8}'), 8), 'S5-offsets');
    expectRule(build(A('[-1,7]'), 8), 'S5-offsets');
    expectRule(build(A('[0,8.0]'), 8), 'S5-offsets');
    expectRule(build(A('[8,0]'), 8), 'S5-offsets');
    expectRule(build(A('[0,9007199254740992]'), 8), 'S5-offsets');
  });

  test('S5: tensor entries have exactly dtype, shape, data_offsets', () => {
    expectRule(build(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"extra":1}}`, 8), 'S5-entry');
    expectRule(build(`{"a":{"dtype":"F32","data_offsets":[0,8]}}`, 8), 'S5-entry');
    expectRule(build('{"a":[1]}'), 'S5-entry');
    expectRule(build('{"a":"x"}'), 'S5-entry');
  });

  test('S5: the empty tensor name is refused', () => {
    expectRule(build(`{"":${ent('F32', '[2]', '[0,8]')}}`, 8), 'S5-name');
  });

  test('S6: no duplicate keys at any level', () => {
    const e = ent('F32', '[2]', '[0,8]');
    expectRule(build(`{"a":${e},"a":${e}}`, 8), 'S6-duplicate');
    expectRule(build(`{"a":${e},"\\u0061":${e}}`, 8), 'S6-duplicate'); // same key after unescaping
    expectRule(build(`{"a":{"dtype":"F32","dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, 8), 'S6-duplicate');
    expectRule(build(`{"__metadata__":{"k":"1","k":"2"}}`), 'S6-duplicate');
    expectRule(build(`{"__metadata__":{},"__metadata__":{}}`), 'S6-duplicate');
  });

  test('S7: first at 0, no hole, no overlap', () => {
    expectRule(build(A('[4,12]'), 12), 'S7-first');
    const hole = expectRule(build(`{"a":${ent('F32', '[3]', '[0,12]')},"b":${ent('F32', '[1]', '[16,20]')}}`, 20), 'S7-hole');
    assert.match(hole.message, /tensor "b" begins at 16 but the previous tensor, "a", ends at 12/);
    expectRule(build(`{"a":${ent('F32', '[3]', '[0,12]')},"b":${ent('F32', '[2]', '[8,16]')}}`, 16), 'S7-overlap');
    expectRule(build(`{"a":${ent('F32', '[2]', '[0,8]')},"b":${ent('F32', '[2]', '[0,8]')}}`, 8), 'S7-overlap');
  });

  test('S8: size from dtype x shape, exact', () => {
    expectRule(build(A('[0,8]', '[3]'), 8), 'S8-size');
    expectRule(build(A('[0,8]', '[2]', 'F64'), 8), 'S8-size');
    expectRule(build(A('[0,8]', '[1099511627776,1099511627776]'), 8), 'S8-overflow'); // [2^40, 2^40]
    expectRule(build(A('[0,8]', `[${Array(64).fill('9007199254740991').join(',')}]`), 8), 'S8-overflow');
    expectRule(build(A('[0,2]', '[3]', 'F4'), 2), 'S8-bits'); // 12 bits
    expectRule(build(A('[0,2]', '[1]', 'F6_E2M3'), 2), 'S8-bits');
  });

  test('S9: file ends exactly where the data does', () => {
    expectRule(build(A(), 9), 'S9-trailing');
    expectRule(build(A(), 7), 'S9-truncated');
    expectRule(build('{}', 1), 'S9-trailing'); // zero tensors: the data section must be empty
    expectRule(build('{"__metadata__":{"a":"b"}}  ', 3), 'S9-trailing');
  });
});

describe('accepted', () => {
  test('space padding, empty tensors, scalars, zero tensors, JSON whitespace inside', () => {
    const h = parse(build(`{"a":${ent('F32', '[2]', '[0,8]')}}      `, 8));
    assert.deepEqual(h.tensors, [{ name: 'a', dtype: 'F32', shape: [2], begin: 0, end: 8 }]);
    assert.equal(h.metadata, null);

    const empty = parse(build(`{"e":${ent('BF16', '[4,0,3]', '[0,0]')}}`));
    assert.deepEqual(empty.tensors[0]?.shape, [4, 0, 3]);

    const scalar = parse(build(`{"s":${ent('F64', '[]', '[0,8]')}}`, new Uint8Array(new Float64Array([NaN]).buffer)));
    assert.deepEqual(scalar.tensors[0]?.shape, []);

    const onlyMeta = parse(build('{"__metadata__":{"format":"pt","__proto__":"x"}}'));
    assert.equal(onlyMeta.tensors.length, 0);
    assert.equal(onlyMeta.dataStart, onlyMeta.fileSize);
    assert.deepEqual(Object.keys(onlyMeta.metadata!), ['format', '__proto__']);
    assert.equal(Object.getPrototypeOf(onlyMeta.metadata), Object.prototype);

    const spaced = parse(build(`{ "a" :\n\t${ent('U8', '[ 1 ]', '[ 0 , 1 ]')} }`, 1));
    assert.equal(spaced.tensors[0]?.end, 1);

    assert.equal(parse(build('{}')).tensors.length, 0);
    // F4: 4 elements = 2 bytes, a whole number.
    assert.equal(parse(build(`{"q":${ent('F4', '[4]', '[0,2]')}}`, 2)).tensors[0]?.dtype, 'F4');
  });

  test('empty tensors may share an offset, in any header order', () => {
    const h = parse(
      build(
        `{"big":${ent('U8', '[4]', '[0,4]')},"e1":${ent('U8', '[0]', '[0,0]')},"e2":${ent('F32', '[0]', '[4,4]')},"e3":${ent('U8', '[0]', '[4,4]')}}`,
        4,
      ),
    );
    assert.deepEqual(h.tensors.map((t) => t.name), ['e1', 'big', 'e2', 'e3']);
  });

  test('a caller passing too few bytes gets a clear non-format error', () => {
    const bytes = build(`{"a":${ent('F32', '[2]', '[0,8]')}}`, 8);
    assert.throws(
      () => parseSafetensorsHeader(bytes.subarray(0, 20), bytes.length, FILE),
      (e: unknown) => e instanceof At1Error && !(e instanceof SafetensorsError) && e.code === 'E_INPUT' && /needs the first \d+ bytes/.test(e.message),
    );
    // The whole file or exactly its header bytes both work.
    const n = parse(bytes).dataStart;
    assert.equal(parseSafetensorsHeader(bytes.subarray(0, n), bytes.length, FILE).tensors.length, 1);
  });
});

describe('property', () => {
  const base = serializeSafetensors(
    [tensor('a', 'F32', [2, 2]), tensor('b', 'BF16', [3]), tensor('c', 'U8', [0]), tensor('d', 'I64', [])],
    { format: 'pt' },
  );

  // Mostly printable ASCII and JSON punctuation, so mutations get past UTF-8 and reach the later rules.
  const byte = fc.oneof(
    { arbitrary: fc.integer({ min: 0x20, max: 0x7e }), weight: 3 },
    { arbitrary: fc.constantFrom(...enc.encode('{}[]",:0123456789 ')), weight: 3 },
    { arbitrary: fc.integer({ min: 0, max: 255 }), weight: 1 },
  );

  test('random byte mutations parse or throw SafetensorsError, nothing else', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(), byte), { minLength: 1, maxLength: 6 }),
        fc.integer({ min: -16, max: 16 }),
        (edits, resize) => {
          const len = Math.max(0, base.length + resize);
          const bytes = new Uint8Array(len);
          bytes.set(base.subarray(0, len));
          for (const [at, v] of edits) if (len > 0) bytes[at % len] = v;
          try {
            parse(bytes);
          } catch (e) {
            if (!(e instanceof SafetensorsError)) throw e;
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  test('random header text parses or throws SafetensorsError, nothing else', () => {
    const token = fc.constantFrom('{', '}', '[', ']', ',', ':', '"a"', '"__metadata__"', '"dtype"', '"F32"', '"shape"',
      '"data_offsets"', '0', '4', '-1', '1e3', '1.5', ' ', '\n', 'null', 'true', '"\\u0061"', '"\\ud800"');
    fc.assert(
      fc.property(fc.array(token, { maxLength: 40 }), fc.nat({ max: 16 }), (parts, dataLen) => {
        try {
          parse(build(`{${parts.join('')}`, dataLen));
        } catch (e) {
          if (!(e instanceof SafetensorsError)) throw e;
        }
      }),
      { numRuns: 300 },
    );
  });
});
