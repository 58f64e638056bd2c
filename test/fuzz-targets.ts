/**
 * Hostile-input fuzz targets, shared by `test/fuzz.test.ts` (a few hundred
 * cases per target on every `npm test`) and `bench/fuzz.ts` (`npm run fuzz`,
 * 10,000 per target, in a worker watched for hangs).
 *
 * The property every target checks (issue: "every outcome is a clean typed
 * error or correct output — no crash, no hang, no allocation driven by an
 * unchecked length"): a valid input is mutated (byte flips, truncation,
 * extension, splices from other inputs, insertions, repeated slices, integer
 * overwrites, and mutations that know the structure: JSON edits, object
 * header fields, files replaced, deleted or linked), then the code under test
 * must either succeed with output an independent oracle accepts, or throw an
 * At1Error (SafetensorsError and IntegrityError are subclasses). Anything
 * else is a failure: another exception type, an oracle mismatch, a case over
 * CASE_TIME_LIMIT_MS, or ArrayBuffer/heap growth over the case's budget.
 *
 * Cases are fast-check values (a seed and a list of mutation ops), so a run
 * is reproducible from its seed and a failing case shrinks to a minimal op
 * list. `runTarget` runs every case to the end (a failure is recorded, not
 * thrown, so one bug does not hide the rest), then replays the first case of
 * each distinct failure by its fast-check path to shrink it.
 */
import fc from 'fast-check';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { At1Error, IntegrityError } from '../src/errors.js';
import { codecById } from '../src/codec/index.js';
import { codecKernelsInUse, useCodecKernels } from '../src/codec/kernels.js';
import { loadNativeCodecKernels } from '../src/kernels/codec-native.js';
import type { ChunkContext, Level } from '../src/codec/types.js';
import { f32ToF16 } from '../src/codec/numeric/float.js';
import { dtypeInfo } from '../src/format/dtype.js';
import { parseShardIndex, shardNameProblem } from '../src/format/hf-index.js';
import { decodeObjectHeader, encodeObject, MAX_HEADER_BYTES, MAX_RAW_LENGTH, type ObjectHeader } from '../src/format/object.js';
import { parseSafetensorsHeader, serializeSafetensors, tensorByteSize, type SafetensorsHeader } from '../src/format/safetensors.js';
import { add, getVersion, initRegistry, Registry, verifyRegistry, type VerifyReport } from '../src/index.js';
import { parseManifest, serializeManifest, type VersionManifest } from '../src/registry/manifest.js';
import { nameProblem } from '../src/registry/names.js';
import { EMBEDDED, family } from './helpers.js';

// ================================================================ framework

/** A case slower than this is a failure (a hang, or work not bounded by the input). */
export const CASE_TIME_LIMIT_MS = 2000;
/** Default ArrayBuffer/heap growth allowed per case; targets may set their own from declared sizes. */
export const DEFAULT_MEMORY_BUDGET = 64 << 20;

/** The oracle rejected an outcome: a bug (or a wrong oracle), never a clean error. */
export class FuzzFailure extends Error {
  override name = 'FuzzFailure';
}

export function fail(msg: string): never {
  throw new FuzzFailure(msg);
}

