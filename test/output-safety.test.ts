/**
 * Output safety: nothing `get` or `tensor get` writes may land on the
 * registry (or any registry), on a device, FIFO or socket; long names
 * restore; errors name the path without a stack trace; interrupted temps
 * are cleaned up only when their writer is proven dead; names from stored
 * data reach the terminal escaped.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { copyFileSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { at1, EMBEDDED, REPO, sha256File, tempDir, treeDigest } from './helpers.js';
import { add, initRegistry } from '../src/index.js';
import { serializeSafetensors } from '../src/format/safetensors.js';
import { CONFIG_KEY } from '../src/registry/config.js';
import { ABANDONED_AFTER_MS, parseTempName, removeStaleTemps, tempNameFor, truncateUtf8 } from '../src/util/atomic-file.js';
import { REGISTRY_MARKER } from '../src/util/output-path.js';
import { hostIdentity } from '../src/util/host-identity.js';
import { escapeControl } from '../src/cli/output.js';
import { describeError } from '../src/cli/main.js';
import { printVerify } from '../src/cli/registry-commands.js';
import { At1Error } from '../src/errors.js';

const BASE = join(EMBEDDED, 'base.safetensors');
const IS_ROOT = process.getuid?.() === 0;

/** A registry in a fresh work directory with the embedded base as version `base`. */
async function baseRegistry(t: { after: (fn: () => void) => void }): Promise<{ work: string; regDir: string }> {
  const work = tempDir(t);
  const regDir = join(work, 'reg');
  await initRegistry(regDir, BASE, { name: 'base', level: 'fast' });
  return { work, regDir };
}

/** A model directory: the base as model.safetensors, a config, and whatever `extra` files. */
function modelDir(dir: string, extra: Record<string, string> = {}): void {
  mkdirSync(dir, { recursive: true });
  copyFileSync(BASE, join(dir, 'model.safetensors'));
  copyFileSync(join(EMBEDDED, 'config.json'), join(dir, 'config.json'));
  for (const [name, text] of Object.entries(extra)) writeFileSync(join(dir, name), text);
}

/** The pid of a process that has exited (so `kill(pid, 0)` fails). */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', '']);
  assert.equal(r.status, 0);
  return r.pid;
}

function assertCleanRefusal(r: { status: number; stderr: string }, path: string, why: RegExp): void {
  assert.equal(r.status, 2, r.stderr);
  assert.ok(r.stderr.includes(path), `the message names ${path}: ${r.stderr}`);
  assert.match(r.stderr, why);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
}

/** Every entry of `dir` whose name marks it as an at1 temp. */
function temps(dir: string): string[] {
  return readdirSync(dir).filter((n) => n.includes('.at1-tmp-'));
}

test("the registry marker at1 looks for is the registry's configuration file", () => {
  assert.equal(REGISTRY_MARKER, CONFIG_KEY);
});

test("get --out onto the registry's own manifest, configuration, objects, lock or tmp/ is refused and the registry still verifies", async (t) => {
  const { work, regDir } = await baseRegistry(t);
  const objDir = join(regDir, 'objects', readdirSync(join(regDir, 'objects'))[0]!);
  const targets = [
    join(regDir, 'versions', 'base.json'),
    join(regDir, 'at1-registry.json'),
    join(objDir, readdirSync(objDir)[0]!),
    join(regDir, 'lock'),
    join(regDir, 'tmp', 'restored.safetensors'),
    join(regDir, 'new-file-at-the-root'),
  ];
  // The same paths reached through a link to the registry's directory.
  symlinkSync(join(regDir, 'versions'), join(work, 'sneaky'));
  targets.push(join(work, 'sneaky', 'base.json'));
  const before = treeDigest(regDir);
  for (const out of targets) {
    assertCleanRefusal(at1('registry', 'get', regDir, 'base', '--out', out), out, /inside the registry/);
    assertCleanRefusal(at1('tensor', 'get', regDir, 'base', 'lm_head.weight', '--out', out), out, /inside the registry/);
  }
  assert.equal(treeDigest(regDir), before, 'nothing in the registry changed');
  assert.equal(temps(join(regDir, 'tmp')).length + readdirSync(join(regDir, 'tmp')).length, 0);
  const v = at1('registry', 'verify', regDir);
  assert.equal(v.status, 0, v.stderr);
  assert.match(v.stdout, /integrity: PASS/);
});

