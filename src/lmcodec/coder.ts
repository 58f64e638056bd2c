/**
 * A registry version opened as the lm-mix/1 coder: the model (full load,
 * weights verified), its tokenizer seen as a vocabulary, and the identity
 * the archive records so that decoding refuses any other model.
 */
import { At1Error } from '../errors.js';
import { openModel, type OpenedModel } from '../model/open-model.js';
import { Registry } from '../registry/registry.js';
import type { RegistrySettings } from '../registry/settings.js';
import type { ArchiveModel } from './container.js';
import type { FrameCoderOptions } from './frame-codec.js';
import { TokenBytes, type VocabularyView } from './tokenize-bytes.js';

export const CODEC = 'lm-mix/1';

export interface CoderOptions {
  /** config.json for a version that holds none */
  configPath?: string;
  /** tokenizer.json (or its directory) for a version that holds none */
  tokenizerPath?: string;
  /** kernels: 'wasm' (default) or 'js'; both give the same bits */
  kernels?: 'wasm' | 'js';
  /** the registry's settings when `location` is opened here (the CLI fills them from AT1_*, as for every command) */
  settings?: Partial<RegistrySettings>;
  /**
   * Context positions the coder gives the model (compressing; a decoder takes the archive's):
   * default min(256, the model's). Measured on the fixture family, 256 codes as small as 512 or
   * smaller (the TinyStories models were trained on short stories) at 2.7× the speed.
   */
  context?: number;
}

export const DEFAULT_CONTEXT = 256;

export interface Coder {
  identity: ArchiveModel;
  /** what a decoder must use again (recorded in the archive's codecParams) */
  params: { bos: number; unk: number; vocab: number; context: number; reuse: number; spelling: string };
  frame: FrameCoderOptions;
  opened: OpenedModel;
  close(): Promise<void>;
}

/** Opens `version` of the registry at `location` as a coder (the caller closes it). */
export async function openCoder(location: string | Registry, version: string, opts: CoderOptions = {}): Promise<Coder> {
  const reg = typeof location === 'string' ? await Registry.open(location, { settings: opts.settings }) : location;
  const opened = await openModel(reg, version, { configPath: opts.configPath, tokenizerPath: opts.tokenizerPath, kernels: opts.kernels, fullLoad: true, maxSeqLen: opts.context });
  try {
    const tk = opened.tokenizer;
    const vocabSize = opened.config.vocabSize;
    if (tk.vocabularySize > vocabSize) {
      throw new At1Error('E_UNSUPPORTED', `version ${version}: the tokenizer has ${tk.vocabularySize} tokens, the model's vocabulary ${vocabSize}`);
    }
    const bos = tk.bosTokenId ?? opened.config.bosTokenId;
    if (bos === undefined) throw new At1Error('E_UNSUPPORTED', `version ${version}: neither the tokenizer nor config.json names a BOS token`);
    const vocab: VocabularyView = {
      vocabSize,
      unkId: tk.unkTokenId ?? -1,
      idToToken: (id) => tk.idToToken(id) ?? undefined,
      encode: (text) => tk.encode(text),
      spelling: tk.spelling,
    };
    const want = opts.context ?? DEFAULT_CONTEXT;
    if (!Number.isSafeInteger(want) || want < 2) throw new At1Error('E_INPUT', `context must be a whole number of positions ≥ 2, is ${String(opts.context)}`);
    const context = Math.min(want, opened.config.maxPositionEmbeddings);
    const reuse = Math.max(1, Math.floor(context / 4));
    return {
      identity: { version, weightsSha256: opened.weights.weightsDigest(), tokenizerSha256: opened.tokenizerSha256, configSha256: opened.configSha256 },
      params: { bos, unk: vocab.unkId, vocab: vocabSize, context, reuse, spelling: `${tk.spelling.kind}${tk.spelling.dummyPrefix ? '+prefix' : ''}` },
      frame: { model: opened.model, vocab, spell: new TokenBytes(vocab), bos, context, reuse },
      opened,
      close: () => opened.close(),
    };
  } catch (e) {
    await opened.close();
    throw e;
  }
}

/** Refuses a coder whose model is not the one an archive was made with, naming what differs. */
export function checkSameModel(archive: string, recorded: ArchiveModel, params: Record<string, unknown>, coder: Pick<Coder, "identity" | "params">): void {
  const diffs: string[] = [];
  if (recorded.weightsSha256 !== coder.identity.weightsSha256) diffs.push(`weights (archive ${recorded.weightsSha256.slice(0, 12)}…, version ${coder.identity.version} has ${coder.identity.weightsSha256.slice(0, 12)}…)`);
  if (recorded.tokenizerSha256 !== coder.identity.tokenizerSha256) diffs.push(`tokenizer.json (archive ${recorded.tokenizerSha256.slice(0, 12)}…, given ${coder.identity.tokenizerSha256.slice(0, 12)}…)`);
  if (recorded.configSha256 !== coder.identity.configSha256) diffs.push(`config.json (archive ${recorded.configSha256.slice(0, 12)}…, given ${coder.identity.configSha256.slice(0, 12)}…)`);
  for (const [k, v] of Object.entries(coder.params)) {
    if (params[k] !== v) diffs.push(`${k} (archive ${params[k] === undefined ? 'none' : String(params[k])}, model ${v})`);
  }
  if (diffs.length) {
    throw new At1Error('E_INPUT', `${archive} was made with model ${recorded.version}; the model given differs in ${diffs.join('; ')}`);
  }
}
