/**
 * One rule set for write and read; dedup that verifies before it trusts;
 * input fully scanned and opened before the first write. Each test is named
 * after the attack (or accident) it stops, and runs the real CLI on real
 * fixture data where a user would.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { initRegistry, readSafetensorsHeader, serializeSafetensors } from '../src/index.js';
import { encodeObject } from '../src/format/object.js';
import { sha256Hex } from '../src/util/hash.js';
import { MAX_PATH_LENGTH, MAX_PATH_SEGMENT_BYTES, MAX_TENSOR_NAME_LENGTH, parseManifest, pathProblem, serializeManifest, tensorNameProblem } from '../src/registry/manifest.js';
import { checkManifestRules } from '../src/registry/model-dir.js';
import { Registry } from '../src/registry/registry.js';
import { at1, EMBEDDED, REPO, sha256File, tempDir, treeDigest } from './helpers.js';

type T = Parameters<typeof tempDir>[0];

const CHUNK_ELEMENTS = 16384; // ~40 chunks for a 1.3 MB bf16 fixture: enough to plant every kind of garbage several times

/** A registry with the embedded base, small chunks. */
async function baseRegistry(dir: string): Promise<void> {
  await initRegistry(dir, join(EMBEDDED, 'base.safetensors'), { chunkElements: CHUNK_ELEMENTS });
}

/** Every object key under a registry, with its path. */
function objectFiles(regDir: string): Map<string, string> {
  const out = new Map<string, string>();
  const root = join(regDir, 'objects');
  if (!existsSync(root)) return out;
  for (const fan of readdirSync(root)) for (const k of readdirSync(join(root, fan))) out.set(k, join(root, fan, k));
  return out;
}

function objectPath(regDir: string, digest: string): string {
  return join(regDir, 'objects', digest.slice(0, 2), digest);
}

const noStack = (stderr: string): void => assert.doesNotMatch(stderr, /\n\s+at [^\n]+:\d+:\d+/, `no stack trace: ${stderr}`);