test("a directory restore into the registry's tmp/ is refused before anything is written", async (t) => {
  const { work, regDir } = await baseRegistry(t);
  const reg = (await import('../src/registry/registry.js')).Registry;
  modelDir(join(work, 'md'));
  await add(await reg.open(regDir), join(work, 'md'), { name: 'md' });
  const before = treeDigest(regDir);
  const out = join(regDir, 'tmp', 'md');
  assertCleanRefusal(at1('registry', 'get', regDir, 'md', '--out', out), out, /inside the registry/);
  assert.equal(treeDigest(regDir), before);
  assert.deepEqual(readdirSync(join(regDir, 'tmp')), []);
});

test('get --out inside another at1 registry is refused', async (t) => {
  const { work, regDir } = await baseRegistry(t);
  const other = join(work, 'other');
  await initRegistry(other, BASE, { name: 'base', level: 'fast' });
  const before = treeDigest(other);
  for (const out of [join(other, 'versions', 'base.json'), join(other, 'objects', 'x')]) {
    assertCleanRefusal(at1('registry', 'get', regDir, 'base', '--out', out), out, new RegExp(`inside the at1 registry ${other}`));
    assertCleanRefusal(at1('tensor', 'get', regDir, 'base', 'lm_head.weight', '--out', out), out, /inside the at1 registry/);
  }
  assert.equal(treeDigest(other), before);
});

test('--out /dev/null is refused and stays a character device', async (t) => {
  const { regDir } = await baseRegistry(t);
  for (const args of [['registry', 'get', regDir, 'base'], ['tensor', 'get', regDir, 'base', 'lm_head.weight']]) {
    assertCleanRefusal(at1(...args, '--out', '/dev/null'), '/dev/null', /character device/);
    assert.ok(lstatSync('/dev/null').isCharacterDevice(), '/dev/null is still the device');
    assert.deepEqual(temps('/dev'), [], 'no temp file was created in /dev');
  }
});

test('--out onto a FIFO, a socket, or a link to a device is refused and the node stays', async (t) => {
  const { work, regDir } = await baseRegistry(t);
  const fifo = join(work, 'fifo');
  assert.equal(spawnSync('mkfifo', [fifo]).status, 0, 'mkfifo');
  const sock = join(work, 'sock');
  const server = createServer();
  await new Promise<void>((ok) => server.listen(sock, ok));
  t.after(() => server.close());
  const link = join(work, 'null-link');
  symlinkSync('/dev/null', link);
  for (const [out, why, check] of [
    [fifo, /FIFO/, () => lstatSync(fifo).isFIFO()],
    [sock, /socket/, () => lstatSync(sock).isSocket()],
    [link, /character device \(through a symbolic link\)/, () => lstatSync(link).isSymbolicLink()],
  ] as const) {
    assertCleanRefusal(at1('registry', 'get', regDir, 'base', '--out', out), out, why);
    assertCleanRefusal(at1('tensor', 'get', regDir, 'base', 'lm_head.weight', '--out', out), out, why);
    assert.ok(check(), `${out} is left as it was`);
  }
  assert.deepEqual(temps(work), []);
});

test('an existing regular file is still replaced atomically', async (t) => {
  const { work, regDir } = await baseRegistry(t);
  const out = join(work, 'out.safetensors');
  writeFileSync(out, 'old contents');
  const r = at1('registry', 'get', regDir, 'base', '--out', out);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(sha256File(out), sha256File(BASE));
  assert.deepEqual(temps(work), []);
});

test('a 250-byte file name in a model directory restores (and a 250-byte multibyte one)', async (t) => {
  const { work, regDir } = await baseRegistry(t);
  const long = `${'a'.repeat(246)}.txt`;
  const wide = 'é'.repeat(125); // 250 bytes of UTF-8, 125 characters: a cut inside a character would corrupt the temp name
  assert.equal(Buffer.byteLength(long), 250);
  assert.equal(Buffer.byteLength(wide), 250);
  const src = join(work, 'md');
  modelDir(src, { [long]: 'long name', [wide]: 'wide name' });
  const v = at1('registry', 'add', regDir, src, '--name', 'md');
  assert.equal(v.status, 0, v.stderr);
  const out = join(work, 'restored');
  const r = at1('registry', 'get', regDir, 'md', '--out', out);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(treeDigest(out), treeDigest(src), 'every file byte-exact, long names included');
  assert.deepEqual(temps(work), []);
  assert.deepEqual(temps(out), []);
});

