/**
 * The .npy format (NumPy's format.rst, version 1.0): magic "\x93NUMPY",
 * version 1.0, a little-endian u16 header length, then a Python-literal
 * dict with descr, fortran_order and shape, padded with spaces and ended by
 * a newline so the data starts on a 64-byte boundary.
 *
 * BF16 has no NumPy dtype; it is written as float32 (every bf16 value is
 * exactly a float32, so nothing is lost). The 8-, 6- and 4-bit float types
 * have no NumPy form and are refused: use the raw format for them.
 */
import { At1Error } from '../errors.js';

const DESCR: Record<string, string> = {
  BOOL: '|b1',
  U8: '|u1',
  I8: '|i1',
  I16: '<i2',
  U16: '<u2',
  F16: '<f2',
  I32: '<i4',
  U32: '<u4',
  F32: '<f4',
  F64: '<f8',
  I64: '<i8',
  U64: '<u8',
  BF16: '<f4',
};

/** The NumPy dtype a tensor is written as, or undefined when it has none. */
export function npyDescr(dtype: string): string | undefined {
  return DESCR[dtype];
}

export function npyHeader(dtype: string, shape: readonly number[]): Uint8Array {
  const descr = npyDescr(dtype);
  if (!descr) throw new At1Error('E_INPUT', `dtype ${dtype} has no NumPy equivalent; use --format raw`);
  const dims = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${dims}, }`;
  const total = 10 + dict.length + 1;
  dict += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  if (dict.length > 65535) throw new At1Error('E_INPUT', 'shape too long for an npy 1.0 header');
  const out = new Uint8Array(10 + dict.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0], 0);
  new DataView(out.buffer).setUint16(8, dict.length, true);
  for (let i = 0; i < dict.length; i++) out[10 + i] = dict.charCodeAt(i);
  return out;
}

/** Tensor bytes as they go into an .npy file: BF16 widened to float32, everything else as is. */
export function npyData(dtype: string, bytes: Uint8Array): Uint8Array {
  if (dtype !== 'BF16') return bytes;
  const out = new Uint8Array(bytes.length * 2);
  for (let i = 0; i < bytes.length; i += 2) {
    out[2 * i + 2] = bytes[i]!;
    out[2 * i + 3] = bytes[i + 1]!;
  }
  return out;
}
