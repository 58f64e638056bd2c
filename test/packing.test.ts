/**
 * Packs (docs/FORMAT.md §6): small tensors share objects, reads of a packed
 * tensor touch only the pack chunks holding it, damage is named by tensor,
 * the tensor-count cap refuses cleanly, and registries written before packs
 * still open and restore unchanged.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, lstatSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { add, getVersion, initRegistry, verifyRegistry, IntegrityError, Registry, At1Error } from '../src/index.js';
import { MAX_TENSORS, parseSafetensorsHeader, serializeSafetensors, type TensorToWrite } from '../src/format/safetensors.js';
import { parseManifest, serializeManifest, type SafetensorsFile } from '../src/registry/manifest.js';
import { findTensor, readTensorBytes, rowRange, tensorObjects } from '../src/registry/tensor-access.js';
import { objectKey } from '../src/store/object-store.js';
import { at1, craftSafetensors, EMBEDDED, readTensors, REPO, sha256File, tempDir, treeDigest } from './helpers.js';

const V1_FIXTURE = join(REPO, 'test/fixtures/registry-v1');

/** Real weights: the bf16 values of the fixture base's lm_head, as bf16 and (exactly widened) f32 bit patterns. */
function realValues(): Uint16Array {
  const t = readTensors(join(EMBEDDED, 'base.safetensors')).find((x) => x.name === 'lm_head.weight')!;
  return new Uint16Array(new Uint8Array(t.data).buffer);
}

/**
 * 5,000 one-element bf16 tensors (w.0000 … w.4999, in data order), 400
 * three-element f32 tensors (x.000 … x.399, which come first: f32 sorts
 * before bf16) and one real 16 KiB tensor in the middle of the w's (its name
 * sorts between w.2500 and w.2501), so packed runs are cut by an unpacked one.
 */
function manySmallTensors(): { tensors: TensorToWrite[]; bytes: Uint8Array } {
  const v = realValues();
  const tensors: TensorToWrite[] = [];
  for (let i = 0; i < 5000; i++) tensors.push({ name: `w.${String(i).padStart(4, '0')}`, dtype: 'BF16', shape: [1], data: new Uint8Array(v.buffer.slice(i * 2, i * 2 + 2)) });
  for (let i = 0; i < 400; i++) {
    const f = new Uint32Array(3);
    for (let j = 0; j < 3; j++) f[j] = v[10000 + i * 3 + j]! << 16; // bf16 -> f32, exact
    tensors.push({ name: `x.${String(i).padStart(3, '0')}`, dtype: 'F32', shape: [3], data: new Uint8Array(f.buffer) });
  }
  const big = readTensors(join(EMBEDDED, 'base.safetensors')).find((x) => x.name === 'model.layers.0.self_attn.k_proj.weight')!;
  tensors.push({ name: 'w.2500.big', dtype: big.dtype, shape: big.shape, data: new Uint8Array(big.data) });
  return { tensors, bytes: serializeSafetensors(tensors) };
}

/** Bytes on disk under `dir`: apparent sizes of its files (du -sb, files only) and allocated blocks of files and directories (du -s). */
function diskUsage(dir: string): { apparent: number; allocated: number; files: number } {
  let apparent = 0;
  let allocated = 0;
  let files = 0;
  const walk = (d: string): void => {
    allocated += lstatSync(d).blocks * 512;
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      const st = lstatSync(p);
      if (st.isDirectory()) walk(p);
      else {
        apparent += st.size;
        allocated += st.blocks * 512;
        files++;
      }
    }
  };
  walk(dir);
  return { apparent, allocated, files };
}

function fileOf(m: { files: unknown[] }): SafetensorsFile {
  const f = m.files[0] as SafetensorsFile;
  assert.equal(f.kind, 'safetensors');
  return f;
}

