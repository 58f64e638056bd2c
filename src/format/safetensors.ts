/**
 * Strict safetensors reader and writer.
 *
 * Every input is hostile: the reader enforces the ten rules of
 * /work/shared/design/safetensors.md (docs: safetensors input rules) and
 * refuses anything else, because a reader that accepts what the reference
 * reader sees differently is a parser-differential hole. The header bytes are
 * kept verbatim so a restore is byte-exact without re-serialising.
 *
 * Rule ids (stable: callers and tests match on them, never on message text):
 *
 * | id               | rule                                                              |
 * |------------------|-------------------------------------------------------------------|
 * | S1-short         | file is shorter than the 8-byte length prefix                     |
 * | S2-cap           | header length N is over 100,000,000                               |
 * | S2-bounds        | 8 + N lies beyond the end of the file                             |
 * | S3-utf8          | header is not valid UTF-8 (a BOM is kept, so it fails S3-start)   |
 * | S3-start         | header does not start with '{' (leading whitespace, array, empty) |
 * | S3-json          | header is not valid JSON (syntax, or nesting too deep)            |
 * | S3-trailing      | something other than spaces (0x20) after the closing '}'          |
 * | S4-metadata      | __metadata__ is not an object mapping strings to strings          |
 * | S5-name          | empty tensor name                                                 |
 * | S5-entry         | tensor entry not an object, a key missing, or an unknown key      |
 * | S5-count         | more than MAX_TENSORS (2^18) tensor entries; refused on reaching it |
 * | S5-dtype         | dtype not a string from the dtype table                           |
 * | S5-shape         | shape not an array of plain integers in [0, 2^53-1]               |
 * | S5-offsets       | data_offsets not two plain integers in [0, 2^53-1], or begin>end  |
 * | S6-duplicate     | a key repeats, at any level                                       |
 * | S7-first         | sorted by offset, the first tensor does not begin at 0            |
 * | S7-hole          | a tensor begins after the previous one ends                       |
 * | S7-overlap       | a tensor begins before the previous one ends                      |
 * | S8-overflow      | product(shape) x bits exceeds 2^53-1 bytes                        |
 * | S8-bits          | product(shape) x bits is not a whole number of bytes              |
 * | S8-size          | product(shape) x bits / 8 differs from end - begin                |
 * | S9-trailing      | bytes after the last tensor's data                                |
 * | S9-truncated     | the file ends before the last tensor's data does                  |
 * | (S10)            | allowed, never an error: empty tensors, rank-0 scalars, NaN/Inf   |
 *
 * "Plain integer" means the JSON token is digits only: no sign, fraction or
 * exponent (1e3, 3.0 and -0 are refused), so the value is exact.
 */
import { openFileSource, type InputSource, type ReadOptions } from './input-source.js';
import { At1Error } from '../errors.js';
import { dtypeInfo } from './dtype.js';
import { JsonNumber, StrictJsonError, parseJsonObjectMembers, type JsonValue } from './strict-json.js';

export const MAX_HEADER_LENGTH = 100_000_000;

/**
 * At most 2^18 = 262,144 tensors per file (rule S5-count). Real checkpoints
 * stay well below: a dense model lists about ten tensors per layer (Llama
 * 3.1 405B: ~1,140 in all), and the largest mixture-of-experts checkpoints
 * about 10^5 in all their shards together (DeepSeek-V3 with its FP8 scale
 * tensors ~90k; the same design with 384 experts ~140k), so even an
 * unsharded export of them fits. The cap bounds what a header alone can
 * make at1 hold: each tensor costs a record while its file is added and a
 * manifest entry (~150 bytes plus its name) in every later read, and the
 * cap is checked per entry as the header is parsed.
 *
 * Measured (`/usr/bin/time -v`, maximum resident set size; files of empty
 * F32 tensors with 26-character names; `registry add` to a registry holding
 * the fixture base, then `registry list`):
 *
 * | file                         | before: add / list | after: add / list             |
 * |------------------------------|--------------------|-------------------------------|
 * | 2^18 tensors (20 MB header)  | 837 MB / 452 MB    | 555 MB / 315 MB               |
 * | 2^20 tensors (82 MB header)  | 2.34 GB / 1.53 GB  | refused, exit 2: 353 MB, 2.0 s |
 *
 * (Of the 555 MB, ~115 MB is add-version's parse-back of the manifest it is
 * about to publish.) Both caps at once, a 98 MB header of 2^18 tensors with
 * 330-character names, is the worst a file can do: add 1.18 GB, list 544 MB.
 */