function withEnv<R>(env: Record<string, string>, fn: () => R): R {
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  Object.assign(process.env, env);
  try {
    return fn();
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

/** Bytes of garbage of each kind the dedup must see through, for the chunk at `digest` whose real object (from a clean registry) is `real`. */
const GARBAGE: { kind: string; make: (digest: string, real: Uint8Array, rawLength: number) => Uint8Array }[] = [
  { kind: 'random bytes', make: () => randomBytes(300) },
  {
    kind: 'a valid header with a wrong payload',
    make: (_d, _r, rawLength) => encodeObject({ codec: 0, depth: 0, rawLength, dtype: 'U8', refs: [] }, randomBytes(rawLength)),
  },
  { kind: 'a truncated copy of the real object', make: (_d, real) => real.subarray(0, Math.max(17, Math.floor(real.length / 2))) },
  {
    kind: 'a delta whose reference is missing',
    make: (_d, _r, rawLength) => encodeObject({ codec: 2, depth: 1, rawLength, dtype: 'U8', refs: [{ digest: sha256Hex(randomBytes(8)), dtype: 'U8' }] }, randomBytes(64)),
  },
  {
    kind: 'the wrong raw length',
    make: (_d, _r, rawLength) => encodeObject({ codec: 0, depth: 0, rawLength: rawLength - 2, dtype: 'U8', refs: [] }, new Uint8Array(rawLength - 2)),
  },
];

/**
 * Plant garbage at the key of every object a clean add of `file` writes,
 * BEFORE adding it; then add it through the CLI and check it was stored for
 * real: the same size as a clean add, restored byte-exact, verify and
 * fsck --read-data clean.
 */
async function plantThenAdd(t: T, workers: '0' | '1'): Promise<void> {
  const work = tempDir(t);
  const file = join(EMBEDDED, 'prose-step0025.safetensors');
  // A clean registry tells us which keys the version's chunks have (their SHA-256s) and what a realistic add stores.
  const clean = join(work, 'clean');
  await baseRegistry(clean);
  const baseKeys = new Set(objectFiles(clean).keys());
  const cleanAdd = withEnv({ AT1_WORKERS: workers }, () => at1('registry', 'add', clean, file, '--json'));
  assert.equal(cleanAdd.status, 0, cleanAdd.stderr);
  const cleanStored = (JSON.parse(cleanAdd.stdout) as { storedBytes: number }).storedBytes;
  const cleanObjects = [...objectFiles(clean)].filter(([k]) => !baseKeys.has(k));
  assert.ok(cleanObjects.length >= 10, `the version has ${cleanObjects.length} chunks of its own`);

  const reg = join(work, 'reg');
  await baseRegistry(reg);
  const planted = new Map<string, string>();
  const cleanReg = await Registry.open(clean);
  for (const [i, [digest, path]] of cleanObjects.entries()) {
    const real = new Uint8Array(readFileSync(path));
    const { kind, make } = GARBAGE[i % GARBAGE.length]!;
    const length = (await cleanReg.reader.read(digest)).bytes.length; // the chunk's raw length, and a check that its key is its SHA-256
    mkdirSync(join(reg, 'objects', digest.slice(0, 2)), { recursive: true });
    writeFileSync(objectPath(reg, digest), make(digest, real, length));
    planted.set(digest, kind);
  }
  assert.ok(new Set(planted.values()).size === GARBAGE.length, 'every kind of garbage is planted');

  const r = withEnv({ AT1_WORKERS: workers }, () => at1('registry', 'add', reg, file, '--json'));
  assert.equal(r.status, 0, r.stderr);
  const stored = (JSON.parse(r.stdout) as { storedBytes: number }).storedBytes;
  assert.equal(stored, cleanStored, `the add reports what it really stored (${stored}), as a clean add does (${cleanStored}), not a tiny ratio`);
  for (const [digest, kind] of planted) {
    assert.deepEqual(readFileSync(objectPath(reg, digest)), readFileSync(objectPath(clean, digest)), `${kind} at ${digest} was replaced by the real object`);
  }
  const out = join(work, 'out.safetensors');
  const g = at1('registry', 'get', reg, 'prose-step0025', '--out', out);
  assert.equal(g.status, 0, g.stderr);
  assert.equal(sha256File(out), sha256File(file), 'restored byte-exact');
  const v = at1('registry', 'verify', reg);
  assert.equal(v.status, 0, v.stdout + v.stderr);
  const f = at1('registry', 'fsck', reg, '--read-data');
  assert.equal(f.status, 0, f.stdout + f.stderr);
}

test('garbage planted at the keys of a future version (in-process add): dedup proves before it trusts, replaces, reports real sizes', async (t) => {
  await plantThenAdd(t, '0');
});

test('garbage planted at the keys of a future version (worker threads, AT1_WORKERS=1): the same', async (t) => {
  await plantThenAdd(t, '1');
});

test('dedup still reuses a proven object: adding the same model twice writes no object the second time', async (t) => {
  const work = tempDir(t);
  const reg = join(work, 'reg');
  await baseRegistry(reg);
  const file = join(EMBEDDED, 'prose-step0050.safetensors');
  assert.equal(at1('registry', 'add', reg, file, '--name', 'first').status, 0);
  const before = objectFiles(reg);
  const r = at1('registry', 'add', reg, file, '--name', 'again', '--json');
  assert.equal(r.status, 0, r.stderr);
  const manifest = await (await Registry.open(reg)).manifest('again');
  assert.equal(manifest.stats.newObjects, 0);
  assert.equal(manifest.stats.newObjectBytes, 0);
  assert.deepEqual([...objectFiles(reg).keys()].sort(), [...before.keys()].sort());
});

/* ---- one rule set for write and read ---- */

/** Run an add that must be refused before anything is written: exit 2, one clear line, no stack, the registry byte-for-byte unchanged and still working. */
function refusedUntouched(reg: string, input: string, message: RegExp, extra: string[] = []): void {
  const before = treeDigest(reg);
  const r = at1('registry', 'add', reg, input, ...extra);
  assert.equal(r.status, 2, `exit 2 (input refused): ${r.stderr}`);
  assert.match(r.stderr, message);
  noStack(r.stderr);
  assert.equal(treeDigest(reg), before, 'nothing was written');
  assert.equal(at1('registry', 'list', reg).status, 0, 'list still works');
}

test('a tensor name of 65,537 characters is refused before anything is written; the registry keeps working (and 65,536 is fine)', async (t) => {
  const work = tempDir(t);
  const reg = join(work, 'reg');
  await baseRegistry(reg);
  const data = new Uint8Array(16).fill(7);
  const long = join(work, 'long.safetensors');
  writeFileSync(long, serializeSafetensors([{ name: 'w'.repeat(MAX_TENSOR_NAME_LENGTH + 1), dtype: 'F32', shape: [4], data }]));
  refusedUntouched(reg, long, /long\.safetensors: tensor name of 65537 characters exceeds the 65536 limit/);
  // The limit itself is accepted by writer and reader alike: add, then every command that parses manifests.
  const edge = join(work, 'edge.safetensors');
  writeFileSync(edge, serializeSafetensors([{ name: 'w'.repeat(MAX_TENSOR_NAME_LENGTH), dtype: 'F32', shape: [4], data }]));
  const a = at1('registry', 'add', reg, edge);
  assert.equal(a.status, 0, a.stderr);
  for (const cmd of [['list', reg], ['verify', reg], ['gc', reg]]) assert.equal(at1('registry', ...cmd).status, 0, cmd.join(' '));
  const b = at1('registry', 'add', reg, join(EMBEDDED, 'prose-step0025.safetensors'));
  assert.equal(b.status, 0, `a new add still works: ${b.stderr}`);
});

/** A model directory holding the base model at `rel` (relative path, '/'-separated). */
function modelDirWith(dir: string, rel: string): void {
  const abs = join(dir, ...rel.split('/'));
  mkdirSync(join(abs, '..'), { recursive: true });
  copyFileSync(join(EMBEDDED, 'base.safetensors'), abs);
  copyFileSync(join(EMBEDDED, 'config.json'), join(dir, 'config.json'));
}

/** A relative path of exactly `length` characters ending in `.safetensors`, in segments of at most 200 characters. */
function pathOfLength(length: number): string {
  const tail = 'model.safetensors';
  const segs: string[] = [];
  let left = length - tail.length;
  while (left > 0) {
    const n = Math.min(200, left - 1); // one for the '/' after it
    segs.push('d'.repeat(n));
    left -= n + 1;
  }
  const p = [...segs, tail].join('/');
  assert.equal(p.length, length);
  return p;
}

test('a model-directory path of 1,025 characters is refused before anything is written (1,024 is fine)', async (t) => {
  const work = tempDir(t);
  const reg = join(work, 'reg');
  await baseRegistry(reg);
  const deep = join(work, 'deep');
  modelDirWith(deep, pathOfLength(MAX_PATH_LENGTH + 1));
  refusedUntouched(reg, deep, /deep\/d+.*cannot be stored: path of 1025 characters exceeds the 1024 limit/);
  const edge = join(work, 'edge');
  modelDirWith(edge, pathOfLength(MAX_PATH_LENGTH));
  const a = at1('registry', 'add', reg, edge);
  assert.equal(a.status, 0, a.stderr);
  assert.equal(at1('registry', 'verify', reg).status, 0);
});

test('a single file whose name holds a backslash is refused, not published as a manifest the reader rejects', async (t) => {
  const work = tempDir(t);
  const reg = join(work, 'reg');
  await baseRegistry(reg);
  const odd = join(work, 'we\\ird.safetensors');
  copyFileSync(join(EMBEDDED, 'prose-step0025.safetensors'), odd);
  refusedUntouched(reg, odd, /cannot be stored: it has a backslash/);
});

test('a path segment over 255 UTF-8 bytes: the writer refuses it before writing, with the very rule the parser applies', async (t) => {
  // No Linux file system can hold such a name, so the writer's rule is checked directly, and against the parser.
  const seg256 = 'é'.repeat(128); // 256 bytes, 128 characters
  const seg255 = 'é'.repeat(127) + 'a';
  assert.equal(Buffer.byteLength(seg256), MAX_PATH_SEGMENT_BYTES + 1);
  assert.equal(Buffer.byteLength(seg255), MAX_PATH_SEGMENT_BYTES);
  assert.throws(() => checkManifestRules([{ path: `sub/${seg256}`, abs: `/m/sub/${seg256}`, size: 1 }]), (e: Error & { code?: string }) => {
    assert.equal(e.code, 'E_INPUT');
    assert.match(e.message, /\/m\/sub\/é+.*path segment of 256 UTF-8 bytes exceeds the 255 limit/);
    return true;
  });
  checkManifestRules([{ path: `sub/${seg255}`, abs: `/m/sub/${seg255}`, size: 1 }]);

  // A real manifest of a directory version, its side file's path swapped: the parser draws the line at the same byte.
  const work = tempDir(t);
  const reg = join(work, 'reg');
  await baseRegistry(reg);
  const dir = join(work, 'ckpt');
  modelDirWith(dir, 'model.safetensors');
  assert.equal(at1('registry', 'add', reg, dir).status, 0);
  const m = await (await Registry.open(reg)).manifest('ckpt');
  const withPath = (p: string): Uint8Array => serializeManifest({ ...m, files: m.files.map((f) => (f.path === 'config.json' ? { ...f, path: p } : f)) });
  assert.throws(() => parseManifest(withPath(`sub/${seg256}`), 'ckpt'), /path segment of 256 UTF-8 bytes exceeds the 255 limit/);
  assert.equal(parseManifest(withPath(`sub/${seg255}`), 'ckpt').files.some((f) => f.path === `sub/${seg255}`), true);
});

test('writer rules and the manifest parser agree at every boundary (no input the writer accepts is refused by the reader)', () => {
  const paths = [
    'a'.repeat(MAX_PATH_LENGTH),
    'a'.repeat(MAX_PATH_LENGTH + 1),
    'x/' + 'b'.repeat(MAX_PATH_SEGMENT_BYTES),
    'x/' + 'b'.repeat(MAX_PATH_SEGMENT_BYTES + 1),
    '/abs',
    'a//b',
    'a/./b',
    'a/../b',
    'a\\b',
    'tab\there',
    'ok/名前.json',
  ];
  const entry = (p: string): unknown => ({ kind: 'blob', path: p, size: 0, sha256: '0'.repeat(64), chunkBytes: 4, chunks: [] });
  const manifest = (files: unknown[]): Uint8Array =>
    new TextEncoder().encode(JSON.stringify({ format: 'at1.version', formatVersion: 1, name: 'v', parent: null, createdAt: '2026-01-01T00:00:00.000Z', layout: 'directory', files, stats: { rawBytes: 0, newObjectBytes: 0, newObjects: 0 } }));
  for (const p of paths) {
    const writer = pathProblem(p) === undefined;
    let reader = true;
    try {
      parseManifest(manifest([entry(p)]), 'v');
    } catch {
      reader = false;
    }
    assert.equal(writer, reader, `path ${JSON.stringify(p.slice(0, 40))}: writer ${writer}, reader ${reader}`);
  }
  for (const n of [MAX_TENSOR_NAME_LENGTH, MAX_TENSOR_NAME_LENGTH + 1]) assert.equal(tensorNameProblem('t'.repeat(n)) === undefined, n <= MAX_TENSOR_NAME_LENGTH);
});

test('a 250-byte file name in a model directory adds fine', async (t) => {
  const work = tempDir(t);
  const reg = join(work, 'reg');
  await baseRegistry(reg);
  const dir = join(work, 'named');
  modelDirWith(dir, 'model.safetensors');
  const name = 'n'.repeat(245) + '.json';
  assert.equal(Buffer.byteLength(name), 250);
  writeFileSync(join(dir, name), '{"a": 1}\n');
  const r = at1('registry', 'add', reg, dir);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(at1('registry', 'list', reg).status, 0);
  assert.equal(at1('registry', 'verify', reg).status, 0);
});

/* ---- input scanned and opened completely before the first write ---- */

test('a file name that is not valid UTF-8 is refused with exit 2, the bytes escaped, nothing written', async (t) => {
  const work = tempDir(t);
  const reg = join(work, 'reg');
  await baseRegistry(reg);
  const dir = join(work, 'mixed');
  modelDirWith(dir, 'model.safetensors');
  writeFileSync(Buffer.concat([Buffer.from(dir + '/'), Buffer.from([0xff, 0xfe]), Buffer.from('.json')]), '{}');
  refusedUntouched(reg, dir, /mixed: the file name "\\xff\\xfe\.json" is not valid UTF-8/);
});

test('a file name starting with a byte-order mark is kept as it is, not silently renamed', async (t) => {
  const work = tempDir(t);
  const reg = join(work, 'reg');
  await baseRegistry(reg);
  const dir = join(work, 'bom');
  modelDirWith(dir, 'model.safetensors');
  writeFileSync(join(dir, '\ufeffnotes.txt'), 'a note\n');
  const r = at1('registry', 'add', reg, dir);
  assert.equal(r.status, 0, r.stderr);
  const m = await (await Registry.open(reg)).manifest('bom');
  assert.ok(m.files.some((f) => f.path === '\ufeffnotes.txt'), m.files.map((f) => f.path).join(', '));
});

function mkfifo(path: string): boolean {
  return spawnSync('mkfifo', [path]).status === 0;
}

test('a FIFO in a model directory, or given as the file to add, is refused cleanly (no hang), nothing written', async (t) => {
  const work = tempDir(t);
  const reg = join(work, 'reg');
  await baseRegistry(reg);
  const dir = join(work, 'piped');
  modelDirWith(dir, 'model.safetensors');
  if (!mkfifo(join(dir, 'zz-notes.txt')) || !mkfifo(join(work, 'pipe.safetensors'))) return t.skip('mkfifo is not available');
  refusedUntouched(reg, dir, /zz-notes\.txt is not a regular file/);
  const before = treeDigest(reg);
  const r = spawnSync(process.execPath, [join(REPO, 'bin/at1.js'), 'registry', 'add', reg, join(work, 'pipe.safetensors')], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 2, `exit 2, not a hang: ${r.stderr}`);
  assert.match(r.stderr, /pipe\.safetensors is neither a regular file nor a directory/);
  noStack(r.stderr);
  assert.equal(treeDigest(reg), before);
  // The reader's own open cannot block on a FIFO or read a directory as a file either.
  await assert.rejects(readSafetensorsHeader(join(work, 'pipe.safetensors')), /not a regular file/);
  await assert.rejects(readSafetensorsHeader(dir), /not a regular file/);
});

/** How to run a command as an unprivileged user, when we are root; undefined when there is no way. */
function asNobody(): string[] | undefined {
  if (process.getuid?.() !== 0) return [];
  if (spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'true']).status === 0) return ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'];
  if (spawnSync('runuser', ['-u', 'nobody', '--', 'true']).status === 0) return ['runuser', '-u', 'nobody', '--'];
  return undefined;
}

