/**
 * The model's tokenizer (tokenizer.json + tokenizer_config.json) over
 * @huggingface/tokenizers (pure JS), and a streaming decoder that turns
 * generated tokens into text as they arrive.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { At1Error } from '../errors.js';

export interface DecodeOptions {
  /** leave out special tokens (BOS, EOS, …); default false, as the library */
  skipSpecialTokens?: boolean;
}

const BYTE_TOKEN = /^<0x[0-9A-Fa-f]{2}>$/;

export class LlamaTokenizer {
  private readonly tk: Tokenizer;
  readonly bosTokenId: number | undefined;
  readonly eosTokenId: number | undefined;
  /** the model's <unk> (tokenizer.json model.unk_token), if it has one */
  readonly unkTokenId: number | undefined;
  /** ids 0 .. vocabularySize − 1 (the added tokens included) */
  readonly vocabularySize: number;
  /**
   * How token strings spell bytes: 'metaspace' (SentencePiece style: "▁" is a space, UTF-8 otherwise;
   * Llama 1/2, Mistral, the fixture) or 'bytelevel' (GPT-2 style: each character stands for one byte;
   * Llama 3, Qwen). `dummyPrefix`: the normaliser or pre-tokenizer prepends a "▁" to the text.
   */
  readonly spelling: { kind: 'metaspace' | 'bytelevel'; dummyPrefix: boolean };
  private readonly byteTokens: Uint8Array;
  /**
   * transformers' clean_up_tokenization_spaces (drops the space before . , ! ? and in " n't", " 'm" …):
   * only when tokenizer_config.json asks for it. @huggingface/tokenizers applies it when the key is
   * absent, as transformers did before 4.45; the Rust core never does, and it changes text
   * (`a != b` decodes to `a!= b`), so decode would not give back what was encoded.
   */
  private readonly cleanUpSpaces: boolean;

  constructor(tokenizerJson: object, tokenizerConfig: object = {}) {
    try {
      this.tk = new Tokenizer(tokenizerJson, tokenizerConfig);
    } catch (e) {
      throw new At1Error('E_UNSUPPORTED', `tokenizer.json cannot be loaded: ${(e as Error).message}`);
    }
    const cfg = tokenizerConfig as { bos_token?: unknown; eos_token?: unknown; clean_up_tokenization_spaces?: unknown };
    this.cleanUpSpaces = cfg.clean_up_tokenization_spaces === true;
    this.bosTokenId = this.specialId(cfg.bos_token);
    this.eosTokenId = this.specialId(cfg.eos_token);
    const vocab = this.tk.get_vocab(true);
    let n = 0;
    for (const id of vocab.values()) n = Math.max(n, id + 1);
    this.vocabularySize = n;
    this.spelling = spellingOf(tokenizerJson);
    const unk = (tokenizerJson as { model?: { unk_token?: unknown } }).model?.unk_token;
    this.unkTokenId = typeof unk === 'string' ? this.tk.token_to_id(unk) ?? undefined : undefined;
    this.byteTokens = new Uint8Array(n);
    for (const [tok, id] of vocab) if (BYTE_TOKEN.test(tok)) this.byteTokens[id] = 1;
  }

  /** Loads tokenizer.json (and tokenizer_config.json if present) from a model directory. */
  static async fromDir(dir: string): Promise<LlamaTokenizer> {
    const json = await readJson(join(dir, 'tokenizer.json'));
    let cfg: object = {};
    try {
      cfg = await readJson(join(dir, 'tokenizer_config.json'));
    } catch (e) {
      if (!(e instanceof At1Error && e.code === 'E_NOT_FOUND')) throw e;
    }
    return new LlamaTokenizer(json, cfg);
  }

  private specialId(tok: unknown): number | undefined {
    const content = typeof tok === 'string' ? tok : (tok as { content?: unknown } | null)?.content;
    return typeof content === 'string' ? this.tk.token_to_id(content) : undefined;
  }

  /** Token ids of text, without special tokens (no BOS): prepend bosTokenId yourself. */
  encode(text: string): number[] {
    return this.tk.encode(text, { add_special_tokens: false }).ids;
  }

  /** Text of token ids; [] is '' (the library throws on an empty list). */
  decode(ids: readonly number[], opts: DecodeOptions = {}): string {
    if (ids.length === 0) return '';
    return this.tk.decode([...ids], { skip_special_tokens: opts.skipSpecialTokens ?? false, clean_up_tokenization_spaces: this.cleanUpSpaces });
  }