/** Run oracle code: whatever it throws (even an At1Error from a helper) is an oracle failure. */
function oracle<T>(what: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof FuzzFailure) throw e;
    throw new FuzzFailure(`${what}: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
  }
}

export type Outcome = { ok: true; note?: string } | { ok: false; code: string };

/**
 * A target: C is the fast-check case (ops), I the mutated input built from
 * it, R what the code under test returned.
 */
export interface Target<C, I = unknown, R = unknown> {
  name: string;
  /** One line: what is mutated and what is called. */
  what: string;
  setup(): Promise<void>;
  teardown(): Promise<void>;
  arb(): fc.Arbitrary<C>;
  /** Build the mutated input (not measured). */
  prepare(c: C): I;
  /** Call the code under test (timed, and its memory growth measured). An At1Error thrown here is a clean error; anything else a failure. */
  exec(input: I): Promise<R>;
  /** The oracle, on success: the outcome, or a FuzzFailure thrown. */
  check(input: I, r: R): Outcome;
  /** The mutated input, readable, for failure reports. */
  show?(c: C, input: I): string;
  memoryBudget?(input: I): number;
  /** Per-case time limit, if not CASE_TIME_LIMIT_MS. */
  timeLimitMs?: number;
}

export interface FailureRecord {
  index: number;
  signature: string;
  message: string;
  input: string;
  /** fast-check path that replays it (with the run's seed). */
  path: string;
  minimised?: { input: string; message: string; path: string; shrinks: number };
}

export interface RunStats {
  target: string;
  seed: number;
  cases: number;
  ok: number;
  okNotes: Record<string, number>;
  errors: Record<string, number>;
  failures: number;
  failureRecords: FailureRecord[];
  ms: number;
  slowestMs: number;
  maxGrowthBytes: number;
}

export interface RunOptions {
  runs: number;
  seed: number;
  /** Replay one case (fast-check path) instead of a run. */
  path?: string;
  /** Skip (count nothing for) cases with index below this: the harness resumes after a hang this way. */
  skipBelow?: number;
  /** Called before each case with its index and its description (the harness posts it to the watchdog). */
  onCase?: (index: number, describe: () => string) => void;
  /** Called when a case (or a shrinking replay) returns: with onCase, the harness's hang watchdog. */
  onCaseEnd?: () => void;
  /** Called after each case with its result (the harness streams them, so a hang loses nothing). */
  onResult?: (index: number, r: CaseResult) => void;
  /** Shrink the first case of each distinct failure (default true), with at most this many property calls each. */
  shrinkBudget?: number;
  /** Keep at most this many distinct failure signatures (default 8). */
  maxSignatures?: number;
}

/** JSON of a case, with bigint and bytes made printable. */
export function describeValue(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => {
    if (typeof x === 'bigint') return `${x}n`;
    if (x instanceof Uint8Array) return `hex:${hex(x, 64)}`;
    return x;
  });
}

export function hex(b: Uint8Array, max = 256): string {
  const s = Buffer.from(b.subarray(0, max)).toString('hex');
  return b.length > max ? `${s}…(${b.length} bytes)` : s;
}

/** A failure's kind, for grouping: the error class and its message with numbers, digests and quoted text blanked. */
function signatureOf(message: string): string {
  return message
    .replace(/[0-9a-f]{64}/g, 'D')
    .replace(/"[^"]*"/g, '"…"')
    .replace(/\d+/g, '#')
    .slice(0, 120);
}

/** Messages of JS runtime errors: a typed error carrying one of these hides a crash (e.g. a TypeError wrapped as an integrity failure). */
const CRASH_TEXT = /Cannot read propert|Cannot set propert|is not a function|is not defined|is not iterable|Invalid array length|Invalid typed array length|Array buffer allocation failed|Maximum call stack|out of memory|is outside the bounds of the DataView|Invalid DataView length|Cannot convert|\b(?:TypeError|RangeError|ReferenceError|SyntaxError: Unexpected)\b/;

export function looksLikeCrash(message: string): boolean {
  return CRASH_TEXT.test(message);
}

export interface CaseResult {
  outcome?: Outcome;
  failure?: string;
  ms: number;
  growth: number;
}

function memNow(): { ab: number; heap: number } {
  const m = process.memoryUsage();
  return { ab: m.arrayBuffers, heap: m.heapUsed };
}

function unexpected(e: unknown): string {
  return `unexpected ${e instanceof Error ? `${e.name}: ${e.message}\n${(e.stack ?? '').split('\n').slice(1, 6).join('\n')}` : String(e)}`;
}

async function runOne<C, I, R>(target: Target<C, I, R>, c: C): Promise<CaseResult> {
  let input: I;
  try {
    input = target.prepare(c);
  } catch (e) {
    return { failure: `building the case failed (a fuzzer bug): ${unexpected(e)}`, ms: 0, growth: 0 };
  }
  const m0 = memNow();
  const t0 = performance.now();
  let result: { r: R } | undefined;
  let outcome: Outcome | undefined;
  let failure: string | undefined;
  try {
    result = { r: await target.exec(input) };
  } catch (e) {
    if (e instanceof At1Error && looksLikeCrash(e.message)) failure = `an At1Error (${e.code}) wrapping what looks like a JS exception: ${e.message}`;
    else if (e instanceof At1Error) outcome = { ok: false, code: e.code };
    else if (e instanceof FuzzFailure) failure = e.message;
    else failure = unexpected(e);
  }
  const ms = performance.now() - t0;
  const m1 = memNow();
  const growth = Math.max(m1.ab - m0.ab, m1.heap - m0.heap);
  if (result) {
    try {
      outcome = target.check(input, result.r);
    } catch (e) {
      failure = e instanceof FuzzFailure ? e.message : `the oracle threw (a fuzzer bug?): ${unexpected(e)}`;
    }
  }
  const limit = target.timeLimitMs ?? CASE_TIME_LIMIT_MS;
  if (!failure && ms > limit) failure = `took ${ms.toFixed(0)} ms (limit ${limit} ms)`;
  const budget = target.memoryBudget?.(input) ?? DEFAULT_MEMORY_BUDGET;
  if (!failure && growth > budget) failure = `memory grew by ${(growth / 2 ** 20).toFixed(1)} MiB during the case (budget ${(budget / 2 ** 20).toFixed(1)} MiB)`;
  return { outcome, failure, ms, growth };
}

/** Run `runs` cases of a target with fast-check, record every outcome, and shrink each distinct failure. */
export async function runTarget<C, I, R>(target: Target<C, I, R>, opts: RunOptions): Promise<RunStats> {
  const stats: RunStats = {
    target: target.name,
    seed: opts.seed,
    cases: 0,
    ok: 0,
    okNotes: {},
    errors: {},
    failures: 0,
    failureRecords: [],
    ms: 0,
    slowestMs: 0,
    maxGrowthBytes: 0,
  };
  const bySignature = new Map<string, FailureRecord>();
  const maxSignatures = opts.maxSignatures ?? 8;
  const show = (c: C): string => (target.show ? target.show(c, target.prepare(c)) : describeValue(c));
  let index = -1;
  const t0 = performance.now();
  const prop = fc.asyncProperty(target.arb(), async (c) => {
    index++;
    if (opts.skipBelow !== undefined && index < opts.skipBelow) return true;
    const i = index;
    opts.onCase?.(i, () => describeValue(c));
    const r = await runOne(target, c);
    opts.onCaseEnd?.();
    opts.onResult?.(i, r);
    stats.cases++;
    stats.slowestMs = Math.max(stats.slowestMs, r.ms);
    stats.maxGrowthBytes = Math.max(stats.maxGrowthBytes, r.growth);
    if (r.failure !== undefined) {
      stats.failures++;
      const sig = signatureOf(r.failure);
      if (!bySignature.has(sig) && bySignature.size < maxSignatures) {
        bySignature.set(sig, { index: i, signature: sig, message: r.failure, input: oracleSafe(() => show(c)), path: String(i) });
      }
    } else if (r.outcome!.ok) {
      stats.ok++;
      const note = r.outcome!.note;
      if (note) stats.okNotes[note] = (stats.okNotes[note] ?? 0) + 1;
    } else {
      const code = r.outcome!.code;
      stats.errors[code] = (stats.errors[code] ?? 0) + 1;
    }
    return true;
  });
  await fc.check(prop, { seed: opts.seed, numRuns: opts.runs, ...(opts.path !== undefined ? { path: opts.path } : {}) });
  stats.ms = performance.now() - t0;

  // Shrink: replay the first case of each failure kind; the property fails only for that kind, so the minimum is the same bug.
  if (opts.shrinkBudget !== 0) {
    for (const rec of bySignature.values()) {
      let calls = 0;
      const budget = opts.shrinkBudget ?? 300;
      let last = rec.message;
      const replay = fc.asyncProperty(target.arb(), async (c) => {
        if (++calls > budget) return true;
        opts.onCase?.(-calls, () => `(shrinking ${rec.path}) ${describeValue(c)}`);
        const r = await runOne(target, c);
        opts.onCaseEnd?.();
        if (r.failure !== undefined && signatureOf(r.failure) === rec.signature) {
          last = r.failure;
          return false;
        }
        return true;
      });
      const d = await fc.check(replay, { seed: opts.seed, path: rec.path, numRuns: 1 });
      if (d.failed && d.counterexample) {
        // replay the minimum once more so `last` is its message (the last failing call may not be the minimum)
        const min = d.counterexample[0] as C;
        opts.onCase?.(-calls - 1, () => `(shrunk minimum of ${rec.path}) ${describeValue(min)}`);
        const r = await runOne(target, min);
        opts.onCaseEnd?.();
        last = r.failure ?? last;
        rec.minimised = { input: oracleSafe(() => show(min)), message: last, path: d.counterexamplePath ?? rec.path, shrinks: d.numShrinks };
      }
    }
  }
  stats.failureRecords = [...bySignature.values()];
  return stats;
}

function oracleSafe(fn: () => string): string {
  try {
    return fn();
  } catch (e) {
    return `(could not describe the case: ${String(e)})`;
  }
}

// ================================================================ byte mutations

export type ByteOp =
  | { t: 'flip'; at: number; bit: number }
  | { t: 'set'; at: number; v: number }
  | { t: 'int'; at: number; width: 1 | 2 | 4 | 8; v: bigint; be: boolean }
  | { t: 'truncate'; at: number }
  | { t: 'extend'; bytes: number[] }
  | { t: 'insert'; at: number; bytes: number[] }
  | { t: 'delete'; at: number; len: number }
  | { t: 'copy'; from: number; at: number; len: number }
  | { t: 'splice'; donor: number; from: number; at: number; len: number; insert: boolean }
  | { t: 'repeat'; at: number; len: number; times: number };

const INTERESTING_INTS: bigint[] = [
  0n, 1n, 2n, 7n, 8n, 16n, 0x7fn, 0x80n, 0xffn, 0x100n, 0x7fffn, 0x8000n, 0xffffn, 0x10000n, 0x7fffffffn, 0x80000000n, 0xffffffffn,
  0x100000000n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 63n, 2n ** 64n - 1n, 100_000_000n, 100_000_001n,
];

/** Positions: mostly inside the first `focus` bytes (headers live there), sometimes anywhere (taken modulo the length). */
function posArb(focus: number): fc.Arbitrary<number> {
  return fc.oneof({ arbitrary: fc.nat({ max: Math.max(1, focus) }), weight: 3 }, { arbitrary: fc.nat({ max: 1 << 30 }), weight: 1 });
}

const smallBytes = fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 16 });

export function byteOpArb(focus: number, donors: number): fc.Arbitrary<ByteOp> {
  const at = posArb(focus);
  return fc.oneof(
    { weight: 6, arbitrary: fc.record({ t: fc.constant('flip' as const), at, bit: fc.integer({ min: 0, max: 7 }) }) },
    { weight: 3, arbitrary: fc.record({ t: fc.constant('set' as const), at, v: fc.oneof(fc.constantFrom(0, 0xff, 0x7f, 0x80, 0x20, 0x22, 0x7b, 0x7d, 0x2c, 0x3a), fc.integer({ min: 0, max: 255 })) }) },
    {
      weight: 3,
      arbitrary: fc.record({
        t: fc.constant('int' as const),
        at,
        width: fc.constantFrom(1 as const, 2 as const, 4 as const, 8 as const),
        v: fc.oneof(fc.constantFrom(...INTERESTING_INTS), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n })),
        be: fc.boolean(),
      }),
    },
    { weight: 2, arbitrary: fc.record({ t: fc.constant('truncate' as const), at }) },
    { weight: 1, arbitrary: fc.record({ t: fc.constant('extend' as const), bytes: smallBytes }) },
    { weight: 2, arbitrary: fc.record({ t: fc.constant('insert' as const), at, bytes: smallBytes }) },
    { weight: 2, arbitrary: fc.record({ t: fc.constant('delete' as const), at, len: fc.integer({ min: 1, max: 64 }) }) },
    { weight: 1, arbitrary: fc.record({ t: fc.constant('copy' as const), from: at, at, len: fc.integer({ min: 1, max: 256 }) }) },
    {
      weight: donors > 0 ? 2 : 0,
      arbitrary: fc.record({ t: fc.constant('splice' as const), donor: fc.nat({ max: Math.max(0, donors - 1) }), from: at, at, len: fc.integer({ min: 1, max: 4096 }), insert: fc.boolean() }),
    },
    { weight: 1, arbitrary: fc.record({ t: fc.constant('repeat' as const), at, len: fc.integer({ min: 1, max: 64 }), times: fc.oneof(fc.integer({ min: 2, max: 64 }), fc.integer({ min: 1000, max: 20000 })) }) },
  );
}

export const MAX_MUTATED_LENGTH = 4 << 20;

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Apply byte ops to a copy of `input`. */
export function applyByteOps(input: Uint8Array, ops: readonly ByteOp[], donors: readonly Uint8Array[] = []): Uint8Array {
  let b: Uint8Array = input.slice();
  for (const op of ops) {
    const n = b.length;
    switch (op.t) {
      case 'flip':
        if (n > 0) b[op.at % n]! ^= 1 << op.bit;
        break;
      case 'set':
        if (n > 0) b[op.at % n] = op.v;
        break;
      case 'int': {
        if (n === 0) break;
        const at = op.at % n;
        for (let k = 0; k < op.width && at + k < n; k++) {
          const shift = BigInt(8 * (op.be ? op.width - 1 - k : k));
          b[at + k] = Number((op.v >> shift) & 0xffn);
        }
        break;
      }
      case 'truncate':
        b = b.slice(0, op.at % (n + 1));
        break;
      case 'extend':
        b = concat(b, Uint8Array.from(op.bytes));
        break;
      case 'insert': {
        const at = op.at % (n + 1);
        b = concat(b.subarray(0, at), Uint8Array.from(op.bytes), b.subarray(at));
        break;
      }
      case 'delete': {
        const at = op.at % (n + 1);
        b = concat(b.subarray(0, at), b.subarray(at + op.len));
        break;
      }
      case 'copy': {
        if (n === 0) break;
        const from = op.from % n;
        const at = op.at % n;
        b.copyWithin(at, from, Math.min(n, from + op.len));
        break;
      }
      case 'splice': {
        const d = donors[op.donor % Math.max(1, donors.length)];
        if (!d || d.length === 0) break;
        const from = op.from % d.length;
        const piece = d.subarray(from, from + op.len);
        const at = op.at % (n + 1);
        b = op.insert ? concat(b.subarray(0, at), piece, b.subarray(at)) : concat(b.subarray(0, at), piece, b.subarray(Math.min(n, at + piece.length)));
        break;
      }
      case 'repeat': {
        if (n === 0) break;
        const at = op.at % n;
        const piece = b.subarray(at, at + op.len);
        const times = Math.min(op.times, Math.floor(MAX_MUTATED_LENGTH / Math.max(1, piece.length)));
        const rep = new Uint8Array(piece.length * times);
        for (let k = 0; k < times; k++) rep.set(piece, k * piece.length);
        b = concat(b.subarray(0, at), rep, b.subarray(at));
        break;
      }
    }
    if (b.length > MAX_MUTATED_LENGTH) b = b.slice(0, MAX_MUTATED_LENGTH);
  }
  return b;
}

/** Where a mutated text first and last differs from its original, with context: what a report needs of a 40 KB manifest. */
export function diffContext(orig: Uint8Array, mutated: Uint8Array, context = 120): string {
  const n = Math.min(orig.length, mutated.length);
  let i = 0;
  while (i < n && orig[i] === mutated[i]) i++;
  if (i === n && orig.length === mutated.length) return 'identical to the original';
  let j = 0;
  while (j < n - i && orig[orig.length - 1 - j] === mutated[mutated.length - 1 - j]) j++;
  const text = (b: Uint8Array, from: number, to: number): string => JSON.stringify(Buffer.from(b.subarray(Math.max(0, from), Math.min(b.length, to))).toString('latin1'));
  const changed = mutated.length - j - i;
  return `${orig.length} -> ${mutated.length} bytes; bytes ${i}..${mutated.length - j} (${changed} bytes) replace ${orig.length - j - i} original bytes; original ${text(orig, i - context, orig.length - j + context).slice(0, 1200)} became ${text(mutated, i - context, mutated.length - j + context).slice(0, 1200)}`;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

function sha256(b: Uint8Array): string {
  return createHash('sha256').update(b).digest('hex');
}

// ================================================================ JSON mutations

/** A JSON tree that can hold what JSON.parse cannot: duplicate keys and exact number tokens. */
export type J = { k: 'o'; e: [string, J][] } | { k: 'a'; e: J[] } | { k: 'n'; raw: string } | { k: 's'; v: string } | { k: 'l'; v: 'true' | 'false' | 'null' };

export function toJ(v: unknown): J {
  if (v === null) return { k: 'l', v: 'null' };
  if (typeof v === 'boolean') return { k: 'l', v: v ? 'true' : 'false' };
  if (typeof v === 'number') return { k: 'n', raw: String(v) };
  if (typeof v === 'string') return { k: 's', v };
  if (Array.isArray(v)) return { k: 'a', e: v.map(toJ) };
  return { k: 'o', e: Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, toJ(x)]) };
}

export function jText(j: J): string {
  switch (j.k) {
    case 'o':
      return `{${j.e.map(([k, v]) => `${JSON.stringify(k)}:${jText(v)}`).join(',')}}`;
    case 'a':
      return `[${j.e.map(jText).join(',')}]`;
    case 'n':
      return j.raw;
    case 's':
      return JSON.stringify(j.v);
    case 'l':
      return j.v;
  }
}

function cloneJ(j: J): J {
  switch (j.k) {
    case 'o':
      return { k: 'o', e: j.e.map(([k, v]) => [k, cloneJ(v)]) };
    case 'a':
      return { k: 'a', e: j.e.map(cloneJ) };
    default:
      return { ...j };
  }
}

interface JNode {
  node: J;
  parent?: { j: { k: 'o'; e: [string, J][] } | { k: 'a'; e: J[] }; i: number };
}

function nodesOf(root: J): JNode[] {
  const out: JNode[] = [];
  const walk = (node: J, parent?: JNode['parent']): void => {
    out.push({ node, parent });
    if (node.k === 'o') node.e.forEach(([, v], i) => walk(v, { j: node, i }));
    else if (node.k === 'a') node.e.forEach((v, i) => walk(v, { j: node, i }));
  };
  walk(root);
  return out;
}

export interface JsonOp {
  node: number;
  action: number;
  pick: number;
  pick2: number;
}

export const JSON_ACTIONS = 12;

export function jsonOpArb(): fc.Arbitrary<JsonOp> {
  return fc.record({ node: fc.nat({ max: 1 << 20 }), action: fc.nat({ max: JSON_ACTIONS - 1 }), pick: fc.nat({ max: 1 << 16 }), pick2: fc.nat({ max: 1 << 16 }) });
}

const INTERESTING_NUMBERS = [
  '0', '1', '-1', '2', '8', '-0', '0.0', '1.5', '1e3', '1E3', '1e-3', '00', '01', '7', '255', '256', '65535', '65536', '4294967295', '4294967296',
  '9007199254740991', '9007199254740992', '9007199254740993', '18446744073709551615', '18446744073709551616', '1e308', '1e309', '-9007199254740991',
  '100000000', '100000001', '2097152', '67108864', '4096', '4095', '4097', '3.0', '12345678901234567890123456789',
];

const INTERESTING_STRINGS = [
  '', ' ', '.', '..', '../x', '../../etc/passwd', '/etc/passwd', '/x.safetensors', 'a/../b', 'a//b', './a', 'a/', 'a\\b', '..\\x', 'C:x', 'C:\\x', 's3://bucket/x.safetensors',
  'https://example.com/x.safetensors', 'file:///etc/passwd', '\u0000', 'a\u0000b', '\n', '\u007f', '\u2025', '．．/x', '%2e%2e/x', 'x'.repeat(300), 'x'.repeat(5000),
  '__proto__', 'constructor', 'prototype', '__metadata__', 'F32', 'BF16', 'F16', 'U8', 'I64', 'F4', 'F6_E2M3', 'BOOL', 'F64', 'bf16', 'F128', 'blob', 'safetensors',
  'file', 'directory', 'at1.version', 'base', 'prose-step0025', 'model.safetensors', 'model-00001-of-00002.safetensors', 'sub/model.safetensors', '../model.safetensors',
  'model.safetensors/', 'model.SAFETENSORS', 'model.safetensors ', '\ud800', '\udfff', '😀', 'é', 'e\u0301',
];

function interestingNumber(pick: number): J {
  return { k: 'n', raw: INTERESTING_NUMBERS[pick % INTERESTING_NUMBERS.length]! };
}

function interestingValue(pick: number, extraStrings: readonly string[]): J {
  const strings = [...INTERESTING_STRINGS, ...extraStrings];
  switch (pick % 8) {
    case 0:
    case 1:
      return { k: 's', v: strings[Math.floor(pick / 8) % strings.length]! };
    case 2:
      return interestingNumber(Math.floor(pick / 8));
    case 3:
      return { k: 'l', v: (['true', 'false', 'null'] as const)[Math.floor(pick / 8) % 3]! };
    case 4:
      return { k: 'a', e: [] };
    case 5:
      return { k: 'o', e: [] };
    case 6:
      return { k: 'a', e: [interestingNumber(pick >> 3), interestingNumber(pick >> 5)] };
    default:
      return { k: 'o', e: [[strings[(pick >> 3) % strings.length]!, interestingNumber(pick >> 4)]] };
  }
}

function tweakNumber(raw: string, pick: number): string {
  let n: bigint;
  try {
    n = BigInt(raw);
  } catch {
    return INTERESTING_NUMBERS[pick % INTERESTING_NUMBERS.length]!;
  }
  const forms = [
    n + 1n, n - 1n, n * 2n, n / 2n, -n, n + 2n ** 32n, n + 2n ** 53n, n * 4096n, n + 8n, n - 8n, 0n,
  ];
  const k = pick % (forms.length + 4);
  if (k < forms.length) return String(forms[k]!);
  return [`${raw}.0`, `${raw}e0`, `0${raw}`, `${raw}0000000000000000000000`][k - forms.length]!;
}

/** Apply one structure-aware edit to a copy of `root`. */
export function applyJsonOp(root: J, op: JsonOp, extraStrings: readonly string[] = []): J {
  const out = cloneJ(root);
  const nodes = nodesOf(out);
  const target = nodes[op.node % nodes.length]!;
  const replace = (j: J): J => {
    if (!target.parent) return j;
    const { j: p, i } = target.parent;
    if (p.k === 'o') p.e[i] = [p.e[i]![0], j];
    else p.e[i] = j;
    return out;
  };
  const res = (j: J): J => (target.parent ? replace(j) : j);
  switch (op.action) {
    case 0: // an interesting value of any type
      return res(interestingValue(op.pick, extraStrings));
    case 1: // an interesting string
      return res({ k: 's', v: [...INTERESTING_STRINGS, ...extraStrings][op.pick % (INTERESTING_STRINGS.length + extraStrings.length)]! });
    case 2: // a numeric tweak (or a number where there was none)
      return res(target.node.k === 'n' ? { k: 'n', raw: tweakNumber(target.node.raw, op.pick) } : interestingNumber(op.pick));
    case 3: {
      // drop the node from its parent
      if (!target.parent) return out;
      target.parent.j.e.splice(target.parent.i, 1);
      return out;
    }
    case 4: {
      // duplicate the entry (a duplicate key in an object)
      if (!target.parent) return out;
      const p = target.parent.j;
      if (p.k === 'o') {
        const [k, v] = p.e[target.parent.i]!;
        p.e.splice(target.parent.i + (op.pick % 2), 0, [k, op.pick2 % 2 ? cloneJ(v) : interestingValue(op.pick2 >> 1, extraStrings)]);
      } else p.e.splice(target.parent.i, 0, cloneJ(p.e[target.parent.i]!));
      return out;
    }
    case 5: {
      // rename a key: to another key of the same object (a collision) or to an interesting string
      if (!target.parent || target.parent.j.k !== 'o') return res(interestingValue(op.pick, extraStrings));
      const p = target.parent.j;
      const names = p.e.map(([k]) => k);
      const strings = [...INTERESTING_STRINGS, ...extraStrings];
      const name = op.pick % 2 ? names[op.pick2 % names.length]! : strings[op.pick2 % strings.length]!;
      p.e[target.parent.i] = [name, p.e[target.parent.i]![1]];
      return out;
    }
    case 6: // copy another subtree here
      return res(cloneJ(nodes[op.pick % nodes.length]!.node));
    case 7: {
      // reorder: swap with a sibling, or reverse a container
      if (target.node.k === 'a' || target.node.k === 'o') {
        (target.node.e as unknown[]).reverse();
        return out;
      }
      if (!target.parent) return out;
      const e = target.parent.j.e as unknown[];
      const other = op.pick % e.length;
      [e[target.parent.i], e[other]] = [e[other], e[target.parent.i]];
      return out;
    }
    case 8: // wrap in an array or an object
      return res(op.pick % 2 ? { k: 'a', e: [target.node] } : { k: 'o', e: [['x', target.node]] });
    case 9: {
      // deep nesting, written as raw text (a tree this deep would overflow this file's own recursion)
      const depth = [10, 65, 100, 1000, 100_000][op.pick2 % 5]!;
      const [open, close] = op.pick % 2 ? ['[', ']'] : ['{"a":', '}'];
      return res({ k: 'n', raw: `${open.repeat(depth)}1${close.repeat(depth)}` });
    }
    case 10: {
      // something big: a long string, a long number token, a long array
      const size = [1000, 100_000, 1_000_000][op.pick2 % 3]!;
      const which = op.pick % 3;
      if (which === 0) return res({ k: 's', v: 'a'.repeat(size) });
      if (which === 1) return res({ k: 'n', raw: '9'.repeat(size) });
      return res({ k: 'a', e: Array.from({ length: Math.min(size, 200_000) }, () => ({ k: 'n', raw: '1' })) });
    }
    default: {
      // empty a container, or replace with a value of another type
      if (target.node.k === 'a' || target.node.k === 'o') {
        target.node.e.length = 0;
        return out;
      }
      return res(target.node.k === 's' ? interestingNumber(op.pick) : { k: 's', v: target.node.k === 'n' ? target.node.raw : 'x' });
    }
  }
}

export function applyJsonOps(root: J, ops: readonly JsonOp[], extraStrings: readonly string[] = []): J {
  let j = root;
  for (const op of ops) j = applyJsonOp(j, op, extraStrings);
  return j;
}

const utf8 = new TextEncoder();

// ================================================================ fixtures

function fixture(name: string): Uint8Array {
  return new Uint8Array(readFileSync(join(EMBEDDED, name)));
}

/** A scratch directory on tmpfs when there is one (the end-to-end targets write a file per case). */
function scratchDir(prefix: string): string {
  const base = existsSync('/dev/shm') && statSync('/dev/shm').isDirectory() ? '/dev/shm' : tmpdir();
  try {
    return mkdtempSync(join(base, prefix));
  } catch {
    return mkdtempSync(join(tmpdir(), prefix));
  }
}

// ================================================================ 1. safetensors header parser

interface StSeed {
  what: string;
  /** The start of the file (all of it for small files): what the parser is given. */
  bytes: Uint8Array;
  /** Bytes of the real file beyond `bytes`: the parser never sees them, but the file size counts them. */
  beyond: number;
  header: J;
  /** Bytes after the header inside `bytes`. */
  data: Uint8Array;
}

interface StCase {
  seed: number;
  json: JsonOp[];
  pad: number;
  bytes: ByteOp[];
  sizeDelta: bigint;
  /** Pass only the first 8 + N bytes (as readSafetensorsHeader does) instead of everything. */
  cut: boolean;
}

function stSeedOf(what: string, file: Uint8Array, keep: number): StSeed {
  const n = Number(new DataView(file.buffer, file.byteOffset).getBigUint64(0, true));
  const header = toJ(JSON.parse(new TextDecoder().decode(file.subarray(8, 8 + n))));
  const bytes = file.slice(0, Math.min(file.length, keep));
  return { what, bytes, beyond: file.length - bytes.length, header, data: bytes.subarray(8 + n) };
}

function f32Bytes(xs: number[]): Uint8Array {
  return new Uint8Array(Float32Array.from(xs).buffer);
}

function stSeeds(): StSeed[] {
  const seeds: StSeed[] = [stSeedOf('fixtures/tinystories/base.safetensors (first 64 KiB)', fixture('base.safetensors'), 64 << 10)];
  const synth: [string, Parameters<typeof serializeSafetensors>[0], Record<string, string> | undefined][] = [
    [
      'mixed dtypes',
      [
        { name: 'w', dtype: 'F32', shape: [2, 3], data: f32Bytes([1, 2, 3, 4, 5, 6]) },
        { name: 'b', dtype: 'BF16', shape: [4], data: new Uint8Array(8).fill(0x3f) },
        { name: 'u', dtype: 'U8', shape: [5], data: Uint8Array.of(1, 2, 3, 4, 5) },
        { name: 'i', dtype: 'I64', shape: [1], data: new Uint8Array(8).fill(7) },
        { name: 'f4', dtype: 'F4', shape: [8], data: Uint8Array.of(1, 2, 3, 4) },
        { name: 'f6', dtype: 'F6_E2M3', shape: [4], data: Uint8Array.of(9, 8, 7) },
      ],
      { format: 'pt', note: 'fuzz' },
    ],
    [
      'empty and scalar tensors',
      [
        { name: 'empty', dtype: 'F32', shape: [0, 3], data: new Uint8Array(0) },
        { name: 'scalar', dtype: 'F32', shape: [], data: f32Bytes([3.5]) },
        { name: 'flag', dtype: 'BOOL', shape: [2], data: Uint8Array.of(0, 1) },
      ],
      undefined,
    ],
    ['metadata only', [], { a: 'b', ['__proto__']: 'x' }],
    ['unicode names', [{ name: 'é/😀.weight', dtype: 'F16', shape: [2, 2], data: new Uint8Array(8).fill(0x3c) }], { 'ключ': 'значение' }],
  ];
  for (const [what, tensors, meta] of synth) {
    const file = serializeSafetensors(tensors, meta);
    seeds.push(stSeedOf(`synthetic: ${what}`, file, file.length));
  }
  return seeds;
}

function stBuild(seed: StSeed, c: StCase): { bytes: Uint8Array; fileSize: number } {
  let bytes: Uint8Array;
  if (c.json.length > 0 || c.pad > 0) {
    const text = utf8.encode(jText(applyJsonOps(seed.header, c.json, ['w', 'b', 'dtype', 'shape', 'data_offsets', 'lm_head.weight'])));
    const n = text.length + c.pad;
    bytes = new Uint8Array(8 + n + seed.data.length);
    new DataView(bytes.buffer).setBigUint64(0, BigInt(n), true);
    bytes.set(text, 8);
    bytes.fill(0x20, 8 + text.length, 8 + n);
    bytes.set(seed.data, 8 + n);
  } else bytes = seed.bytes;
  bytes = applyByteOps(bytes, c.bytes, [seed.bytes]);
  let fileSize = bytes.length + seed.beyond;
  const sized = BigInt(fileSize) + c.sizeDelta;
  fileSize = sized < 0n ? 0 : sized > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(sized);
  if (c.cut && bytes.length >= 8) {
    const n = new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true);
    if (n <= BigInt(bytes.length - 8)) bytes = bytes.subarray(0, 8 + Number(n));
  }
  return { bytes, fileSize };
}

/** Independent check of a parse the strict reader accepted: JSON.parse must read the same tensors, and the layout must add up. */
function checkSafetensors(h: SafetensorsHeader, bytes: Uint8Array, fileSize: number): void {
  oracle('safetensors oracle', () => {
    const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
    if (h.dataStart !== 8 + n) fail(`dataStart ${h.dataStart} but the prefix says ${8 + n}`);
    if (!sameBytes(h.headerBytes, bytes.subarray(0, 8 + n))) fail('headerBytes are not the first 8 + N bytes verbatim');
    if (h.fileSize !== fileSize) fail('fileSize changed');
    const text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + n));
    if (!/^\{/.test(text) || !/\} *$/.test(text)) fail('accepted a header not of the form {…} plus spaces');
    let parsed: Record<string, unknown>;
    try {
      parsed = JSON.parse(text) as Record<string, unknown>;
    } catch (e) {
      fail(`accepted a header JSON.parse refuses: ${(e as Error).message}`);
    }
    const names = Object.keys(parsed).filter((k) => k !== '__metadata__');
    if (names.length !== h.tensors.length) fail(`${h.tensors.length} tensors returned, JSON.parse sees ${names.length}`);
    for (const t of h.tensors) {
      const e = parsed[t.name] as { dtype: unknown; shape: unknown; data_offsets: unknown } | undefined;
      if (!e || !Object.hasOwn(parsed, t.name)) fail(`tensor ${JSON.stringify(t.name)} is not in the JSON`);
      if (Object.keys(e).sort().join() !== 'data_offsets,dtype,shape') fail(`tensor ${t.name} has keys ${Object.keys(e).join()}`);
      if (e.dtype !== t.dtype || !dtypeInfo(t.dtype)) fail(`tensor ${t.name}: dtype ${String(e.dtype)} vs ${t.dtype}`);
      if (JSON.stringify(e.shape) !== JSON.stringify(t.shape)) fail(`tensor ${t.name}: shape differs`);
      if (JSON.stringify(e.data_offsets) !== JSON.stringify([t.begin, t.end])) fail(`tensor ${t.name}: offsets differ`);
      if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) fail(`tensor ${t.name}: bad dimension accepted`);
      const size = tensorByteSize(t.dtype, t.shape);
      if (!('bytes' in size) || size.bytes !== t.end - t.begin) fail(`tensor ${t.name}: size does not match dtype x shape`);
    }
    let at = 0;
    for (const t of h.tensors) {
      if (t.begin !== at) fail(`tensors not contiguous at ${t.name}`);
      at = t.end;
    }
    if (h.dataStart + at !== fileSize) fail(`data ends at ${h.dataStart + at}, file is ${fileSize}`);
    const meta = parsed.__metadata__;
    if (meta === undefined ? h.metadata !== null : JSON.stringify(meta) !== JSON.stringify(h.metadata)) fail('metadata differs from the JSON');
    if (h.metadata) for (const v of Object.values(h.metadata)) if (typeof v !== 'string') fail('a metadata value is not a string');
  });
}

export function safetensorsTarget(): Target<StCase, { what: string; bytes: Uint8Array; fileSize: number }, SafetensorsHeader> {
  let seeds: StSeed[] = [];
  return {
    name: 'safetensors',
    what: 'parseSafetensorsHeader on mutated base.safetensors (first 64 KiB, real file size) and synthetic files',
    async setup() {
      seeds = stSeeds();
    },
    async teardown() {},
    arb: () =>
      fc.record({
        seed: fc.nat({ max: 1000 }),
        json: fc.oneof({ weight: 1, arbitrary: fc.array(jsonOpArb(), { minLength: 1, maxLength: 3 }) }, { weight: 1, arbitrary: fc.constant([] as JsonOp[]) }),
        pad: fc.oneof({ weight: 4, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 64 }) }),
        bytes: fc.array(byteOpArb(2200, 1), { minLength: 0, maxLength: 4 }),
        sizeDelta: fc.oneof({ weight: 6, arbitrary: fc.constant(0n) }, { weight: 1, arbitrary: fc.constantFrom(-1n, 1n, -8n, 8n, 2n ** 32n, 2n ** 53n, -(2n ** 53n)) }),
        cut: fc.boolean(),
      }),
    prepare(c) {
      const seed = seeds[c.seed % seeds.length]!;
      return { what: seed.what, ...stBuild(seed, c) };
    },
    exec: async ({ bytes, fileSize }) => parseSafetensorsHeader(bytes, fileSize, 'fuzz.safetensors'),
    check({ bytes, fileSize }, h) {
      checkSafetensors(h, bytes, fileSize);
      return { ok: true };
    },
    show: (c, { what, bytes, fileSize }) =>
      `${what}; ops ${describeValue(c)}; fileSize ${fileSize}; ${bytes.length} bytes given: ${JSON.stringify(Buffer.from(bytes.subarray(0, 600)).toString('latin1'))}`,
  };
}

// ================================================================ 2. object header

interface ObjSeed {
  header: Omit<ObjectHeader, 'payloadOffset'>;
  bytes: Uint8Array;
}

interface ObjCase {
  seed: number;
  fields: { f: number; v: number }[];
  bytes: ByteOp[];
  prefixOnly: boolean;
}

const DIGEST_A = sha256(utf8.encode('a'));
const DIGEST_B = sha256(utf8.encode('b'));

function objSeeds(): ObjSeed[] {
  const payload = (n: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 37) & 0xff);
  const hs: [Omit<ObjectHeader, 'payloadOffset'>, Uint8Array][] = [
    [{ codec: 0, depth: 0, rawLength: 64, dtype: 'BF16', refs: [] }, payload(64)],
    [{ codec: 1, depth: 0, rawLength: 4096, dtype: 'U8', refs: [] }, payload(20)],
    [{ codec: 11, depth: 3, rawLength: 8192, dtype: 'F32', refs: [{ digest: DIGEST_A, dtype: 'BF16' }] }, payload(40)],
    [{ codec: 12, depth: 5, rawLength: 8192, dtype: 'BF16', refs: [{ digest: DIGEST_A, dtype: 'BF16' }, { digest: DIGEST_B, dtype: 'F16' }] }, payload(33)],
    [
      {
        codec: 13,
        depth: 64,
        rawLength: MAX_RAW_LENGTH,
        dtype: 'F8_E4M3',
        refs: [
          { digest: DIGEST_A, dtype: 'F6_E2M3' },
          { digest: DIGEST_B, dtype: 'BOOL' },
          { digest: DIGEST_A, dtype: 'F32' },
          { digest: DIGEST_B, dtype: 'I64' },
        ],
      },
      payload(5),
    ],
    [{ codec: 10, depth: 0, rawLength: 0, dtype: 'F4', refs: [] }, new Uint8Array(0)],
  ];
  return hs.map(([header, p]) => ({ header, bytes: encodeObject(header, p) }));
}

/** Header fields by offset: magic byte, version, codec, depth, refs, raw length (u64), dtype length. */
function setField(b: Uint8Array, f: number, v: number): void {
  const put = (at: number, x: number): void => {
    if (at < b.length) b[at] = x & 0xff;
  };
  switch (f % 8) {
    case 0:
      put(v % 4, v >> 2);
      break;
    case 1:
      put(4, [0, 1, 2, 255][v % 4]!);
      break;
    case 2:
      put(5, [0, 1, 2, 3, 9, 10, 11, 12, 13, 14, 255][v % 11]!);
      break;
    case 3:
      put(6, [0, 1, 2, 63, 64, 65, 128, 255][v % 8]!);
      break;
    case 4:
      put(7, [0, 1, 2, 3, 4, 5, 8, 255][v % 8]!);
      break;
    case 5: {
      const vals = [0n, 1n, 2n ** 29n, 2n ** 29n + 1n, 2n ** 32n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 64n - 1n, BigInt(v)];
      const x = vals[v % vals.length]!;
      for (let k = 0; k < 8; k++) put(8 + k, Number((x >> BigInt(8 * k)) & 0xffn));
      break;
    }
    case 6:
      put(16, [0, 1, 2, 3, 4, 7, 16, 17, 255][v % 9]!);
      break;
    default: {
      // a dtype name: another known one or an unknown one, written over the current name bytes
      const names = ['F32', 'BF16', 'U8', 'F8_E4M3', 'F6_E3M2', 'XX', 'f32', 'F3\u00002', '__proto__'];
      const s = names[v % names.length]!;
      for (let k = 0; k < s.length; k++) put(17 + k, s.charCodeAt(k));
    }
  }
}

export function objectHeaderTarget(): Target<ObjCase, Uint8Array, ObjectHeader> {
  let seeds: ObjSeed[] = [];
  const build = (c: ObjCase): Uint8Array => {
    const seed = seeds[c.seed % seeds.length]!;
    const b = seed.bytes.slice();
    for (const { f, v } of c.fields) setField(b, f, v);
    const out = applyByteOps(b, c.bytes, seeds.map((s) => s.bytes));
    return c.prefixOnly ? out.subarray(0, MAX_HEADER_BYTES) : out;
  };
  return {
    name: 'object-header',
    what: 'decodeObjectHeader on mutated objects (fields, bytes, the ranged first MAX_HEADER_BYTES)',
    async setup() {
      seeds = objSeeds();
    },
    async teardown() {},
    arb: () =>
      fc.record({
        seed: fc.nat({ max: 1000 }),
        fields: fc.array(fc.record({ f: fc.nat({ max: 7 }), v: fc.nat({ max: 1 << 16 }) }), { maxLength: 3 }),
        bytes: fc.array(byteOpArb(MAX_HEADER_BYTES, 1), { maxLength: 3 }),
        prefixOnly: fc.boolean(),
      }),
    prepare: build,
    exec: async (bytes) => decodeObjectHeader(bytes, 'fuzz'),
    check(bytes, h) {
      oracle('object header oracle', () => {
        if (h.refs.length > 4 || h.depth > 64 || (h.depth === 0) !== (h.refs.length === 0)) fail(`accepted depth ${h.depth} with ${h.refs.length} refs`);
        if (!Number.isSafeInteger(h.rawLength) || h.rawLength < 0 || h.rawLength > MAX_RAW_LENGTH) fail(`accepted the raw length ${h.rawLength}`);
        if (h.payloadOffset > bytes.length) fail('payload offset past the end');
        if (!dtypeInfo(h.dtype) || !h.refs.every((r) => dtypeInfo(r.dtype) && /^[0-9a-f]{64}$/.test(r.digest))) fail('accepted a bad dtype or digest');
        // the header is canonical: encoding what was decoded gives the same bytes
        const again = encodeObject({ codec: h.codec, depth: h.depth, rawLength: h.rawLength, dtype: h.dtype, refs: h.refs }, bytes.subarray(h.payloadOffset));
        if (!sameBytes(again, bytes)) fail('re-encoding the decoded header does not give the same bytes');
      });
      return { ok: true };
    },
    show: (c, bytes) => `${describeValue(c)} -> ${hex(bytes, 300)}`,
  };
}

// ================================================================ 3. codec payloads

interface CodecSample {
  what: string;
  codec: number;
  raw: Uint8Array;
  ctx: ChunkContext;
  payload: Uint8Array;
}

interface CodecCase {
  sample: number;
  bytes: ByteOp[];
}

/** Tensor bytes of a fixture file by name. */
function tensorOf(file: string, name: string): { dtype: string; data: Uint8Array } {
  const b = fixture(file);
  const h = parseSafetensorsHeader(b, b.length, file);
  const t = h.tensors.find((x) => x.name === name);
  if (!t) throw new Error(`${file} has no tensor ${name}`);
  return { dtype: t.dtype, data: b.slice(h.dataStart + t.begin, h.dataStart + t.end) };
}

function bf16ToF32(b: Uint8Array, noiseSeed: number): Uint8Array {
  const src = new Uint16Array(b.buffer, b.byteOffset, b.length >>> 1);
  const out = new Uint32Array(src.length);
  let s = noiseSeed >>> 0;
  for (let i = 0; i < src.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    // exact widening, plus a few low mantissa bits so the low half is not all zero
    out[i] = (src[i]! << 16) | (noiseSeed ? s >>> 26 : 0);
  }
  return new Uint8Array(out.buffer);
}

function f32ToF16Bytes(b: Uint8Array): Uint8Array {
  const src = new Uint32Array(b.buffer, b.byteOffset, b.length >>> 2);
  return new Uint8Array(Uint16Array.from(src, (u) => f32ToF16(u)).buffer);
}

function codecSamples(): CodecSample[] {
  const CH = 4096; // elements per chunk, as in the end-to-end registry
  const lm = (file: string): Uint8Array => tensorOf(file, 'lm_head.weight').data.slice(0, CH * 2);
  const base = lm('base.safetensors');
  const s25 = lm('prose-step0025.safetensors');
  const s50 = lm('prose-step0050.safetensors');
  const q = 'model.layers.0.self_attn.q_proj.weight';
  const qBase = tensorOf('base.safetensors', q).data;
  const qLora = tensorOf('code-lora.safetensors', q).data;
  const f32Base = bf16ToF32(base, 0);
  const f32Child = bf16ToF32(s25, 7);
  const f16Base = f32ToF16Bytes(f32Base);
  const f16Child = f32ToF16Bytes(bf16ToF32(s25, 0));
  const bytesU8 = Uint8Array.from({ length: 8191 }, (_, i) => (i * i) & 0xff);
  const i32 = new Uint8Array(Int32Array.from({ length: 2048 }, (_, i) => (i % 97) - 40).buffer);
  const i32b = new Uint8Array(Int32Array.from({ length: 2048 }, (_, i) => (i % 97) - 41).buffer);
  const ref = (dtype: string, bytes: Uint8Array) => ({ dtype, bytes });
  const plan: [string, number, Uint8Array, ChunkContext, Level][] = [
    ['raw bf16', 0, base, { dtype: 'BF16', refs: [] }, 'max'],
    ['raw u8 odd length', 0, bytesU8, { dtype: 'U8', refs: [] }, 'max'],
    ['grouped-zstd bf16', 1, base, { dtype: 'BF16', refs: [] }, 'max'],
    ['grouped-zstd f32', 1, f32Child, { dtype: 'F32', refs: [] }, 'fast'],
    ['grouped-zstd u8 odd length', 1, bytesU8, { dtype: 'U8', refs: [] }, 'max'],
    ['bitx bf16', 2, s25, { dtype: 'BF16', refs: [ref('BF16', base)] }, 'max'],
    ['bitx i32', 2, i32, { dtype: 'I32', refs: [ref('I32', i32b)] }, 'max'],
    ['bitx f32', 2, f32Child, { dtype: 'F32', refs: [ref('F32', f32Base)] }, 'fast'],
    ['float-exp bf16', 10, base, { dtype: 'BF16', refs: [] }, 'max'],
    ['float-exp f32', 10, f32Child, { dtype: 'F32', refs: [] }, 'max'],
    ['float-exp f16', 10, f16Child, { dtype: 'F16', refs: [] }, 'max'],
    ['float-delta bf16 (rANS)', 11, s25, { dtype: 'BF16', refs: [ref('BF16', base)] }, 'max'],
    ['float-delta bf16 (fast, zstd planes)', 11, s25, { dtype: 'BF16', refs: [ref('BF16', base)] }, 'fast'],
    ['float-delta f32 against bf16', 11, f32Child, { dtype: 'F32', refs: [ref('BF16', base)] }, 'max'],
    ['float-delta f32 (fast)', 11, f32Child, { dtype: 'F32', refs: [ref('F32', f32Base)] }, 'fast'],
    ['float-delta f16 against f32', 11, f16Child, { dtype: 'F16', refs: [ref('F32', f32Base)] }, 'max'],
    ['float-delta bf16 against f16', 11, s25, { dtype: 'BF16', refs: [ref('F16', f16Base)] }, 'max'],
    ['float-traj bf16', 12, s50, { dtype: 'BF16', refs: [ref('BF16', s25), ref('BF16', base)] }, 'max'],
    ['float-traj f32', 12, bf16ToF32(s50, 3), { dtype: 'F32', refs: [ref('F32', f32Child), ref('BF16', base)] }, 'max'],
    ['float-traj (fast)', 12, s50, { dtype: 'BF16', refs: [ref('BF16', s25), ref('BF16', base)] }, 'fast'],
    ['float-lowrank bf16 (merged LoRA q_proj)', 13, qLora, { dtype: 'BF16', refs: [ref('BF16', qBase)] }, 'max'],
    ['float-lowrank f32 (merged LoRA q_proj)', 13, bf16ToF32(qLora, 0), { dtype: 'F32', refs: [ref('BF16', qBase)] }, 'max'],
    ['float-lowrank raw escape', 13, s25, { dtype: 'BF16', refs: [ref('BF16', base)] }, 'fast'],
  ];
  const out: CodecSample[] = [];
  for (const [what, id, raw, ctx, level] of plan) {
    const codec = codecById(id, what);
    if (!codec.accepts(raw.length, ctx)) throw new Error(`${what}: codec ${codec.name} does not accept the sample`);
    const payload = codec.encode(raw, ctx, level);
    const back = codec.decode(payload, raw.length, ctx);
    if (!sameBytes(back, raw)) throw new Error(`${what}: the unmutated payload does not round-trip`);
    out.push({ what: `${what} (${payload.length} B payload, mode ${payload[0]})`, codec: id, raw, ctx, payload: payload.slice() });
  }
  return out;
}

export function codecTarget(): Target<CodecCase, { s: CodecSample; payload: Uint8Array }, unknown> {
  let samples: CodecSample[] = [];
  const build = (c: CodecCase): { s: CodecSample; payload: Uint8Array } => {
    const s = samples[c.sample % samples.length]!;
    return { s, payload: applyByteOps(s.payload, c.bytes, samples.map((x) => x.payload)) };
  };
  return {
    name: 'codec-payloads',
    what: 'codecById(id).decode on mutated payloads of real bf16/f32/f16/int chunks, every codec (0,1,2,10,11,12,13)',
    async setup() {
      samples = codecSamples();
    },
    async teardown() {},
    arb: () => fc.record({ sample: fc.nat({ max: 1 << 16 }), bytes: fc.array(byteOpArb(48, 23), { minLength: 1, maxLength: 4 }) }),
    prepare: build,
    exec: async ({ s, payload }) => codecById(s.codec, s.what).decode(payload, s.raw.length, s.ctx),
    check({ s, payload }, out) {
      return oracle('codec oracle', () => {
        if (!(out instanceof Uint8Array)) fail(`decode returned ${Object.prototype.toString.call(out)}, not a Uint8Array`);
        if (out.length !== s.raw.length) fail(`decode returned ${out.length} bytes, rawLength is ${s.raw.length}`);
        const same = sameBytes(out, s.raw);
        if (sameBytes(payload, s.payload) && !same) fail('the unmutated payload decoded to other bytes');
        return { ok: true as const, note: same ? 'exact' : 'other bytes (caught by SHA-256)' };
      });
    },
    show: (c, { s, payload }) => `${s.what}: codec ${s.codec}, rawLength ${s.raw.length}, ops ${describeValue(c.bytes)}, payload ${hex(payload, 160)}`,
    memoryBudget: ({ s }) => 64 * s.raw.length + (16 << 20),
  };
}

/**
 * The codec-payloads cases decoded twice, by the compiled kernels and by the
 * JS reference: both must give the same bytes, or fail with the same error
 * (code and message). Only listed when the addon loads.
 */
export function codecKernelsTarget(): Target<CodecCase, { s: CodecSample; payload: Uint8Array }, { native: string; js: string; bytes?: Uint8Array }> {
  const inner = codecTarget();
  let before: 'native' | 'js' = 'native';
  const outcome = (s: CodecSample, payload: Uint8Array, kind: 'native' | 'js'): { text: string; bytes?: Uint8Array; error?: unknown } => {
    useCodecKernels(kind);
    try {
      const b = codecById(s.codec, s.what).decode(payload, s.raw.length, s.ctx);
      return { text: `bytes ${createHash('sha256').update(b).digest('hex')}`, bytes: b };
    } catch (e) {
      return { text: e instanceof At1Error ? `${e.code}: ${e.message}` : `${e instanceof Error ? e.name : 'throw'}: ${e instanceof Error ? e.message : String(e)}`, error: e };
    }
  };
  return {
    ...inner,
    name: 'codec-kernels',
    what: 'the codec-payloads cases decoded by the compiled kernels and by the JS reference: same bytes or the same error',
    async setup() {
      before = codecKernelsInUse();
      await inner.setup();
    },
    async teardown() {
      useCodecKernels(before);
    },
    exec: async ({ s, payload }) => {
      const n = outcome(s, payload, 'native');
      const j = outcome(s, payload, 'js');
      useCodecKernels(before);
      // the same error from both is this case's (clean or not) outcome
      if (n.text === j.text && n.error !== undefined) throw n.error;
      return { native: n.text, js: j.text, bytes: n.bytes };
    },
    check(_input, out) {
      if (out.native !== out.js) fail(`the compiled kernels and the JS reference disagree: native ${out.native}; js ${out.js}`);
      return { ok: true as const, note: out.bytes ? 'same bytes' : 'same error' };
    },
  };
}

// ================================================================ shared registry for the end-to-end targets

interface Usage {
  version: string;
  /** Tensor name, or undefined for the safetensors header blob. */
  tensor?: string;
}

interface FuzzRegistry {
  work: string;
  regDir: string;
  outDir: string;
  versions: { name: string; sha256: string; bytes: number }[];
  digests: string[];
  objectBytes: Map<string, Uint8Array>;
  headers: Map<string, ObjectHeader>;
  /** Which version/tensor needs each object, directly or through references. */
  usage: Map<string, Usage[]>;
  manifests: Map<string, Uint8Array>;
  tensorNames: string[];
}

const VERSIONS = ['base', 'prose-step0025'];

async function buildRegistry(): Promise<FuzzRegistry> {
  const work = scratchDir('at1-fuzz-');
  const regDir = join(work, 'reg');
  const outDir = join(work, 'out');
  mkdirSync(outDir);
  const fam = family();
  const { registry } = await initRegistry(regDir, join(EMBEDDED, 'base.safetensors'), { chunkElements: 4096 });
  await add(registry, join(EMBEDDED, 'prose-step0025.safetensors'), { name: 'prose-step0025', parent: 'base' });
  const objectBytes = new Map<string, Uint8Array>();
  const headers = new Map<string, ObjectHeader>();
  const digests = [...(await registry.store.list()).keys()].sort();
  for (const d of digests) {
    const b = new Uint8Array(readFileSync(objectPath(regDir, d)));
    objectBytes.set(d, b);
    headers.set(d, decodeObjectHeader(b, d));
  }
  const usage = new Map<string, Usage[]>();
  const note = (d: string, u: Usage, seen = new Set<string>()): void => {
    if (seen.has(d)) return;
    seen.add(d);
    const list = usage.get(d) ?? [];
    if (!list.some((x) => x.version === u.version && x.tensor === u.tensor)) list.push(u);
    usage.set(d, list);
    for (const r of headers.get(d)?.refs ?? []) note(r.digest, u, seen);
  };
  const manifests = new Map<string, Uint8Array>();
  const tensorNames = new Set<string>();
  for (const v of VERSIONS) {
    manifests.set(v, new Uint8Array(readFileSync(join(regDir, 'versions', `${v}.json`))));
    const m = await registry.manifest(v);
    for (const f of m.files) {
      if (f.kind !== 'safetensors') continue;
      for (const d of f.header.chunks) note(d, { version: v });
      for (const t of f.tensors) {
        tensorNames.add(t.name);
        for (const d of t.chunks) note(d, { version: v, tensor: t.name });
        // a packed tensor (FORMAT §6) uses its pack's chunks (all of them, a superset: the fixture's packs are one chunk)
        if (t.pack) for (const d of f.packs?.[t.pack[0]]?.chunks ?? []) note(d, { version: v, tensor: t.name });
      }
    }
  }
  const versions = VERSIONS.map((name) => {
    const e = fam.find((x) => x.name === name)!;
    return { name, sha256: e.sha256, bytes: e.bytes };
  });
  return { work, regDir, outDir, versions, digests, objectBytes, headers, usage, manifests, tensorNames: [...tensorNames] };
}

/**
 * One registry per process, shared by the targets that need one (they run
 * one after another and restore every file they damage): building it takes
 * a second or two.
 */
let shared: { registry: Promise<FuzzRegistry>; users: number } | undefined;

async function acquireRegistry(): Promise<FuzzRegistry> {
  shared ??= { registry: buildRegistry(), users: 0 };
  shared.users++;
  return shared.registry;
}

async function releaseRegistry(): Promise<void> {
  if (!shared || --shared.users > 0) return;
  const r = await shared.registry;
  shared = undefined;
  rmSync(r.work, { recursive: true, force: true });
}

function objectPath(regDir: string, d: string): string {
  return join(regDir, 'objects', d.slice(0, 2), d);
}

/** Remove whatever a case left at a path (file, directory, link). */
function clearPath(p: string): void {
  rmSync(p, { recursive: true, force: true });
}

function listDir(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir).sort() : [];
}

function errorText(e: unknown): string {
  return e instanceof Error ? `${e.name}: ${e.message}` : String(e);
}

/** Run `fn`; an At1Error is returned as a value, anything else is a failure. */
async function attempt<T>(what: string, fn: () => Promise<T>): Promise<{ value?: T; error?: At1Error }> {
  try {
    return { value: await fn() };
  } catch (e) {
    if (e instanceof At1Error) return { error: e };
    fail(`${what} threw a non-At1Error: ${errorText(e)}\n${(e instanceof Error ? (e.stack ?? '') : '').split('\n').slice(1, 6).join('\n')}`);
  }
}

// ================================================================ 4. stored objects, end to end

type ObjMutation =
  | { t: 'bytes'; ops: ByteOp[] }
  | { t: 'fields'; fields: { f: number; v: number }[] }
  | { t: 'ref'; which: number; to: number; other: number }
  | { t: 'swap'; other: number }
  | { t: 'delete' }
  | { t: 'empty' }
  | { t: 'dir' }
  | { t: 'symlink'; other: number };

interface E2eObjCase {
  obj: number;
  m: ObjMutation;
}

function objMutationArb(): fc.Arbitrary<ObjMutation> {
  return fc.oneof(
    { weight: 10, arbitrary: fc.record({ t: fc.constant('bytes' as const), ops: fc.array(byteOpArb(64, 8), { minLength: 1, maxLength: 3 }) }) },
    { weight: 4, arbitrary: fc.record({ t: fc.constant('fields' as const), fields: fc.array(fc.record({ f: fc.nat({ max: 7 }), v: fc.nat({ max: 1 << 16 }) }), { minLength: 1, maxLength: 2 }) }) },
    { weight: 3, arbitrary: fc.record({ t: fc.constant('ref' as const), which: fc.nat({ max: 3 }), to: fc.nat({ max: 3 }), other: fc.nat({ max: 1 << 16 }) }) },
    { weight: 1, arbitrary: fc.record({ t: fc.constant('swap' as const), other: fc.nat({ max: 1 << 16 }) }) },
    { weight: 1, arbitrary: fc.record({ t: fc.constant('delete' as const) }) },
    { weight: 1, arbitrary: fc.record({ t: fc.constant('empty' as const) }) },
    { weight: 1, arbitrary: fc.record({ t: fc.constant('dir' as const) }) },
    { weight: 1, arbitrary: fc.record({ t: fc.constant('symlink' as const), other: fc.nat({ max: 1 << 16 }) }) },
  );
}

/** What the mutated object file becomes: bytes, or a special file. */
function mutateObject(r: FuzzRegistry, d: string, m: ObjMutation): { bytes?: Uint8Array; special?: 'delete' | 'dir' | 'symlink'; linkTo?: string } {
  const orig = r.objectBytes.get(d)!;
  const other = (k: number): string => r.digests[k % r.digests.length]!;
  switch (m.t) {
    case 'bytes':
      return { bytes: applyByteOps(orig, m.ops, [...r.objectBytes.values()].slice(0, 8)) };
    case 'fields': {
      const b = orig.slice();
      for (const { f, v } of m.fields) setField(b, f, v);
      return { bytes: b };
    }
    case 'ref': {
      const h = r.headers.get(d)!;
      const b = orig.slice();
      if (h.refs.length === 0) {
        // give a standalone object a reference it cannot have: depth 1, one ref (header bytes shift: the payload no longer parses as before)
        b[6] = 1;
        b[7] = 1;
        return { bytes: b };
      }
      let p = 17 + h.dtype.length;
      const i = m.which % h.refs.length;
      for (let k = 0; k < i; k++) p += 33 + h.refs[k]!.dtype.length;
      const users = r.digests.filter((x) => r.headers.get(x)!.refs.some((rr) => rr.digest === d));
      const targets = [d, other(m.other), '00'.repeat(32), users[m.other % Math.max(1, users.length)] ?? d];
      b.set(Buffer.from(targets[m.to % targets.length]!, 'hex'), p);
      return { bytes: b };
    }
    case 'swap':
      return { bytes: r.objectBytes.get(other(m.other))!.slice() };
    case 'delete':
      return { special: 'delete' };
    case 'empty':
      return { bytes: new Uint8Array(0) };
    case 'dir':
      return { special: 'dir' };
    case 'symlink':
      return { special: 'symlink', linkTo: objectPath(r.regDir, other(m.other)) };
  }
}

/** The checks after a restore of `version` and a verify, whatever was damaged; `mayFail` says which tensors may be named. */
async function restoreAndVerify(
  r: FuzzRegistry,
  version: string,
  expectOk: (reg: Registry) => Promise<{ sha256: Map<string, string>; exact?: string }>,
  mayName: (err: At1Error) => string | undefined,
  mayFailVerdict: (v: VerifyReport['versions'][number]) => string | undefined,
): Promise<Outcome> {
  const reg = await attempt('Registry.open', () => Registry.open(r.regDir));
  if (reg.error) return { ok: false, code: reg.error.code };
  const out = join(r.outDir, 'restored');
  const got = await attempt('getVersion', () => getVersion(reg.value!, version, out));
  let restored: string | undefined;
  try {
    if (got.error) {
      if (looksLikeCrash(got.error.message)) fail(`getVersion's ${got.error.code} wraps what looks like a JS exception: ${got.error.message}`);
      const left = listDir(r.outDir);
      if (left.length > 0) fail(`getVersion failed (${got.error.message}) but left ${left.join(', ')} in the output directory`);
      const why = mayName(got.error);
      if (why) fail(`getVersion's error does not name what is damaged: ${why}: ${got.error.message}`);
    } else {
      const expected = await expectOk(reg.value!);
      const left = listDir(r.outDir);
      if (left.join() !== 'restored') fail(`after getVersion the output directory holds ${left.join(', ')}`);
      const st = lstatSync(out);
      if (st.isDirectory()) {
        const files = new Map<string, string>();
        const walk = (rel: string): void => {
          for (const e of readdirSync(join(out, rel), { withFileTypes: true })) {
            const k = rel ? `${rel}/${e.name}` : e.name;
            if (e.isDirectory()) walk(k);
            else if (e.isFile()) files.set(k, sha256(new Uint8Array(readFileSync(join(out, k)))));
            else fail(`the restored directory holds a non-regular file ${k}`);
          }
        };
        walk('');
        if ([...files.keys()].sort().join('\n') !== [...expected.sha256.keys()].sort().join('\n')) fail(`restored files ${[...files.keys()].join(', ')} differ from the manifest's`);
        for (const [k, h] of files) if (expected.sha256.get(k) !== h) fail(`restored ${k} does not match its manifest SHA-256`);
        restored = 'directory';
      } else {
        const h = sha256(new Uint8Array(readFileSync(out)));
        const want = expected.exact ?? [...expected.sha256.values()][0];
        if (h !== want) fail(`getVersion succeeded but the output's SHA-256 is ${h}, expected ${want}`);
        restored = 'file';
      }
    }
  } finally {
    clearPath(out);
  }
  const rep = await attempt('verifyRegistry', () => verifyRegistry(reg.value!, undefined));
  if (rep.value) {
    for (const v of rep.value.versions) {
      for (const f of v.failures) if (looksLikeCrash(f.reason)) fail(`verify reports what looks like a JS exception: ${f.reason}`);
      if (!v.ok) {
        const why = mayFailVerdict(v);
        if (why) fail(`verify: ${why}`);
      }
      if (v.version === version && (v.ok !== (got.error === undefined) || (!v.ok && v.failures.length === 0))) {
        fail(`getVersion ${got.error ? `failed (${got.error.message})` : 'succeeded'} but verify says ${v.ok ? 'ok' : `not ok: ${JSON.stringify(v.failures).slice(0, 300)}`}`);
      }
    }
  }
  if (got.error) return { ok: false, code: got.error.code };
  return { ok: true, note: rep.error ? `restored (${restored}); verify: ${rep.error.code}` : `restored (${restored})` };
}

