// A Store wrapped in a Proxy that records every method call, so a test (or a
// bench) can prove how many store queries a piece of work makes.
import type { Store } from '../../src/store/store.js';

export interface CountingStore {
  store: Store;
  /** method names, in call order */
  calls: string[];
  /** calls per method */
  counts(): Record<string, number>;
  reset(): void;
}

export function countingStore(inner: Store): CountingStore {
  const calls: string[] = [];
  const store = new Proxy(inner, {
    get(target, prop) {
      const v = Reflect.get(target, prop, target) as unknown;
      if (typeof v !== 'function') return v;
      return (...args: unknown[]) => {
        calls.push(String(prop));
        return (v as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return {
    store,
    calls,
    counts: () => calls.reduce<Record<string, number>>((m, c) => ((m[c] = (m[c] ?? 0) + 1), m), {}),
    reset: () => {
      calls.length = 0;
    },
  };
}
