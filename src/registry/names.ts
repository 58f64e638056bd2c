/**
 * Version names become file names (`versions/NAME.json`) and appear in
 * URLs later, so they are held to a small, safe alphabet: letters, digits
 * and `. _ - + = @`, starting with a letter or digit, at most 128
 * characters, no `..`. This refuses `/`, `\`, control characters, spaces
 * and anything a shell or URL would need to quote.
 */
import { At1Error } from '../errors.js';

export const MAX_NAME_LENGTH = 128;
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._+=@-]*$/;

/** Returns why a name is refused, or undefined when it is acceptable. */
export function nameProblem(name: string): string | undefined {
  if (name.length === 0) return 'it is empty';
  if (name.length > MAX_NAME_LENGTH) return `it is ${name.length} characters long (at most ${MAX_NAME_LENGTH})`;
  if (/[\u0000-\u001f\u007f]/.test(name)) return 'it contains a control character';
  if (name.includes('/') || name.includes('\\')) return 'it contains a path separator';
  if (name.includes('..')) return "it contains '..'";
  if (!NAME_RE.test(name)) return 'it must start with a letter or digit and use only letters, digits and . _ - + = @';
  return undefined;
}

export function checkVersionName(name: string): void {
  const why = nameProblem(name);
  if (why) throw new At1Error('E_INPUT', `invalid version name ${JSON.stringify(name)}: ${why}`);
}

/** The default name of a version added from a file or directory: its stem, e.g. `ft-sentiment` for `ft-sentiment.safetensors`. */
export function defaultNameFor(path: string): string {
  const base = path.replace(/[\\/]+$/, '').split(/[\\/]/).pop() ?? '';
  return base.replace(/\.safetensors$/i, '');
}
