// DATABASE_URL → a Store. Embedded SQLite by default; MySQL/MariaDB or
// PostgreSQL when the URL says so (what several replicas share). This file
// knows how to reach each database (URL forms, driver options); what the
// databases do differently once connected is dialect.ts's business.
import { mkdirSync, realpathSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { Kysely, MysqlDialect, PostgresDialect } from 'kysely';
import type { PoolOptions } from 'mysql2';
import { checkpointInWorker } from './checkpointer.js';
import { ImmediateSqliteDialect, registerSyncSqlite, sqliteFileUnlocked, type SyncResult } from './dialect.js';
import { KyselyStore } from './kysely-store.js';
import type { Database } from './schema.js';
import type { OpenStoreOptions, Store } from './store.js';

export const DEFAULT_DATABASE_URL = 'sqlite:./.berth/berth.sqlite';

export const ACCEPTED_DATABASE_URLS =
  'sqlite:PATH, sqlite://PATH, file:PATH, :memory:, sqlite::memory:, mysql://user:password@host:port/database (or mariadb://…), postgres://user:password@host:port/database (or postgresql://…)';

export type DatabaseTarget = { dialect: 'sqlite'; path: string } | { dialect: 'mysql'; url: string } | { dialect: 'postgres'; url: string };

/** Which backend a database URL names, and where. Throws on anything it does not accept. */
export function parseDatabaseUrl(url: string): DatabaseTarget {
  const raw = url.trim();
  if (raw === ':memory:') return { dialect: 'sqlite', path: ':memory:' };
  const scheme = /^([a-zA-Z][a-zA-Z0-9+.-]*):/.exec(raw)?.[1]?.toLowerCase();
  if (scheme === undefined) {
    throw new Error(
      `DATABASE_URL "${redactUrl(raw)}" has no scheme; accepted forms: ${ACCEPTED_DATABASE_URLS}` +
        (raw ? ` (for a SQLite file, write sqlite:${raw})` : ''),
    );
  }
  switch (scheme) {
    case 'sqlite':
    case 'file': {
      const rest = raw.slice(scheme.length + 1);
      const path = rest.startsWith('//') ? rest.slice(2) : rest;
      if (!path) throw new Error(`DATABASE_URL "${raw}" names no SQLite file; accepted forms: ${ACCEPTED_DATABASE_URLS}`);
      return { dialect: 'sqlite', path };
    }
    case 'mysql':
    case 'mariadb':
      return { dialect: 'mysql', url: raw };
    case 'postgres':
    case 'postgresql':
      return { dialect: 'postgres', url: raw };
    default:
      throw new Error(`unsupported DATABASE_URL scheme "${scheme}:" in "${redactUrl(raw)}"; accepted forms: ${ACCEPTED_DATABASE_URLS}`);
  }
}

export interface ConnectOptions {
  /** SQLite: how long a statement waits for another process's write lock, ms (default 5000). */
  busyTimeoutMs?: number;
  /** MySQL/PostgreSQL: pool size when the URL does not say (default 10). */
  connectionLimit?: number;
}

/**
 * Opens the store `url` names: `url`, else DATABASE_URL, else
 * sqlite:./.berth/berth.sqlite. A SQLite file's directory is created when
 * missing. Pending migrations run unless `opts.migrate` is false.
 */
export async function openStore(url?: string, opts: OpenStoreOptions & ConnectOptions = {}): Promise<Store> {
  const chosen = url?.trim() || process.env.DATABASE_URL?.trim() || DEFAULT_DATABASE_URL;
  const target = parseDatabaseUrl(chosen);
  const db = await connect(target, opts);
  return KyselyStore.open(db, target.dialect, opts);
}

/**
 * Switches a SQLite file to write-ahead logging (ignored for :memory:, which stays 'memory'), within `timeoutMs`.
 * The busy timeout does not cover it: while another connection holds a fresh file's write lock in the
 * rollback journal's mode (a second process opening it first, mid-migration), SQLite answers SQLITE_BUSY at
 * once rather than wait on a lock that could deadlock. So the switch is tried again, without blocking the
 * event loop, until that connection is done.
 */
async function toWal(raw: { pragma(source: string): unknown }, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let wait = 5; ; wait = Math.min(wait * 2, 100)) {
    try {
      raw.pragma('journal_mode = WAL');
      return;
    } catch (err) {
      if ((err as { code?: string })?.code !== 'SQLITE_BUSY' || Date.now() >= deadline) throw err;
      await new Promise((r) => setTimeout(r, wait));
    }
  }
}