test('a 255-byte --out name restores; a 256-byte one is refused with a clear message', async (t) => {
  const { work, regDir } = await baseRegistry(t);
  const ok = join(work, 'b'.repeat(255));
  const r = at1('registry', 'get', regDir, 'base', '--out', ok);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(sha256File(ok), sha256File(BASE));
  const tooLong = join(work, 'c'.repeat(256));
  assertCleanRefusal(at1('registry', 'get', regDir, 'base', '--out', tooLong), 'c'.repeat(256), /256 bytes of UTF-8; file systems allow at most 255/);
  assertCleanRefusal(at1('tensor', 'get', regDir, 'base', 'lm_head.weight', '--out', tooLong), 'c'.repeat(256), /at most 255/);
  assert.deepEqual(temps(work), []);
});

test('temp names stay within 255 bytes, never cut a character, and are tied to their target', () => {
  for (const name of ['x', 'a'.repeat(255), 'é'.repeat(127), '😀'.repeat(63), `${'a'.repeat(199)}😀😀`]) {
    const target = join('/some/dir', name);
    const temp = basename(tempNameFor(target));
    assert.ok(Buffer.byteLength(temp) <= 255, `${Buffer.byteLength(temp)} bytes for a ${Buffer.byteLength(name)}-byte name`);
    assert.ok(!temp.includes('\ufffd') && Buffer.from(temp, 'utf8').toString('utf8') === temp, 'valid UTF-8, no split character');
    assert.ok(temp.startsWith('.'), 'hidden');
    assert.ok(name.startsWith(temp.slice(1, temp.indexOf('.at1-tmp-'))), 'the prefix is the start of the name');
    const parsed = parseTempName(temp, name);
    assert.deepEqual(parsed, { identity: hostIdentity(), pid: process.pid });
    // Another target sharing the same (cut) prefix does not claim it.
    assert.equal(parseTempName(temp, `${name}-other`), undefined);
  }
  assert.equal(truncateUtf8('aé', 2), 'a');
  assert.equal(dirname(tempNameFor('/a/b/c')), '/a/b');
});

test('--out in a missing directory exits 2 with a clear message and no stack', async (t) => {
  const { work, regDir } = await baseRegistry(t);
  const out = join(work, 'no', 'such', 'dir', 'out.safetensors');
  for (const args of [['registry', 'get', regDir, 'base'], ['tensor', 'get', regDir, 'base', 'lm_head.weight']]) {
    const r = at1(...args, '--out', out);
    assertCleanRefusal(r, join(work, 'no', 'such', 'dir'), /does not exist/);
    assert.equal(r.stderr.split('\n').filter(Boolean).length, 1, `one line: ${r.stderr}`);
  }
  // A parent that is a file.
  writeFileSync(join(work, 'plain'), 'x');
  assertCleanRefusal(at1('registry', 'get', regDir, 'base', '--out', join(work, 'plain', 'out')), join(work, 'plain'), /not a directory/);
  // A directory as --out for a one-file version.
  assertCleanRefusal(at1('registry', 'get', regDir, 'base', '--out', work), work, /is a directory/);
});

test('--out in an unwritable directory exits 2 naming the directory', async (t) => {
  const { regDir } = await baseRegistry(t);
  const locked = mkdtempSync(join(tmpdir(), 'at1-ro-'));
  if (IS_ROOT) {
    // Permission bits do not stop root; a read-only mount does.
    if (spawnSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=64k', 'tmpfs', locked]).status !== 0) {
      rmSync(locked, { recursive: true, force: true });
      return t.skip('running as root and cannot mount a read-only tmpfs');
    }
    t.after(() => {
      spawnSync('umount', [locked]);
      rmSync(locked, { recursive: true, force: true });
    });
  } else {
    spawnSync('chmod', ['555', locked]);
    t.after(() => {
      spawnSync('chmod', ['755', locked]);
      rmSync(locked, { recursive: true, force: true });
    });
  }
  const out = join(locked, 'out.safetensors');
  for (const args of [['registry', 'get', regDir, 'base'], ['tensor', 'get', regDir, 'base', 'lm_head.weight']]) {
    assertCleanRefusal(at1(...args, '--out', out), locked, IS_ROOT ? /read-only/ : /permission denied/);
  }
  assert.deepEqual(readdirSync(locked), []);
});