export function objectsE2eTarget(): Target<E2eObjCase, E2eObjCase, Outcome> {
  let r: FuzzRegistry | undefined;
  return {
    name: 'objects-e2e',
    what: 'one object file damaged on disk (bytes, header fields, refs, swapped, deleted, empty, a directory, a symlink), then Registry.open + getVersion + verifyRegistry',
    async setup() {
      r = await acquireRegistry();
    },
    async teardown() {
      if (r) await releaseRegistry();
      r = undefined;
    },
    arb: () => fc.record({ obj: fc.nat({ max: 1 << 16 }), m: objMutationArb() }),
    prepare: (c) => c,
    check: (_c, o) => o,
    async exec(c) {
      const R = r!;
      const d = R.digests[c.obj % R.digests.length]!;
      const uses = R.usage.get(d) ?? [];
      // restore the cheaper version that needs the object (base: standalone objects); verify covers the other
      const version = uses.some((u) => u.version === 'base') ? 'base' : 'prose-step0025';
      const path = objectPath(R.regDir, d);
      const mut = mutateObject(R, d, c.m);
      const unchanged = mut.bytes !== undefined && sameBytes(mut.bytes, R.objectBytes.get(d)!);
      const names = (v: string): string[] => uses.filter((u) => u.version === v).map((u) => u.tensor ?? 'header');
      try {
        clearPath(path);
        if (mut.special === 'dir') mkdirSync(path);
        else if (mut.special === 'symlink') symlinkSync(mut.linkTo!, path);
        else if (mut.bytes) writeFileSync(path, mut.bytes);
        return await restoreAndVerify(
          R,
          version,
          async () => ({ sha256: new Map([['f', R.versions.find((v) => v.name === version)!.sha256]]) }),
          (err) => {
            if (unchanged) return 'the object was not changed, yet the restore failed';
            const named = names(version).some((n) => (n === 'header' ? /header/.test(err.message) : err.message.includes(JSON.stringify(n)))) || err.message.includes(d);
            if (!(err instanceof IntegrityError) && !named) return `a ${err.name} (${err.code}), not an IntegrityError naming a tensor`;
            return named ? undefined : `it names none of ${names(version).join(', ')} nor the object ${d}`;
          },
          (v) => {
            if (unchanged) return `${v.version} fails though nothing was changed`;
            const allowed = names(v.version);
            if (allowed.length === 0) return `${v.version} fails though it does not use the damaged object ${d}: ${JSON.stringify(v.failures).slice(0, 300)}`;
            for (const f of v.failures) {
              const n = f.tensor ?? 'header';
              if (!allowed.includes(n)) return `${v.version}: failure names ${n}, which does not use the damaged object (${allowed.slice(0, 5).join(', ')}…)`;
            }
            return undefined;
          },
        );
      } finally {
        clearPath(path);
        writeFileSync(path, R.objectBytes.get(d)!);
      }
    },
    show(c) {
      const R = r!;
      const d = R.digests[c.obj % R.digests.length]!;
      const h = R.headers.get(d)!;
      const mut = mutateObject(R, d, c.m);
      return `object ${d} (codec ${h.codec}, depth ${h.depth}, ${h.refs.length} refs, used by ${JSON.stringify(R.usage.get(d)?.slice(0, 4))}); mutation ${describeValue(c.m)}; file becomes ${mut.special ?? hex(mut.bytes!, 200)}`;
    },
    memoryBudget: () => 256 << 20,
  };
}

