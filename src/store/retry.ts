// The executor must outlive a database blip: a connection killed under it, a
// deadlock, a busy SQLite file. Every store call is retried on such transient
// errors with backoff, for a bounded time; anything else, or a blip that lasts,
// propagates (the apply then fails cleanly or is left for recovery).
import type { Store } from './store.js';

const TRANSIENT_CODES = new Set([
  'PROTOCOL_CONNECTION_LOST',
  'ECONNRESET',
  'ECONNREFUSED',
  'EPIPE',
  'ETIMEDOUT',
  'ER_LOCK_DEADLOCK',
  'ER_LOCK_WAIT_TIMEOUT',
  'ER_SERVER_SHUTDOWN',
  'ER_CON_COUNT_ERROR',
  'ER_QUERY_INTERRUPTED',
  'ER_CONNECTION_KILLED',
  'SQLITE_BUSY',
  'SQLITE_LOCKED',
  // PostgreSQL SQLSTATEs: serialization failure, deadlock, the server shutting down or
  // not yet accepting connections, a connection that failed or was lost.
  '40001',
  '40P01',
  '57P01',
  '57P02',
  '57P03',
  '08000',
  '08001',
  '08003',
  '08006',
]);

export function isTransientStoreError(err: unknown): boolean {
  const e = err as { code?: string; message?: string; fatal?: boolean };
  if (e?.code && TRANSIENT_CODES.has(e.code)) return true;
  // A statement interrupted by KILL was rolled back by the server: running it again is safe.
  return /connection lost|closed state|server has gone away|connection was killed|Lost connection|read ECONNRESET|execution was interrupted|Connection terminated unexpectedly|terminating connection|not queryable/i.test(e?.message ?? '');
}

export interface RetryOptions {
  /** attempts in all (default 10) */
  attempts?: number;
  /** first wait; doubles up to maxDelayMs (defaults 100 ms, 2 s) */
  baseDelayMs?: number;
  maxDelayMs?: number;
  onRetry?: (method: string, attempt: number, err: unknown) => void;
}

const NOT_RETRIED = new Set(['close', 'dialect']);

export function retryingStore(store: Store, opts: RetryOptions = {}): Store {
  const attempts = opts.attempts ?? 10;
  return new Proxy(store, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function' || NOT_RETRIED.has(String(prop))) return value;
      return async (...args: unknown[]) => {
        let delay = opts.baseDelayMs ?? 100;
        for (let attempt = 1; ; attempt++) {
          try {
            return await (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
          } catch (err) {
            if (attempt >= attempts || !isTransientStoreError(err)) throw err;
            opts.onRetry?.(String(prop), attempt, err);
            await new Promise((r) => setTimeout(r, delay));
            delay = Math.min(delay * 2, opts.maxDelayMs ?? 2000);
          }
        }
      };
    },
  });
}