/** A Kysely instance on the database (no migrations run). The caller destroys it. */
export async function connect(target: DatabaseTarget, opts: ConnectOptions = {}): Promise<Kysely<Database>> {
  // Drivers are imported on demand: a deployment loads only the one it uses.
  switch (target.dialect) {
    case 'sqlite': {
      if (target.path !== ':memory:') mkdirSync(dirname(resolve(target.path)), { recursive: true });
      const { default: SQLite } = await import('better-sqlite3');
      const timeout = Math.max(0, Math.floor(opts.busyTimeoutMs ?? 5000));
      const raw = new SQLite(target.path, { timeout });
      try {
        // busy_timeout first, so the journal-mode switch waits for a concurrent opener instead of failing.
        raw.pragma(`busy_timeout = ${timeout}`);
        await toWal(raw, timeout);
        raw.pragma('synchronous = NORMAL');
        raw.pragma('foreign_keys = ON');
      } catch (err) {
        raw.close();
        throw err;
      }
      // Kysely prepares every statement it runs; better-sqlite3 statements are reusable, so keep the recent ones.
      const statements = new Map<string, ReturnType<typeof raw.prepare>>();
      const shareKey = target.path === ':memory:' ? undefined : realpathSync(resolve(target.path));
      // Checkpoints (and their fsync) happen off the event loop (checkpointer.ts).
      const handBack = shareKey === undefined ? () => undefined : checkpointInWorker(raw, shareKey, timeout);
      let handedBack: Promise<void> | undefined;
      const database = {
        close: () => {
          // This connection first, then the worker's: the last to close folds the log into the file
          // and removes it, and two closing at once (two threads) can each leave that to the other.
          raw.close();
          handedBack = handBack();
        },
        /** resolves once every connection to the file is closed (ImmediateSqliteDriver.destroy waits for it) */
        closed: () => handedBack ?? Promise.resolve(),
        prepare(sql: string) {
          let s = statements.get(sql);
          if (!s) {
            if (statements.size > 256) statements.clear();
            s = raw.prepare(sql);
            statements.set(sql, s);
          }
          return s;
        },
      };
      const db = new Kysely<Database>({ dialect: new ImmediateSqliteDialect({ database }, shareKey) });
      const run = (q: { sql: string; parameters: readonly unknown[] }): SyncResult => {
        const s = database.prepare(q.sql);
        return s.reader ? { rows: s.all(q.parameters), changes: 0 } : { rows: [], changes: s.run(q.parameters).changes };
      };
      // One IMMEDIATE transaction wrapper for every synchronous batch (better-sqlite3 builds one per call otherwise).
      const immediate = raw.transaction((fn: (r: typeof run) => unknown) => fn(run)).immediate;
      /**
       * Runs `work` synchronously now when nothing holds the file's write lock: no transaction open on this
       * connection (it spans awaits) nor on another connection of this process (sqliteFileUnlocked). Then it
       * runs whole before any other JavaScript (better-sqlite3 is synchronous): nothing can interleave with
       * it, and Kysely's queue is not joined. Otherwise it waits for the connection like any query.
       */
      const now = <T>(kysely: Kysely<Database>, work: () => T): Promise<T> => {
        if (!raw.inTransaction && sqliteFileUnlocked(shareKey)) {
          try {
            return Promise.resolve(work());
          } catch (err) {
            return Promise.reject(err);
          }
        }
        return kysely.getExecutor().provideConnection(async () => work());
      };
      registerSyncSqlite(db, {
        transaction: (kysely, fn) => now(kysely, () => immediate(fn) as ReturnType<typeof fn>),
        run: (kysely, q) => now(kysely, () => run(q)),
      });
      return db;
    }
    case 'mysql': {
      const { createPool } = await import('mysql2');
      const { pool: config } = mysqlConfigFromUrl(target.url);
      const pool = createPool({
        connectionLimit: opts.connectionLimit ?? 10,
        ...config,
        waitForConnections: true,
        charset: 'UTF8MB4_UNICODE_CI',
        // BIGINT columns (timestamps, GitHub ids) as numbers; a value beyond
        // 2^53 would arrive as a string, which the row mappers convert.
        supportBigNumbers: true,
        bigNumberStrings: false,
        // affectedRows counts the rows an UPDATE matched (see dialect.ts).
        flags: ['FOUND_ROWS'],
      });
      return new Kysely<Database>({ dialect: new MysqlDialect({ pool }) });
    }
    case 'postgres': {
      const { default: pg } = await import('pg');
      const config = postgresConfigFromUrl(target.url);
      const pool = new pg.Pool({
        max: opts.connectionLimit ?? 10,
        ...config,
        // int8 (BIGINT: timestamps, GitHub ids) as numbers rather than strings.
        types: { getTypeParser: ((oid: number, format?: 'text' | 'binary') => (oid === 20 ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format))) as typeof pg.types.getTypeParser },
      });
      // A pooled connection the server dropped while idle (a restart, a failover) is discarded by the
      // pool and the next query opens a new one; without a listener, pg's 'error' event would end the process.
      pool.on('error', () => undefined);
      // The pool listens only while a client is idle. A client held between two statements (a
      // transaction waiting on berth) whose connection ends emits 'error' with no query to fail:
      // unheard, that ends the process. Heard here, the client's next statement fails instead (a
      // transient error the store retries) and the pool drops the client when it comes back.
      pool.on('connect', (client) => void client.on('error', () => undefined));
      return new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    }
  }
}