export const MAX_TENSORS = 1 << 18;

export interface TensorInfo {
  name: string;
  dtype: string;
  shape: number[];
  /** Byte offsets relative to the start of the data section (8 + N). */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  /** The first 8 + N bytes of the file, verbatim (length prefix included). */
  headerBytes: Uint8Array;
  /** 8 + N. */
  dataStart: number;
  /** Sorted by begin, then end (empty tensors before the one they share an offset with), then header order. */
  tensors: TensorInfo[];
  metadata: Record<string, string> | null;
  fileSize: number;
}

const RULE_TITLES: Record<string, string> = {
  S1: 'file too short',
  S2: 'header length',
  S3: 'header encoding',
  S4: 'metadata',
  S5: 'tensor entry',
  S6: 'duplicate key',
  S7: 'contiguous data',
  S8: 'tensor size',
  S9: 'file length',
};

export class SafetensorsError extends At1Error {
  readonly rule: string;
  readonly file: string;
  constructor(file: string, rule: string, detail: string) {
    const title = RULE_TITLES[rule.split('-')[0] ?? ''] ?? 'safetensors';
    super('E_SAFETENSORS', `${file}: rule ${rule} (${title}): ${detail}`);
    this.name = 'SafetensorsError';
    this.rule = rule;
    this.file = file;
  }
}

/** Quote a hostile string for a message: escaped, and cut short so a 1 MB name cannot flood a log. */
function q(s: string): string {
  return JSON.stringify(s.length > 200 ? `${s.slice(0, 200)}...` : s);
}

// ---------------------------------------------------------------- reading

/**
 * Rules 1 and 2 from the 8-byte prefix alone, so readSafetensorsHeaderFrom can
 * refuse a hostile N before allocating N bytes. Returns N.
 */
function checkLengthPrefix(prefix: Uint8Array, fileSize: number, file: string): number {
  if (fileSize < 8) throw new SafetensorsError(file, 'S1-short', `the file is ${fileSize} bytes, less than the 8-byte header length`);
  // A u64: BigInt, so 2^64-1 is neither rounded nor wrapped.
  const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(MAX_HEADER_LENGTH)) {
    throw new SafetensorsError(file, 'S2-cap', `header length ${n} is over the ${MAX_HEADER_LENGTH}-byte limit`);
  }
  if (8n + n > BigInt(fileSize)) {
    throw new SafetensorsError(file, 'S2-bounds', `header length ${n} runs past the end of the ${fileSize}-byte file`);
  }
  return Number(n);
}

/** A utf-8 decoder that throws on bad bytes and keeps a BOM (so "\uFEFF{" fails S3-start, as in the reference reader). */
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Validate and parse, given the first bytes of the file (at least 8+N of them, or the whole file) and the total file size. */
export function parseSafetensorsHeader(bytes: Uint8Array, fileSize: number, file: string): SafetensorsHeader {
  if (!Number.isSafeInteger(fileSize) || fileSize < 0 || bytes.length > fileSize) {
    throw new At1Error('E_INPUT', `${file}: parseSafetensorsHeader given ${bytes.length} bytes of a file of size ${fileSize}`);
  }
  if (fileSize >= 8 && bytes.length < 8) {
    throw new At1Error('E_INPUT', `${file}: parseSafetensorsHeader needs at least the 8-byte length prefix, given ${bytes.length} bytes`);
  }
  const n = checkLengthPrefix(bytes, fileSize, file);
  const dataStart = 8 + n;
  if (bytes.length < dataStart) {
    // The file has the bytes (rule 2 passed); the caller did not pass them.
    throw new At1Error('E_INPUT', `${file}: parseSafetensorsHeader needs the first ${dataStart} bytes (8 + header length), given ${bytes.length}`);
  }

  const text = decodeHeader(bytes.subarray(8, dataStart), file);
  const { tensors, metadata } = parseHeader(text, file);
  checkLayout(tensors, file);

  // Rule 9: the data section is exactly the tensors' bytes.
  const dataEnd = tensors.length === 0 ? 0 : tensors[tensors.length - 1]!.end;
  // If this sum passes 2^53 it may round, but it is then above any real
  // fileSize (<= 2^53-1), so the comparison below still says "truncated".
  const expected = dataStart + dataEnd;
  if (expected < fileSize) {
    throw new SafetensorsError(file, 'S9-trailing', `${fileSize - expected} bytes follow the end of the tensor data at byte ${expected}`);
  }
  if (expected > fileSize) {
    throw new SafetensorsError(file, 'S9-truncated', `tensor data ends at byte ${expected} but the file is ${fileSize} bytes`);
  }

  return { headerBytes: bytes.slice(0, dataStart), dataStart, tensors, metadata, fileSize };
}

