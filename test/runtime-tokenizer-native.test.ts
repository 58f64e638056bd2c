/**
 * Cross-check of src/runtime/tokenizer.ts (@huggingface/tokenizers, pure JS) against the Rust
 * `tokenizers` core through a native binding (@anush008/tokenizers 0.6.0, a devDependency with
 * prebuilt binaries from the npm registry). test/runtime-tokenizer.test.ts checks our tokenizer
 * against expectations written in the test; this one against the reference implementation:
 *
 * - ids: encode (no special tokens) gives the native binding's ids on every file: the corpus
 *   snippets and the Unicode sample kept in the repo, and every prose and code file of
 *   ../shared/fixtures/corpus when it is there; with the fixture's tokenizer and with a byte-fallback
 *   tokenizer (test/runtime-helpers.ts) that turns every character outside its vocabulary into
 *   UTF-8 byte tokens.
 * - decode: the same text as the native decode of the same ids, with and without special tokens.
 * - round trip: with byte fallback, decode(encode(text)) is the text byte for byte, with two
 *   exceptions, the same in the Rust core: U+2581 "▁" comes back as a space (the normalizer writes
 *   spaces as ▁ and the decoder reads every ▁ as a space: SentencePiece's convention); and text
 *   holding an added token's content ("<s>", "</s>", "<unk>") is split there, the piece becomes the
 *   special id, and the text after it gets its own leading ▁, i.e. one extra space after the token.
 *   No corpus file holds either. The fixture's tokenizer
 *   has byte_fallback set but no <0xNN> tokens in its 2048-piece vocabulary, so there a run of
 *   characters outside the vocabulary comes back as one "<unk>" (fuse_unk); the round trip is
 *   exact exactly when every character of the text is in the vocabulary.
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Tokenizer as NativeTokenizer } from '@anush008/tokenizers';
import { LlamaTokenizer } from '../src/runtime/index.js';
import { BYTE_FALLBACK_TOKENIZER_CONFIG, FIXTURE, HAS_SHARED_CORPUS, SHARED_CORPUS, SNIPPETS, byteFallbackTokenizerJson, fixtureVocabChars, roundTripWithUnk } from './runtime-helpers.js';

interface Pair {
  name: string;
  ours: LlamaTokenizer;
  native: NativeTokenizer;
  /** characters with a piece of their own ('▁' read as a space); undefined: byte fallback covers all */
  chars?: Set<string>;
  /** the added tokens' contents */
  specials: string[];
}

function fixturePair(): Pair {
  const json = readFileSync(join(FIXTURE, 'tokenizer.json'), 'utf8');
  const cfg = JSON.parse(readFileSync(join(FIXTURE, 'tokenizer_config.json'), 'utf8')) as object;
  const chars = fixtureVocabChars();
  return { name: 'fixture tokenizer', ours: new LlamaTokenizer(JSON.parse(json) as object, cfg), native: NativeTokenizer.fromString(json), chars, specials: specialsOf(JSON.parse(json)) };
}

function byteFallbackPair(): Pair {
  const json = byteFallbackTokenizerJson();
  return { name: 'byte-fallback tokenizer', ours: new LlamaTokenizer(json, BYTE_FALLBACK_TOKENIZER_CONFIG), native: NativeTokenizer.fromString(JSON.stringify(json)), specials: specialsOf(json) };
}

function specialsOf(tokenizerJson: object): string[] {
  return ((tokenizerJson as { added_tokens?: { content: string }[] }).added_tokens ?? []).map((t) => t.content);
}

const PAIRS = [fixturePair(), byteFallbackPair()];

async function nativeIds(tk: NativeTokenizer, text: string): Promise<number[]> {
  return (await tk.encode(text, null, { addSpecialTokens: false })).getIds();
}

/** Index and text around the first difference of two id lists (for a readable failure). */
function firstDifference(a: readonly number[], b: readonly number[]): string {
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return `first difference at id ${i} of ${a.length} / ${b.length}: ours ${JSON.stringify(a.slice(i, i + 8))}, native ${JSON.stringify(b.slice(i, i + 8))}`;
}

