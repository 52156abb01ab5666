// The SQLite store's checkpoints run in a worker thread (src/store/checkpointer.ts):
// the store's own connection never folds the log back into the file inside a commit
// (an fsync on the event loop), the worker does it, and closing the store leaves a
// file with no log beside it that can be removed at once.
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import SQLite from 'better-sqlite3';
import { sql, type Kysely } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { checkpointNow, onCheckpoint, type CheckpointReport } from '../src/store/checkpointer.js';
import { openStore } from '../src/store/open.js';
import type { Store } from '../src/store/store.js';

const dirs: string[] = [];
const tempFile = () => {
  const dir = mkdtempSync(join(tmpdir(), 'berth-ckpt-'));
  dirs.push(dir);
  return join(dir, 'b.sqlite');
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** Writes enough rows that SQLite's own threshold (1,000 log pages) would have checkpointed inside a commit. */
async function fill(store: Store, n: number) {
  for (let i = 0; i < n; i++) await store.recordDelivery(`delivery-${i}-${'x'.repeat(2000)}`, 'push');
}

/**
 * The worker's reports for `path` until one says the whole log was copied back (a report from a tick
 * during the writes may have copied only part of it: PASSIVE stops at a writer). `ask` asks for a
 * checkpoint before each wait; otherwise the worker's own timer is waited for.
 */
async function fullCheckpoint(path: string, ask: boolean): Promise<CheckpointReport> {
  for (let i = 0; i < 40; i++) {
    const report = nextReport(path);
    if (ask) checkpointNow(path);
    const r = await report;
    if (r.error !== undefined || (r.log! > 0 && r.checkpointed === r.log)) return r;
  }
  throw new Error(`no full checkpoint of ${path} in 40 reports`);
}

const nextReport = (path: string) =>
  new Promise<CheckpointReport>((resolve) => {
    const off = onCheckpoint((r) => {
      if (r.path !== path) return;
      off();
      resolve(r);
    });
  });

describe('SQLite checkpoints off the event loop', () => {
  it('the store connection never checkpoints by itself; the worker folds the log into the file', async () => {
    const file = tempFile();
    const store = await openStore(`sqlite:${file}`);
    try {
      // The store's own connection: automatic checkpoints off (SQLite's default is 1,000 pages).
      const db = (store as unknown as { ctx: { db: Kysely<unknown> } }).ctx.db;
      expect((await sql<{ wal_autocheckpoint: number }>`pragma wal_autocheckpoint`.execute(db)).rows).toEqual([{ wal_autocheckpoint: 0 }]);
      await fill(store, 3000);
      const r = await fullCheckpoint(file, true);
      expect(r.error).toBeUndefined();
      // Every page of the log was copied back (PASSIVE: nothing was writing meanwhile).
      expect(r.log).toBeGreaterThan(0);
      expect(r.checkpointed).toBe(r.log);
    } finally {
      await store.close();
    }
  });

  it('the log is checkpointed on the worker’s timer without being asked', async () => {
    const file = tempFile();
    const store = await openStore(`sqlite:${file}`);
    try {
      await fill(store, 200);
      const r = await fullCheckpoint(file, false);
      expect(r.error).toBeUndefined();
      expect(r.checkpointed).toBe(r.log);
    } finally {
      await store.close();
    }
  });

  it('closing the store closes the worker’s connection too: no log is left and the folder can be removed at once', async () => {
    const file = tempFile();
    const store = await openStore(`sqlite:${file}`);
    await fill(store, 500);
    await store.close();
    expect(readdirSync(join(file, '..')).sort()).toEqual(['b.sqlite']);
    expect(statSync(file).size).toBeGreaterThan(500 * 2000);
    // The rows are in the file itself.
    const db = new SQLite(file, { readonly: true });
    try {
      expect((db.prepare('select count(*) as n from deliveries').get() as { n: number }).n).toBe(500);
    } finally {
      db.close();
    }
    rmSync(join(file, '..'), { recursive: true });
    expect(existsSync(file)).toBe(false);
  });

  it('two stores on one file share the worker’s connection; the last to close ends it', async () => {
    const file = tempFile();
    const a = await openStore(`sqlite:${file}`);
    const b = await openStore(`sqlite:${file}`);
    await fill(a, 50);
    await a.close();
    // b's file is still checkpointed after a closed.
    await fill(b, 50);
    const report = nextReport(file);
    checkpointNow(file);
    expect((await report).error).toBeUndefined();
    await b.close();
    expect(readdirSync(join(file, '..')).sort()).toEqual(['b.sqlite']);
  });
});
