/**
 * The Range header (RFC 9110 §14): `bytes=` with one or more of `a-b`,
 * `a-` and `-n` (the last n bytes). A header that is not a byte range set
 * is ignored, as the RFC allows (the whole representation is sent); a set
 * none of whose ranges overlaps the representation is unsatisfiable (416).
 */

/** Half-open [start, end). */
export interface Span {
  start: number;
  end: number;
}

export type RangeRequest = { kind: 'none' } | { kind: 'ranges'; spans: Span[] } | { kind: 'unsatisfiable' };

const SPEC = /^(\d*)-(\d*)$/;

export function parseRange(header: string | undefined, size: number): RangeRequest {
  if (header === undefined) return { kind: 'none' };
  const m = /^\s*bytes\s*=\s*(.+)$/i.exec(header);
  if (!m) return { kind: 'none' };
  const spans: Span[] = [];
  let any = false;
  for (const raw of m[1]!.split(',')) {
    const part = raw.trim();
    if (part === '') continue;
    const p = SPEC.exec(part);
    if (!p || (p[1] === '' && p[2] === '')) return { kind: 'none' }; // not a byte range set: ignore the header
    any = true;
    if (p[1] === '') {
      const n = Number(p[2]);
      if (!Number.isSafeInteger(n)) return { kind: 'none' };
      if (n === 0 || size === 0) continue; // a zero-length suffix is unsatisfiable
      spans.push({ start: Math.max(0, size - n), end: size });
      continue;
    }
    const first = Number(p[1]);
    const last = p[2] === '' ? Infinity : Number(p[2]);
    if (!Number.isSafeInteger(first) || (p[2] !== '' && !Number.isSafeInteger(last))) return { kind: 'none' };
    if (last < first) return { kind: 'none' }; // invalid syntax per the RFC: ignore the header
    if (first >= size) continue; // unsatisfiable on its own
    spans.push({ start: first, end: Math.min(last, size - 1) + 1 });
  }
  if (!any) return { kind: 'none' };
  return spans.length === 0 ? { kind: 'unsatisfiable' } : { kind: 'ranges', spans };
}

/** `If-Range`: the Range applies only when the validator names the current representation (a strong ETag here). */
export function ifRangeHolds(ifRange: string | undefined, etag: string): boolean {
  return ifRange === undefined || ifRange.trim() === etag;
}

/** `If-None-Match`: true when one of its entity tags (or `*`) matches `etag` (weak comparison, RFC 9110 §13.1.2). */
export function noneMatchHits(header: string | undefined, etag: string): boolean {
  if (header === undefined) return false;
  const bare = etag.replace(/^W\//, '');
  return header.split(',').some((t) => {
    const v = t.trim();
    return v === '*' || v.replace(/^W\//, '') === bare;
  });
}