test('a directory restore onto a symlink to a directory is refused before any work', async (t) => {
  const { work, regDir } = await baseRegistry(t);
  modelDir(join(work, 'md'));
  assert.equal(at1('registry', 'add', regDir, join(work, 'md'), '--name', 'md').status, 0);
  const real = join(work, 'empty-real');
  mkdirSync(real);
  const link = join(work, 'link-to-empty');
  symlinkSync(real, link);
  const r = at1('registry', 'get', regDir, 'md', '--out', link);
  assertCleanRefusal(r, link, /symbolic link/);
  assert.ok(lstatSync(link).isSymbolicLink(), 'the link is left alone');
  assert.deepEqual(readdirSync(real), []);
  assert.deepEqual(temps(work), [], 'no temporary directory was started');
  // The same restore to a new directory works; onto an empty directory too.
  const fresh = join(work, 'fresh');
  assert.equal(at1('registry', 'get', regDir, 'md', '--out', fresh).status, 0);
  assert.equal(treeDigest(fresh), treeDigest(join(work, 'md')));
  const g = at1('registry', 'get', regDir, 'md', '--out', real);
  assert.equal(g.status, 0, g.stderr);
  assert.equal(treeDigest(real), treeDigest(join(work, 'md')));
});

test('disk full during get: exit 4, the message says disk full and names the output, no partial file is left', async (t) => {
  const { regDir } = await baseRegistry(t);
  const mnt = mkdtempSync(join(tmpdir(), 'at1-full-'));
  if (spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mnt]).status !== 0) {
    rmSync(mnt, { recursive: true, force: true });
    return t.skip('cannot mount a 1 MiB tmpfs here (needs root)');
  }
  t.after(() => {
    spawnSync('umount', [mnt]);
    rmSync(mnt, { recursive: true, force: true });
  });
  assert.ok(statSync(BASE).size > 1 << 20, 'the version is larger than the file system');
  const out = join(mnt, 'out.safetensors');
  const r = at1('registry', 'get', regDir, 'base', '--out', out);
  assert.equal(r.status, 4, r.stderr);
  assert.match(r.stderr, /disk full/);
  assert.ok(r.stderr.includes(out), r.stderr);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
  assert.deepEqual(readdirSync(mnt), [], 'no output and no partial temp file');
  // A model directory too: nothing left, not even the temporary directory.
  const md = mkdtempSync(join(tmpdir(), 'at1-md-'));
  t.after(() => rmSync(md, { recursive: true, force: true }));
  modelDir(join(md, 'm'));
  assert.equal(at1('registry', 'add', regDir, join(md, 'm'), '--name', 'md').status, 0);
  const d = at1('registry', 'get', regDir, 'md', '--out', join(mnt, 'restored'));
  assert.equal(d.status, 4, d.stderr);
  assert.match(d.stderr, /disk full/);
  assert.ok(d.stderr.includes(join(mnt, 'restored')), d.stderr);
  assert.deepEqual(readdirSync(mnt), []);
  // tensor get: the largest tensor is 512 KiB, so most of the space is taken first.
  writeFileSync(join(mnt, 'filler'), new Uint8Array(700 << 10));
  const tensor = at1('tensor', 'get', regDir, 'base', 'lm_head.weight', '--out', out);
  assert.equal(tensor.status, 4, tensor.stderr);
  assert.match(tensor.stderr, /disk full/);
  assert.ok(tensor.stderr.includes(out), tensor.stderr);
  assert.deepEqual(readdirSync(mnt), ['filler']);
});