// ================================================================ 5a. manifests, parser

interface ManifestCase {
  seed: number;
  /** Edits that keep a manifest valid (same digests, new paths or layout), so the restore code runs on them. */
  sem: { op: number; arg: number }[];
  json: JsonOp[];
  bytes: ByteOp[];
}

const SEMANTIC_PATHS = [
  'sub/model.safetensors', 'a/b/c/d.safetensors', 'base.safetensors/inner.safetensors', 'prose-step0025.safetensors/x', 'sub', 'sub/x', 'x',
  '.hidden', '..a', 'a..b', 'weird name.safetensors', 'é.safetensors', 'con', 'tmp', 'restored', 'a:b', '-rf', '~', 'a\u007fb',
];

/** Apply valid-looking manifest edits to a parsed manifest (a JS object), returning a new one. */
function applySemantic(m: VersionManifest, ops: readonly { op: number; arg: number }[]): VersionManifest {
  const out = JSON.parse(JSON.stringify(m)) as VersionManifest;
  for (const { op, arg } of ops) {
    const path = SEMANTIC_PATHS[arg % SEMANTIC_PATHS.length]!;
    const f0 = out.files[0];
    const fk = out.files[arg % Math.max(1, out.files.length)];
    switch (op % 8) {
      case 0:
        out.layout = out.layout === 'file' ? 'directory' : 'file';
        break;
      case 1: // another copy of a file under a new path
        if (f0) out.files.push({ ...JSON.parse(JSON.stringify(f0)), path });
        break;
      case 2:
        if (f0) f0.path = path;
        break;
      case 3: // the header blob as a file of its own
        if (f0 && f0.kind === 'safetensors') out.files.push({ kind: 'blob', path, ...f0.header });
        break;
      case 4: // reorder files
        out.files.reverse();
        break;
      case 6: // a file nested under an existing file's path (a file and a directory of the same name)
        if (fk) out.files.push({ ...JSON.parse(JSON.stringify(fk)), path: `${fk.path}/nested.safetensors` });
        break;
      case 7: // a file at the directory of a nested path
        if (fk && fk.path.includes('/')) out.files.push({ ...JSON.parse(JSON.stringify(fk)), path: fk.path.slice(0, fk.path.lastIndexOf('/')) });
        else if (fk) out.files.push({ ...JSON.parse(JSON.stringify(fk)), path: `${fk.path}.d/${fk.path}` });
        break;
      default: // drop a file
        if (out.files.length > 1) out.files.splice(arg % out.files.length, 1);
    }
  }
  return out;
}

