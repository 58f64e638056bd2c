/**
 * Builds and loads the WebAssembly build of at1's codec kernels
 * (codec-kernels-wasm.c: src/kernels/native/codec-kernels.c compiled
 * unchanged for wasm32 against a stand-in Node-API). Measurement only: the
 * product runs the native addon or the JS reference, never this.
 *
 * Arrays live in the module's memory; WasmArray is a place there, and
 * `call` runs a kernel by the name the addon exports, with WasmArrays,
 * numbers or null as its arguments, exactly as the addon takes typed arrays.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = fileURLToPath(new URL('.', import.meta.url));

/** Flags every build gets; `simd` adds -msimd128. bulk-memory, sign-ext and mutable-globals run on every Node >= 16. */
export function wasmFlags(simd: boolean): string[] {
  return ['--target=wasm32', '-nostdlib', '-O3', '-mbulk-memory', '-msign-ext', '-mmutable-globals', ...(simd ? ['-msimd128'] : []), '-fno-strict-aliasing'];
}

/** clang's version line, or why it cannot build wasm32 here (with how to get it). */
export function clangStatus(): { ok: true; version: string } | { ok: false; why: string } {
  const v = spawnSync('clang', ['--version'], { encoding: 'utf8' });
  if (v.error || v.status !== 0) return { ok: false, why: 'clang is not installed (Debian: apt-get install -y clang lld)' };
  const l = spawnSync('wasm-ld', ['--version'], { encoding: 'utf8' });
  if (l.error || l.status !== 0) return { ok: false, why: 'wasm-ld (lld) is not installed (Debian: apt-get install -y clang lld)' };
  return { ok: true, version: v.stdout.split('\n')[0]!.trim() };
}

/** Compile codec-kernels-wasm.c into outDir; returns the .wasm path. */
export function buildCodecKernelsWasm(outDir: string, simd: boolean): string {
  mkdirSync(outDir, { recursive: true });
  const out = join(outDir, simd ? 'codec-kernels-simd.wasm' : 'codec-kernels.wasm');
  const args = [
    ...wasmFlags(simd),
    // The bump malloc is defined in the same file; as a builtin, clang would take it to touch no visible state and move it across the arena's bookkeeping.
    '-fno-builtin-malloc',
    '-fno-builtin-free',
    '-Wall',
    '-Wextra',
    '-Wno-unused-parameter',
    '-I',
    join(HERE, 'include'),
    '-Wl,--no-entry',
    '-Wl,-z,stack-size=1048576',
    '-o',
    out,
    join(HERE, 'codec-kernels-wasm.c'),
  ];
  const r = spawnSync('clang', args, { encoding: 'utf8' });
  if (r.error || r.status !== 0) throw new Error(`clang ${args.join(' ')} failed:\n${r.error?.message ?? r.stderr}`);
  return out;
}

type Ctor = Uint8ArrayConstructor | Uint16ArrayConstructor | Int32ArrayConstructor | Uint32ArrayConstructor | Float64ArrayConstructor;
type Typed = Uint8Array | Uint16Array | Int32Array | Uint32Array | Float64Array;

/** napi_typedarray_type of each array class (include/node_api.h). */
const TYPE_CODE = new Map<Ctor, number>([
  [Uint8Array, 1],
  [Uint16Array, 4],
  [Int32Array, 5],
  [Uint32Array, 6],
  [Float64Array, 8],
]);

export class WasmArray<T extends Typed = Typed> {
  constructor(
    private readonly mod: WasmCodecKernels,
    readonly ctor: Ctor,
    readonly ptr: number,
    readonly length: number,
  ) {}
  /** A view on the module's memory (fresh each time: growing the memory detaches old views). */
  view(): T {
    return new this.ctor(this.mod.memory.buffer, this.ptr, this.length) as T;
  }
}

interface Exports {
  memory: WebAssembly.Memory;
  at1w_init(): number;
  at1w_fn_name(i: number): number;
  at1w_slots(): number;
  at1w_alloc(n: number): number;
  at1w_heap_top(): number;
  at1w_reset(top: number): void;
  at1w_error(): number;
  at1w_result(): number;
  at1w_call(i: number, argc: number): number;
}

export class WasmCodecKernels {
  private readonly fnIndex = new Map<string, number>();
  private constructor(private readonly x: Exports) {
    const n = x.at1w_init();
    for (let i = 0; i < n; i++) this.fnIndex.set(this.cstr(x.at1w_fn_name(i)), i);
  }

  static async load(path: string): Promise<WasmCodecKernels> {
    const { instance } = await WebAssembly.instantiate(readFileSync(path), {});
    return new WasmCodecKernels(instance.exports as unknown as Exports);
  }

  get memory(): WebAssembly.Memory {
    return this.x.memory;
  }

  private cstr(p: number): string {
    const b = new Uint8Array(this.x.memory.buffer);
    let e = p;
    while (b[e] !== 0) e++;
    return new TextDecoder().decode(b.subarray(p, e));
  }

  /** Room for `length` elements (16-byte aligned, contents unspecified). */
  alloc<C extends Ctor>(ctor: C, length: number): WasmArray<InstanceType<C>> {
    const p = this.x.at1w_alloc(length * ctor.BYTES_PER_ELEMENT);
    if (p === 0) throw new Error('wasm: out of memory');
    return new WasmArray<InstanceType<C>>(this, ctor, p, length);
  }

  /** A copy of `a` in the module's memory. */
  place<T extends Typed>(a: T): WasmArray<T> {
    const w = new WasmArray<T>(this, a.constructor as Ctor, this.alloc(a.constructor as Ctor, a.length).ptr, a.length);
    w.view().set(a as never);
    return w;
  }

  /** The allocation mark, to give back everything allocated after it with release. */
  mark(): number {
    return this.x.at1w_heap_top();
  }
  release(mark: number): void {
    this.x.at1w_reset(mark);
  }

  /** Run the kernel `name` (the addon's export name); a number it returns, else undefined. */
  call(name: string, args: ReadonlyArray<WasmArray | number | null>): number | undefined {
    const i = this.fnIndex.get(name);
    if (i === undefined) throw new Error(`wasm: no kernel ${name}`);
    const dv = new DataView(this.x.memory.buffer, this.x.at1w_slots(), 16 * 24);
    args.forEach((a, k) => {
      const o = k * 24;
      if (a === null) dv.setInt32(o, 0, true);
      else if (typeof a === 'number') {
        dv.setInt32(o, 2, true);
        dv.setFloat64(o + 16, a, true);
      } else {
        dv.setInt32(o, 1, true);
        dv.setInt32(o + 4, TYPE_CODE.get(a.ctor)!, true);
        dv.setUint32(o + 8, a.ptr, true);
        dv.setUint32(o + 12, a.length, true);
      }
    });
    const r = this.x.at1w_call(i, args.length);
    if (r < 0) throw new TypeError(`wasm ${name}: ${this.cstr(this.x.at1w_error())}`);
    return r === 1 ? this.x.at1w_result() : undefined;
  }
}
