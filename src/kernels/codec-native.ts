/**
 * The compiled codec kernels (native/codec-kernels.c, a Node-API addon built
 * by node-gyp during `npm ci`), or null where they are not available: the
 * codec then runs its plain-JS loops, which are the reference and give the
 * same bits (test/codec-kernels-native.test.ts).
 *
 * AT1_KERNELS chooses: `js` never loads the addon (the reference, for
 * comparison and benchmarks), `native` requires it (a load failure is an
 * error, for CI), anything else uses it when it loads.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/** The addon's functions; each mirrors a JS function named in codec-kernels.c. */
export interface NativeCodecKernels {
  ransEncode(tok: Uint8Array, src: Uint16Array | null, shift: number, n: number, fc: Int32Array, rowOf: Int32Array, prec: number, out: Uint8Array): number;
  contexts16(p: Uint16Array, pp: Uint16Array, ctxShift: number, ctxStride: number, ctx: Uint16Array): void;
  contexts32(p: Uint32Array, pp: Uint32Array | null, ctxShift: number, ctxStride: number, ctx: Uint16Array): void;
  tokenise16(x: Uint16Array, p: Uint16Array, ctx: Uint16Array | null, ctxShift: number, S: number, tok: Uint8Array, hist: Uint32Array, buf: Uint8Array): number;
  tokenise32(x: Uint32Array, p: Uint32Array, ctx: Uint16Array, S: number, tok: Uint8Array, hist: Uint32Array, buf: Uint8Array, state: Float64Array): void;
  diffPlanes16(x: Uint16Array, p: Uint16Array, hi: Uint8Array, lo: Uint8Array): void;
  undiffPlanes16(out: Uint16Array, p: Uint16Array, hi: Uint8Array, lo: Uint8Array): void;
  diffPlanes32(x: Uint32Array, p: Uint32Array, b0: Uint8Array, b1: Uint8Array, b2: Uint8Array, b3: Uint8Array): void;
  undiffPlanes32(out: Uint32Array, p: Uint32Array, b0: Uint8Array, b1: Uint8Array, b2: Uint8Array, b3: Uint8Array): void;
  /** Byte k of every 2- or 4-byte element into plane k (byte-planes.ts). */
  splitPlanes(src: Uint8Array, ...planes: Uint8Array[]): void;
  joinPlanes(out: Uint8Array, ...planes: Uint8Array[]): void;
  /** out[i] = a[i] ^ b[i] (BitX). */
  xorBytes(a: Uint8Array, b: Uint8Array, out: Uint8Array): void;
  /** Kinds 0 BF16, 1 F16, 2 F32: exact widening to float32, then an RNE narrowing (float.ts predictionBits). */
  convertFloats(src: Uint16Array | Uint32Array, srcKind: number, out: Uint16Array | Uint32Array, outKind: number): void;
  expScan(v: Uint16Array | Uint32Array, mant: number, emask: number, res: Int32Array): void;
  expHist(v: Uint16Array | Uint32Array, mant: number, emask: number, emin: number, t: number, k: number, low: number, hist: Uint32Array): void;
  expPack(v: Uint16Array | Uint32Array, mant: number, emask: number, emin: number, t: number, k: number, low: number, signShift: number, tok: Uint8Array, buf: Uint8Array): number;
  /** ransDecode + rebuild16 in one pass; states has a fifth slot for rebuild16's status. */
  delta16Decode(buf: Uint8Array, pos: number, end: number, states: Int32Array, tab: Int32Array, prec: number, base: Int32Array, src: Uint16Array, shift: number, n: number, extra: Uint8Array, p: Uint16Array, out: Uint16Array): number;
  /** ransDecode + rebuild32 in one pass (float32; ctx always given); states[4] = 2 when the extra bits' length does not match. */
  delta32Decode(buf: Uint8Array, pos: number, end: number, states: Int32Array, tab: Int32Array, prec: number, base: Int32Array, src: Uint16Array, shift: number, n: number, extra: Uint8Array, p: Uint32Array, out: Uint32Array): number;
  /** ransDecode + expUnpack in one pass; states[4] = 1 when the raw-bits section's length does not match. */
  expDecode(buf: Uint8Array, pos: number, end: number, states: Int32Array, tab: Int32Array, prec: number, base: Int32Array, src: null, shift: number, n: number, extra: Uint8Array, out: Uint16Array | Uint32Array, mant: number, emin: number, t: number, k: number, low: number): number;
}

export const NATIVE_ADDON_PATH = fileURLToPath(new URL('../../build/Release/at1_codec_kernels.node', import.meta.url));

/** The addon to load: AT1_KERNELS_ADDON names another build of the same source (scripts/kernels-sanitized.sh builds one with ASan and UBSan). */
export function addonPath(env: NodeJS.ProcessEnv = process.env): string {
  return env['AT1_KERNELS_ADDON'] || NATIVE_ADDON_PATH;
}

export type KernelChoice = 'js' | 'native' | 'auto';

/** AT1_KERNELS's value as a choice; undefined when it is none of js, native, auto (the CLI refuses such a value, cli/env.ts). */
export function parseKernelChoice(v: string | undefined): KernelChoice | undefined {
  if (v === undefined || v === '' || v === 'auto') return 'auto';
  return v === 'js' || v === 'native' ? v : undefined;
}

export function kernelChoiceFromEnv(env: NodeJS.ProcessEnv = process.env): KernelChoice {
  return parseKernelChoice(env['AT1_KERNELS']) ?? 'auto';
}

let loaded: { kernels: NativeCodecKernels | null; error?: Error } | undefined;

/** The addon, loaded once per thread; null when it is not built (the error says why). */
export function loadNativeCodecKernels(): { kernels: NativeCodecKernels | null; error?: Error } {
  if (!loaded) {
    try {
      loaded = { kernels: createRequire(import.meta.url)(addonPath()) as NativeCodecKernels };
    } catch (e) {
      loaded = { kernels: null, error: e instanceof Error ? e : new Error(String(e)) };
    }
  }
  return loaded;
}
