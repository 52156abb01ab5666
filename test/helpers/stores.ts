// Store backends for tests that must hold on both: a fresh SQLite file, and a
// scratch MariaDB database created for the test file and dropped after it.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../../src/store/open.js';
import type { Store } from '../../src/store/store.js';
import { MYSQL_URL } from './env.js';

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

export async function mysqlTestStore(): Promise<TestStore> {
  const mysql = await import('mysql2/promise');
  const db = `berth_t_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
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

/**
 * Every backend a store test must hold on, by name, for suites written once
 * for all of them (the secret store's, issue 18). A new backend (PostgreSQL)
 * is one more entry here.
 */
export const STORE_BACKENDS: { name: string; dialect: 'sqlite' | 'mysql'; open: () => Promise<TestStore> }[] = [
  { name: 'SQLite file', dialect: 'sqlite', open: sqliteTestStore },
  { name: 'MariaDB', dialect: 'mysql', open: mysqlTestStore },
];

/**
 * Everything a database holds, as text to search: every file of a SQLite
 * database (main file, WAL, shared memory) as raw bytes, or every row of
 * every table of a MariaDB database. What a value must never be found in.
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
  const mysql = await import('mysql2/promise');
  const conn = await mysql.createConnection({ uri: target.url });
  try {
    const [tables] = await conn.query('SHOW TABLES');
    const out: string[] = [];
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
