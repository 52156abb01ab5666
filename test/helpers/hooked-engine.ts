// Wraps a real Engine so a test can act at an exact point of an apply: before
// or after a given call (`method subject`, the string arguments joined by a
// space) it may throw (a fault), request a stop, or never return (a process
// frozen there for a SIGKILL). Probes pass through untouched.
import type { Engine } from '../../src/apply/engine.js';

export type Hook = (call: string) => void | Promise<void>;

export interface Hooks {
  /** runs before the real call; throwing fails the call without reaching Docker */
  before?: Hook;
  /** runs after the real call returned; throwing fails the call after Docker did it */
  after?: Hook;
}

const PROBES = new Set(['findContainer', 'findNetwork', 'findVolume', 'health']);

export function hookedEngine(inner: Engine, hooks: Hooks): Engine {
  return new Proxy(inner, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (typeof value !== 'function' || typeof prop !== 'string' || PROBES.has(prop)) return value;
      return async (...args: unknown[]) => {
        const call = [prop, ...args.filter((a): a is string => typeof a === 'string')].join(' ');
        await hooks.before?.(call);
        const result = await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        await hooks.after?.(call);
        return result;
      };
    },
  });
}
