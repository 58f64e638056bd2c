/**
 * The numeric codecs (ids 10-29) for the registry to try per chunk, next to
 * the basic ones (0 raw, 1 grouped-zstd, 2 BitX). The registry keeps the
 * smallest payload, so each codec only has to be good where it applies:
 *  10 float-exp    standalone BF16/F16/F32: exponent rANS-coded, mantissa raw
 *  11 float-delta  against 1 reference of any float dtype (parent)
 *  12 float-traj   against 2 references (parent, grandparent): trajectory contexts
 *  13 float-lowrank against 1 reference, for low-rank deltas (merged LoRA): factors + residual
 */
import { floatDeltaCodec, floatTrajCodec } from './numeric/delta-codec.js';
import { floatExpCodec } from './numeric/exp-codec.js';
import { floatLowRankCodec } from './numeric/lowrank-codec.js';
import type { Codec, Level } from './types.js';

export const advancedCodecs: Codec[] = [floatExpCodec, floatDeltaCodec, floatTrajCodec, floatLowRankCodec];

/**
 * Which of them are worth trying at each level (the registry's encode time is
 * the sum over the codecs it tries). 'fast': float-delta alone (zstd byte
 * planes of the ordered difference: ~300 MB/s encode, ~450 MB/s decode +
 * SHA-256 on one core here, 0.82-0.87 of BitX's size); float-traj and
 * float-lowrank have no faster model than that and float-exp decodes at rANS
 * speed, so standalone chunks are better left to grouped-zstd. 'max': all
 * four, pruned per chunk by the encoder search (../search.ts: a sample of
 * the chunk decides which run in full; float-lowrank behind its detection
 * gate) (~90-110 MB/s encode and ~120-160 MB/s decode for the rANS delta
 * codecs; float-lowrank ~15 / ~65 MB/s on chunks where it finds structure).
 */
export const advancedCodecsFor: Record<Level, readonly Codec[]> = {
  fast: [floatDeltaCodec],
  max: advancedCodecs,
};