const semArb = fc.oneof(
  { weight: 2, arbitrary: fc.constant([] as { op: number; arg: number }[]) },
  { weight: 1, arbitrary: fc.array(fc.record({ op: fc.nat({ max: 7 }), arg: fc.nat({ max: 1 << 10 }) }), { minLength: 1, maxLength: 3 }) },
);

/** What parseManifest must have returned for this JSON, field by field (the known fields only). */
function projectManifest(j: Record<string, unknown>): unknown {
  const blob = (o: Record<string, unknown>) => ({ size: o.size, sha256: o.sha256, chunkBytes: o.chunkBytes, chunks: o.chunks });
  // formatVersion 2 adds packs (FORMAT §6): "packs" on a safetensors file, "pack" on a packed tensor; version 1 ignores both keys.
  const v2 = j.formatVersion === 2;
  const packs = (f: Record<string, unknown>) => (v2 && f.packs !== undefined ? { packs: (f.packs as Record<string, unknown>[]).map((k) => ({ dtype: k.dtype, length: k.length, chunks: k.chunks })) } : {});
  const files = (j.files as Record<string, unknown>[]).map((f) =>
    f.kind === 'blob'
      ? { kind: 'blob', path: f.path, ...blob(f) }
      : {
          kind: 'safetensors',
          path: f.path,
          size: f.size,
          sha256: f.sha256,
          header: blob(f.header as Record<string, unknown>),
          chunkElements: f.chunkElements,
          ...packs(f),
          tensors: (f.tensors as Record<string, unknown>[]).map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, offset: t.offset, length: t.length, sha256: t.sha256, chunks: t.chunks, ...(v2 && t.pack !== undefined ? { pack: t.pack } : {}) })),
        },
  );
  const s = j.stats as Record<string, unknown>;
  // The parser reports the version the content needs (a version 2 manifest without packs reads as 1), which is what it serializes back to.
  const needs = files.some((f: { kind: string; packs?: unknown[] }) => f.kind === 'safetensors' && f.packs !== undefined && f.packs.length > 0) ? 2 : 1;
  // The optional sketch (FORMAT §6): the reference ranking's sampled values, kept as recorded, members in a fixed order.
  const sk = j.sketch as { tensors: Record<string, unknown>[] } | undefined;
  const sketch = sk === undefined ? {} : { sketch: { tensors: sk.tensors.map((t) => ({ name: t.name, dtype: t.dtype, start: t.start, step: t.step, values: t.values })) } };
  return { format: j.format, formatVersion: needs, name: j.name, parent: j.parent, createdAt: j.createdAt, layout: j.layout, files, stats: { rawBytes: s.rawBytes, newObjectBytes: s.newObjectBytes, newObjects: s.newObjects }, ...sketch };
}

