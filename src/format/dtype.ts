/**
 * The safetensors dtype table. `bits` is the storage width of one element;
 * sub-byte types (F4, F6) pack several elements per byte, so sizes are
 * computed in bits and must come out as whole bytes (rule 8 of
 * docs/FORMAT.md's input rules).
 */
import { At1Error } from '../errors.js';

export type FloatKind = 'float' | 'int' | 'uint' | 'bool' | 'fp8' | 'fp-small';

export interface DTypeInfo {
  readonly name: string;
  readonly bits: number;
  readonly kind: FloatKind;
  /** For IEEE-like floats that at1 models numerically: exponent and mantissa widths. */
  readonly exponentBits?: number;
  readonly mantissaBits?: number;
}

const TABLE: readonly DTypeInfo[] = [
  { name: 'BOOL', bits: 8, kind: 'bool' },
  { name: 'U8', bits: 8, kind: 'uint' },
  { name: 'I8', bits: 8, kind: 'int' },
  { name: 'F8_E5M2', bits: 8, kind: 'fp8', exponentBits: 5, mantissaBits: 2 },
  { name: 'F8_E4M3', bits: 8, kind: 'fp8', exponentBits: 4, mantissaBits: 3 },
  { name: 'F8_E8M0', bits: 8, kind: 'fp8', exponentBits: 8, mantissaBits: 0 },
  { name: 'F4', bits: 4, kind: 'fp-small' },
  { name: 'F6_E2M3', bits: 6, kind: 'fp-small' },
  { name: 'F6_E3M2', bits: 6, kind: 'fp-small' },
  { name: 'I16', bits: 16, kind: 'int' },
  { name: 'U16', bits: 16, kind: 'uint' },
  { name: 'F16', bits: 16, kind: 'float', exponentBits: 5, mantissaBits: 10 },
  { name: 'BF16', bits: 16, kind: 'float', exponentBits: 8, mantissaBits: 7 },
  { name: 'I32', bits: 32, kind: 'int' },
  { name: 'U32', bits: 32, kind: 'uint' },
  { name: 'F32', bits: 32, kind: 'float', exponentBits: 8, mantissaBits: 23 },
  { name: 'F64', bits: 64, kind: 'float', exponentBits: 11, mantissaBits: 52 },
  { name: 'I64', bits: 64, kind: 'int' },
  { name: 'U64', bits: 64, kind: 'uint' },
];

const BY_NAME = new Map(TABLE.map((d) => [d.name, d]));

export type DType = string;

export function dtypeInfo(name: string): DTypeInfo | undefined {
  return BY_NAME.get(name);
}

export function isKnownDType(name: string): boolean {
  return BY_NAME.has(name);
}

export function allDTypes(): readonly DTypeInfo[] {
  return TABLE;
}

/** Storage width of one element in bits; throws for a dtype this build does not know. */
export function dtypeBits(name: string): number {
  const d = BY_NAME.get(name);
  if (!d) throw new At1Error('E_INPUT', `unknown dtype ${name}`);
  return d.bits;
}

/** Bytes one element occupies, for whole-byte types; undefined for packed sub-byte types. */
export function elementBytes(name: string): number | undefined {
  const d = BY_NAME.get(name);
  if (!d || d.bits % 8 !== 0) return undefined;
  return d.bits / 8;
}