test('5,000 one-element tensors: packed into a few objects, restored byte-exact, verified, stored in about their size', async (t) => {
  const work = tempDir(t);
  const { bytes } = manySmallTensors();
  const input = join(work, 'many.safetensors');
  writeFileSync(input, bytes);
  const regDir = join(work, 'reg');
  const { registry, base } = await initRegistry(regDir, input);
  const f = fileOf(base.manifest);
  assert.deepEqual(f.packs?.map((k) => [k.dtype, k.length, k.chunks.length]), [['F32', 400 * 12, 1], ['BF16', 5000 * 2, 1]]);
  assert.equal(f.tensors.filter((x) => x.pack).length, 5400);
  assert.deepEqual(f.tensors.find((x) => x.name === 'w.2500.big')!.pack, undefined, 'a 16 KiB tensor is chunked on its own');
  const onDisk = JSON.parse(readFileSync(join(regDir, 'versions', 'many.json'), 'utf8')) as { formatVersion: number };
  assert.equal(onDisk.formatVersion, 2, 'a manifest with packs is format version 2');

  const out = join(work, 'out.safetensors');
  await getVersion(registry, 'many', out);
  assert.deepEqual(readFileSync(out), Buffer.from(bytes));
  const report = await verifyRegistry(registry, 'many');
  assert.equal(report.ok, true, JSON.stringify(report.versions[0]?.failures.slice(0, 3)));
  assert.equal(report.versions[0]!.tensors, 5401);

  // 3 objects (the header blob, two packs) and one for the big tensor, instead of one per tensor.
  const packed = diskUsage(regDir);
  assert.equal((await registry.store.list()).size, 4);
  // The same file without packs: one object per tensor, each at least a disk block.
  const plainDir = join(work, 'plain');
  await initRegistry(plainDir, input, { settings: { packBytes: 0 } });
  const plain = diskUsage(plainDir);
  t.diagnostic(`file ${bytes.length} B; packed registry ${packed.apparent} B in files, ${packed.allocated} B allocated, ${packed.files} files; unpacked ${plain.apparent} B, ${plain.allocated} B allocated, ${plain.files} files`);
  assert.ok(packed.files <= 8, `${packed.files} files`);
  assert.ok(plain.files > 1500, `${plain.files} files`); // one object per distinct tensor value (many of the 2-byte values repeat)
  // The manifest lists every tensor (about 180 bytes each, as in any manifest); everything else is a few small objects.
  assert.ok(packed.apparent < 3 * bytes.length, `registry holds ${packed.apparent} bytes for a ${bytes.length}-byte file`);
  assert.ok(packed.allocated < 3.5 * bytes.length, `registry occupies ${packed.allocated} bytes on disk for a ${bytes.length}-byte file`);
  assert.ok(plain.allocated > 8 * packed.allocated, `unpacked ${plain.allocated} vs packed ${packed.allocated} bytes on disk`);
});

