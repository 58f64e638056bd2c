/**
 * A small strict JSON parser (RFC 8259 grammar) for hostile input.
 *
 * Why not JSON.parse: it silently keeps the last of duplicate keys, turns
 * every number into a double (so 9007199254740993 and 1e3 quietly become
 * something else), and recurses without a bound. A reader that accepts what
 * another reader sees differently is a parser-differential hole, so this
 * parser:
 *  - refuses duplicate keys at any level (compared after unescaping, so
 *    "a" and "\u0061" collide);
 *  - returns numbers as their raw token text (JsonNumber); callers decide
 *    what is an acceptable integer;
 *  - refuses lone surrogates in \u escapes (they cannot be UTF-8);
 *  - bounds nesting depth, so deep `[[[[` input fails cleanly rather than
 *    overflowing the stack;
 *  - returns objects as Maps in document order (no prototype pollution via
 *    "__proto__" keys, and the caller can see the original order).
 */

export class JsonNumber {
  /** The token exactly as written, e.g. "12", "-0.5", "1e3". */
  constructor(readonly raw: string) {}
}

export type JsonValue = string | boolean | null | JsonNumber | JsonValue[] | JsonObject;
export type JsonObject = Map<string, JsonValue>;

export type StrictJsonErrorKind = 'syntax' | 'duplicate' | 'depth';

export class StrictJsonError extends Error {
  constructor(
    readonly kind: StrictJsonErrorKind,
    message: string,
    /** UTF-16 index into the parsed text where the problem was found. */
    readonly offset: number,
    /** For 'duplicate': the repeated key. */
    readonly key?: string,
  ) {
    super(message);
    this.name = 'StrictJsonError';
  }
}

export interface StrictJsonOptions {
  /** Maximum nesting of arrays/objects; default 64. */
  maxDepth?: number;
}

/** Parse one JSON value starting at `start`; returns it and the index just past it (no trailing whitespace consumed). */
export function parseJsonPrefix(
  text: string,
  start = 0,
  opts: StrictJsonOptions = {},
): { value: JsonValue; end: number } {
  const p = new Parser(text, start, opts.maxDepth ?? 64);
  const value = p.value(0);
  return { value, end: p.pos };
}

/**
 * Parse one JSON object starting at `start` member by member, without
 * building it: each member's value is parsed on its own (a small tree) and
 * handed to `onMember` in document order, then dropped. Memory is bounded by
 * the largest member, not by the number of members, so a header listing a
 * million entries costs what its caller keeps of them. `onMember` may throw
 * to stop early (a count cap). Duplicate keys at this level are refused as
 * in parseJsonPrefix (a Set of the keys seen); `maxDepth` counts this object
 * as depth 1. Returns the index just past the closing '}' and the number of
 * members.
 */
export function parseJsonObjectMembers(
  text: string,
  start: number,
  onMember: (key: string, value: JsonValue, keyAt: number) => void,
  opts: StrictJsonOptions = {},
): { end: number; members: number } {
  const p = new Parser(text, start, opts.maxDepth ?? 64);
  const members = p.members(1, onMember);
  return { end: p.pos, members };
}

/** Parse a whole JSON text: one value, optionally surrounded by JSON whitespace. */
export function parseStrictJson(text: string, opts: StrictJsonOptions = {}): JsonValue {
  const p = new Parser(text, 0, opts.maxDepth ?? 64);
  p.skipWs();
  const value = p.value(0);
  p.skipWs();
  if (p.pos !== text.length) p.fail('unexpected text after the JSON value');
  return value;
}

/** Grammar of a JSON number token (RFC 8259 section 6). */
const NUMBER_RE = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;

class Parser {
  constructor(
    readonly text: string,
    public pos: number,
    readonly maxDepth: number,
  ) {}

  fail(msg: string, at = this.pos): never {
    throw new StrictJsonError('syntax', `${msg} at character ${at}`, at);
  }

