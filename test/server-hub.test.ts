/**
 * Hugging Face Hub compatibility, proven with the real client
 * (@huggingface/hub, pinned 2.17.x) pointed at a local `at1 serve`: every
 * file of a version downloads byte-exact, listings and model info are
 * right, the cache and snapshot downloads work, and missing files,
 * revisions and repositories are clean not-founds with the Hub's error codes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { downloadFile, downloadFileToCacheDir, fileDownloadInfo, HubApiError, listFiles, modelInfo, pathsInfo, snapshotDownload } from '@huggingface/hub';
import { EMBEDDED, family, tempDir } from './helpers.js';
import { buildFixtureRegistry, MODEL_DIR_FILES, MODEL_DIR_VERSION, serve } from './server-helpers.js';

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** What each file of the model-directory version holds (server-helpers.ts builds it from these). */
function modelDirSource(path: string): Buffer {
  const from: Record<string, string> = { 'model.safetensors': 'code-lora.safetensors', 'tokenizer/special_tokens_map.json': 'special_tokens_map.json' };
  return readFileSync(join(EMBEDDED, from[path] ?? path));
}

test('the @huggingface/hub client against at1 serve', async (t) => {
  const { dir } = await buildFixtureRegistry(t);
  const s = await serve(t, { path: dir });
  const hubUrl = s.url;
  const repo = { type: 'model' as const, name: 'local/fam' };
  const versions = (await (await fetch(`${hubUrl}/v1/versions`)).json()) as { versions: { name: string; commit: string }[] };
  const commitOf = (n: string): string => versions.versions.find((v) => v.name === n)!.commit;

  await t.test('listFiles: every file of a model-directory version, with sizes and LFS SHA-256', async () => {
    const files = [];
    for await (const f of listFiles({ repo, revision: MODEL_DIR_VERSION, recursive: true, hubUrl })) files.push(f);
    assert.deepEqual(files.filter((f) => f.type === 'file').map((f) => f.path).sort(), [...MODEL_DIR_FILES].sort());
    assert.deepEqual(files.filter((f) => f.type === 'directory').map((f) => f.path), ['tokenizer']);
    for (const f of files.filter((x) => x.type === 'file')) {
      const bytes = modelDirSource(f.path);
      assert.equal(f.size, bytes.length, f.path);
      assert.equal(f.lfs?.oid, sha(bytes), f.path);
    }
    const top = [];
    for await (const f of listFiles({ repo, revision: MODEL_DIR_VERSION, hubUrl })) top.push(f.path);
    assert.ok(!top.includes('tokenizer/special_tokens_map.json') && top.includes('tokenizer'), 'not recursive: the folder, not what is in it');
  });

  await t.test('downloadFile: every file of the version byte-exact', async () => {
    for (const path of MODEL_DIR_FILES) {
      const blob = await downloadFile({ repo, path, revision: MODEL_DIR_VERSION, hubUrl });
      assert.ok(blob, path);
      assert.ok(Buffer.from(await blob.arrayBuffer()).equals(modelDirSource(path)), `${path} byte-exact`);
    }
    for (const v of family()) {
      const blob = await downloadFile({ repo, path: v.file, revision: v.name, hubUrl });
      assert.equal(sha(new Uint8Array(await blob!.arrayBuffer())), v.sha256, `${v.name}/${v.file}`);
    }
    // A slice is a Range request the server answers from the chunks it touches.
    const blob = await downloadFile({ repo, path: 'model.safetensors', revision: MODEL_DIR_VERSION, hubUrl });
    const part = Buffer.from(await blob!.slice(100_000, 100_400).arrayBuffer());
    assert.ok(part.equals(modelDirSource('model.safetensors').subarray(100_000, 100_400)));
  });

  await t.test('fileDownloadInfo: size and ETag from the Range: bytes=0-0 probe', async () => {
    const info = await fileDownloadInfo({ repo, path: 'model.safetensors', revision: MODEL_DIR_VERSION, hubUrl });
    assert.equal(info?.size, modelDirSource('model.safetensors').length);
    assert.equal(info?.etag, `"${sha(modelDirSource('model.safetensors'))}"`);
  });

  await t.test('modelInfo: the repository at a revision, its commit and files', async () => {
    const info = await modelInfo({ name: 'local/fam', revision: MODEL_DIR_VERSION, hubUrl, additionalFields: ['sha', 'filePaths'] });
    assert.equal(info.name, 'local/fam');
    assert.equal(info.sha, commitOf(MODEL_DIR_VERSION));
    assert.deepEqual([...info.filePaths].sort(), [...MODEL_DIR_FILES].sort());
    const main = await modelInfo({ name: 'local/fam', hubUrl, additionalFields: ['sha'] });
    assert.equal(main.sha, commitOf(MODEL_DIR_VERSION), 'main is the newest version');
  });

  await t.test('pathsInfo, downloadFileToCacheDir and snapshotDownload through the Hub cache layout', async (tt) => {
    const cacheDir = tempDir(tt, 'at1-hub-cache-');
    const info = await pathsInfo({ repo, paths: ['config.json', 'tokenizer', 'missing.bin'], revision: MODEL_DIR_VERSION, hubUrl, expand: true });
    assert.deepEqual(info.map((i) => [i.path, i.type]), [['config.json', 'file'], ['tokenizer', 'directory']]);
    assert.equal(info[0]!.lastCommit?.id, commitOf(MODEL_DIR_VERSION));
    const p = await downloadFileToCacheDir({ repo, path: 'config.json', revision: MODEL_DIR_VERSION, hubUrl, cacheDir });
    assert.ok(readFileSync(p).equals(modelDirSource('config.json')));
    const snap = await snapshotDownload({ repo, revision: MODEL_DIR_VERSION, hubUrl, cacheDir });
    assert.match(snap, new RegExp(`snapshots/${commitOf(MODEL_DIR_VERSION)}$`));
    for (const path of MODEL_DIR_FILES) assert.ok(readFileSync(join(snap, path)).equals(modelDirSource(path)), `snapshot ${path}`);
    // The commit id works as a revision, as a Hub client passes it back.
    const byCommit = await downloadFile({ repo, path: 'config.json', revision: commitOf(MODEL_DIR_VERSION), hubUrl });
    assert.ok(Buffer.from(await byCommit!.arrayBuffer()).equals(modelDirSource('config.json')));
  });

  await t.test('not found: a missing file is null; a missing revision or repository is a 404 with the Hub error code', async () => {
    assert.equal(await downloadFile({ repo, path: 'no-such-file.bin', revision: MODEL_DIR_VERSION, hubUrl }), null);
    await assert.rejects(downloadFile({ repo, path: 'config.json', revision: 'no-such-version', hubUrl }), (e: unknown) => e instanceof HubApiError && e.statusCode === 404 && /no-such-version/.test(e.message));
    await assert.rejects(downloadFile({ repo: { type: 'model', name: 'local/nope' }, path: 'config.json', revision: MODEL_DIR_VERSION, hubUrl }), (e: unknown) => e instanceof HubApiError && e.statusCode === 404 && /local\/nope/.test(e.message));
    await assert.rejects(modelInfo({ name: 'local/fam', revision: 'no-such-version', hubUrl }), (e: unknown) => e instanceof HubApiError && e.statusCode === 404);
    for (const [path, code] of [
      [`/local/fam/resolve/${MODEL_DIR_VERSION}/nope.json`, 'EntryNotFound'],
      ['/local/fam/resolve/no-such-version/config.json', 'RevisionNotFound'],
      [`/local/nope/resolve/${MODEL_DIR_VERSION}/config.json`, 'RepoNotFound'],
      ['/api/models/local/nope/revision/main', 'RepoNotFound'],
      [`/api/models/local/fam/tree/${MODEL_DIR_VERSION}/nope`, 'EntryNotFound'],
    ]) {
      const r = await fetch(hubUrl + path);
      assert.equal(r.status, 404, path);
      assert.equal(r.headers.get('x-error-code'), code, path);
      assert.equal(typeof ((await r.json()) as { error: unknown }).error, 'string');
    }
  });

  await t.test('what the Python client reads: HEAD with identity encoding, X-Repo-Commit, X-Linked-Etag/-Size; form-encoded paths-info', async () => {
    const r = await fetch(`${hubUrl}/local/fam/resolve/${MODEL_DIR_VERSION}/model.safetensors`, { method: 'HEAD', headers: { 'accept-encoding': 'identity' } });
    const bytes = modelDirSource('model.safetensors');
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('x-repo-commit'), commitOf(MODEL_DIR_VERSION));
    assert.equal(r.headers.get('x-linked-etag'), `"${sha(bytes)}"`);
    assert.equal(r.headers.get('etag'), `"${sha(bytes)}"`);
    assert.equal(r.headers.get('x-linked-size'), String(bytes.length));
    assert.equal(r.headers.get('content-length'), String(bytes.length));
    assert.equal(r.headers.get('cache-control'), 'no-cache', 'a version name can come back with other bytes: revalidate');
    const pinned = await fetch(`${hubUrl}/local/fam/resolve/${commitOf(MODEL_DIR_VERSION)}/model.safetensors`, { method: 'HEAD' });
    assert.match(pinned.headers.get('cache-control') ?? '', /immutable/, 'a commit id names these bytes for good');
    const form = await fetch(`${hubUrl}/api/models/local/fam/paths-info/${MODEL_DIR_VERSION}`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'paths=config.json&paths=model.safetensors&expand=True' });
    const items = (await form.json()) as { path: string; size: number; lfs: { oid: string } }[];
    assert.deepEqual(items.map((i) => [i.path, i.size, i.lfs.oid]), [['config.json', modelDirSource('config.json').length, sha(modelDirSource('config.json'))], ['model.safetensors', bytes.length, sha(bytes)]]);
  });
});
