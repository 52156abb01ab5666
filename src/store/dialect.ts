// The only place where berth's store branches on the database it talks to.
// Every query in tables/*.ts is written once, in Kysely; what SQLite, MySQL/
// MariaDB and PostgreSQL genuinely do differently is named here:
//
// - insertIfAbsent: ON CONFLICT DO NOTHING on SQLite/PostgreSQL; a plain
//   INSERT whose duplicate-key error means "present" on MySQL (INSERT IGNORE
//   would also swallow other errors, and MySQL's affected-row count of an
//   upsert cannot say "inserted" under FOUND_ROWS).
// - insertOrKeep: insert-if-absent where the caller does not need to know
//   which happened; on MySQL a no-op ON DUPLICATE KEY UPDATE, which also takes
//   the row's exclusive lock (so two starters queue instead of deadlocking on a
//   shared-to-exclusive upgrade).
// - upsert: ON CONFLICT … DO UPDATE (the new row is `excluded`) or ON
//   DUPLICATE KEY UPDATE (the new row is VALUES(col), and assignments run left
//   to right, each seeing the ones before it: callers put the columns whose
//   value depends on old values first).
// - writeTransaction: SQLite takes the write lock up front (BEGIN IMMEDIATE,
//   see ImmediateSqliteDialect), so a transaction never fails half-way on a
//   deferred upgrade; MySQL and PostgreSQL retry a transaction picked as a
//   deadlock or serialization victim, from the start.
// - lockingRead: SELECT … FOR UPDATE / FOR SHARE (LOCK IN SHARE MODE on
//   MariaDB); nothing on SQLite, whose writer is already alone.
// - differs: a null-safe "not equal" (IS DISTINCT FROM, or NOT <=> on MySQL).
// - the unique-violation and deadlock error codes.
//
// Compare-and-set writes keep their "changed" test in the WHERE clause: MySQL
// is opened with FOUND_ROWS, so it counts the rows an UPDATE matched.
// JSON values (task deps, plan nodes, comment ids) are TEXT on every backend,
// and berth makes its own ids (UUIDs), so no query depends on RETURNING or on
// a driver's insert id.
import { sql, SqliteAdapter, SqliteDialect } from 'kysely';
import type { DatabaseConnection, DialectAdapter, Driver, Expression, Kysely, SelectQueryBuilder, SqliteDialectConfig } from 'kysely';
import { SqliteDriver, CompiledQuery } from 'kysely';
import type { Database } from './schema.js';

export type DialectName = 'sqlite' | 'mysql' | 'postgres';

/** What every table function receives: the database (or a transaction on it), its dialect and the store's clock. */
export interface Ctx {
  db: Kysely<Database>;
  dialect: DialectName;
  now: () => number;
  /** SQLite only: the connection's synchronous side, for the journal's hot path (see SyncSqlite) */
  sync?: SyncSqlite;
}

/**
 * SQLite runs in this process and better-sqlite3 is synchronous: a statement
 * costs microseconds, and Kysely's promise hops around it cost more than the
 * statement. The executor's journal writes (several per task, on the apply's
 * critical path) therefore run here, as statements Kysely compiled, in one
 * synchronous IMMEDIATE transaction. `transaction` first takes Kysely's own
 * connection (its mutex), so it never runs inside another transaction.
 */
export interface SyncSqlite {
  transaction<T>(db: Kysely<Database>, fn: (run: (q: SyncQuery) => SyncResult) => T): Promise<T>;
  /** One statement on its own (SQLite's autocommit), at once when no transaction holds the connection. */
  run(db: Kysely<Database>, q: SyncQuery): Promise<SyncResult>;
}

/**
 * One compiled statement (a `prepared` one: it is compiled once), with what
 * it read and how many rows it changed. On SQLite it runs synchronously
 * (SyncSqlite): the executor's reads and compare-and-sets of an apply's and
 * an operation's state, and its leases, are on every apply's path, and
 * Kysely's promise hops cost several times their statement there.
 */
export async function runQuery(ctx: Ctx, q: CompiledQuery): Promise<SyncResult> {
  if (ctx.sync) return ctx.sync.run(ctx.db, q);
  const r = await ctx.db.executeQuery(q);
  return { rows: r.rows as unknown[], changes: Number(r.numAffectedRows ?? 0) };
}

/** A statement for the synchronous side: SQL and its positional parameters (a CompiledQuery is one). */
export interface SyncQuery {
  sql: string;
  parameters: readonly unknown[];
}

export interface SyncResult {
  rows: unknown[];
  changes: number;
}

const SYNC_SQLITE = new WeakMap<Kysely<Database>, SyncSqlite>();

/** Remembers the synchronous side of a SQLite Kysely instance (open.ts). */
export function registerSyncSqlite(db: Kysely<Database>, sync: SyncSqlite): void {
  SYNC_SQLITE.set(db, sync);
}

