/** Progress events from long library calls; the CLI draws them on a terminal, the library never prints. */
export interface ProgressEvent {
  /** What is being done, e.g. "add prose-step0025". */
  label: string;
  done: number;
  total: number;
  unit: 'bytes' | 'objects';
}

export type ProgressFn = (e: ProgressEvent) => void;