test('unreadable input (EACCES: a side file, a subdirectory, a single model file) is reported by name before anything is written', async (t) => {
  const prefix = asNobody();
  if (!prefix) return t.skip('running as root without setpriv or runuser: cannot test permission denied');
  const work = tempDir(t);
  chmodSync(work, 0o755);
  const reg = join(work, 'reg');
  await baseRegistry(reg);
  if (prefix.length > 0) {
    // We are root: the unprivileged user owns the registry (so it may write it) and can read the inputs except the locked ones.
    const chownTree = (p: string): void => {
      chownSync(p, 65534, 65534);
      if (statSync(p).isDirectory()) for (const e of readdirSync(p)) chownTree(join(p, e));
    };
    chownTree(reg);
  }
  const run = (input: string): { status: number | null; stderr: string } => {
    const [cmd, ...args] = [...prefix, process.execPath, join(REPO, 'bin/at1.js'), 'registry', 'add', reg, input];
    return spawnSync(cmd!, args, { encoding: 'utf8', cwd: work, env: { ...process.env, AT1_LOCK_WAIT_MS: '300', HOME: work } });
  };
  const dir = join(work, 'ckpt');
  modelDirWith(dir, 'model.safetensors'); // sorted before the locked entries: the old add stored it, then failed
  const secret = join(dir, 'zz-secret.txt');
  writeFileSync(secret, 'unreadable\n');
  const sub = join(dir, 'zz-sub');
  mkdirSync(sub);
  writeFileSync(join(sub, 'notes.txt'), 'hidden\n');
  const single = join(work, 'locked.safetensors');
  copyFileSync(join(EMBEDDED, 'prose-step0025.safetensors'), single);
  const cases: { what: string; lock: string; input: string; message: RegExp }[] = [
    { what: 'side file', lock: secret, input: dir, message: /could not open [^\n]*ckpt\/zz-secret\.txt: permission denied \(EACCES\)/ },
    { what: 'subdirectory', lock: sub, input: dir, message: /could not read the directory [^\n]*ckpt\/zz-sub: permission denied \(EACCES\)/ },
    { what: 'single model file', lock: single, input: single, message: /could not open [^\n]*locked\.safetensors: permission denied \(EACCES\)/ },
  ];
  for (const c of cases) {
    const mode = statSync(c.lock).mode & 0o777;
    chmodSync(c.lock, 0o000);
    const before = treeDigest(reg);
    const r = run(c.input);
    chmodSync(c.lock, mode);
    assert.equal(r.status, 2, `${c.what}: ${r.stderr}`);
    assert.match(r.stderr, c.message, c.what);
    noStack(r.stderr);
    assert.equal(treeDigest(reg), before, `${c.what}: nothing was written`);
  }
  // The same user adds both once they are readable: each refusal above was the locked entry, and only that.
  for (const input of [dir, single]) {
    const ok = run(input);
    assert.equal(ok.status, 0, ok.stderr);
  }
});

test('init with a bad base (a directory without safetensors, a tensor name over the limit) leaves no registry behind', (t) => {
  const work = tempDir(t);
  const notModel = join(work, 'not-a-model');
  mkdirSync(notModel);
  writeFileSync(join(notModel, 'README.md'), 'hello');
  const long = join(work, 'long.safetensors');
  writeFileSync(long, serializeSafetensors([{ name: 'w'.repeat(MAX_TENSOR_NAME_LENGTH + 1), dtype: 'F32', shape: [2], data: new Uint8Array(8) }]));
  for (const [base, why] of [[notModel, /holds no \.safetensors file/], [long, /exceeds the 65536 limit/]] as const) {
    const dir = join(work, `reg-${base === long ? 'long' : 'dir'}`);
    const r = at1('registry', 'init', base, dir);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, why);
    noStack(r.stderr);
    assert.equal(existsSync(dir), false, `${dir}: nothing was created`);
  }
});