test('tensor get of a packed tensor: whole, a byte range, rows; exact, and only the pack chunks holding it are read', async (t) => {
  const work = tempDir(t);
  const { tensors, bytes } = manySmallTensors();
  const input = join(work, 'many.safetensors');
  writeFileSync(input, bytes);
  const regDir = join(work, 'reg');
  // 1024-element chunks: the f32 pack (1200 elements) has 2 chunks of up to 4 KiB, the bf16 pack (5000) 5 of up to 2 KiB.
  await initRegistry(regDir, input, { chunkElements: 1024 });
  const data = new Map(tensors.map((x) => [x.name, x.data]));
  const cases: { name: string; range?: { start: number; end: number }; rows?: [number, number]; chunks: [number, number[]] }[] = [
    { name: 'w.1500', chunks: [1, [1]] }, // bf16 pack bytes 3000..3002: chunk 1 only
    { name: 'w.4999', chunks: [1, [4]] }, // the last tensor: the short last chunk
    { name: 'x.341', chunks: [0, [0, 1]] }, // f32 pack bytes 4092..4104: across chunks 0 and 1
    { name: 'x.341', range: { start: 0, end: 4 }, chunks: [0, [0]] }, // its first element: chunk 0 only
    { name: 'x.341', rows: [1, 3], chunks: [0, [1]] }, // its last two elements: chunk 1 only
    { name: 'x.341', range: { start: 2, end: 7 }, chunks: [0, [0, 1]] }, // unaligned, across the boundary
    { name: 'x.000', rows: [0, 0], chunks: [0, []] }, // empty: reads nothing
  ];
  for (const c of cases) {
    const reg = await Registry.open(regDir); // a fresh reader: no cached chunks, counters at zero
    const loc = await findTensor(reg, 'many', c.name);
    const range = c.rows ? rowRange(loc.tensor, c.rows[0], c.rows[1]) : c.range;
    const got = await readTensorBytes(reg, loc, range);
    const want = data.get(c.name)!.subarray(range?.start ?? 0, range?.end ?? loc.tensor.length);
    assert.deepEqual(Buffer.from(got), Buffer.from(want), `${c.name} ${JSON.stringify(range)}`);
    const pack = loc.file.packs![c.chunks[0]]!;
    let expected = 0;
    for (const i of c.chunks[1]) expected += (await reg.store.size(pack.chunks[i]!))!;
    assert.equal(reg.store.stats.bytesRead, expected, `${c.name} ${JSON.stringify(range)} read ${reg.store.stats.bytesRead} bytes, its pack chunks ${JSON.stringify(c.chunks[1])} hold ${expected}`);
  }
  // The objects a packed tensor comes from: the pack chunks holding it.
  const reg = await Registry.open(regDir);
  const x341 = await findTensor(reg, 'many', 'x.341');
  assert.deepEqual(tensorObjects(x341), x341.file.packs![0]!.chunks.slice(0, 2));
  assert.deepEqual(tensorObjects(await findTensor(reg, 'many', 'w.2500.big')), (await findTensor(reg, 'many', 'w.2500.big')).tensor.chunks);
  // The CLI: whole, --rows and --bytes, raw and npy.
  const want = data.get('x.341')!;
  for (const [args, expect] of [
    [[], want],
    [['--rows', '1:3'], want.subarray(4, 12)],
    [['--bytes', '2:7'], want.subarray(2, 7)],
  ] as [string[], Uint8Array][]) {
    const out = join(work, `t-${args.join('')}.bin`);
    const r = at1('tensor', 'get', regDir, 'many', 'x.341', '--out', out, ...args);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(readFileSync(out), Buffer.from(expect), args.join(' '));
  }
  const npy = join(work, 'w.npy');
  const r = at1('tensor', 'get', regDir, 'many', 'w.0007', '--out', npy, '--format', 'npy');
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(readFileSync(npy).subarray(-2), Buffer.from(data.get('w.0007')!));
});

test('a damaged pack object: verify names every tensor in it (and only those), restore refuses, other tensors still read', async (t) => {
  const work = tempDir(t);
  const { bytes } = manySmallTensors();
  const input = join(work, 'many.safetensors');
  writeFileSync(input, bytes);
  const regDir = join(work, 'reg');
  const { registry } = await initRegistry(regDir, input, { chunkElements: 1024 });
  const f = fileOf(await registry.manifest('many'));
  const bf16 = f.packs!.findIndex((k) => k.dtype === 'BF16');
  const damaged = f.packs![bf16]!.chunks[2]!; // bf16 elements 2048..3071: tensors w.2048 … w.3071
  const path = join(regDir, ...objectKey(damaged).split('/'));
  const b = readFileSync(path);
  b[Math.floor(b.length * 0.6)]! ^= 0x10;
  writeFileSync(path, b);

  const fresh = await Registry.open(regDir);
  const report = await verifyRegistry(fresh, 'many');
  assert.equal(report.ok, false);
  const failed = report.versions[0]!.failures.map((x) => x.tensor).sort();
  const expected = Array.from({ length: 1024 }, (_, i) => `w.${String(2048 + i)}`).sort();
  assert.deepEqual(failed, expected);
  assert.ok(report.versions[0]!.failures.every((x) => x.reason.includes(damaged)), 'each failure names the damaged object');

  const out = join(work, 'out.safetensors');
  await assert.rejects(getVersion(fresh, 'many', out), (e: unknown) => e instanceof IntegrityError && e.where.tensor === 'w.2048');
  assert.equal(existsSync(out), false, 'no output file after a failed restore');
  const cli = at1('registry', 'verify', regDir, 'many');
  assert.equal(cli.status, 1);
  assert.match(cli.stdout + cli.stderr, /w\.2048/);
  // Tensors in the other pack chunks, and the big tensor between them, are untouched.
  for (const name of ['w.2047', 'w.3072', 'w.2500.big', 'x.100']) {
    const loc = await findTensor(fresh, 'many', name);
    assert.equal((await readTensorBytes(fresh, loc)).length, loc.tensor.length);
  }
  await assert.rejects(readTensorBytes(fresh, await findTensor(fresh, 'many', 'w.3000')), (e: unknown) => e instanceof At1Error && e.message.includes('w.3000'));
});

