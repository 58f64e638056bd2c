/**
 * The kernels the runtime calls, behind one object so that a compiled path
 * (WebAssembly SIMD, a native addon, worker threads over output rows) can be
 * dropped in later with `useKernels` — it must give the bits of the reference
 * (see reference.ts for the summation order every implementation follows).
 */
import * as ref from './reference.js';

export type { MatmulArgs, AttentionArgs } from './reference.js';
export { dot, matvec, decodeVector, ropeInvFreq, ropeAngles } from './reference.js';
export { detExp, detLog, detPow, detSinCos } from './det-math.js';
export * from './dtype.js';
export { type WasmKernelOptions, type WasmKernels, wasmKernels, wasmAvailable } from './wasm.js';

export interface Kernels {
  readonly name: string;
  matmul(a: ref.MatmulArgs): void;
  attention(a: ref.AttentionArgs): void;
  rmsnorm(out: Float32Array, x: Float32Array, weight: Float32Array, n: number, T: number, eps: number): void;
  rope(x: Float32Array, off: number, heads: number, headDim: number, cos: Float64Array, sin: Float64Array): void;
  swiglu(gate: Float32Array, up: Float32Array, n: number): void;
  addInPlace(x: Float32Array, y: Float32Array, n: number): void;
  softmax64(x: Float64Array, off: number, n: number): void;
}

export const referenceKernels: Kernels = {
  name: 'js-reference',
  matmul: ref.matmul,
  attention: ref.attention,
  rmsnorm: ref.rmsnorm,
  rope: ref.rope,
  swiglu: ref.swiglu,
  addInPlace: ref.addInPlace,
  softmax64: ref.softmax64,
};

let active: Kernels = referenceKernels;

/** The kernels in use. */
export function kernels(): Kernels {
  return active;
}

/** Replaces the kernels in use (returns the previous ones). */
export function useKernels(k: Kernels): Kernels {
  const prev = active;
  active = k;
  return prev;
}

/**
 * Installs the WebAssembly SIMD kernels (same bits as the reference; see wasm.ts) with `threads`
 * threads and returns them; `useKernels(referenceKernels)` and `close()` undo it.
 */
export async function useWasmKernels(opts: import('./wasm.js').WasmKernelOptions = {}): Promise<import('./wasm.js').WasmKernels> {
  const { wasmKernels } = await import('./wasm.js');
  const k = await wasmKernels(opts);
  useKernels(k);
  return k;
}