test('get removes temps of the same target whose writer is proven dead or abandoned, and keeps those a live writer may own', async (t) => {
  const { work, regDir } = await baseRegistry(t);
  const out = join(work, 'out.safetensors');
  const dead = deadPid();
  const plant = (path: string, dir = false): string => {
    if (dir) {
      mkdirSync(path);
      writeFileSync(join(path, 'partial'), 'x');
    } else writeFileSync(path, 'partial');
    return path;
  };
  const old = (path: string): string => {
    const then = (Date.now() - ABANDONED_AFTER_MS - 3600_000) / 1000;
    if (statSync(path).isDirectory()) for (const e of readdirSync(path)) utimesSync(join(path, e), then, then);
    utimesSync(path, then, then);
    return path;
  };
  const gone = [
    plant(tempNameFor(out, { pid: dead })),
    plant(tempNameFor(out, { pid: dead }), true),
    old(plant(tempNameFor(out, { identity: 'ffffffffffffffff', pid: 1 }))),
    old(plant(tempNameFor(out, { identity: null, pid: 1 }))),
  ];
  const kept = [
    plant(tempNameFor(out, { pid: process.pid })), // a live writer (this test)
    old(plant(tempNameFor(out, { pid: process.pid }))), // live, even though untouched for a day
    plant(tempNameFor(out, { identity: 'ffffffffffffffff', pid: dead })), // another host: its pid proves nothing
    plant(tempNameFor(out, { identity: null, pid: 1 })), // unknown identity, recent
    plant(tempNameFor(join(work, 'other.safetensors'), { pid: dead })), // another target
    plant(join(work, '.out.safetensors.at1-tmp-not-a-temp-name')),
  ];
  // A temp inside a directory whose contents were written recently is not abandoned, whatever the directory's own time.
  const busyDir = plant(tempNameFor(out, { identity: 'eeeeeeeeeeeeeeee', pid: 1 }), true);
  const then = (Date.now() - ABANDONED_AFTER_MS - 3600_000) / 1000;
  utimesSync(busyDir, then, then);
  kept.push(busyDir);
  const r = at1('registry', 'get', regDir, 'base', '--out', out);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(sha256File(out), sha256File(BASE));
  for (const p of gone) assert.equal(existsSync(p), false, `removed: ${basename(p)}`);
  for (const p of kept) assert.equal(existsSync(p), true, `kept: ${basename(p)}`);
  // tensor get cleans the same way, and a directory restore its temporary directories.
  const tout = join(work, 't.raw');
  const tdead = plant(tempNameFor(tout, { pid: dead }));
  assert.equal(at1('tensor', 'get', regDir, 'base', 'lm_head.weight', '--out', tout).status, 0);
  assert.equal(existsSync(tdead), false);
  modelDir(join(work, 'md'));
  assert.equal(at1('registry', 'add', regDir, join(work, 'md'), '--name', 'md').status, 0);
  const dout = join(work, 'restored');
  const ddead = plant(tempNameFor(dout, { pid: dead }), true);
  const dlive = plant(tempNameFor(dout, { pid: process.pid }), true);
  assert.equal(at1('registry', 'get', regDir, 'md', '--out', dout).status, 0);
  assert.equal(existsSync(ddead), false);
  assert.equal(existsSync(dlive), true);
  assert.deepEqual(await removeStaleTemps(out), [], 'nothing more is stale');
});

