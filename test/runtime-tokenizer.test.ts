/**
 * The tokenizer over @huggingface/tokenizers: ids without special tokens, BOS/EOS, decode([]),
 * round trips on the corpus snippets (and the shared corpus when it is there), and streaming decode
 * equal to whole decode — with byte-fallback tokens on a small tokenizer built here, since the
 * fixture's vocabulary has none (its unknown characters become <unk>).
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { LlamaTokenizer } from '../src/runtime/index.js';
import { BYTE_FALLBACK_TOKENIZER_CONFIG, FIXTURE, HAS_SHARED_CORPUS, SHARED_CORPUS, SNIPPETS, byteFallbackTokenizerJson, fixtureVocabChars, roundTripWithUnk } from './runtime-helpers.js';

const fixtureTokenizer = (): Promise<LlamaTokenizer> => LlamaTokenizer.fromDir(FIXTURE);

function streamed(tk: LlamaTokenizer, ids: number[], opts: { context?: number[]; skipSpecialTokens?: boolean } = {}): { text: string; parts: string[] } {
  const sd = tk.streamDecoder(opts);
  const parts = ids.map((id) => sd.push(id));
  parts.push(sd.flush());
  return { text: parts.join(''), parts };
}

/** A BPE tokenizer with byte fallback, the fixture's normalizer and decoder, a tiny vocabulary. */
function byteFallbackTokenizer(): LlamaTokenizer {
  return new LlamaTokenizer(byteFallbackTokenizerJson(), BYTE_FALLBACK_TOKENIZER_CONFIG);
}

describe('fixture tokenizer', () => {
  it('BOS and EOS from tokenizer_config.json; encode adds no special tokens; decode([]) is ""', async () => {
    const tk = await fixtureTokenizer();
    assert.equal(tk.bosTokenId, 1);
    assert.equal(tk.eosTokenId, 2);
    const ids = tk.encode('Once upon a time');
    assert.ok(ids.length > 0 && !ids.includes(1) && !ids.includes(2));
    assert.equal(tk.decode([]), '');
    assert.equal(tk.decode(ids), 'Once upon a time');
    assert.equal(tk.decode([1, ...ids, 2], { skipSpecialTokens: true }), 'Once upon a time');
  });

  it('text in the vocabulary round-trips exactly', async () => {
    const tk = await fixtureTokenizer();
    const s = 'Once upon a time, there was a little girl named Lily. She had a toy car.\nWhile playing, Lily saw a "big" dog!';
    assert.equal(tk.decode(tk.encode(s)), s);
  });

  const files: [string, string][] = readdirSync(SNIPPETS)
    .filter((f) => f.endsWith('.txt'))
    .map((f) => [f, join(SNIPPETS, f)]);
  if (HAS_SHARED_CORPUS) {
    for (const f of ['code/decode.go', 'code/path-scurry.js', 'code/typing.py', 'prose/alice29.txt']) files.push([`shared ${f}`, join(SHARED_CORPUS, f)]);
  }
  for (const [name, path] of files) {
    it(`${name}: decode(encode(text)) is the text with runs of characters outside the vocabulary as <unk>; streaming decode equals it`, async () => {
      const tk = await fixtureTokenizer();
      const text = readFileSync(path, 'utf8');
      const ids = tk.encode(text);
      const whole = tk.decode(ids);
      assert.equal(whole, roundTripWithUnk(text, fixtureVocabChars()));
      if (!name.startsWith('shared')) assert.equal(streamed(tk, ids).text, whole);
    });
  }

  it('streaming after a context (the prompt) gives what the context adds to the whole decode', async () => {
    const tk = await fixtureTokenizer();
    const ids = [1, ...tk.encode(readFileSync(join(SNIPPETS, 'alice29-head.txt'), 'utf8').slice(0, 600))];
    for (const cut of [1, 2, 7, 40]) {
      const ctx = ids.slice(0, cut);
      const want = tk.decode(ids).slice(tk.decode(ctx).length);
      assert.equal(streamed(tk, ids.slice(cut), { context: ctx }).text, want, `context of ${cut}`);
      const wantSkip = tk.decode(ids, { skipSpecialTokens: true }).slice(tk.decode(ctx, { skipSpecialTokens: true }).length);
      assert.equal(streamed(tk, ids.slice(cut), { context: ctx, skipSpecialTokens: true }).text, wantSkip);
    }
  });
});

describe('byte-fallback tokens', () => {
  it('characters made of several byte tokens appear once complete, never as U+FFFD; the stream equals the whole decode', () => {
    const tk = byteFallbackTokenizer();
    const text = 'café au lait 😀 日本, ok.';
    const ids = tk.encode(text);
    assert.ok(ids.some((id) => tk.isByteToken(id)));
    assert.equal(tk.decode(ids), text);
    const { text: s, parts } = streamed(tk, ids);
    assert.equal(s, text);
    assert.ok(parts.every((p) => !p.includes('\uFFFD')), JSON.stringify(parts));
    assert.ok(parts.includes('😀') && parts.includes('日') && parts.includes('本'));
  });

  it("transformers' clean_up_tokenization_spaces only when tokenizer_config.json sets it (the library's default would change `a != b` to `a!= b`)", () => {
    const text = "x != y , z . do n't";
    const plain = byteFallbackTokenizer();
    assert.equal(plain.decode(plain.encode(text)), text);
    const cleaning = new LlamaTokenizer(byteFallbackTokenizerJson(), { ...BYTE_FALLBACK_TOKENIZER_CONFIG, clean_up_tokenization_spaces: true });
    assert.equal(cleaning.decode(cleaning.encode(text)), "x!= y, z. don't");
  });

  it('invalid byte sequences (a lone lead byte, 0xFF) stream to the whole decode', () => {
    const tk = byteFallbackTokenizer();
    const b = (x: number): number => 3 + x;
    const a = tk.encode('a')[1]!;
    for (const ids of [[b(0xc3), a, a], [b(0xff), b(0xff), a], [a, b(0xe6), b(0x97)], [b(0xe6), b(0x97), b(0xa5), b(0xc3)]]) {
      assert.equal(streamed(tk, ids).text, tk.decode(ids), JSON.stringify(ids));
    }
  });
});