/** Query parameters a `mysql://` URL may carry. */
const MYSQL_URL_PARAMS = ['connectionLimit', 'connectTimeout', 'ssl', 'socketPath'] as const;

/**
 * `mysql://user:pass@host:port/database?connectionLimit=10&ssl=true` (also
 * `mariadb://`) → mysql2 pool options. User and password are percent-decoded.
 */
export function mysqlConfigFromUrl(url: string): { database: string; pool: PoolOptions } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error('invalid MySQL URL: expected mysql://user:password@host:port/database');
  }
  if (u.protocol !== 'mysql:' && u.protocol !== 'mariadb:') {
    throw new Error(`not a MySQL URL (scheme ${u.protocol}): expected mysql://user:password@host:port/database`);
  }
  const database = decodeURIComponent(u.pathname.replace(/^\/+/, ''));
  if (!database || database.includes('/')) {
    throw new Error('the MySQL URL names no database: expected mysql://user:password@host:port/database');
  }
  const pool: PoolOptions = {
    host: u.hostname.replace(/^\[(.*)\]$/, '$1') || 'localhost',
    port: u.port ? Number(u.port) : 3306,
    user: u.username ? decodeURIComponent(u.username) : undefined,
    password: u.password ? decodeURIComponent(u.password) : undefined,
    database,
  };
  for (const [key, value] of u.searchParams) {
    switch (key as (typeof MYSQL_URL_PARAMS)[number]) {
      case 'connectionLimit':
      case 'connectTimeout': {
        const n = Number(value);
        if (!Number.isInteger(n) || n <= 0) throw new Error(`MySQL URL parameter ${key} must be a positive integer, got "${value}"`);
        pool[key as 'connectionLimit' | 'connectTimeout'] = n;
        break;
      }
      case 'ssl':
        if (value === 'true' || value === '1') pool.ssl = {};
        else if (value === 'false' || value === '0') pool.ssl = undefined;
        else throw new Error(`MySQL URL parameter ssl must be true or false, got "${value}"`);
        break;
      case 'socketPath':
        pool.socketPath = value;
        break;
      default:
        throw new Error(`unknown MySQL URL parameter "${key}" (accepted: ${MYSQL_URL_PARAMS.join(', ')})`);
    }
  }
  return { database, pool };
}