/** The synchronous side of `db`, when it is SQLite opened by open.ts. */
export function syncSqliteOf(db: Kysely<Database>): SyncSqlite | undefined {
  return SYNC_SQLITE.get(db);
}

type Table = keyof Database;

/** True when `err` is the database refusing a duplicate key (primary or unique). */
export function isUniqueViolation(dialect: DialectName, err: unknown): boolean {
  const e = err as { code?: unknown; errno?: unknown } | null;
  switch (dialect) {
    case 'sqlite':
      return e?.code === 'SQLITE_CONSTRAINT_UNIQUE' || e?.code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
    case 'mysql':
      return e?.errno === 1062; // ER_DUP_ENTRY
    case 'postgres':
      return e?.code === '23505'; // unique_violation
  }
}

/** A transaction the database aborted to break a deadlock (or a serialization conflict): running it again is safe. */
function isDeadlock(dialect: DialectName, err: unknown): boolean {
  const e = err as { code?: unknown; errno?: unknown } | null;
  if (dialect === 'mysql') return e?.errno === 1213; // ER_LOCK_DEADLOCK
  if (dialect === 'postgres') return e?.code === '40P01' || e?.code === '40001';
  return false;
}

/** Inserts the row unless one with the same key exists. True when this call inserted it. */
export async function insertIfAbsent<T extends Table>(ctx: Ctx, table: T, values: Record<string, unknown>, key: readonly string[]): Promise<boolean> {
  // The values are the table's columns; Kysely cannot check a row against a table chosen at run time.
  const insert = ctx.db.insertInto(table).values(values as never);
  if (ctx.dialect === 'mysql') {
    try {
      await insert.execute();
      return true;
    } catch (err) {
      if (isUniqueViolation(ctx.dialect, err)) return false;
      throw err;
    }
  }
  const r = await insert.onConflict((oc) => oc.columns(key as never).doNothing()).executeTakeFirst();
  return Number(r.numInsertedOrUpdatedRows ?? 0) > 0;
}

/** Inserts the row unless one with the same key exists; the existing row is kept as it is (and, on MySQL, locked). */
export async function insertOrKeep<T extends Table>(ctx: Ctx, table: T, values: Record<string, unknown>, key: readonly string[]): Promise<void> {
  const insert = ctx.db.insertInto(table).values(values as never);
  if (ctx.dialect === 'mysql') {
    const first = key[0]!;
    await insert.onDuplicateKeyUpdate({ [first]: sql.ref(first) } as never).execute();
    return;
  }
  await insert.onConflict((oc) => oc.columns(key as never).doNothing()).execute();
}

/** The value the conflicting INSERT proposed for `column`, inside an upsert's SET. */
export function incoming(dialect: DialectName, column: string): Expression<unknown> {
  return dialect === 'mysql' ? sql`VALUES(${sql.ref(column)})` : sql.ref(`excluded.${column}`);
}

/**
 * Inserts `rows`, or on a key conflict sets the columns `set` returns (built
 * with `incoming` for the new values). MySQL runs the assignments in order.
 */
export async function upsert<T extends Table>(
  ctx: Ctx,
  table: T,
  rows: Record<string, unknown> | readonly Record<string, unknown>[],
  key: readonly string[],
  set: Record<string, Expression<unknown>>,
): Promise<void> {
  const insert = ctx.db.insertInto(table).values(rows as never);
  if (ctx.dialect === 'mysql') await insert.onDuplicateKeyUpdate(set as never).execute();
  else await insert.onConflict((oc) => oc.columns(key as never).doUpdateSet(set as never)).execute();
}

/** `a` and `b` differ, NULLs included (NULL vs NULL is equal, NULL vs a value differs). */
export function differs(dialect: DialectName, a: Expression<unknown>, b: Expression<unknown>): Expression<boolean> {
  return dialect === 'mysql' ? sql<boolean>`NOT (${a} <=> ${b})` : sql<boolean>`${a} IS DISTINCT FROM ${b}`;
}

/** A read that locks what it reads until the transaction ends (exclusive, or shared), where rows can be locked. */
export function lockingRead<DB, TB extends keyof DB, O>(
  dialect: DialectName,
  query: SelectQueryBuilder<DB, TB, O>,
  mode: 'update' | 'share' = 'update',
): SelectQueryBuilder<DB, TB, O> {
  if (dialect === 'sqlite') return query;
  if (mode === 'update') return query.forUpdate();
  return dialect === 'mysql' ? query.modifyEnd(sql`lock in share mode`) : query.forShare();
}

/** One transaction; on MySQL/PostgreSQL retried from the start when the database aborts it to break a deadlock. */
export async function writeTransaction<T>(ctx: Ctx, fn: (trx: Ctx) => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await ctx.db.transaction().execute((trx) => fn({ ...ctx, db: trx }));
    } catch (err) {
      if (attempt < 5 && isDeadlock(ctx.dialect, err)) continue;
      throw err;
    }
  }
}