/** layout and files of a manifest, if it is JSON at all. */
function manifestSummary(bytes: Uint8Array): string {
  try {
    const j = JSON.parse(new TextDecoder().decode(bytes)) as { layout?: unknown; files?: { kind?: unknown; path?: unknown }[] };
    const files = Array.isArray(j.files) ? j.files.map((f) => `${String(f?.kind)} ${JSON.stringify(f?.path)}`).join(', ') : String(j.files);
    return `layout ${JSON.stringify(j.layout)}, files [${files}]`;
  } catch {
    return 'not JSON';
  }
}

function safeRelPath(p: string): boolean {
  return p.length > 0 && !p.startsWith('/') && !p.includes('\\') && !/[\u0000-\u001f]/.test(p) && posix.normalize(p) === p && !p.split('/').includes('..') && p !== '.';
}

/** Independent checks of a manifest parseManifest accepted. */
function checkManifest(m: VersionManifest, bytes: Uint8Array, name: string): void {
  oracle('manifest oracle', () => {
    const j = JSON.parse(new TextDecoder().decode(bytes)) as Record<string, unknown>;
    const want = JSON.stringify(projectManifest(j));
    if (JSON.stringify(m) !== want) fail(`parseManifest returned something other than the JSON says:\n got ${JSON.stringify(m).slice(0, 400)}\nwant ${want.slice(0, 400)}`);
    if (m.name !== name || nameProblem(m.name)) fail(`accepted the name ${JSON.stringify(m.name)}`);
    if (m.parent !== null && nameProblem(m.parent)) fail(`accepted the parent ${JSON.stringify(m.parent)}`);
    if (m.files.length === 0 || new Set(m.files.map((f) => f.path)).size !== m.files.length) fail('files empty or a path twice');
    for (const f of m.files) {
      if (!safeRelPath(f.path)) fail(`accepted the unsafe path ${JSON.stringify(f.path)}`);
      const blobs = f.kind === 'blob' ? [f] : [f.header];
      for (const b of blobs) if (b.chunkBytes < 1 || b.chunks.length !== Math.ceil(b.size / b.chunkBytes)) fail('blob chunk count');
      if (f.kind === 'safetensors') {
        let at = 0;
        const filled = (f.packs ?? []).map(() => 0);
        if (m.formatVersion === 1 && (f.packs !== undefined || f.tensors.some((t) => t.pack !== undefined))) fail('a version 1 manifest came back with packs');
        for (const t of f.tensors) {
          if (t.offset !== at) fail('tensors not contiguous');
          at += t.length;
          const info = dtypeInfo(t.dtype);
          if (!info) fail('unknown dtype accepted');
          const el = t.shape.reduce((a, d) => a * BigInt(d), 1n);
          if (el * BigInt(info.bits) !== BigInt(t.length) * 8n) fail('tensor length does not match its dtype and shape');
          if (t.pack) {
            // a packed tensor: no chunks of its own; its bytes follow the previous packed tensor's in a pack of its dtype
            const k = f.packs?.[t.pack[0]];
            if (!k || k.dtype !== t.dtype || t.pack[1] !== filled[t.pack[0]] || t.length === 0) fail(`tensor ${t.name}: pack place ${JSON.stringify(t.pack)} accepted`);
            filled[t.pack[0]] = t.pack[1] + t.length;
          }
          const chunks = el === 0n || t.pack ? 0n : (el + BigInt(f.chunkElements) - 1n) / BigInt(f.chunkElements);
          if (BigInt(t.chunks.length) !== chunks) fail(`tensor ${t.name}: ${t.chunks.length} chunks for ${el} elements of ${f.chunkElements} per chunk (the exact count is ${chunks})`);
        }
        for (const [i, k] of (f.packs ?? []).entries()) {
          const bits = dtypeInfo(k.dtype)?.bits ?? 0;
          if (filled[i] !== k.length || bits === 0 || BigInt(k.chunks.length) !== (BigInt(k.length) * 8n / BigInt(bits) + BigInt(f.chunkElements) - 1n) / BigInt(f.chunkElements)) fail(`pack ${i}: length or chunk count does not match its tensors`);
        }
        if (f.size !== f.header.size + at) fail('size is not header + tensors');
        if (f.chunkElements % 8 !== 0 || f.chunkElements < 8) fail('chunkElements');
      }
    }
    const again = parseManifest(serializeManifest(m), name);
    if (JSON.stringify(again) !== JSON.stringify(m)) fail('serialize + parse does not round-trip');
  });
}

