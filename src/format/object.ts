/**
 * The byte layout of a stored object (docs/FORMAT.md, "Objects"). An object
 * holds one chunk of raw bytes, encoded by one codec, possibly against
 * reference chunks named by their SHA-256. Its storage key is the SHA-256 of
 * the raw bytes it decodes to, so the header need not repeat it.
 *
 *   off  size  field
 *   0    4     magic "AT1O"
 *   4    1     layout version (1)
 *   5    1     codec id
 *   6    1     chain depth: 0 standalone, else 1 + the deepest reference's depth
 *   7    1     reference count R (0..4)
 *   8    8     raw length, u64 little-endian (<= 2^29: MAX_RAW_LENGTH below)
 *   16   1     dtype name length L (1..16), then L ASCII bytes
 *   ..   R x { 32-byte reference digest, 1-byte dtype length, dtype ASCII }
 *   ..   payload, to the end of the object
 */
import { At1Error } from '../errors.js';
import { bytesToHex, hexToBytes, isSha256Hex } from '../util/hash.js';
import { isKnownDType } from './dtype.js';

export const OBJECT_MAGIC = 0x4f315441; // "AT1O" read as u32 LE
export const OBJECT_LAYOUT_VERSION = 1;
export const MAX_REFS = 4;
/** The chain depth no object may exceed whatever the registry's setting: bounds every decode's recursion. */
export const HARD_MAX_DEPTH = 64;
/**
 * The largest chunk any registry writes: 2^26 elements (the chunkElements
 * cap) of an 8-byte dtype. A header claiming more is damaged; refusing it
 * here means no decoder ever allocates on the word of a bad length field.
 */
export const MAX_RAW_LENGTH = 2 ** 29;
/** Enough bytes to hold any header: read this much to learn an object's codec, refs and depth. */
export const MAX_HEADER_BYTES = 17 + 16 + MAX_REFS * (33 + 16);

export interface ObjectRef {
  digest: string;
  dtype: string;
}

export interface ObjectHeader {
  codec: number;
  depth: number;
  rawLength: number;
  dtype: string;
  refs: ObjectRef[];
  /** Offset of the payload within the object. */
  payloadOffset: number;
}

function putName(out: number[], name: string): void {
  if (!isKnownDType(name)) throw new At1Error('E_INPUT', `unknown dtype ${name}`);
  out.push(name.length);
  for (let i = 0; i < name.length; i++) out.push(name.charCodeAt(i));
}

export function encodeObject(h: Omit<ObjectHeader, 'payloadOffset'>, payload: Uint8Array): Uint8Array {
  if (h.refs.length > MAX_REFS) throw new At1Error('E_INPUT', `too many references: ${h.refs.length}`);
  if (h.depth > HARD_MAX_DEPTH) throw new At1Error('E_INPUT', `chain depth ${h.depth} exceeds ${HARD_MAX_DEPTH}`);
  const head: number[] = [0x41, 0x54, 0x31, 0x4f, OBJECT_LAYOUT_VERSION, h.codec, h.depth, h.refs.length];
  const len = BigInt(h.rawLength);
  for (let i = 0n; i < 8n; i++) head.push(Number((len >> (8n * i)) & 0xffn));
  putName(head, h.dtype);
  for (const r of h.refs) {
    head.push(...hexToBytes(r.digest));
    putName(head, r.dtype);
  }
  const out = new Uint8Array(head.length + payload.length);
  out.set(head, 0);
  out.set(payload, head.length);
  return out;
}

function corrupt(what: string, msg: string): never {
  throw new At1Error('E_CORRUPT', `object ${what}: ${msg}`);
}

/** Parse and check an object header. `what` names the object in messages. */
export function decodeObjectHeader(bytes: Uint8Array, what: string): ObjectHeader {
  if (bytes.length < 17) corrupt(what, `too short for a header (${bytes.length} bytes)`);
  if (bytes[0] !== 0x41 || bytes[1] !== 0x54 || bytes[2] !== 0x31 || bytes[3] !== 0x4f) corrupt(what, 'bad magic');
  if (bytes[4] !== OBJECT_LAYOUT_VERSION) {
    throw new At1Error('E_UNSUPPORTED', `object ${what}: layout version ${bytes[4]} is not supported by this build`);
  }
  const codec = bytes[5]!;
  const depth = bytes[6]!;
  const nrefs = bytes[7]!;
  if (nrefs > MAX_REFS) corrupt(what, `reference count ${nrefs} > ${MAX_REFS}`);
  if (depth > HARD_MAX_DEPTH) corrupt(what, `depth ${depth} > ${HARD_MAX_DEPTH}`);
  if ((nrefs === 0) !== (depth === 0)) corrupt(what, `depth ${depth} does not fit ${nrefs} references`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const rawLength = Number(view.getBigUint64(8, true));
  if (!Number.isSafeInteger(rawLength) || rawLength > MAX_RAW_LENGTH) corrupt(what, `raw length ${rawLength} is beyond any chunk (at most ${MAX_RAW_LENGTH})`);
  let p = 16;
  const name = (): string => {
    const n = bytes[p];
    if (n === undefined || n < 1 || n > 16 || p + 1 + n > bytes.length) corrupt(what, 'bad dtype field');
    const s = String.fromCharCode(...bytes.subarray(p + 1, p + 1 + n));
    if (!isKnownDType(s)) corrupt(what, `unknown dtype ${JSON.stringify(s)}`);
    p += 1 + n;
    return s;
  };
  const dtype = name();
  const refs: ObjectRef[] = [];
  for (let i = 0; i < nrefs; i++) {
    if (p + 32 > bytes.length) corrupt(what, 'truncated reference list');
    const digest = bytesToHex(bytes.subarray(p, p + 32));
    p += 32;
    refs.push({ digest, dtype: name() });
  }
  return { codec, depth, rawLength, dtype, refs, payloadOffset: p };
}

export function assertDigest(d: string, what: string): void {
  if (!isSha256Hex(d)) corrupt(what, `bad digest ${JSON.stringify(d)}`);
}