test('small tensors of three dtypes alternating in data order, 8-element chunks, on worker threads: every pack chunk boundary restores exact', async (t) => {
  const work = tempDir(t);
  const v = realValues();
  const entries: string[] = [];
  const parts: Uint8Array[] = [];
  const want = new Map<string, Uint8Array>();
  let at = 0;
  let src = 0;
  for (let i = 0; i < 300; i++) {
    const [dtype, n, w] = i % 50 === 49 ? (['BF16', 4000, 2] as const) : ([['F32', 3, 4], ['BF16', 5, 2], ['U8', 7, 1]] as const)[i % 3]!;
    const data = new Uint8Array(n * w);
    for (let j = 0; j < n; j++) {
      const x = v[src++ % v.length]!;
      if (dtype === 'F32') new DataView(data.buffer).setUint32(j * 4, x << 16, true);
      else if (dtype === 'BF16') new DataView(data.buffer).setUint16(j * 2, x, true);
      else data[j] = x >> 8;
    }
    const name = `m.${String(i).padStart(3, '0')}`;
    entries.push(`"${name}":{"dtype":"${dtype}","shape":[${n}],"data_offsets":[${at},${at + data.length}]}`);
    parts.push(data);
    want.set(name, data);
    at += data.length;
  }
  const file = join(work, 'mixed.safetensors');
  const bytes = craftSafetensors(`{${entries.join(',')}}`, new Uint8Array(Buffer.concat(parts)));
  writeFileSync(file, bytes);
  const settings = { workers: 'always' } as const; // the pooled path on small data
  {
    const { registry, base } = await initRegistry(join(work, 'reg'), file, { chunkElements: 8, settings });
    const f = fileOf(base.manifest);
    assert.deepEqual(f.packs!.map((k) => [k.dtype, k.chunks.length]), [['F32', Math.ceil((98 * 3) / 8)], ['BF16', Math.ceil((98 * 5) / 8)], ['U8', Math.ceil((98 * 7) / 8)]]);
    assert.equal(f.tensors.filter((x) => !x.pack).length, 6, 'the six 8000-byte tensors are chunked on their own');
    const out = join(work, 'out.safetensors');
    await getVersion(registry, 'mixed', out);
    assert.deepEqual(readFileSync(out), Buffer.from(bytes));
    assert.equal((await verifyRegistry(registry, 'mixed')).ok, true);
    for (const name of ['m.000', 'm.001', 'm.002', 'm.049', 'm.148', 'm.299']) {
      const reg = await Registry.open(join(work, 'reg'), { settings });
      assert.deepEqual(Buffer.from(await readTensorBytes(reg, await findTensor(reg, 'mixed', name))), Buffer.from(want.get(name)!), name);
    }
  }
});