function decodeHeader(raw: Uint8Array, file: string): string {
  try {
    return UTF8.decode(raw);
  } catch {
    throw new SafetensorsError(file, 'S3-utf8', 'the header is not valid UTF-8');
  }
}

/**
 * Rule 3 (starts with '{', ends with spaces only), rule 6 (duplicates, found
 * by the strict parser) and, member by member as the parser reaches them,
 * rules 4 and 5 and the tensor-count cap. The header is never built as a
 * tree: each entry is parsed on its own and kept only as its TensorInfo, so
 * memory follows what is kept, not the header's object count.
 *
 * Precedence is that of a parse-then-validate reader: a syntax error or a
 * duplicate anywhere (S3, S6) wins over an entry that breaks S4/S5, so the
 * first entry problem is held back until the whole header has parsed. The
 * one exception is S5-count, refused the moment the cap is passed, so a
 * header of a million entries costs no more to refuse than one at the cap.
 */
function parseHeader(text: string, file: string): { tensors: TensorInfo[]; metadata: Record<string, string> | null } {
  if (text.charCodeAt(0) !== 0x7b) {
    const what = text.length === 0 ? 'the header is empty' : `the header starts with ${q(text.slice(0, 1))}`;
    throw new SafetensorsError(file, 'S3-start', `${what}, not '{'`);
  }
  const out: { tensors: TensorInfo[]; metadata: Record<string, string> | null } = { tensors: [], metadata: null };
  let entryError: SafetensorsError | undefined;
  let count = 0;
  let end: number;
  try {
    // Depth 8 is ample: the schema needs 3 levels; anything deeper fails later anyway.
    end = parseJsonObjectMembers(
      text,
      0,
      (name, entry) => {
        if (name !== '__metadata__' && ++count > MAX_TENSORS) {
          throw new SafetensorsError(file, 'S5-count', `the header lists more than ${MAX_TENSORS} tensors (refused at ${q(name)}); at1 accepts at most ${MAX_TENSORS} tensors per file (2^18): shard larger checkpoints`);
        }
        if (entryError) return; // the first problem is kept; the rest is only parsed, for S3/S6
        try {
          readEntry(name, entry, file, out);
        } catch (e) {
          if (!(e instanceof SafetensorsError)) throw e;
          entryError = e;
          out.tensors = []; // nothing more is kept
        }
      },
      { maxDepth: 8 },
    ).end;
  } catch (e) {
    if (e instanceof StrictJsonError) {
      if (e.kind === 'duplicate') throw new SafetensorsError(file, 'S6-duplicate', `the header has a ${e.message}`);
      throw new SafetensorsError(file, 'S3-json', `the header is not valid JSON: ${e.message}`);
    }
    throw e;
  }
  for (let i = end; i < text.length; i++) {
    if (text.charCodeAt(i) !== 0x20) {
      throw new SafetensorsError(file, 'S3-trailing', `character ${i} after the header object is ${q(text[i] ?? '')}; only spaces may pad the header`);
    }
  }
  if (entryError) throw entryError;
  return out;
}

/** A plain non-negative integer token ("0", "17"), exact as a number; undefined otherwise. */
function exactIndex(v: JsonValue): number | undefined {
  if (!(v instanceof JsonNumber) || !/^(?:0|[1-9][0-9]*)$/.test(v.raw)) return undefined;
  // 2^53-1 has 16 digits: longer tokens are out without converting them (a
  // 100 MB digit string must stay cheap). A 16-digit token over 2^53-1 rounds
  // to at least 2^53, which isSafeInteger refuses, so rounding cannot let one pass.
  if (v.raw.length > 16) return undefined;
  const n = Number(v.raw);
  return Number.isSafeInteger(n) ? n : undefined;
}

function describe(v: JsonValue | undefined): string {
  if (v === undefined) return 'missing';
  if (v === null) return 'null';
  if (v instanceof JsonNumber) return v.raw.length > 40 ? `${v.raw.slice(0, 40)}...` : v.raw;
  if (Array.isArray(v)) return 'an array';
  if (v instanceof Map) return 'an object';
  if (typeof v === 'string') return `the string ${q(v)}`;
  return String(v);
}

const ENTRY_KEYS = new Set(['dtype', 'shape', 'data_offsets']);