test('kill -9 during get leaves a temp that the next get removes', async (t) => {
  const work = tempDir(t);
  // A version large enough that a restore is still running when it is killed: 48 MiB of noisy bf16.
  const n = 24 << 20;
  const data = new Uint8Array(n * 2);
  let x = 0x9e3779b9;
  for (let i = 0; i < data.length; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    data[i] = x & 0xff;
    data[i + 1] = (x >>> 8) & 0x3f;
    data[i + 2] = (x >>> 16) & 0xff;
    data[i + 3] = (x >>> 24) & 0x3f;
  }
  const file = join(work, 'big.safetensors');
  writeFileSync(file, serializeSafetensors([{ name: 'w', dtype: 'BF16', shape: [n / 1024, 1024], data }]));
  const regDir = join(work, 'reg');
  await initRegistry(regDir, file, { name: 'big', level: 'fast' });
  const outDir = join(work, 'out');
  mkdirSync(outDir);
  const out = join(outDir, 'big.safetensors');
  let killed = false;
  for (let attempt = 0; attempt < 3 && !killed; attempt++) {
    const child = spawn(process.execPath, [join(REPO, 'bin/at1.js'), 'registry', 'get', regDir, 'big', '--out', out], { env: { ...process.env, AT1_WORKERS: '0' }, stdio: 'ignore' });
    const exited = new Promise<void>((ok) => child.on('exit', () => ok()));
    let finished = false;
    void exited.then(() => (finished = true));
    while (!finished) {
      const tmp = temps(outDir).find((n) => statSync(join(outDir, n), { throwIfNoEntry: false })?.size);
      if (tmp) {
        child.kill('SIGKILL');
        killed = true;
        break;
      }
      await new Promise((ok) => setTimeout(ok, 2));
    }
    await exited;
    rmSync(out, { force: true });
  }
  if (!killed) return t.skip('every restore finished before it could be killed');
  const left = temps(outDir);
  assert.equal(left.length, 1, 'the killed get left its partial temp file');
  assert.ok(!existsSync(out), 'and no output');
  const r = at1('registry', 'get', regDir, 'big', '--out', out);
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(readdirSync(outDir), ['big.safetensors'], 'the next get removed the dead writer’s temp');
  assert.equal(sha256File(out), sha256File(file));
});

test('a tensor name with an escape sequence is printed escaped in tensor list (JSON keeps it exact)', async (t) => {
  const work = tempDir(t);
  const evil = 'x\u001b[2J\u001b[H\nintegrity: PASS (SHA-256)\r\u0085\u009b31m\u007f';
  const file = join(work, 'evil.safetensors');
  writeFileSync(file, serializeSafetensors([{ name: evil, dtype: 'F32', shape: [4], data: new Uint8Array(16) }, { name: 'ok', dtype: 'F32', shape: [2], data: new Uint8Array(8) }]));
  const regDir = join(work, 'reg');
  await initRegistry(regDir, file, { name: 'evil', level: 'fast' });
  const r = at1('tensor', 'list', regDir, 'evil');
  assert.equal(r.status, 0, r.stderr);
  assert.doesNotMatch(r.stdout, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/, 'no control character reaches the terminal');
  assert.equal(r.stdout.split('\n').filter((l) => /integrity/.test(l) && !l.includes('\\n')).length, 0, 'no forged line');
  assert.ok(r.stdout.includes('x\\x1b[2J\\x1b[H\\nintegrity: PASS (SHA-256)\\r\\u0085\\u009b31m\\x7f'), r.stdout);
  const j = at1('tensor', 'list', regDir, 'evil', '--json');
  assert.ok((JSON.parse(j.stdout) as { name: string }[]).some((row) => row.name === evil), 'JSON output is exact');
  // tensor get's message too.
  const g = at1('tensor', 'get', regDir, 'evil', evil, '--out', join(work, 't.raw'));
  assert.equal(g.status, 0, g.stderr);
  assert.doesNotMatch(g.stdout, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/);
  assert.equal(g.stdout.trim().split('\n').length, 1);
  // An error message quoting a stored name is escaped as well.
  const e = at1('tensor', 'get', regDir, 'evil', `${evil}-missing`, '--out', join(work, 'u.raw'));
  assert.notEqual(e.status, 0);
  assert.doesNotMatch(e.stderr, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/);
  assert.equal(e.stderr.trim().split('\n').length, 1, e.stderr);
});

test('verify and fsck print stored names escaped', (t) => {
  const lines: string[] = [];
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((s: string) => (lines.push(s), true)) as typeof process.stdout.write;
  t.after(() => void (process.stdout.write = write));
  try {
    printVerify({
      ok: false,
      versions: [{ version: 'v1', ok: false, tensors: 1, bytes: 10, failures: [{ version: 'v1', file: 'model.safetensors', tensor: 'a\nintegrity: PASS\u009b', reason: 'tensor "a\nintegrity: PASS\u009b": bad\u001b[0m' }] }],
    });
  } finally {
    process.stdout.write = write;
  }
  const text = lines.join('');
  assert.doesNotMatch(text, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/);
  assert.deepEqual(text.split('\n').filter(Boolean).slice(-1), ['integrity: FAIL']);
  assert.equal(text.split('\n').filter((l) => l.startsWith('integrity')).length, 1);
});

