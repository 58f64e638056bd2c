/**
 * A small GGUF (version 3) writer: enough to hand llama.cpp a Llama model for
 * the peer bench. GGUF is llama.cpp's file format, not at1's, so it lives in
 * bench/ and writes only what the bench needs.
 *
 * Layout (ggml's docs/gguf.md): "GGUF", u32 version, u64 tensor count, u64
 * key/value count; the key/values (string key, u32 value type, value); the
 * tensor infos (name, u32 n_dims, u64 dims innermost first, u32 ggml type,
 * u64 offset into the data section); padding to general.alignment; the
 * tensor data, each tensor starting on an aligned offset. Little-endian.
 */
import { closeSync, fsyncSync, openSync, renameSync, writeSync } from 'node:fs';

/** ggml_type values of the tensor types written here. */
export const GGML_TYPE = { F32: 0, F16: 1, BF16: 30 } as const;
export type GgmlTypeName = keyof typeof GGML_TYPE;

const VT = { UINT8: 0, INT8: 1, UINT16: 2, INT16: 3, UINT32: 4, INT32: 5, FLOAT32: 6, BOOL: 7, STRING: 8, ARRAY: 9, UINT64: 10, INT64: 11, FLOAT64: 12 } as const;

/** A metadata value with its GGUF type made explicit (JS numbers do not say u32 from f32). */
export type GgufValue =
  | { type: 'u32'; value: number }
  | { type: 'i32'; value: number }
  | { type: 'f32'; value: number }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string }
  | { type: 'string[]'; value: readonly string[] }
  | { type: 'f32[]'; value: readonly number[] | Float32Array }
  | { type: 'i32[]'; value: readonly number[] | Int32Array };

export interface GgufTensor {
  name: string;
  /** row-major shape as PyTorch/safetensors write it ([rows, cols]); GGUF stores it reversed */
  shape: readonly number[];
  type: GgmlTypeName;
  data: Uint8Array;
}

const ALIGNMENT = 32;
const enc = new TextEncoder();

/** Appends little-endian fields to a growing buffer. */
class Out {
  private buf = new Uint8Array(1 << 16);
  private view = new DataView(this.buf.buffer);
  length = 0;

  private room(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.length + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
  u32(v: number): void {
    this.room(4);
    this.view.setUint32(this.length, v, true);
    this.length += 4;
  }
  i32(v: number): void {
    this.room(4);
    this.view.setInt32(this.length, v, true);
    this.length += 4;
  }
  f32(v: number): void {
    this.room(4);
    this.view.setFloat32(this.length, v, true);
    this.length += 4;
  }
  u64(v: number): void {
    this.room(8);
    this.view.setBigUint64(this.length, BigInt(v), true);
    this.length += 8;
  }
  u8(v: number): void {
    this.room(1);
    this.buf[this.length++] = v;
  }
  str(s: string): void {
    const b = enc.encode(s);
    this.u64(b.length);
    this.room(b.length);
    this.buf.set(b, this.length);
    this.length += b.length;
  }
  pad(to: number): void {
    while (this.length % to !== 0) this.u8(0);
  }
  bytes(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }
}

function writeValue(o: Out, v: GgufValue): void {
  switch (v.type) {
    case 'u32':
      o.u32(VT.UINT32);
      o.u32(v.value);
      return;
    case 'i32':
      o.u32(VT.INT32);
      o.i32(v.value);
      return;
    case 'f32':
      o.u32(VT.FLOAT32);
      o.f32(v.value);
      return;
    case 'bool':
      o.u32(VT.BOOL);
      o.u8(v.value ? 1 : 0);
      return;
    case 'string':
      o.u32(VT.STRING);
      o.str(v.value);
      return;
    case 'string[]':
      o.u32(VT.ARRAY);
      o.u32(VT.STRING);
      o.u64(v.value.length);
      for (const s of v.value) o.str(s);
      return;
    case 'f32[]':
      o.u32(VT.ARRAY);
      o.u32(VT.FLOAT32);
      o.u64(v.value.length);
      for (const x of v.value) o.f32(x);
      return;
    case 'i32[]':
      o.u32(VT.ARRAY);
      o.u32(VT.INT32);
      o.u64(v.value.length);
      for (const x of v.value) o.i32(x);
      return;
  }
}

const ELEMENT_BYTES: Record<GgmlTypeName, number> = { F32: 4, F16: 2, BF16: 2 };

/** Writes a GGUF file atomically (temp file, fsync, rename). */
export function writeGguf(path: string, metadata: Record<string, GgufValue>, tensors: readonly GgufTensor[]): number {
  const meta = { ...metadata, 'general.alignment': { type: 'u32', value: ALIGNMENT } as GgufValue };
  const h = new Out();
  h.u8(0x47); // G
  h.u8(0x47); // G
  h.u8(0x55); // U
  h.u8(0x46); // F
  h.u32(3);
  h.u64(tensors.length);
  h.u64(Object.keys(meta).length);
  for (const [key, value] of Object.entries(meta)) {
    h.str(key);
    writeValue(h, value);
  }
  let offset = 0;
  const offsets: number[] = [];
  for (const t of tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (t.data.byteLength !== n * ELEMENT_BYTES[t.type]) throw new Error(`GGUF: tensor ${t.name} has ${t.data.byteLength} bytes, its shape [${t.shape.join(', ')}] of ${t.type} needs ${n * ELEMENT_BYTES[t.type]}`);
    h.str(t.name);
    h.u32(t.shape.length);
    for (let i = t.shape.length - 1; i >= 0; i--) h.u64(t.shape[i]!);
    h.u32(GGML_TYPE[t.type]);
    h.u64(offset);
    offsets.push(offset);
    offset += Math.ceil(t.data.byteLength / ALIGNMENT) * ALIGNMENT;
  }
  h.pad(ALIGNMENT);

  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  try {
    writeSync(fd, h.bytes());
    const zeros = new Uint8Array(ALIGNMENT);
    for (const t of tensors) {
      writeSync(fd, t.data);
      const pad = (ALIGNMENT - (t.data.byteLength % ALIGNMENT)) % ALIGNMENT;
      if (pad) writeSync(fd, zeros.subarray(0, pad));
    }
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  return h.length + offset;
}