function manifestSeeds(r: FuzzRegistry): { name: string; bytes: Uint8Array }[] {
  const seeds = VERSIONS.map((v) => ({ name: v, bytes: r.manifests.get(v)! }));
  // a directory-layout manifest: the base's file under a sub-path, plus a blob
  const base = JSON.parse(new TextDecoder().decode(r.manifests.get('base')!)) as VersionManifest;
  const f0 = base.files[0]!;
  const dir: VersionManifest = {
    ...base,
    name: 'dir-version',
    layout: 'directory',
    files: [{ ...f0, path: 'sub/model.safetensors' }, { kind: 'blob', path: 'config.json', size: 5, sha256: DIGEST_A, chunkBytes: 4, chunks: [DIGEST_A, DIGEST_B] }],
  };
  seeds.push({ name: 'dir-version', bytes: serializeManifest(dir) });
  return seeds;
}

export function manifestParseTarget(): Target<ManifestCase, { name: string; bytes: Uint8Array }, VersionManifest> {
  let r: FuzzRegistry | undefined;
  let seeds: { name: string; bytes: Uint8Array }[] = [];
  let trees: J[] = [];
  let extra: string[] = [];
  const build = (c: ManifestCase): { name: string; bytes: Uint8Array } => {
    const i = c.seed % seeds.length;
    const s = seeds[i]!;
    const tree = c.sem.length > 0 ? toJ(applySemantic(JSON.parse(new TextDecoder().decode(s.bytes)) as VersionManifest, c.sem)) : trees[i]!;
    const text = c.json.length > 0 || c.sem.length > 0 ? utf8.encode(jText(applyJsonOps(tree, c.json, extra))) : s.bytes;
    return { name: s.name, bytes: applyByteOps(text, c.bytes, seeds.map((x) => x.bytes)) };
  };
  return {
    name: 'manifest-parse',
    what: 'parseManifest on mutated manifests (byte-level and JSON edits: numbers, types, dropped keys, duplicates, paths, huge values)',
    async setup() {
      r = await acquireRegistry();
      seeds = manifestSeeds(r);
      trees = seeds.map((s) => toJ(JSON.parse(new TextDecoder().decode(s.bytes))));
      extra = [...r.digests.slice(0, 4), ...r.tensorNames.slice(0, 4), 'dir-version', 'config.json'];
    },
    async teardown() {
      if (r) await releaseRegistry();
      r = undefined;
    },
    arb: () =>
      fc
        .record({
          seed: fc.nat({ max: 1000 }),
          sem: semArb,
          json: fc.array(jsonOpArb(), { maxLength: 3 }),
          bytes: fc.oneof({ weight: 2, arbitrary: fc.constant([] as ByteOp[]) }, { weight: 1, arbitrary: fc.array(byteOpArb(400, 3), { minLength: 1, maxLength: 3 }) }),
        })
        .filter((c) => c.sem.length + c.json.length + c.bytes.length > 0),
    prepare: build,
    exec: async ({ name, bytes }) => parseManifest(bytes, name),
    check({ name, bytes }, m) {
      checkManifest(m, bytes, name);
      return { ok: true };
    },
    show: (c, { name, bytes }) => `manifest ${name}, ops ${describeValue(c)}: ${manifestSummary(bytes)}; ${diffContext(seeds.find((x) => x.name === name)!.bytes, bytes)}`,
  };
}

