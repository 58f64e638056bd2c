/**
 * A directory as one byte stream and back: round trips keep paths, types,
 * modes and bytes; the stream is reproducible and laid out as §14.4 says;
 * what cannot be represented is refused by name; a hostile stream can
 * neither escape the destination nor leave anything behind.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, chmodSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from './helpers.js';
import { At1Error } from '../src/errors.js';
import { treeStream, treeStreamPlan, unpackTree } from '../src/lmcodec/tree-stream.js';

async function collect(it: AsyncIterable<Uint8Array>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const p of it) parts.push(Buffer.from(p));
  return Buffer.concat(parts);
}

/** The bytes in pieces of the given sizes, cycled: headers and data split at every kind of boundary. */
function* pieces(b: Uint8Array, sizes: number[]): Generator<Uint8Array> {
  for (let off = 0, i = 0; off < b.length; i++) {
    const n = sizes[i % sizes.length]!;
    yield b.subarray(off, off + n);
    off += n;
  }
}

/** Every path below `dir` with its type, permission bits and bytes, in a canonical order. */
function describeTree(dir: string, rel = ''): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(dir, rel)).sort()) {
    const r = rel === '' ? name : `${rel}/${name}`;
    const st = lstatSync(join(dir, r));
    const mode = (st.mode & 0o777).toString(8);
    if (st.isDirectory()) {
      out.push(`dir ${r} ${mode}`);
      out.push(...describeTree(dir, r));
    } else out.push(`file ${r} ${mode} ${readFileSync(join(dir, r)).toString('base64')}`);
  }
  return out;
}

function makeTree(root: string): void {
  mkdirSync(join(root, 'src/deep/deeper'), { recursive: true });
  mkdirSync(join(root, 'empty-dir'));
  mkdirSync(join(root, 'café ☕'));
  mkdirSync(join(root, 'ro-dir'));
  writeFileSync(join(root, 'README.md'), '# hello\n');
  writeFileSync(join(root, 'empty.txt'), '');
  writeFileSync(join(root, 'src/deep/deeper/data.bin'), randomBytes(2_500_001)); // over two 1 MiB read pieces
  writeFileSync(join(root, 'src/a-b.ts'), 'export {};\n'); // '-' sorts before '/': src/a-b.ts after src, before src/deep
  writeFileSync(join(root, 'src/run.sh'), '#!/bin/sh\necho hi\n');
  chmodSync(join(root, 'src/run.sh'), 0o751);
  writeFileSync(join(root, 'café ☕/日本語.txt'), 'こんにちは\n');
  writeFileSync(join(root, 'café ☕/😀'), randomBytes(100));
  writeFileSync(join(root, 'ro-dir/locked.txt'), 'read only');
  chmodSync(join(root, 'ro-dir/locked.txt'), 0o400);
  chmodSync(join(root, 'ro-dir'), 0o555);
  chmodSync(join(root, 'empty-dir'), 0o700);
}

test('round trip: nested and empty directories, empty files, modes, unicode names, files over one read piece', async (t) => {
  const work = tempDir(t);
  const src = join(work, 'src-tree');
  makeTree(src);
  const plan = await treeStreamPlan(src);
  const bytes = await collect(treeStream(plan));
  assert.equal(bytes.length, plan.length);
  assert.deepEqual(await collect(treeStream(await treeStreamPlan(src))), bytes, 'the same tree gives the same stream');

  // Sorted by UTF-8 bytes, each directory before its contents.
  const paths = plan.entries.map((e) => e.path);
  assert.deepEqual(paths, [...paths].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))));
  assert.deepEqual(paths.slice(0, 4), ['README.md', 'café ☕', 'café ☕/日本語.txt', 'café ☕/😀']);
  assert.ok(paths.indexOf('src') < paths.indexOf('src/a-b.ts') && paths.indexOf('src/a-b.ts') < paths.indexOf('src/deep'));

  // The first record, decoded by hand: u32 LE length, the header JSON, the data.
  const hlen = bytes.readUInt32LE(0);
  assert.deepEqual(JSON.parse(bytes.subarray(4, 4 + hlen).toString('utf8')), { path: 'README.md', type: 'file', mode: 0o644, size: 8 });
  assert.equal(bytes.subarray(4 + hlen, 4 + hlen + 8).toString(), '# hello\n');

  for (const [i, sizes] of [[1, [1, 2, 3, 5, 7, 4096]], [2, [65536, 13]], [3, [bytes.length]]] as const) {
    const dest = join(work, `out${i}`);
    const r = await unpackTree(pieces(bytes, [...sizes]), dest);
    assert.deepEqual(describeTree(dest), describeTree(src));
    assert.deepEqual(r, { files: 8, dirs: 6, bytes: plan.entries.reduce((s, e) => s + e.size, 0) });
    chmodSync(join(dest, 'ro-dir'), 0o755); // let the temp dir cleanup remove it as any user
  }
  chmodSync(join(src, 'ro-dir'), 0o755);
  assert.deepEqual(readdirSync(work).sort(), ['out1', 'out2', 'out3', 'src-tree'], 'no temp directory left');
});

