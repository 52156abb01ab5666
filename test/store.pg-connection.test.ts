// PostgreSQL: a connection the server terminates while berth holds it between
// two statements (inside a transaction, say) must not end the process. pg's
// client emits 'error' when its connection ends with no query running, and the
// pool listens only on idle clients: without a listener of berth's own, that
// event was an uncaught exception (seen once in the chaos suite's database
// kills). The next statement on that client fails instead, with an error the
// store's retries count as transient, and the retried call succeeds on a new
// connection.
import pg from 'pg';
import { sql } from 'kysely';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { connect, parseDatabaseUrl } from '../src/store/open.js';
import { isTransientStoreError, retryingStore } from '../src/store/retry.js';
import { describePostgres, POSTGRES_URL } from './helpers/env.js';
import { postgresTestStore, type TestStore } from './helpers/stores.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function terminate(pid: number): Promise<void> {
  const admin = new pg.Client({ connectionString: POSTGRES_URL });
  await admin.connect();
  try {
    await admin.query('SELECT pg_terminate_backend($1)', [pid]);
  } finally {
    await admin.end();
  }
}

describePostgres('a PostgreSQL connection terminated while held', () => {
  let ts: TestStore;
  const uncaught: unknown[] = [];
  const onUncaught = (err: unknown) => void uncaught.push(err);
  beforeEach(async () => {
    ts = await postgresTestStore();
    uncaught.length = 0;
    process.prependListener('uncaughtException', onUncaught);
  });
  afterEach(async () => {
    process.removeListener('uncaughtException', onUncaught);
    await ts.dispose();
  });

  it('between two statements of a transaction: no uncaught error; the next statement fails as transient', async () => {
    const db = await connect(parseDatabaseUrl(ts.url));
    try {
      const failure = await db
        .transaction()
        .execute(async (trx) => {
          const { rows } = await sql<{ pid: number }>`SELECT pg_backend_pid() AS pid`.execute(trx);
          await terminate(rows[0]!.pid);
          // No statement runs while the connection ends: the client's 'error' event has only berth's listener.
          await sleep(300);
          await sql`SELECT 1`.execute(trx);
        })
        .then(
          () => undefined,
          (err: unknown) => err,
        );
      expect(uncaught).toEqual([]);
      expect(failure).toBeInstanceOf(Error);
      expect(isTransientStoreError(failure)).toBe(true);
      // The pool dropped the dead client: the next statement runs on a new connection.
      expect((await sql<{ ok: number }>`SELECT 1 AS ok`.execute(db)).rows).toEqual([{ ok: 1 }]);
    } finally {
      await db.destroy();
    }
  });

  it('a store call retried through the termination succeeds', async () => {
    const store = retryingStore(ts.store, { baseDelayMs: 10 });
    const db = await connect(parseDatabaseUrl(ts.url));
    try {
      // Every server process of this scratch database, the store's pooled ones included, is terminated.
      const { rows } = await sql<{ pid: number }>`SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()`.execute(db);
      await ts.store.ping();
      for (const r of rows) await terminate(r.pid);
      await sleep(300);
      await expect(store.ping()).resolves.toBeUndefined();
      expect(uncaught).toEqual([]);
    } finally {
      await db.destroy();
    }
  });
});