test(`the tensor-count cap: ${MAX_TENSORS} tensors parse, one more is refused (exit 2, rule S5-count, naming the file) and the registry is unchanged`, async (t) => {
  const work = tempDir(t);
  const entries = (n: number): string => {
    const parts: string[] = [];
    for (let i = 0; i < n; i++) parts.push(`"t${i}":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}`);
    return `{${parts.join(',')}}`;
  };
  const atCap = craftSafetensors(entries(MAX_TENSORS));
  assert.equal(parseSafetensorsHeader(atCap, atCap.length, 'at-cap.safetensors').tensors.length, MAX_TENSORS);
  const over = craftSafetensors(entries(MAX_TENSORS + 1));
  const file = join(work, 'too-many.safetensors');
  writeFileSync(file, over);
  const regDir = join(work, 'reg');
  await initRegistry(regDir, join(EMBEDDED, 'base.safetensors'));
  const before = treeDigest(regDir);
  const r = at1('registry', 'add', regDir, file);
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /S5-count/);
  assert.ok(r.stderr.includes(file), r.stderr);
  assert.match(r.stderr, /262144/);
  assert.equal(treeDigest(regDir), before, 'nothing was written');
  // A syntax error later in the header does not hide the cap: it is refused as soon as the parser passes it.
  const broken = craftSafetensors(entries(MAX_TENSORS + 1).slice(0, -1) + ',');
  assert.throws(() => parseSafetensorsHeader(broken, broken.length, 'x'), (e: unknown) => e instanceof At1Error && e.code === 'E_SAFETENSORS' && /S5-count/.test(e.message));
});

/** The fixture registry's inputs, rebuilt: seven real tensors (norms, layer-0 k/v projections) of a fixture version. */
function subset(version: string): Uint8Array {
  const keep = /layernorm|model\.norm|layers\.0\.self_attn\.[kv]_proj/;
  return serializeSafetensors(readTensors(join(EMBEDDED, `${version}.safetensors`)).filter((x) => keep.test(x.name)).map((x) => ({ ...x, data: new Uint8Array(x.data) })));
}

test('a registry written before packs opens, verifies and restores unchanged; its manifests read back byte for byte; adding to it keeps its small tensors unpacked', async (t) => {
  const work = tempDir(t);
  const regDir = join(work, 'reg');
  cpSync(V1_FIXTURE, regDir, { recursive: true });
  const registry = await Registry.open(regDir);
  for (const name of ['small-base', 'small-prose-step0025']) {
    const bytes = new Uint8Array(readFileSync(join(regDir, 'versions', `${name}.json`)));
    const m = parseManifest(bytes, name);
    assert.equal(m.formatVersion, 1);
    assert.deepEqual(Buffer.from(serializeManifest(m)), Buffer.from(bytes), `${name}: a version 1 manifest parses and serializes exactly as written`);
    assert.equal(fileOf(m).packs, undefined);
  }
  const report = await verifyRegistry(registry, undefined);
  assert.equal(report.ok, true, JSON.stringify(report.versions.flatMap((v) => v.failures).slice(0, 3)));
  for (const [name, version] of [['small-base', 'base'], ['small-prose-step0025', 'prose-step0025']] as const) {
    const out = join(work, `${name}.safetensors`);
    await getVersion(registry, name, out);
    assert.deepEqual(readFileSync(out), Buffer.from(subset(version)), `${name} restores byte-exact`);
  }
  // A new version added by this build: its five norms' parents are chunked on their own, so they stay so (and delta-code against them).
  const input = join(work, 'small-prose-step0050.safetensors');
  writeFileSync(input, subset('prose-step0050'));
  const r = await add(registry, input, { parent: 'small-prose-step0025' });
  assert.equal(fileOf(r.manifest).packs, undefined);
  const onDisk = parseManifest(new Uint8Array(readFileSync(join(regDir, 'versions', 'small-prose-step0050.json'))), 'small-prose-step0050');
  assert.equal(onDisk.formatVersion, 1, 'nothing packed: still a version 1 manifest, readable by older builds');
  const out = join(work, 'restored-0050.safetensors');
  await getVersion(registry, 'small-prose-step0050', out);
  assert.equal(sha256File(out), sha256File(input));

  // The same three files in a new registry: their norms are packed, and the family costs no more.
  const fresh = join(work, 'fresh');
  const { registry: reg2 } = await initRegistry(fresh, join(work, 'small-base.safetensors'), { name: 'small-base' });
  const ft = join(work, 'small-prose-step0025.safetensors');
  await add(reg2, ft, { name: 'small-prose-step0025', parent: 'small-base' });
  const r2 = await add(reg2, input, { parent: 'small-prose-step0025' });
  const packs = fileOf(r2.manifest).packs!;
  assert.deepEqual(packs.map((k) => [k.dtype, k.length]), [['BF16', 5 * 256]]);
  const old = diskUsage(join(regDir, 'objects')).apparent;
  const now = diskUsage(join(fresh, 'objects')).apparent;
  t.diagnostic(`objects of the three versions: unpacked norms ${old} bytes, packed ${now} bytes`);
  assert.ok(now <= old * 1.02, `packed ${now} vs unpacked ${old} bytes of objects`);
  assert.equal((await verifyRegistry(reg2, undefined)).ok, true);
});