test('an empty directory is an empty stream, and unpacks to an empty directory', async (t) => {
  const work = tempDir(t);
  mkdirSync(join(work, 'e'));
  const plan = await treeStreamPlan(join(work, 'e'));
  assert.deepEqual(plan.entries, []);
  assert.equal(plan.length, 0);
  assert.deepEqual(await unpackTree([], join(work, 'out')), { files: 0, dirs: 0, bytes: 0 });
  assert.deepEqual(readdirSync(join(work, 'out')), []);
});

test('refused when scanning: symbolic links, FIFOs, names that are not UTF-8, a file that changes while read', async (t) => {
  const work = tempDir(t);
  const isInput = (path: string, why: RegExp) => (e: unknown): boolean => {
    assert.ok(e instanceof At1Error, String(e));
    assert.equal(e.code, 'E_INPUT');
    assert.ok(e.message.includes(path), e.message);
    assert.match(e.message, why);
    return true;
  };
  const a = join(work, 'a');
  mkdirSync(join(a, 'sub'), { recursive: true });
  writeFileSync(join(a, 'sub/f'), 'x');
  symlinkSync('f', join(a, 'sub/link'));
  await assert.rejects(treeStreamPlan(a), isInput(join(a, 'sub/link'), /symbolic link/));

  const b = join(work, 'b');
  mkdirSync(b);
  const fifo = spawnSync('mkfifo', [join(b, 'pipe')]);
  if (fifo.status === 0) await assert.rejects(treeStreamPlan(b), isInput(join(b, 'pipe'), /a FIFO/));

  const c = join(work, 'c');
  mkdirSync(c);
  let badName = true;
  try {
    writeFileSync(Buffer.from(`${c}/bad-\xff-name`, 'latin1'), 'x');
  } catch {
    badName = false; // a file system that refuses such names cannot hold the case
  }
  if (badName) await assert.rejects(treeStreamPlan(c), isInput(join(c, 'bad-'), /not valid UTF-8/));

  const d = join(work, 'd');
  mkdirSync(d);
  writeFileSync(join(d, 'grows'), randomBytes(1000));
  const plan = await treeStreamPlan(d);
  appendFileSync(join(d, 'grows'), 'more');
  await assert.rejects(collect(treeStream(plan)), isInput(join(d, 'grows'), /changed while the directory was archived \(size was 1000 bytes, now 1004\)/));

  await assert.rejects(treeStreamPlan(join(d, 'grows')), /not a directory/);
});

/** A record: u32 LE length, header (object or raw JSON text), data. */
function rec(header: Record<string, unknown> | string, data: Uint8Array | string = ''): Buffer {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const len = Buffer.alloc(4);
  len.writeUInt32LE(json.length);
  return Buffer.concat([len, json, Buffer.from(data)]);
}
const dir = (path: string, mode = 0o755): Buffer => rec({ path, type: 'dir', mode, size: 0 });
const file = (path: string, data = 'x', mode = 0o644): Buffer => rec({ path, type: 'file', mode, size: Buffer.byteLength(data) }, data);

