/** The CLI is a thin layer over the public API: its files import only src/index.ts (plus node:, commander, cli-progress and each other). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO } from './helpers.js';

const ALLOWED = /^(?:node:.+|commander|cli-progress|\.\.\/index\.js|\.\/[a-z-]+\.js)$/;

test('src/cli imports nothing of the library but ../index.js', () => {
  const dir = join(REPO, 'src/cli');
  const files = readdirSync(dir).filter((f) => f.endsWith('.ts'));
  assert.ok(files.length >= 5);
  const bad: string[] = [];
  for (const f of files) {
    const text = readFileSync(join(dir, f), 'utf8');
    const specifiers = [...text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^'"]*?\bfrom\s+['"]([^'"]+)['"]/g), ...text.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g), ...text.matchAll(/(?:^|\n)\s*import\s+['"]([^'"]+)['"]/g)].map((m) => m[1]!);
    assert.ok(specifiers.length > 0, `${f} imports something`);
    for (const s of specifiers) if (!ALLOWED.test(s)) bad.push(`${f}: ${s}`);
  }
  assert.deepEqual(bad, [], 'deep imports from the CLI');
});