// ================================================================ 5b. manifests, end to end

export function manifestE2eTarget(): Target<ManifestCase, { name: string; bytes: Uint8Array }, Outcome> {
  let r: FuzzRegistry | undefined;
  let trees: J[] = [];
  let extra: string[] = [];
  const build = (c: ManifestCase): { name: string; bytes: Uint8Array } => {
    const i = c.seed % VERSIONS.length;
    const name = VERSIONS[i]!;
    const orig = r!.manifests.get(name)!;
    const tree = c.sem.length > 0 ? toJ(applySemantic(JSON.parse(new TextDecoder().decode(orig)) as VersionManifest, c.sem)) : trees[i]!;
    const text = c.json.length > 0 || c.sem.length > 0 ? utf8.encode(jText(applyJsonOps(tree, c.json, extra))) : orig;
    return { name, bytes: applyByteOps(text, c.bytes, [...r!.manifests.values()]) };
  };
  return {
    name: 'manifest-e2e',
    what: 'a mutated versions/NAME.json in a registry, then Registry.open + getVersion + verifyRegistry',
    async setup() {
      r = await acquireRegistry();
      trees = VERSIONS.map((v) => toJ(JSON.parse(new TextDecoder().decode(r!.manifests.get(v)!))));
      extra = [...r.digests.filter((_, i) => i % 37 === 0), ...r.tensorNames.slice(0, 6), 'a/b.safetensors', 'a/b.safetensors/c', 'model.safetensors'];
    },
    async teardown() {
      if (r) await releaseRegistry();
      r = undefined;
    },
    arb: () =>
      fc
        .record({
          seed: fc.nat({ max: 1000 }),
          sem: semArb,
          json: fc.oneof({ weight: 1, arbitrary: fc.constant([] as JsonOp[]) }, { weight: 2, arbitrary: fc.array(jsonOpArb(), { minLength: 1, maxLength: 3 }) }),
          bytes: fc.oneof({ weight: 3, arbitrary: fc.constant([] as ByteOp[]) }, { weight: 1, arbitrary: fc.array(byteOpArb(400, 2), { minLength: 1, maxLength: 2 }) }),
        })
        .filter((c) => c.sem.length + c.json.length + c.bytes.length > 0),
    prepare: build,
    check: (_i, o) => o,
    async exec({ name, bytes }) {
      const R = r!;
      const path = join(R.regDir, 'versions', `${name}.json`);
      writeFileSync(path, bytes);
      // what the restore must give if it succeeds: the files the (mutated) manifest records
      let parsed: VersionManifest | undefined;
      try {
        parsed = parseManifest(bytes, name);
      } catch {
        parsed = undefined;
      }
      const unchanged = sameBytes(bytes, R.manifests.get(name)!);
      const other = VERSIONS.find((v) => v !== name)!;
      try {
        if (parsed && parsed.layout === 'file' && (parsed.files.length !== 1 || parsed.files[0]!.kind !== 'safetensors')) {
          fail(`parseManifest accepted layout "file" with files [${parsed.files.map((f) => `${f.kind} ${f.path}`).join(', ')}] (FORMAT §1/§6: one .safetensors file); getVersion restores files[0] only, verify checks them all`);
        }
        return await restoreAndVerify(
          R,
          name,
          async () => {
            if (!parsed) fail('getVersion succeeded on a manifest parseManifest refuses');
            const files = parsed.layout === 'file' ? [parsed.files[0]!] : parsed.files;
            const sha = new Map(files.map((f) => [f.path, f.sha256]));
            const orig = R.versions.find((v) => v.name === name)!;
            return { sha256: sha, exact: parsed.layout === 'file' && parsed.files[0]!.sha256 === orig.sha256 ? orig.sha256 : undefined };
          },
          (err) => (unchanged ? `the manifest was not changed, yet the restore failed: ${err.message}` : undefined),
          (v) => {
            if (v.version === other) return `${other} fails though only ${name}'s manifest was changed: ${JSON.stringify(v.failures).slice(0, 300)}`;
            if (unchanged) return 'fails though nothing was changed';
            return undefined;
          },
        );
      } finally {
        writeFileSync(path, R.manifests.get(name)!);
      }
    },
    show: (c, { name, bytes }) => `versions/${name}.json, ops ${describeValue(c)}: ${manifestSummary(bytes)}; ${diffContext(r!.manifests.get(name)!, bytes)}`,
    memoryBudget: () => 256 << 20,
  };
}

// ================================================================ 6. sharded index

interface IndexCase {
  seed: number;
  json: JsonOp[];
  bytes: ByteOp[];
}

function indexSeeds(): Uint8Array[] {
  const b = fixture('base.safetensors');
  const h = parseSafetensorsHeader(b, b.length, 'base');
  const names = h.tensors.map((t) => t.name);
  const two = Object.fromEntries(names.map((n, i) => [n, i < names.length / 2 ? 'model-00001-of-00002.safetensors' : 'model-00002-of-00002.safetensors']));
  const sub = Object.fromEntries(names.slice(0, 5).map((n, i) => [n, `shards/part-${i % 2}.safetensors`]));
  return [
    utf8.encode(JSON.stringify({ metadata: { total_size: b.length - h.dataStart }, weight_map: two }, null, 2)),
    utf8.encode(JSON.stringify({ weight_map: sub })),
    utf8.encode(JSON.stringify({ metadata: {}, weight_map: { 'a.weight': 'model.safetensors' }, extra: [1, 2, { x: null }] })),
  ];
}

/** Independent rule: a shard name resolves inside the model directory, names a .safetensors file, and has nothing odd in it. */
function shardNameSafe(s: string): boolean {
  return safeRelPath(s) && s.endsWith('.safetensors') && !/^[A-Za-z][A-Za-z0-9+.-]*:/.test(s) && !/\u007f/.test(s) && posix.resolve('/m', s).startsWith('/m/');
}

export function shardIndexTarget(): Target<IndexCase, Uint8Array, ReturnType<typeof parseShardIndex>> {
  let seeds: Uint8Array[] = [];
  let trees: J[] = [];
  const build = (c: IndexCase): Uint8Array => {
    const i = c.seed % seeds.length;
    const text = c.json.length > 0 ? utf8.encode(jText(applyJsonOps(trees[i]!, c.json, ['weight_map', 'metadata']))) : seeds[i]!;
    return applyByteOps(text, c.bytes, seeds);
  };
  return {
    name: 'shard-index',
    what: 'parseShardIndex on mutated model.safetensors.index.json files (shard names like ../x, /abs, s3://, backslashes, duplicates)',
    async setup() {
      seeds = indexSeeds();
      trees = seeds.map((s) => toJ(JSON.parse(new TextDecoder().decode(s))));
    },
    async teardown() {},
    arb: () =>
      fc
        .record({
          seed: fc.nat({ max: 1000 }),
          json: fc.array(jsonOpArb(), { maxLength: 3 }),
          bytes: fc.oneof({ weight: 2, arbitrary: fc.constant([] as ByteOp[]) }, { weight: 1, arbitrary: fc.array(byteOpArb(200, 3), { minLength: 1, maxLength: 3 }) }),
        })
        .filter((c) => c.json.length + c.bytes.length > 0),
    prepare: build,
    exec: async (bytes) => parseShardIndex(bytes, 'model.safetensors.index.json'),
    check(bytes, idx) {
      oracle('shard index oracle', () => {
        const j = JSON.parse(new TextDecoder().decode(bytes)) as { weight_map?: Record<string, unknown> };
        const wm = j.weight_map;
        if (typeof wm !== 'object' || wm === null || Array.isArray(wm)) fail('accepted an index whose weight_map is not an object');
        if (Object.keys(wm).length !== idx.weightMap.size) fail(`weight_map has ${Object.keys(wm).length} entries (JSON.parse), ${idx.weightMap.size} returned`);
        for (const [t, s] of idx.weightMap) {
          if (wm[t] !== s) fail(`tensor ${JSON.stringify(t)} maps to ${JSON.stringify(wm[t])} in the JSON, ${JSON.stringify(s)} returned`);
          if (!shardNameSafe(s) || shardNameProblem(s) !== undefined) fail(`accepted the shard name ${JSON.stringify(s)}`);
        }
      });
      return { ok: true };
    },
    show: (c, bytes) => `ops ${describeValue(c)}: ${new TextDecoder().decode(bytes.subarray(0, 1500))}`,
  };
}

// ================================================================ the list

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyTarget = Target<any, any, any>;

export function allTargets(): AnyTarget[] {
  // the quick parser targets first, the end-to-end ones (a restore and a verify per case) last
  const kernels = loadNativeCodecKernels().kernels ? [codecKernelsTarget()] : [];
  return [safetensorsTarget(), objectHeaderTarget(), codecTarget(), ...kernels, manifestParseTarget(), shardIndexTarget(), manifestE2eTarget(), objectsE2eTarget()];
}
