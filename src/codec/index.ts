/**
 * The codec table: every codec a registry may name in an object header.
 * Ids are permanent. Encoders try the candidates for a chunk and keep the
 * smallest payload; decoders look the id up here.
 */
import { At1Error } from '../errors.js';
import { basicCodecs } from './basic-codecs.js';
import type { Codec, Level } from './types.js';

const ALL: readonly Codec[] = [...basicCodecs];

const BY_ID = new Map<number, Codec>(ALL.map((c) => [c.id, c]));

export function codecById(id: number, what: string): Codec {
  const c = BY_ID.get(id);
  if (!c) throw new At1Error('E_UNSUPPORTED', `${what}: codec id ${id} is not known to this build`);
  return c;
}

/** Codecs the encoder tries at a level, cheapest first. */
export function encoderCandidates(_level: Level): readonly Codec[] {
  return ALL;
}

export type { Codec, ChunkContext, RefChunk, Level } from './types.js';
