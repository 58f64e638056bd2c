/**
 * The codec table: every codec a registry may name in an object header.
 * Ids are permanent. Encoders try the candidates for a chunk and keep the
 * smallest payload; decoders look the id up here.
 */
import { At1Error } from '../errors.js';
import { basicCodecs, bitxCodec, groupedZstdCodec, rawCodec } from './basic-codecs.js';
import { advancedCodecs, advancedCodecsFor } from './numeric-codecs.js';
import type { Codec, Level } from './types.js';

const ALL: readonly Codec[] = [...basicCodecs, ...advancedCodecs];

const BY_ID = new Map<number, Codec>(ALL.map((c) => [c.id, c]));
if (BY_ID.size !== ALL.length) throw new Error('codec ids must be unique');

export function codecById(id: number, what: string): Codec {
  const c = BY_ID.get(id);
  if (!c) throw new At1Error('E_UNSUPPORTED', `${what}: codec id ${id} is not known to this build`);
  return c;
}

/**
 * Codecs the encoder may try at a level. 'max': every codec, smallest
 * payload kept; the encoder prunes this list per chunk by a sample of it
 * (search.ts planSearch: only codecs whose sample payload is within 3% of
 * the best, and float-lowrank only where its detection finds structure, are
 * run on the whole chunk). 'fast' is an ordered preference list: the first codec
 * that accepts the chunk and beats raw wins (the numeric delta codec for
 * float relatives, BitX for other same-width relatives, byte-grouped zstd
 * standalone), so each chunk is encoded once or twice, not six times.
 */
export function encoderCandidates(level: Level): readonly Codec[] {
  return level === 'max' ? ALL : [...advancedCodecsFor.fast, bitxCodec, groupedZstdCodec, rawCodec];
}

export type { Codec, ChunkContext, RefChunk, Level } from './types.js';
