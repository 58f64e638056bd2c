/**
 * What the peer bench hands each runtime's child process and gets back.
 * Both children do the same work on the same token ids, in the same order:
 * load; the prompt pass (last position's logits only) `reps` times;
 * greedy generation of `tokens` tokens after the prompt; then the
 * log-probabilities of every position of `scoreIds` (the prompt and the
 * generated tokens), written to `logprobsOut` as raw float64 [n, vocab].
 */
import { readFileSync } from 'node:fs';

export interface PeerJob {
  /** at1: registry dir + version; llama.cpp: a .gguf path */
  model: { kind: 'at1'; regDir: string; version: string; configPath: string; tokenizerPath: string } | { kind: 'llama.cpp'; gguf: string };
  prompt: number[];
  tokens: number;
  /** the ids to score; when absent, the prompt and the tokens this runtime generated but the last (each position then predicts a prompt or generated token) */
  scoreIds?: number[];
  logprobsOut: string;
  threads: number;
  contextSize: number;
  reps: number;
  /** llama.cpp's KV cache type (its default is F16; at1 keeps F32) */
  llamaKv?: 'F32' | 'F16';
  /** only start up (runtime loaded, no model) and report peak RSS: the idle baseline */
  idle?: boolean;
  /** text whose tokenization is reported (a side check; the comparison uses ids) */
  text: string;
}

export interface PeerResult {
  runtime: string;
  loadMs: number;
  /** median time of one prompt pass */
  promptMs: number;
  /** prompt tokens per second (prompt length / promptMs) */
  promptTokensPerSecond: number;
  /** prompt pass + choosing the first token */
  firstTokenMs: number;
  /** generated tokens after the first, per second */
  genTokensPerSecond: number;
  generated: number[];
  /** the ids whose log-probabilities were written */
  scoreIds: number[];
  /** ids the runtime's own tokenizer gives `text` (BOS not included) */
  textIds: number[];
  /** VmHWM after load, prompt passes and generation (before the scoring) */
  peakRssBytes: number;
}

/** The process's peak resident set (VmHWM), as bench/runtime-bench.ts reads it. */
export function peakRss(): number {
  const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) * 1024 : process.resourceUsage().maxRSS * 1024;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1]!;
}

/** Log-softmax of one row of logits, in float64. */
export function logSoftmax(logits: Float32Array, offset: number, V: number, out: Float64Array, outOffset: number): void {
  let max = -Infinity;
  for (let i = 0; i < V; i++) max = Math.max(max, logits[offset + i]!);
  let sum = 0;
  for (let i = 0; i < V; i++) sum += Math.exp(logits[offset + i]! - max);
  const lse = max + Math.log(sum);
  for (let i = 0; i < V; i++) out[outOffset + i] = logits[offset + i]! - lse;
}

/** What a child started with `idle` reports. */
export function idleResult(peakRssBytes: number): PeerResult {
  return { runtime: 'idle', loadMs: 0, promptMs: 0, promptTokensPerSecond: 0, firstTokenMs: 0, genTokensPerSecond: 0, generated: [], scoreIds: [], textIds: [], peakRssBytes };
}
