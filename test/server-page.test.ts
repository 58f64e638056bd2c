/**
 * The page in a real browser: Debian's chromium driven by playwright-core
 * (no browser download) loads `/` against the fixture registry, checks the
 * tree, the numbers, a version's tensor table and strip, the diff view and
 * the verify button (SSE to PASS), at desktop and phone width, and saves
 * screenshots to test/artifacts/.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { EMBEDDED, family, readTensors, REPO } from './helpers.js';
import { buildFixtureRegistry, MODEL_DIR_VERSION, serve } from './server-helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = join(REPO, 'test/artifacts');

test('the page in chromium: tree, numbers, tensors, diff, verify; desktop and phone width', { skip: existsSync(CHROMIUM) ? false : `${CHROMIUM} is not installed (apt-get install chromium; .ci/run does it)` }, async (t) => {
  const { dir } = await buildFixtureRegistry(t);
  const s = await serve(t, { path: dir });
  const api = (await (await fetch(`${s.url}/v1/versions`)).json()) as { versions: { name: string; parent: string | null; ratio: number }[]; total: { ratio: number; versions: number } };
  mkdirSync(ARTIFACTS, { recursive: true });
  const browser: Browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'] });
  t.after(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const failed: string[] = [];
  // The page closes its verify EventSource itself once the result arrived; chromium reports that as ERR_ABORTED when the
  // server's end of the stream has not reached it yet (a race that load decides). Anything else is a failure.
  const ownClose = (r: { url(): string; failure(): { errorText: string } | null }): boolean => r.url().includes('/v1/verify') && r.failure()?.errorText === 'net::ERR_ABORTED';
  page.on('requestfailed', (r) => void (ownClose(r) || failed.push(`${r.url()} ${r.failure()?.errorText ?? ''}`)));
  page.on('pageerror', (e) => failed.push(String(e)));
  await page.goto(s.url + '/');
  await page.waitForSelector('body[data-ready="1"]');

  // The tree: one node per version, one edge per parent link, labels with name and ratio.
  const nodes = await page.$$eval('#tree .node', (gs) => gs.map((g) => ({ name: g.getAttribute('data-name'), text: g.textContent })));
  assert.deepEqual(nodes.map((n) => n.name).sort(), api.versions.map((v) => v.name).sort());
  for (const v of api.versions) assert.match(nodes.find((n) => n.name === v.name)!.text!, new RegExp(v.ratio.toFixed(3).replace('.', '\\.')), `${v.name} label shows its ratio`);
  const edges = await page.$$eval('#tree path.edge', (ps) => ps.map((p) => `${p.getAttribute('data-from')}>${p.getAttribute('data-to')}`));
  assert.deepEqual(edges.sort(), api.versions.filter((v) => v.parent !== null).map((v) => `${v.parent}>${v.name}`).sort());
  for (const v of family()) if (v.parent) assert.ok(edges.includes(`${v.parent}>${v.name}`), `edge ${v.parent} → ${v.name}`);

  // The numbers: the family's saving, one bar per version.
  assert.equal(await page.textContent('#total-saving'), `${(100 * (1 - api.total.ratio)).toFixed(1)}%`);
  assert.equal(await page.textContent('#total-versions'), `${api.total.versions} versions`);
  assert.equal(await page.locator('#bars .bar').count(), api.versions.length);

  // A version: click its node; the tensor table and the strip follow.
  await page.click('#tree .node[data-name="code-lastlayer"]');
  await page.waitForFunction(() => document.querySelector('#version-summary')?.textContent?.includes('coded against base'));
  const tensors = readTensors(join(EMBEDDED, 'code-lastlayer.safetensors'));
  await page.waitForFunction((n) => document.querySelectorAll('#tensors tbody tr').length === n, tensors.length);
  const rows = await page.$$eval('#tensors tbody tr', (trs) => trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent)));
  assert.deepEqual(rows.map((r) => r[0]).sort(), tensors.map((x) => x.name).sort());
  const lm = rows.find((r) => r[0] === 'lm_head.weight')!;
  assert.deepEqual([lm[1], lm[2]], ['BF16', '[2048, 128]']);
  assert.ok(lm[7]!.length > 0, 'the codec that won');
  assert.equal(await page.locator('#strip g').count(), tensors.length);
  assert.equal(lm[5], '0 B', 'lm_head is unchanged from base: nothing new stored for it');

  // The diff view: base → code-lastlayer changes exactly the tensors whose bytes differ.
  const base = new Map(readTensors(join(EMBEDDED, 'base.safetensors')).map((x) => [x.name, x.data]));
  const changed = tensors.filter((x) => !Buffer.from(x.data).equals(Buffer.from(base.get(x.name)!))).map((x) => x.name).sort();
  assert.ok(changed.length > 0 && changed.length < tensors.length);
  await page.selectOption('#diff-a', 'base');
  await page.selectOption('#diff-b', 'code-lastlayer');
  await page.click('#diff-btn');
  await page.waitForFunction(() => document.querySelector('#diff-summary')?.textContent?.includes('tensors changed'));
  const diffRows = await page.$$eval('#diff-table tbody tr', (trs) => trs.map((tr) => ({ name: tr.getAttribute('data-tensor'), status: tr.getAttribute('data-status'), cells: [...tr.querySelectorAll('td')].map((td) => td.textContent) })));
  assert.deepEqual(diffRows.filter((r) => r.status === 'changed').map((r) => r.name).sort(), changed);
  for (const r of diffRows.filter((x) => x.status === 'changed')) {
    assert.notEqual(r.cells[2], '0', `${r.name}: a relative L2 change`);
    assert.match(r.cells[3]!, /%$/, `${r.name}: fraction changed`);
  }
  assert.match((await page.textContent('#diff-summary'))!, new RegExp(`${changed.length} of ${tensors.length} tensors changed`));

  // Verify every version: progress by SSE, ending in PASS.
  await page.selectOption('#verify-target', '');
  await page.click('#verify-btn');
  await page.waitForFunction(() => document.querySelector('#verify-result')?.textContent !== '', undefined, { timeout: 60_000 });
  assert.equal(await page.textContent('#verify-result'), 'integrity: PASS (SHA-256)');
  assert.equal(await page.$eval('#verify-progress', (p) => (p as HTMLProgressElement).value), 1);
  await page.screenshot({ path: join(ARTIFACTS, 'server-page-desktop.png'), fullPage: true });

  // Phone width: nothing wider than the screen but the scrolling tables.
  const phone = await browser.newPage({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
  phone.on('requestfailed', (r) => void (ownClose(r) || failed.push(`${r.url()} ${r.failure()?.errorText ?? ''}`)));
  phone.on('pageerror', (e) => failed.push(String(e)));
  await phone.goto(s.url + '/');
  await phone.waitForSelector('body[data-ready="1"]');
  assert.ok((await phone.evaluate(() => document.documentElement.scrollWidth)) <= 390, 'no sideways scrolling of the page at 390 px');
  assert.equal(await phone.locator('#tree .node').count(), api.versions.length);
  await phone.selectOption('#verify-target', MODEL_DIR_VERSION);
  await phone.click('#verify-btn');
  await phone.waitForFunction(() => document.querySelector('#verify-result')?.textContent !== '', undefined, { timeout: 60_000 });
  assert.equal(await phone.textContent('#verify-result'), 'integrity: PASS (SHA-256)');
  await phone.screenshot({ path: join(ARTIFACTS, 'server-page-phone.png'), fullPage: true });
  assert.deepEqual(failed, [], 'no failed request or script error');
});