test('manifest versions: packs need format version 2; a version 1 manifest ignores pack keys; unknown versions are refused', async (t) => {
  const work = tempDir(t);
  const input = join(work, 'many.safetensors');
  writeFileSync(input, manySmallTensors().bytes);
  const { registry } = await initRegistry(join(work, 'reg'), input, { chunkElements: 1024 });
  const bytes = serializeManifest(await registry.manifest('many'));
  const j = JSON.parse(new TextDecoder().decode(bytes)) as Record<string, unknown>;
  assert.equal(j.formatVersion, 2);
  const withVersion = (v: number): Uint8Array => new TextEncoder().encode(JSON.stringify({ ...j, formatVersion: v }));
  // Read as version 1, "pack" and "packs" are unknown keys: the packed tensors then lack their chunks, which is damage, not a silent misread.
  assert.throws(() => parseManifest(withVersion(1), 'many'), (e: unknown) => e instanceof At1Error && e.code === 'E_CORRUPT' && /chunks/.test(e.message));
  assert.throws(() => parseManifest(withVersion(3), 'many'), (e: unknown) => e instanceof At1Error && e.code === 'E_UNSUPPORTED');
  // Damaged pack fields are refused by the parser.
  const f = (j.files as Record<string, unknown>[])[0] as { packs: { length: number }[]; tensors: { name: string; pack?: [number, number] }[] };
  const mutate = (edit: (c: typeof f) => void): Uint8Array => {
    const c = JSON.parse(JSON.stringify(f)) as typeof f;
    edit(c);
    return new TextEncoder().encode(JSON.stringify({ ...j, files: [c] }));
  };
  const packed = f.tensors.findIndex((x) => x.pack !== undefined && x.pack[1] > 0);
  for (const [what, edit] of [
    ['a gap in a pack', (c: typeof f) => void (c.tensors[packed]!.pack![1] += 2)],
    ['a pack that does not exist', (c: typeof f) => void (c.tensors[packed]!.pack![0] = 7)],
    ['a pack longer than its tensors', (c: typeof f) => void (c.packs[0]!.length += 12)],
    ['a pack of the wrong dtype', (c: typeof f) => void (c.tensors[packed]!.pack![0] = 1 - c.tensors[packed]!.pack![0]!)],
  ] as [string, (c: typeof f) => void][]) {
    assert.throws(() => parseManifest(mutate(edit), 'many'), (e: unknown) => e instanceof At1Error && e.code === 'E_CORRUPT', what);
  }
  // With packing disabled a file of small tensors gives a version 1 manifest; by default the same file is packed.
  const small = join(work, 'small.safetensors');
  writeFileSync(small, subset('base'));
  for (const [env, version] of [['0', 1], [undefined, 2]] as const) {
    const dir = join(work, `small-${env ?? 'default'}`);
    const { base } = await initRegistry(dir, small, env === undefined ? {} : { settings: { packBytes: Number(env) } });
    assert.equal(fileOf(base.manifest).packs?.length, version === 2 ? 1 : undefined);
    assert.equal((JSON.parse(readFileSync(join(dir, 'versions', 'small.json'), 'utf8')) as { formatVersion: number }).formatVersion, version);
  }
});