/** Rules 4 and 5 for one member of the header: the metadata map, or a tensor entry appended to `out.tensors`. */
function readEntry(name: string, entry: JsonValue, file: string, out: { tensors: TensorInfo[]; metadata: Record<string, string> | null }): void {
  {
    if (name === '__metadata__') {
      if (!(entry instanceof Map)) throw new SafetensorsError(file, 'S4-metadata', `__metadata__ is ${describe(entry)}, not an object`);
      const metadata: Record<string, string> = {};
      out.metadata = metadata;
      for (const [k, v] of entry) {
        if (typeof v !== 'string') throw new SafetensorsError(file, 'S4-metadata', `__metadata__ key ${q(k)} maps to ${describe(v)}, not a string`);
        // defineProperty, not `metadata[k] = v`: a "__proto__" key must stay an own data property.
        Object.defineProperty(metadata, k, { value: v, enumerable: true, writable: true, configurable: true });
      }
      return;
    }
    if (name === '') throw new SafetensorsError(file, 'S5-name', 'a tensor has the empty name');
    const t = q(name);
    if (!(entry instanceof Map)) throw new SafetensorsError(file, 'S5-entry', `tensor ${t} is ${describe(entry)}, not an object`);
    for (const k of entry.keys()) {
      if (!ENTRY_KEYS.has(k)) throw new SafetensorsError(file, 'S5-entry', `tensor ${t} has the unknown key ${q(k)}`);
    }
    for (const k of ENTRY_KEYS) {
      if (!entry.has(k)) throw new SafetensorsError(file, 'S5-entry', `tensor ${t} has no ${q(k)}`);
    }

    const dtypeV = entry.get('dtype');
    const info = typeof dtypeV === 'string' ? dtypeInfo(dtypeV) : undefined;
    if (info === undefined) {
      throw new SafetensorsError(file, 'S5-dtype', `tensor ${t} has dtype ${describe(dtypeV)}, not one of the known dtypes`);
    }
    const dtype = info.name; // the table's own string: one copy for every tensor of that dtype

    const shapeV = entry.get('shape');
    if (!Array.isArray(shapeV)) throw new SafetensorsError(file, 'S5-shape', `tensor ${t} has shape ${describe(shapeV)}, not an array`);
    // Sized up front: a pushed-to array reserves room for 17 elements, ~70 bytes per tensor for nothing.
    const shape: number[] = new Array<number>(shapeV.length);
    for (let i = 0; i < shapeV.length; i++) {
      const d = shapeV[i]!;
      const n = exactIndex(d);
      if (n === undefined) {
        throw new SafetensorsError(file, 'S5-shape', `tensor ${t} has the dimension ${describe(d)}; dimensions must be plain integers from 0 to 2^53-1`);
      }
      shape[i] = n;
    }

    const offs = entry.get('data_offsets');
    if (!Array.isArray(offs) || offs.length !== 2) {
      const what = Array.isArray(offs) ? `${offs.length} values` : describe(offs);
      throw new SafetensorsError(file, 'S5-offsets', `tensor ${t} has data_offsets ${what}, not exactly two`);
    }
    const begin = exactIndex(offs[0]!);
    const end = exactIndex(offs[1]!);
    if (begin === undefined || end === undefined) {
      throw new SafetensorsError(
        file,
        'S5-offsets',
        `tensor ${t} has data_offsets [${describe(offs[0])}, ${describe(offs[1])}]; offsets must be plain integers from 0 to 2^53-1`,
      );
    }
    if (begin > end) throw new SafetensorsError(file, 'S5-offsets', `tensor ${t} begins at ${begin}, after its end ${end}`);
    out.tensors.push({ name, dtype, shape, begin, end });
  }
}

const MAX_BYTES = BigInt(Number.MAX_SAFE_INTEGER);

/**
 * Rule 8 arithmetic: bytes of a tensor, exact. Returns a rule id and detail
 * on failure. Zero dims are checked first and the product stops growing past
 * the cap, so a header full of huge dimensions cannot make BigInt work
 * quadratic.
 */