  /** True for a byte-fallback token (<0xNN>), which may need the next ones to make a character. */
  isByteToken(id: number): boolean {
    return this.byteTokens[id] === 1;
  }

  idToToken(id: number): string | undefined {
    return this.tk.id_to_token(id);
  }

  /** A decoder for tokens as they are generated (after `context`, e.g. the prompt). */
  streamDecoder(opts: DecodeOptions & { context?: readonly number[] } = {}): StreamDecoder {
    return new StreamDecoder(this, opts);
  }
}

/**
 * Incremental detokenization: push(id) returns the new text (maybe ''), flush() the rest.
 * The concatenation of everything returned equals decode(context + pushed) minus decode(context)
 * (with no context: decode(pushed)).
 *
 * Each step decodes a short window — the tokens since the last emitted text plus the few before
 * them as context (so leading spaces and the decoder's strip step come out as in a whole decode) —
 * and emits what the window adds beyond its context. Text is held back while it ends in an
 * incomplete character made of byte-fallback tokens (U+FFFD after a byte token): the next byte
 * may complete it.
 */
export class StreamDecoder {
  private readonly ids: number[];
  private prefix: number;
  private read: number;
  private readonly opts: DecodeOptions;
  private readonly base: number;

  constructor(private readonly tk: LlamaTokenizer, opts: DecodeOptions & { context?: readonly number[] } = {}) {
    this.ids = [...(opts.context ?? [])];
    this.base = this.ids.length;
    this.prefix = Math.max(0, this.ids.length - 5);
    this.read = this.ids.length;
    this.opts = { skipSpecialTokens: opts.skipSpecialTokens ?? false };
  }

  /** All tokens pushed so far (the context excluded). */
  get tokens(): number[] {
    return this.ids.slice(this.base);
  }

  push(id: number): string {
    this.ids.push(id);
    return this.step(false);
  }

  /** Whatever is still held back (call once at the end). */
  flush(): string {
    return this.step(true);
  }

  private step(final: boolean): string {
    if (this.read === this.ids.length) return '';
    const before = this.tk.decode(this.ids.slice(this.prefix, this.read), this.opts);
    const now = this.tk.decode(this.ids.slice(this.prefix), this.opts);
    const last = this.ids[this.ids.length - 1]!;
    if (!final && now.endsWith('\uFFFD') && this.tk.isByteToken(last)) return '';
    if (!final && now.length <= before.length && now.startsWith(before)) {
      // nothing visible yet (e.g. a token that decodes to ''); keep the window
      if (now.length === before.length) return '';
    }
    const out = now.startsWith(before) ? now.slice(before.length) : now.slice(Math.min(before.length, now.length));
    this.prefix = this.read;
    this.read = this.ids.length;
    return out;
  }
}

async function readJson(path: string): Promise<object> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new At1Error('E_NOT_FOUND', `cannot read ${path}: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text) as object;
  } catch (e) {
    throw new At1Error('E_INPUT', `${path} is not JSON: ${(e as Error).message}`);
  }
}

/** Reads how a tokenizer.json spells bytes (see LlamaTokenizer.spelling). */
function spellingOf(json: object): { kind: 'metaspace' | 'bytelevel'; dummyPrefix: boolean } {
  const j = json as { decoder?: unknown; normalizer?: unknown; pre_tokenizer?: unknown };
  const parts = (x: unknown): { type?: string; prepend?: string; add_prefix_space?: boolean; prepend_scheme?: string }[] => {
    if (!x || typeof x !== 'object') return [];
    const o = x as { type?: string; decoders?: unknown[]; normalizers?: unknown[]; pretokenizers?: unknown[] };
    const inner = o.decoders ?? o.normalizers ?? o.pretokenizers;
    return Array.isArray(inner) ? inner.flatMap(parts) : [o as never];
  };
  const byteLevel = parts(j.decoder).some((d) => d.type === 'ByteLevel');
  const dummyPrefix =
    parts(j.normalizer).some((n) => n.type === 'Prepend' && n.prepend === '\u2581') ||
    parts(j.pre_tokenizer).some((p) => p.type === 'Metaspace' && (p.prepend_scheme !== undefined ? p.prepend_scheme !== 'never' : p.add_prefix_space !== false));
  return { kind: byteLevel ? 'bytelevel' : 'metaspace', dummyPrefix };
}