  skipWs(): void {
    const t = this.text;
    for (;;) {
      const c = t.charCodeAt(this.pos);
      // JSON whitespace is exactly these four; no NBSP, no BOM.
      if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) this.pos++;
      else return;
    }
  }

  value(depth: number): JsonValue {
    const t = this.text;
    if (this.pos >= t.length) this.fail('unexpected end of JSON');
    const c = t.charCodeAt(this.pos);
    switch (c) {
      case 0x7b: // {
        return this.object(depth + 1);
      case 0x5b: // [
        return this.array(depth + 1);
      case 0x22: // "
        return this.string();
      case 0x74: // t
        return this.literal('true', true);
      case 0x66: // f
        return this.literal('false', false);
      case 0x6e: // n
        return this.literal('null', null);
      default:
        if (c === 0x2d || (c >= 0x30 && c <= 0x39)) return this.number();
        return this.fail(`unexpected character ${JSON.stringify(t[this.pos])}`);
    }
  }

  literal<T extends boolean | null>(word: string, v: T): T {
    if (!this.text.startsWith(word, this.pos)) this.fail('invalid literal');
    this.pos += word.length;
    return v;
  }

  number(): JsonNumber {
    NUMBER_RE.lastIndex = this.pos;
    const m = NUMBER_RE.exec(this.text);
    if (!m) return this.fail('invalid number');
    this.pos += m[0].length;
    // "01" or "1." would match a prefix and leave junk; the caller's next
    // token check (',' ']' '}') refuses it, so no extra check is needed here.
    return new JsonNumber(m[0]);
  }

  enter(depth: number): void {
    if (depth > this.maxDepth) {
      throw new StrictJsonError('depth', `nesting deeper than ${this.maxDepth} at character ${this.pos}`, this.pos);
    }
  }

  array(depth: number): JsonValue[] {
    this.enter(depth);
    this.pos++; // [
    const out: JsonValue[] = [];
    this.skipWs();
    if (this.text.charCodeAt(this.pos) === 0x5d) {
      this.pos++;
      return out;
    }
    for (;;) {
      this.skipWs();
      out.push(this.value(depth));
      this.skipWs();
      const c = this.text.charCodeAt(this.pos);
      if (c === 0x2c) this.pos++;
      else if (c === 0x5d) {
        this.pos++;
        return out;
      } else this.fail("expected ',' or ']'");
    }
  }

  object(depth: number): JsonObject {
    const out: JsonObject = new Map();
    this.members(depth, (key, value) => out.set(key, value));
    return out;
  }

  /** An object at `pos`, member by member (see parseJsonObjectMembers); the same grammar as object(). */
  members(depth: number, onMember: (key: string, value: JsonValue, keyAt: number) => void): number {
    if (this.text.charCodeAt(this.pos) !== 0x7b) this.fail("expected '{'");
    this.enter(depth);
    this.pos++; // {
    const seen = new Set<string>();
    this.skipWs();
    if (this.text.charCodeAt(this.pos) === 0x7d) {
      this.pos++;
      return 0;
    }
    for (;;) {
      this.skipWs();
      if (this.text.charCodeAt(this.pos) !== 0x22) this.fail('expected a string key');
      const keyAt = this.pos;
      const key = this.string();
      if (seen.has(key)) {
        throw new StrictJsonError('duplicate', `duplicate key ${JSON.stringify(key)} at character ${keyAt}`, keyAt, key);
      }
      seen.add(key);
      this.skipWs();
      if (this.text.charCodeAt(this.pos) !== 0x3a) this.fail("expected ':'");
      this.pos++;
      this.skipWs();
      onMember(key, this.value(depth), keyAt);
      this.skipWs();
      const c = this.text.charCodeAt(this.pos);
      if (c === 0x2c) this.pos++;
      else if (c === 0x7d) {
        this.pos++;
        return seen.size;
      } else this.fail("expected ',' or '}'");
    }
  }

  string(): string {
    const t = this.text;
    let i = this.pos + 1; // past the opening quote
    let out = '';
    let chunk = i; // start of the run of plain characters not yet copied
    for (;;) {
      if (i >= t.length) this.fail('unterminated string', this.pos);
      const c = t.charCodeAt(i);
      if (c === 0x22) {
        out += t.slice(chunk, i);
        this.pos = i + 1;
        return out;
      }
      if (c < 0x20) this.fail('control character in string', i);
      if (c !== 0x5c) {
        i++;
        continue;
      }
      out += t.slice(chunk, i);
      const e = t[i + 1];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          const hi = this.hex4(i + 2);
          if (hi >= 0xdc00 && hi <= 0xdfff) this.fail('lone low surrogate in \\u escape', i);
          if (hi >= 0xd800 && hi <= 0xdbff) {
            // A high surrogate must be followed at once by an escaped low one.
            if (t[i + 6] !== '\\' || t[i + 7] !== 'u') this.fail('lone high surrogate in \\u escape', i);
            const lo = this.hex4(i + 8);
            if (lo < 0xdc00 || lo > 0xdfff) this.fail('lone high surrogate in \\u escape', i);
            out += String.fromCharCode(hi, lo);
            i += 6;
          } else {
            out += String.fromCharCode(hi);
          }
          i += 4;
          break;
        }
        default:
          this.fail('invalid escape in string', i);
      }
      i += 2;
      chunk = i;
    }
  }

  hex4(at: number): number {
    const s = this.text.slice(at, at + 4);
    if (!/^[0-9a-fA-F]{4}$/.test(s)) this.fail('invalid \\u escape', at);
    return parseInt(s, 16);
  }
}

/**
 * A short, safe description of an untrusted JSON value for an error
 * message: primitives as JSON (cut at 40 characters), arrays and objects by
 * kind only. String() of a hostile value can recurse without bound
 * (deeply nested arrays), and messages must stay one line.
 */
export function describeJson(v: unknown): string {
  if (Array.isArray(v)) return 'an array';
  if (v === null) return 'null';
  if (typeof v === 'object') return 'an object';
  const s = JSON.stringify(v) ?? String(typeof v);
  return s.length > 40 ? `${s.slice(0, 40)}…` : s;
}