export function tensorByteSize(dtype: string, shape: readonly number[]): { bytes: number } | { rule: string; detail: string } {
  const info = dtypeInfo(dtype);
  if (!info) return { rule: 'S5-dtype', detail: `unknown dtype ${q(dtype)}` };
  if (shape.includes(0)) return { bytes: 0 };
  const capBits = MAX_BYTES * 8n;
  let bits = BigInt(info.bits);
  for (const d of shape) {
    bits *= BigInt(d);
    if (bits > capBits) {
      return { rule: 'S8-overflow', detail: `shape [${shapeText(shape)}] of ${dtype} is over 2^53-1 bytes` };
    }
  }
  if (bits % 8n !== 0n) {
    return { rule: 'S8-bits', detail: `shape [${shapeText(shape)}] of ${dtype} (${info.bits} bits each) is ${bits} bits, not a whole number of bytes` };
  }
  return { bytes: Number(bits / 8n) };
}

function shapeText(shape: readonly number[]): string {
  return shape.length > 16 ? `${shape.slice(0, 16).join(', ')}, ...` : shape.join(', ');
}

/** Rules 7 and 8: sort by offset, then check contiguity and each size. Sorts `tensors` in place. */
function checkLayout(tensors: TensorInfo[], file: string): void {
  // Stable sort by (begin, end): an empty tensor sharing its offset with a
  // non-empty one sorts first, as in the reference reader; full ties keep
  // header order.
  tensors.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let prevEnd = 0;
  let prev: TensorInfo | undefined;
  for (const t of tensors) {
    if (t.begin !== prevEnd) {
      if (!prev) throw new SafetensorsError(file, 'S7-first', `the first tensor, ${q(t.name)}, begins at ${t.begin}, not 0`);
      const rule = t.begin > prevEnd ? 'S7-hole' : 'S7-overlap';
      throw new SafetensorsError(file, rule, `tensor ${q(t.name)} begins at ${t.begin} but the previous tensor, ${q(prev.name)}, ends at ${prevEnd}`);
    }
    const size = tensorByteSize(t.dtype, t.shape);
    if ('rule' in size) throw new SafetensorsError(file, size.rule, `tensor ${q(t.name)}: ${size.detail}`);
    if (size.bytes !== t.end - t.begin) {
      throw new SafetensorsError(
        file,
        'S8-size',
        `tensor ${q(t.name)} is ${t.dtype} [${shapeText(t.shape)}] = ${size.bytes} bytes, but data_offsets [${t.begin}, ${t.end}] hold ${t.end - t.begin}`,
      );
    }
    prevEnd = t.end;
    prev = t;
  }
}

/**
 * Read and check the header of a safetensors input (models are 100 GB:
 * never the whole input). N is checked against the cap and the real size
 * before N bytes are read; rule 9 is checked against the real size. The
 * source stays open (the caller goes on to read the tensors through it).
 */
export async function readSafetensorsHeaderFrom(source: InputSource, opts: ReadOptions = {}): Promise<SafetensorsHeader> {
  const fileSize = source.size;
  const prefix = fileSize >= 8 ? await source.readRange(0, 8, opts) : new Uint8Array(8);
  const n = checkLengthPrefix(prefix, fileSize, source.name); // throws S1/S2 before any big allocation
  const buf = new Uint8Array(8 + n);
  buf.set(prefix);
  if (n > 0) buf.set(await source.readRange(8, n, opts), 8);
  return parseSafetensorsHeader(buf, fileSize, source.name);
}

/** Open a file, read only its header, close it (readSafetensorsHeaderFrom on an openFileSource). */
export async function readSafetensorsHeader(path: string): Promise<SafetensorsHeader> {
  const source = await openFileSource(path);
  try {
    return await readSafetensorsHeaderFrom(source);
  } finally {
    await source.close();
  }
}

// ---------------------------------------------------------------- writing

export interface TensorToWrite {
  name: string;
  dtype: string;
  shape: number[];
  data: Uint8Array;
}

/**
 * Sort rank of a dtype, as in the reference library's Dtype enum ("increasing
 * alignment order"): element bits first; among equal widths, the enum order
 * (BOOL < U8 < I8 < F8_E5M2 < F8_E4M3 < F8_E8M0; I16 < U16 < F16 < BF16;
 * I32 < U32 < F32; F64 < I64 < U64; F6_E2M3 < F6_E3M2).
 */
const SAME_WIDTH_ORDER = [
  'F4', 'F6_E2M3', 'F6_E3M2',
  'BOOL', 'U8', 'I8', 'F8_E5M2', 'F8_E4M3', 'F8_E8M0',
  'I16', 'U16', 'F16', 'BF16',
  'I32', 'U32', 'F32',
  'F64', 'I64', 'U64',
];

function dtypeRank(dtype: string): [number, number] {
  return [dtypeInfo(dtype)?.bits ?? 0, SAME_WIDTH_ORDER.indexOf(dtype)];
}

