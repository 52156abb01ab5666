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

/**
 * Every backend a store test must hold on, by name, for suites written once
 * for all of them (the secret store's, issue 18).
 */
export const STORE_BACKENDS: { name: string; dialect: Store['dialect']; open: () => Promise<TestStore> }[] = [
  { name: 'SQLite file', dialect: 'sqlite', open: sqliteTestStore },
  { name: 'MariaDB', dialect: 'mysql', open: mysqlTestStore },
  { name: 'PostgreSQL', dialect: 'postgres', open: postgresTestStore },
];

/**
 * Everything a database holds, as text to search: every file of a SQLite
 * database (main file, WAL, shared memory) as raw bytes, or every row of
 * every table of a MariaDB or PostgreSQL database. What a value must never be
 * found in.
 */
export async function rawDatabaseText(url: string): Promise<string> {
  const { parseDatabaseUrl } = await import('../../src/store/open.js');
  const target = parseDatabaseUrl(url);
  if (target.dialect === 'sqlite') {
    const { readdirSync, readFileSync } = await import('node:fs');
    const { basename, dirname } = await import('node:path');
    const dir = dirname(target.path);
    return readdirSync(dir)
      .filter((f) => f.startsWith(basename(target.path)))
      .map((f) => readFileSync(join(dir, f)).toString('latin1'))
      .join('\n');
  }
  const out: string[] = [];
  if (target.dialect === 'postgres') {
    const { default: pg } = await import('pg');
    const client = new pg.Client({ connectionString: target.url });
    await client.connect();
    try {
      const { rows: tables } = await client.query<{ name: string }>("SELECT table_name AS name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name");
      for (const { name } of tables) {
        const { rows } = await client.query(`SELECT * FROM "${name}"`);
        out.push(`${name}: ${JSON.stringify(rows)}`);
      }
    } finally {
      await client.end();
    }
    return out.join('\n');
  }
  const mysql = await import('mysql2/promise');
  const conn = await mysql.createConnection({ uri: target.url });
  try {
    const [tables] = await conn.query('SHOW TABLES');
    for (const t of tables as Record<string, string>[]) {
      const name = Object.values(t)[0]!;
      const [rows] = await conn.query(`SELECT * FROM \`${name}\``);
      out.push(`${name}: ${JSON.stringify(rows)}`);
    }
    return out.join('\n');
  } finally {
    await conn.end();
  }
}
