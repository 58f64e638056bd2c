/**
 * Map an async function over items with up to `window` calls in flight,
 * yielding results in input order. This is what lets a restore decode the
 * next chunks on worker threads while the main thread hashes and writes the
 * current one, with memory bounded by the window.
 */
export async function* parallelMap<T, R>(items: Iterable<T>, fn: (item: T) => Promise<R>, window: number): AsyncGenerator<R> {
  const inFlight: Promise<R>[] = [];
  const it = items[Symbol.iterator]();
  let done = false;
  const fill = (): void => {
    while (!done && inFlight.length < window) {
      const n = it.next();
      if (n.done) {
        done = true;
        break;
      }
      const p = fn(n.value);
      p.catch(() => undefined); // observed when its turn comes; avoids unhandled-rejection noise meanwhile
      inFlight.push(p);
    }
  };
  fill();
  while (inFlight.length > 0) {
    const r = await inFlight.shift()!;
    fill();
    yield r;
  }
}
