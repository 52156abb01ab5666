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