/** The byte-fallback round trip: the text, but ▁ read back as a space and a space after each added token followed by plain text. */
function byteFallbackRoundTrip(text: string, specials: readonly string[]): string {
  const alt = specials.map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|');
  const after = new RegExp(`(${alt})(?!${alt})(?=[\\s\\S])`, 'g');
  return text.replaceAll('\u2581', ' ').replace(after, '$1 ');
}

async function crossCheck(p: Pair, text: string): Promise<void> {
  const ids = p.ours.encode(text);
  const native = await nativeIds(p.native, text);
  assert.ok(ids.length === native.length && ids.every((id, i) => id === native[i]), `${p.name}: ids differ from the Rust core's; ${firstDifference(ids, native)}`);

  const decoded = p.ours.decode(ids);
  assert.equal(decoded, await p.native.decode(ids, false), `${p.name}: decode differs from the Rust core's`);

  if (p.chars === undefined) {
    const want = byteFallbackRoundTrip(text, p.specials);
    assert.ok(Buffer.from(decoded, 'utf8').equals(Buffer.from(want, 'utf8')), `${p.name}: decode(encode(text)) is not the text byte for byte`);
  } else if (!p.specials.some((t) => text.includes(t))) {
    // (text holding an added token's content is split there as above; the ids and decode checks cover it)
    const outside = new Set([...text].filter((ch) => ch !== '\u2581' && !p.chars!.has(ch)));
    assert.equal(decoded, roundTripWithUnk(text, p.chars), `${p.name}: round trip is not the text with runs outside the vocabulary as <unk>`);
    assert.equal(decoded === text.replaceAll('\u2581', ' '), outside.size === 0, `${p.name}: round trip exact ⇔ every character in the vocabulary (outside: ${JSON.stringify([...outside].slice(0, 20).join(''))})`);
  }
}

const repoFiles = readdirSync(SNIPPETS)
  .filter((f) => f.endsWith('.txt'))
  .sort()
  .map((f) => ({ name: `test/fixtures/corpus-snippets/${f}`, path: join(SNIPPETS, f) }));

const sharedFiles = HAS_SHARED_CORPUS
  ? ['prose', 'code'].flatMap((dir) =>
      readdirSync(join(SHARED_CORPUS, dir))
        .sort()
        .map((f) => ({ name: `shared corpus ${dir}/${f}`, path: join(SHARED_CORPUS, dir, f) })),
    )
  : [];

for (const p of PAIRS) {
  describe(`${p.name}: the same ids and text as the Rust core (@anush008/tokenizers)`, () => {
    for (const f of repoFiles) {
      it(`${f.name}: ids, decode, round trip`, async () => {
        await crossCheck(p, readFileSync(f.path, 'utf8'));
      });
    }

    if (!HAS_SHARED_CORPUS) {
      it('every file of ../shared/fixtures/corpus', (t) => t.skip('../shared/fixtures/corpus is absent (a fresh clone): only the files kept in the repo are checked'));
    }
    for (const f of sharedFiles) {
      it(`${f.name}: ids, decode, round trip`, async () => {
        await crossCheck(p, readFileSync(f.path, 'utf8'));
      });
    }

    it('short and edge-case texts: empty, spaces only, leading and trailing spaces, newlines, ▁ itself, special-token text', async () => {
      for (const text of ['', ' ', '   ', ' a', 'a ', '\n', '\n\n x \n', 'a\u2581b', '\u2581', '<s> and </s> as text', 'x<s>y', '<s><s>b', 'a </s>', '<|start_story|>Once', 'Once upon a time.']) {
        await crossCheck(p, text);
      }
    });

    it('decode with special tokens (BOS … EOS), kept and skipped, equals the Rust core', async () => {
      const bos = p.ours.bosTokenId!;
      const eos = p.ours.eosTokenId!;
      for (const text of ['Once upon a time, there was a dog.', ' leading space', 'two\nlines']) {
        const ids = [bos, ...p.ours.encode(text), eos];
        for (const skip of [false, true]) {
          assert.equal(p.ours.decode(ids, { skipSpecialTokens: skip }), await p.native.decode(ids, skip), `${JSON.stringify(text)}, skipSpecialTokens ${skip}`);
        }
      }
    });
  });
}
