/**
 * Synthetic bf16 model families with delta statistics like the real
 * fixture family's: base weights ~ N(0, 0.05) rounded to bf16; a fine-tune
 * or next checkpoint adds N(0, step) noise in float and rounds again, so,
 * as in real AdamW updates, small weights move by many ulps and large ones
 * by few or none. With step = 6e-4 about 85% of values change, with a median
 * change of a few ulps (measured on the fixtures: code-full 92% changed,
 * median 3 ulps; prose-step0025 85%, median 2).
 */
import { openSync, writeSync, closeSync } from 'node:fs';

/** A fast deterministic PRNG (xorshift32). */
export function rng(seed: number): () => number {
  let s = seed >>> 0 || 0x9e3779b9;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}

/** 65536 standard normal quantiles: a table lookup by 16 random bits is a cheap, good-enough normal sample. */
const NORMAL = (() => {
  const t = new Float64Array(65536);
  // Acklam's inverse normal CDF approximation.
  const a = [-39.69683028665376, 220.9460984245205, -275.9285104469687, 138.357751867269, -30.66479806614716, 2.506628277459239];
  const b = [-54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972, -13.28068155288572];
  const c = [-0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
  const d = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416];
  for (let i = 0; i < 65536; i++) {
    const p = (i + 0.5) / 65536;
    let x: number;
    if (p < 0.02425) {
      const q = Math.sqrt(-2 * Math.log(p));
      x = (((((c[0]! * q + c[1]!) * q + c[2]!) * q + c[3]!) * q + c[4]!) * q + c[5]!) / ((((d[0]! * q + d[1]!) * q + d[2]!) * q + d[3]!) * q + 1);
    } else if (p > 1 - 0.02425) {
      const q = Math.sqrt(-2 * Math.log(1 - p));
      x = -(((((c[0]! * q + c[1]!) * q + c[2]!) * q + c[3]!) * q + c[4]!) * q + c[5]!) / ((((d[0]! * q + d[1]!) * q + d[2]!) * q + d[3]!) * q + 1);
    } else {
      const q = p - 0.5;
      const r = q * q;
      x = ((((((a[0]! * r + a[1]!) * r + a[2]!) * r + a[3]!) * r + a[4]!) * r + a[5]!) * q) / (((((b[0]! * r + b[1]!) * r + b[2]!) * r + b[3]!) * r + b[4]!) * r + 1);
    }
    t[i] = x;
  }
  return t;
})();

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float -> bf16 bits, round to nearest even (NaN never occurs here). */
function toBf16(v: number): number {
  f32[0] = v;
  const x = u32[0]!;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

function fromBf16(h: number): number {
  u32[0] = h << 16;
  return f32[0]!;
}

export interface Shape {
  name: string;
  shape: [number, number];
}

/** Tensor shapes of a Llama-style model with about `params` parameters (hidden size h, 4h MLP, vocab 32000). */
export function llamaShapes(params: number): Shape[] {
  const hidden = params >= 5e8 ? 2048 : params >= 5e7 ? 1024 : 256;
  const inter = (hidden * 8) / 3 - (((hidden * 8) / 3) % 64);
  const vocab = params >= 5e7 ? 32000 : 4096;
  const perLayer = 4 * hidden * hidden + 3 * hidden * inter;
  const layers = Math.max(1, Math.round((params - 2 * vocab * hidden) / perLayer));
  const out: Shape[] = [{ name: 'model.embed_tokens.weight', shape: [vocab, hidden] }];
  for (let l = 0; l < layers; l++) {
    const p = `model.layers.${l}`;
    out.push({ name: `${p}.self_attn.q_proj.weight`, shape: [hidden, hidden] });
    out.push({ name: `${p}.self_attn.k_proj.weight`, shape: [hidden, hidden] });
    out.push({ name: `${p}.self_attn.v_proj.weight`, shape: [hidden, hidden] });
    out.push({ name: `${p}.self_attn.o_proj.weight`, shape: [hidden, hidden] });
    out.push({ name: `${p}.mlp.gate_proj.weight`, shape: [inter, hidden] });
    out.push({ name: `${p}.mlp.up_proj.weight`, shape: [inter, hidden] });
    out.push({ name: `${p}.mlp.down_proj.weight`, shape: [hidden, inter] });
  }
  out.push({ name: 'lm_head.weight', shape: [vocab, hidden] });
  return out;
}

export function paramCount(shapes: readonly Shape[]): number {
  return shapes.reduce((a, s) => a + s.shape[0] * s.shape[1], 0);
}

/** Bytes of the safetensors header (length prefix included) writeChain writes for these shapes. */
export function headerBytesFor(shapes: readonly Shape[]): number {
  return headerFor(shapes).length;
}

function headerFor(shapes: readonly Shape[]): Uint8Array {
  const h: Record<string, unknown> = {};
  let off = 0;
  for (const s of shapes) {
    const n = s.shape[0] * s.shape[1] * 2;
    h[s.name] = { dtype: 'BF16', shape: s.shape, data_offsets: [off, off + n] };
    off += n;
  }
  let json = JSON.stringify(h);
  while ((8 + json.length) % 8 !== 0) json += ' ';
  const bytes = new Uint8Array(8 + json.length);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(json.length), true);
  bytes.set(new TextEncoder().encode(json), 8);
  return bytes;
}

/**
 * Write a chain of versions: version 0 is the base, version k+1 is version k
 * plus one training step's update. With `momentum` 0 the update is fresh
 * noise each step (a random walk); with momentum m it is m times the last
 * update plus fresh noise, as an optimiser with momentum moves weights: a
 * trajectory the two-reference codec can predict. Tensors are generated one
 * at a time, so memory stays at a few tensors whatever the model size.
 */
export function writeChain(paths: readonly string[], shapes: readonly Shape[], step = 6e-4, seed = 1, momentum = 0): void {
  const fds = paths.map((p) => openSync(p, 'w'));
  const header = headerFor(shapes);
  for (const fd of fds) writeSync(fd, header);
  const r = rng(seed);
  for (const s of shapes) {
    const n = s.shape[0] * s.shape[1];
    const cur = new Float32Array(n);
    const vel = new Float64Array(n);
    const bits = new Uint16Array(n);
    for (let i = 0; i < n; i++) {
      const h = toBf16(0.05 * NORMAL[r() >>> 16]!);
      bits[i] = h;
      cur[i] = fromBf16(h);
    }
    writeSync(fds[0]!, new Uint8Array(bits.buffer));
    for (let v = 1; v < fds.length; v++) {
      for (let i = 0; i < n; i++) {
        vel[i] = momentum * vel[i]! + step * NORMAL[r() >>> 16]!;
        const h = toBf16(cur[i]! + vel[i]!);
        bits[i] = h;
        cur[i] = fromBf16(h);
      }
      writeSync(fds[v]!, new Uint8Array(bits.buffer));
    }
  }
  for (const fd of fds) closeSync(fd);
}