test('escapeControl renders C0, DEL, C1 and bidi controls as escapes and leaves other text alone', () => {
  assert.equal(escapeControl('a\nb\tc\rd'), 'a\\nb\\tc\\rd');
  assert.equal(escapeControl('\u001b[31m\u0000\u007f'), '\\x1b[31m\\x00\\x7f');
  assert.equal(escapeControl('\u0085\u009b\u2028\u202e'), '\\u0085\\u009b\\u2028\\u202e');
  assert.equal(escapeControl('model.layers.0.weight é 😀 \\n'), 'model.layers.0.weight é 😀 \\n');
});

test('errors without a type become one clear line: errno errors name the path, others are internal (exit 4), stacks only with AT1_DEBUG=1', () => {
  const enoent = Object.assign(new Error("ENOENT: no such file or directory, open '/x/y'"), { code: 'ENOENT', errno: -2, syscall: 'open', path: '/x/y' });
  const a = describeError(enoent, false);
  assert.equal(a.text, 'at1: error: could not open /x/y: no such file or directory (ENOENT)\n');
  assert.equal(a.exitCode, 2);
  const full = describeError(Object.assign(new Error('ENOSPC'), { code: 'ENOSPC', syscall: 'write', path: '/mnt/out' }), false);
  assert.match(full.text, /could not write \/mnt\/out: no space left on the device \(disk full\)/);
  assert.equal(full.exitCode, 4);
  const bug = describeError(new TypeError('cannot read properties of undefined'), false);
  assert.equal(bug.text, 'at1: internal error: cannot read properties of undefined\nat1: set AT1_DEBUG=1 for the stack\n');
  assert.equal(bug.exitCode, 4);
  assert.match(describeError(new TypeError('boom'), true).text, /internal error: boom\n.*TypeError: boom\n\s+at /s);
  const typed = describeError(new At1Error('E_INPUT', 'bad\nname'), false);
  assert.equal(typed.text, 'at1: error: bad\\nname\n');
  assert.equal(typed.exitCode, 2);
  // A Node error code that is not an errno is not mistaken for one.
  assert.equal(describeError(Object.assign(new Error('x'), { code: 'ERR_INVALID_ARG_TYPE' }), false).exitCode, 4);
});

test("--out '' is refused as bad input", async (t) => {
  const { regDir } = await baseRegistry(t);
  const r = at1('registry', 'get', regDir, 'base', '--out', '');
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /the path is empty/);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
});

test('--out /dev/stdout (a link to the caller\'s output) or any symbolic link is refused, and the link stays', async (t) => {
  const { regDir } = await baseRegistry(t);
  const work = tempDir(t);
  const target = join(work, 'target.safetensors');
  writeFileSync(target, 'mine');
  const link = join(work, 'link.safetensors');
  symlinkSync(target, link);
  for (const [out, why] of [['/dev/stdout', /symbolic link|system directory|FIFO|character device/], [link, /symbolic link.*give the target's path/]] as const) {
    for (const args of [['registry', 'get', regDir, 'base'], ['tensor', 'get', regDir, 'base', 'lm_head.weight']]) {
      assertCleanRefusal(at1(...args, '--out', out), out, why);
    }
  }
  assert.ok(lstatSync('/dev/stdout').isSymbolicLink(), '/dev/stdout is still the link');
  assert.ok(lstatSync(link).isSymbolicLink(), 'the link is left alone');
  const { readFileSync } = await import('node:fs');
  assert.equal(readFileSync(target, 'utf8'), 'mine', 'and so is its target');
  assertCleanRefusal(at1('registry', 'get', regDir, 'base', '--out', '/dev/at1-out.safetensors'), '/dev/at1-out.safetensors', /inside \/dev, a system directory/);
  assert.equal(existsSync('/dev/at1-out.safetensors'), false);
  // /dev/shm is a plain tmpfs: restoring there is fine.
  const shm = join('/dev/shm', `at1-out-${process.pid}.safetensors`);
  t.after(() => rmSync(shm, { force: true }));
  if (existsSync('/dev/shm')) assert.equal(at1('registry', 'get', regDir, 'base', '--out', shm).status, 0);
});
