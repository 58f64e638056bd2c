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
import { addonPath, kernelChoiceFromEnv, loadNativeCodecKernels, type KernelChoice, type NativeCodecKernels } from '../kernels/codec-native.js';

function resolve(choice: KernelChoice): NativeCodecKernels | null {
  if (choice === 'js') return null;
  const { kernels, error } = loadNativeCodecKernels();
  if (!kernels && choice === 'native')
    throw new At1Error('E_UNSUPPORTED', `AT1_KERNELS=native, but the compiled codec kernels did not load from ${addonPath()} (${error?.message.split('\n')[0] ?? 'unknown error'}); run \`npm rebuild\` with a C compiler present, or unset AT1_KERNELS`);
  return kernels;
}

/** The choice made at load: an AT1_KERNELS=native that cannot be met is an error at the first use, not at import. */
function initial(): { kernels: NativeCodecKernels | null } | { error: unknown } {
  try {
    return { kernels: resolve(kernelChoiceFromEnv()) };
  } catch (e) {
    return { error: e };
  }
}

let active = initial();

/** The compiled kernels in use, or null for the JS reference. */
export function nativeKernels(): NativeCodecKernels | null {
  if ('error' in active) throw active.error;
  return active.kernels;
}

/** Switch this thread's codec loops ('js': the reference; 'native': the addon, or an error; 'auto'). */
export function useCodecKernels(choice: KernelChoice): void {
  active = { kernels: resolve(choice) };
}

/** Which implementation runs now. */
export function codecKernelsInUse(): 'native' | 'js' {
  return nativeKernels() ? 'native' : 'js';
}
