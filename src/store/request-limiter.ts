/**
 * Bounded parallelism and retries for a remote store: at most `max` calls in
 * flight (callers may start any number; the rest wait their turn, first come
 * first served), and a retry loop with full-jitter exponential backoff (AWS's
 * recommendation for throttling: many clients backing off by the same
 * amounts would hit the service again in lockstep).
 */
import { At1Error } from '../errors.js';

export class RequestLimiter {
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(readonly max: number) {
    if (!Number.isSafeInteger(max) || max < 1) throw new At1Error('E_INPUT', `connections must be a whole number ≥ 1, got ${max}`);
  }

  /** Run `fn` once a slot is free; the slot is handed straight to the next waiter when it ends. */
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active < this.max) this.active++;
    else await new Promise<void>((r) => this.waiting.push(r));
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    }
  }
}

export interface RetryPolicy {
  /** Attempts in all, the first included. */
  attempts: number;
  /** First backoff ceiling; doubled each retry up to `capMs`. */
  baseMs: number;
  capMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 6, baseMs: 100, capMs: 5_000 };

/** Full jitter: a uniform delay below the attempt's exponential ceiling. */
export function backoffMs(policy: RetryPolicy, retry: number, random = Math.random): number {
  return Math.floor(random() * Math.min(policy.capMs, policy.baseMs * 2 ** retry));
}

/** Sleep that ends early (rejecting with the signal's reason) when `signal` fires. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