/**
 * Kysely's SQLite dialect, with every transaction begun IMMEDIATE: the write
 * lock is taken (waiting up to busy_timeout for another process) before the
 * first read, so a read-then-write transaction never meets SQLITE_BUSY half-way.
 * Migrations run in one such transaction (SQLite's DDL is transactional, which
 * Kysely's own adapter does not assume), so processes migrating one fresh file
 * run one after the other.
 *
 * Within one process, every store on the same file takes turns on one mutex
 * (`shareKey`, the file's real path). better-sqlite3 waits for another
 * connection's lock synchronously, blocking the event loop: a second store
 * waiting while the first is inside an (async) transaction would starve the
 * very transaction it waits for. Other processes are waited for normally.
 */
export class ImmediateSqliteDialect extends SqliteDialect {
  readonly #config: SqliteDialectConfig;
  readonly #shareKey: string | undefined;
  constructor(config: SqliteDialectConfig, shareKey?: string) {
    super(config);
    this.#config = config;
    this.#shareKey = shareKey;
  }
  override createDriver(): Driver {
    let mutex = new Mutex();
    if (this.#shareKey !== undefined) {
      mutex = FILE_MUTEXES.get(this.#shareKey) ?? mutex;
      FILE_MUTEXES.set(this.#shareKey, mutex);
    }
    return new ImmediateSqliteDriver(this.#config, mutex, this.#shareKey);
  }
  override createAdapter(): DialectAdapter {
    return new TransactionalDdlSqliteAdapter();
  }
}

class TransactionalDdlSqliteAdapter extends SqliteAdapter {
  override get supportsTransactionalDdl(): boolean {
    return true;
  }
}

/** A FIFO mutex: lock() resolves with the function that releases it. */
class Mutex {
  #tail: Promise<void> = Promise.resolve();
  async lock(): Promise<() => void> {
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const before = this.#tail;
    this.#tail = before.then(() => mine);
    await before;
    return release;
  }
}

const FILE_MUTEXES = new Map<string, Mutex>();

/** Per file: Kysely transactions of this process open on it now (each holds the file's write lock: they begin IMMEDIATE). */
const OPEN_TRANSACTIONS = new Map<string, number>();

/**
 * Whether no connection of this process holds the file's write lock in an open (asynchronous)
 * transaction, so a synchronous write may run now. One run while another holds it would wait for
 * the lock synchronously, blocking the very event loop that transaction needs to finish.
 */
export function sqliteFileUnlocked(shareKey: string | undefined): boolean {
  return shareKey === undefined || !OPEN_TRANSACTIONS.get(shareKey);
}

class ImmediateSqliteDriver extends SqliteDriver {
  readonly #mutex: Mutex;
  readonly #database: SqliteDialectConfig['database'];
  #release: (() => void) | undefined;
  readonly #shareKey: string | undefined;
  constructor(config: SqliteDialectConfig, mutex: Mutex, shareKey: string | undefined) {
    super(config);
    this.#mutex = mutex;
    this.#shareKey = shareKey;
    this.#database = config.database;
  }
  override async acquireConnection(): Promise<DatabaseConnection> {
    const release = await this.#mutex.lock();
    try {
      const connection = await super.acquireConnection();
      this.#release = release;
      return connection;
    } catch (err) {
      release();
      throw err;
    }
  }
  override async releaseConnection(): Promise<void> {
    const release = this.#release;
    this.#release = undefined;
    try {
      await super.releaseConnection();
    } finally {
      release?.();
    }
  }
  /** Closed once the file's every connection is: the checkpoint worker's too (checkpointer.ts), so the file may then be removed. */
  override async destroy(): Promise<void> {
    await super.destroy();
    await (this.#database as { closed?: () => Promise<void> }).closed?.();
  }
  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('begin immediate'));
    this.#opened(connection, true);
  }
  override async commitTransaction(connection: DatabaseConnection): Promise<void> {
    try {
      await super.commitTransaction(connection);
    } finally {
      this.#opened(connection, false);
    }
  }
  override async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    try {
      await super.rollbackTransaction(connection);
    } finally {
      this.#opened(connection, false);
    }
  }
  /** Connections with a transaction open: counted once each, whatever ends it (a failed COMMIT is followed by a ROLLBACK). */
  readonly #inTransaction = new WeakSet<DatabaseConnection>();
  #opened(connection: DatabaseConnection, open: boolean): void {
    if (this.#shareKey === undefined || open === this.#inTransaction.has(connection)) return;
    if (open) this.#inTransaction.add(connection);
    else this.#inTransaction.delete(connection);
    const n = (OPEN_TRANSACTIONS.get(this.#shareKey) ?? 0) + (open ? 1 : -1);
    if (n > 0) OPEN_TRANSACTIONS.set(this.#shareKey, n);
    else OPEN_TRANSACTIONS.delete(this.#shareKey);
  }
}