const HOSTILE: [string, Buffer[], RegExp][] = [
  ['parent traversal ../x', [file('../x')], /path "\.\.\/x" has a "\.\." segment/],
  ['absolute /etc/x', [file('/etc/x')], /path "\/etc\/x" is absolute/],
  ['a/../../x', [dir('a'), file('a/../../x')], /path "a\/\.\.\/\.\.\/x" has a "\.\." segment/],
  ['a ./ segment', [file('./x')], /has a "\." segment/],
  ['an empty segment', [dir('a'), file('a//x')], /has an empty segment/],
  ['an empty path', [file('')], /path "" is empty/],
  ['duplicate path', [file('a'), file('a')], /duplicate path "a"/],
  ['duplicate directory', [dir('a'), dir('a')], /duplicate path "a"/],
  ['file under a file', [file('a'), file('a/b')], /"a\/b" is under "a", which is a file/],
  ['parent not in the stream', [file('a/b')], /its directory "a" is not in the stream before it/],
  ['out of order', [file('b'), file('a')], /path "a" is out of order/],
  ['data shorter than size', [rec({ path: 'a', type: 'file', mode: 0o644, size: 10 }, 'abc')], /ends inside the data of "a" \(7 bytes missing\)/],
  ['trailing bytes', [file('a'), Buffer.from([1, 0])], /ends inside a header \(2 trailing bytes\)/],
  ['header length zero', [Buffer.alloc(4)], /header length 0 is not from 1/],
  ['header length huge', [Buffer.from([0xff, 0xff, 0xff, 0x7f])], /header length 2147483647/],
  ['duplicate JSON key', [rec('{"path":"a","path":"b","type":"file","mode":420,"size":0}')], /duplicate key "path"/],
  ['unknown header field', [rec({ path: 'a', type: 'file', mode: 0o644, size: 0, mtime: 1 })], /unknown field "mtime"/],
  ['mode beyond permission bits', [rec({ path: 'a', type: 'file', mode: 0o4755, size: 0 })], /mode is missing or not permission bits/],
  ['inexact size', [rec('{"path":"a","type":"file","mode":420,"size":9007199254740993}')], /size is missing or not an integer/],
  ['unknown type', [rec({ path: 'a', type: 'link', mode: 0o644, size: 0 })], /type is "link"/],
  ['a directory with data', [rec({ path: 'a', type: 'dir', mode: 0o755, size: 3 }, 'abc')], /a directory with size 3/],
];

for (const [name, records, why] of HOSTILE) {
  test(`hostile stream refused: ${name}; nothing left behind`, async (t) => {
    const work = tempDir(t);
    const dest = join(work, 'out');
    // A few good entries first, so the refusal comes after files were written into the temp directory.
    const good = name.includes('out of order') || name.includes('parent') ? [] : [dir('0'), file('0/ok', 'fine')];
    await assert.rejects(unpackTree(pieces(Buffer.concat([...good, ...records]), [3, 50]), dest, { source: 'test.at1z' }), (e: unknown) => {
      assert.ok(e instanceof At1Error, String(e));
      assert.equal(e.code, 'E_CORRUPT', e.message);
      assert.match(e.message, /^test\.at1z: bad tree stream at byte \d+: /);
      assert.match(e.message, why);
      return true;
    });
    assert.deepEqual(readdirSync(work), [], 'neither the destination nor a temp directory exists');
    assert.equal(existsSync('/etc/x') || existsSync(join(work, '..', 'x')), false);
  });
}

test('unpack refuses an existing destination (even empty) and leaves it untouched', async (t) => {
  const work = tempDir(t);
  mkdirSync(join(work, 'there'));
  await assert.rejects(unpackTree([file('a')], join(work, 'there')), (e: unknown) => e instanceof At1Error && e.code === 'E_EXISTS');
  writeFileSync(join(work, 'plain'), 'keep');
  await assert.rejects(unpackTree([file('a')], join(work, 'plain')), (e: unknown) => e instanceof At1Error && e.code === 'E_EXISTS');
  assert.deepEqual(readdirSync(join(work, 'there')), []);
  assert.equal(readFileSync(join(work, 'plain'), 'utf8'), 'keep');
  assert.deepEqual(readdirSync(work).sort(), ['plain', 'there']);
});

test('an interrupted stream (the source fails midway) leaves no destination and no temp, even with read-only parts', async (t) => {
  const work = tempDir(t);
  async function* failing(): AsyncGenerator<Uint8Array> {
    yield Buffer.concat([dir('a', 0o500), file('a/f', 'data', 0o400), rec({ path: 'b', type: 'file', mode: 0o644, size: 1000 }, 'partial')]);
    throw new Error('decoder failed in frame 3');
  }
  await assert.rejects(unpackTree(failing(), join(work, 'out')), /decoder failed in frame 3/);
  assert.deepEqual(readdirSync(work), []);
});