/** Compare by Unicode code point, which is UTF-8 byte order (Rust's String order); UTF-16 `<` differs for astral characters. */
function compareCodePoints(a: string, b: string): number {
  const ia = a[Symbol.iterator]();
  const ib = b[Symbol.iterator]();
  for (;;) {
    const x = ia.next();
    const y = ib.next();
    if (x.done || y.done) return x.done && y.done ? 0 : x.done ? -1 : 1;
    const d = x.value.codePointAt(0)! - y.value.codePointAt(0)!;
    if (d !== 0) return d;
  }
}

/** A lone surrogate cannot be written as UTF-8 (TextEncoder would silently substitute U+FFFD). */
const LONE_SURROGATE = /\p{Cs}/u;

/**
 * Serialise like PyTorch through the reference library: tensors sorted by
 * dtype alignment descending then name; compact JSON with __metadata__ first
 * (its keys sorted, for a deterministic output: the reference uses a hash
 * map), each entry as {"dtype","shape","data_offsets"}; header padded with
 * spaces to a multiple of 8. JSON.stringify escapes strings as serde_json
 * does (only '"', '\\' and control characters).
 */
export function serializeSafetensors(tensors: TensorToWrite[], metadata?: Record<string, string>): Uint8Array {
  const file = '<serialize>';
  const fail = (rule: string, detail: string): never => {
    throw new SafetensorsError(file, rule, detail);
  };
  const checkText = (s: string, what: string): void => {
    if (LONE_SURROGATE.test(s)) fail(what.startsWith('tensor') ? 'S5-name' : 'S4-metadata', `${what} ${q(s)} has a lone surrogate, not valid UTF-8`);
  };

  const seen = new Set<string>();
  for (const t of tensors) {
    if (t.name === '') fail('S5-name', 'a tensor has the empty name');
    if (t.name === '__metadata__') fail('S5-name', 'a tensor cannot be named "__metadata__"');
    checkText(t.name, 'tensor name');
    if (seen.has(t.name)) fail('S6-duplicate', `two tensors are named ${q(t.name)}`);
    seen.add(t.name);
    if (!dtypeInfo(t.dtype)) fail('S5-dtype', `tensor ${q(t.name)} has the unknown dtype ${q(t.dtype)}`);
    for (const d of t.shape) {
      if (!Number.isSafeInteger(d) || d < 0) fail('S5-shape', `tensor ${q(t.name)} has the dimension ${d}`);
    }
    const size = tensorByteSize(t.dtype, t.shape);
    if ('rule' in size) fail(size.rule, `tensor ${q(t.name)}: ${size.detail}`);
    else if (size.bytes !== t.data.length) {
      fail('S8-size', `tensor ${q(t.name)} is ${t.dtype} [${shapeText(t.shape)}] = ${size.bytes} bytes, but ${t.data.length} bytes were given`);
    }
  }

  const order = [...tensors].sort((a, b) => {
    const [ba, ra] = dtypeRank(a.dtype);
    const [bb, rb] = dtypeRank(b.dtype);
    return bb - ba || rb - ra || compareCodePoints(a.name, b.name);
  });

  const parts: string[] = [];
  if (metadata !== undefined) {
    const keys = Object.keys(metadata).sort(compareCodePoints);
    const items = keys.map((k) => {
      const v = metadata[k];
      if (typeof v !== 'string') return fail('S4-metadata', `__metadata__ key ${q(k)} maps to a ${typeof v}, not a string`);
      checkText(k, 'metadata key');
      checkText(v, 'metadata value');
      return `${JSON.stringify(k)}:${JSON.stringify(v)}`;
    });
    parts.push(`"__metadata__":{${items.join(',')}}`);
  }
  let offset = 0;
  for (const t of order) {
    const end = offset + t.data.length;
    parts.push(`${JSON.stringify(t.name)}:{"dtype":${JSON.stringify(t.dtype)},"shape":[${t.shape.join(',')}],"data_offsets":[${offset},${end}]}`);
    offset = end;
  }

  const json = new TextEncoder().encode(`{${parts.join(',')}}`);
  const n = Math.ceil(json.length / 8) * 8;
  if (n > MAX_HEADER_LENGTH) fail('S2-cap', `the header would be ${n} bytes, over the ${MAX_HEADER_LENGTH}-byte limit`);

  const out = new Uint8Array(8 + n + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(n), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + n);
  let at = 8 + n;
  for (const t of order) {
    out.set(t.data, at);
    at += t.data.length;
  }
  return out;
}
