/**
 * Which implementation of the codec's hot loops runs: the compiled kernels
 * (src/kernels/native/codec-kernels.c) when they load, else the plain-JS
 * loops beside each caller, which are the reference. Both give the same
 * bits on every input (test/codec-kernels-native.test.ts), so the choice
 * changes speed only, never a stored byte.
 *
 * Chosen once per thread from AT1_KERNELS (see kernels/codec-native.ts);
 * tests and benchmarks switch it with useCodecKernels.
 */
import { At1Error } from '../errors.js';
import { kernelChoiceFromEnv, loadNativeCodecKernels, type KernelChoice, type NativeCodecKernels } from '../kernels/codec-native.js';

function resolve(choice: KernelChoice): NativeCodecKernels | null {
  if (choice === 'js') return null;
  const { kernels, error } = loadNativeCodecKernels();
  if (!kernels && choice === 'native')
    throw new At1Error('E_UNSUPPORTED', `AT1_KERNELS=native, but the compiled codec kernels did not load (${error?.message ?? 'unknown error'}); run \`npm rebuild\` or \`npx node-gyp rebuild\` with a C compiler present`);
  return kernels;
}

let active: NativeCodecKernels | null = resolve(kernelChoiceFromEnv());

/** The compiled kernels in use, or null for the JS reference. */
export function nativeKernels(): NativeCodecKernels | null {
  return active;
}

/** Switch this thread's codec loops ('js': the reference; 'native': the addon, or an error; 'auto'). */
export function useCodecKernels(choice: KernelChoice): void {
  active = resolve(choice);
}

/** Which implementation runs now. */
export function codecKernelsInUse(): 'native' | 'js' {
  return active ? 'native' : 'js';
}
