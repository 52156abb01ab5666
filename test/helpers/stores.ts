// Store backends for tests that must hold on each: a fresh SQLite file, and a
// scratch MariaDB or PostgreSQL database created for the test file and dropped
// after it (so parallel test files never share one).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../../src/store/open.js';
import type { Store } from '../../src/store/store.js';
import { MYSQL_URL, POSTGRES_URL } from './env.js';

export interface TestStore {
  store: Store;
  /** the URL another process can open */
  url: string;
  dispose(): Promise<void>;
}

export async function sqliteTestStore(): Promise<TestStore> {
  const dir = mkdtempSync(join(tmpdir(), 'berth-store-'));
  const url = `sqlite:${join(dir, 'berth.sqlite')}`;
  const store = await openStore(url);
  return {
    store,
    url,
    dispose: async () => {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A name no other test process picks: berth_t_<pid>_<random>. */
export function scratchDatabaseName(): string {
  return `berth_t_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
}

export async function mysqlTestStore(): Promise<TestStore> {
  const mysql = await import('mysql2/promise');
  const db = scratchDatabaseName();
  const admin = await mysql.createConnection({ uri: MYSQL_URL });
  await admin.query(`CREATE DATABASE \`${db}\``);
  const u = new URL(MYSQL_URL);
  u.pathname = `/${db}`;
  const url = u.toString();
  const store = await openStore(url);
  return {
    store,
    url,
    dispose: async () => {
      await store.close();
      await admin.query(`DROP DATABASE IF EXISTS \`${db}\``);
      await admin.end();
    },
  };
}

/** A scratch PostgreSQL database: created on the server at POSTGRES_URL; its URL. `drop` removes it (closing any session left on it). */
export async function postgresScratchDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  const { default: pg } = await import('pg');
  const db = scratchDatabaseName();
  const admin = new pg.Client({ connectionString: POSTGRES_URL });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE "${db}"`);
  } finally {
    await admin.end();
  }
  const u = new URL(POSTGRES_URL);
  u.pathname = `/${db}`;
  return {
    url: u.toString(),
    drop: async () => {
      const c = new pg.Client({ connectionString: POSTGRES_URL });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}

export async function postgresTestStore(): Promise<TestStore> {
  const scratch = await postgresScratchDatabase();
  const store = await openStore(scratch.url).catch(async (err: unknown) => {
    await scratch.drop();
    throw err;
  });
  return {
    store,
    url: scratch.url,
    dispose: async () => {
      await store.close();
      await scratch.drop();
    },
  };
}