/** Query parameters a `postgres://` URL may carry. */
const POSTGRES_URL_PARAMS = ['max', 'connectTimeout', 'sslmode', 'application_name'] as const;

export interface PostgresConfig {
  host: string;
  port: number;
  user?: string;
  password?: string;
  database: string;
  max?: number;
  connectionTimeoutMillis?: number;
  ssl?: boolean | { rejectUnauthorized: boolean };
  application_name?: string;
}

/**
 * `postgres://user:pass@host:port/database?max=10&sslmode=require` (also
 * `postgresql://`) → pg pool options. User and password are percent-decoded;
 * a host of the form `%2Frun%2Fpostgresql` is a Unix socket directory.
 */
export function postgresConfigFromUrl(url: string): PostgresConfig {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error('invalid PostgreSQL URL: expected postgres://user:password@host:port/database');
  }
  if (u.protocol !== 'postgres:' && u.protocol !== 'postgresql:') {
    throw new Error(`not a PostgreSQL URL (scheme ${u.protocol}): expected postgres://user:password@host:port/database`);
  }
  const database = decodeURIComponent(u.pathname.replace(/^\/+/, ''));
  if (!database || database.includes('/')) {
    throw new Error('the PostgreSQL URL names no database: expected postgres://user:password@host:port/database');
  }
  const config: PostgresConfig = {
    host: decodeURIComponent(u.hostname.replace(/^\[(.*)\]$/, '$1')) || 'localhost',
    port: u.port ? Number(u.port) : 5432,
    user: u.username ? decodeURIComponent(u.username) : undefined,
    password: u.password ? decodeURIComponent(u.password) : undefined,
    database,
  };
  for (const [key, value] of u.searchParams) {
    switch (key as (typeof POSTGRES_URL_PARAMS)[number]) {
      case 'max':
      case 'connectTimeout': {
        const n = Number(value);
        if (!Number.isInteger(n) || n <= 0) throw new Error(`PostgreSQL URL parameter ${key} must be a positive integer, got "${value}"`);
        if (key === 'max') config.max = n;
        else config.connectionTimeoutMillis = n;
        break;
      }
      case 'sslmode':
        if (value === 'disable') config.ssl = false;
        else if (value === 'require' || value === 'no-verify') config.ssl = { rejectUnauthorized: false };
        else if (value === 'verify-full') config.ssl = { rejectUnauthorized: true };
        else throw new Error(`PostgreSQL URL parameter sslmode must be disable, require, no-verify or verify-full, got "${value}"`);
        break;
      case 'application_name':
        config.application_name = value;
        break;
      default:
        throw new Error(`unknown PostgreSQL URL parameter "${key}" (accepted: ${POSTGRES_URL_PARAMS.join(', ')})`);
    }
  }
  return config;
}

/** The URL with its password (userinfo and any password= parameter) masked, for logs and errors. */
export function redactUrl(url: string): string {
  let out = url;
  const authority = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\//.exec(out);
  if (authority) {
    const start = authority[0].length;
    // The last '@' ends the userinfo: a password may itself contain an unescaped '@' or '/'.
    const at = out.lastIndexOf('@');
    if (at > start) {
      const userinfo = out.slice(start, at);
      const colon = userinfo.indexOf(':');
      if (colon >= 0) out = `${out.slice(0, start)}${userinfo.slice(0, colon)}:***${out.slice(at)}`;
    }
  }
  return out.replace(/([?&](?:password|pass|pwd)=)[^&#]*/gi, '$1***');
}
