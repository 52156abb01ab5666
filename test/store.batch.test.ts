// updateTasks (the executor's group commit) on every backend: one transaction,
// each update the same compare-and-set as updateTask.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { KyselyStore } from '../src/store/kysely-store.js';
import { connect } from '../src/store/open.js';
import type { TaskPatch, TaskState } from '../src/store/store.js';
import { describeMysql, describePostgres } from './helpers/env.js';
import { mysqlTestStore, postgresTestStore, sqliteTestStore } from './helpers/stores.js';
import type { TestStore } from './helpers/stores.js';

function suite(name: string, open: () => Promise<TestStore>, d: (name: string, fn: () => void) => void = describe) {
  d(`updateTasks on ${name}`, () => {
    let ts: TestStore;
    beforeEach(async () => void (ts = await open()));
    afterEach(async () => ts.dispose());

    async function apply(n = 3) {
      const task = (nodeId: number) => ({ nodeId, kind: 'StartContainer', resource: `service:s:${nodeId}`, reason: 'missing', deps: [], nodeJson: '{}' });
      const created = await ts.store.createApply({
        repo: 'a/b', pr: 1, environment: 'e', kind: 'apply', actor: 'x', headSha: null, desiredDigest: 'd', planFingerprint: null, desiredJson: '{}',
        operations: [{ target: 'local', tasks: Array.from({ length: n }, (_, i) => task(i + 1)) }],
      });
      return created.operations[0]!.tasks.map((t) => t.id);
    }

    it('applies every winning update and reports each result', async () => {
      const [a, b, c] = await apply();
      await ts.store.updateTask(c!, 'pending', { state: 'running', startedAt: 1 });
      const res = await ts.store.updateTasks([
        { id: a!, expected: 'pending', patch: { state: 'running', startedAt: 5 } },
        { id: b!, expected: ['pending', 'running'], patch: { state: 'cancelled', finishedAt: 6 } },
        { id: c!, expected: 'pending', patch: { state: 'succeeded' } }, // lost: c is running
      ]);
      expect(res).toEqual([true, true, false]);
      expect((await ts.store.getTask(a!))).toMatchObject({ state: 'running', startedAt: 5 });
      expect((await ts.store.getTask(b!))).toMatchObject({ state: 'cancelled', finishedAt: 6 });
      expect((await ts.store.getTask(c!))).toMatchObject({ state: 'running', startedAt: 1 });
      expect(await ts.store.updateTasks([])).toEqual([]);
    });

    it('two updates of one task in one batch: the second sees the first', async () => {
      const [a] = await apply();
      const res = await ts.store.updateTasks([
        { id: a!, expected: 'pending', patch: { state: 'running' } },
        { id: a!, expected: 'running', patch: { state: 'succeeded', result: 'ctr1' } },
      ]);
      expect(res).toEqual([true, true]);
      expect(await ts.store.getTask(a!)).toMatchObject({ state: 'succeeded', result: 'ctr1' });
    });

    it('a wave of tasks written alike (one statement) gets the same answers and rows as one write per task', async () => {
      const ids = await apply(7);
      const res = await ts.store.updateTasks([
        ...ids.slice(0, 5).map((id) => ({ id, expected: 'pending' as const, patch: { state: 'running' as const, startedAt: 9 } })),
        { id: ids[5]!, expected: ['pending', 'running'], patch: { state: 'cancelled', finishedAt: 10 } },
        { id: ids[6]!, expected: ['running', 'pending'], patch: { state: 'cancelled', finishedAt: 10 } },
      ]);
      expect(res).toEqual([true, true, true, true, true, true, true]);
      for (const id of ids.slice(0, 5)) expect(await ts.store.getTask(id)).toMatchObject({ state: 'running', startedAt: 9, version: 1 });
      for (const id of ids.slice(5)) expect(await ts.store.getTask(id)).toMatchObject({ state: 'cancelled', finishedAt: 10, version: 1 });
    });

    it('when one task of a wave lost its race, the others still win once each and the loser is untouched', async () => {
      const ids = await apply(6);
      await ts.store.updateTask(ids[2]!, 'pending', { state: 'running', startedAt: 1 });
      const res = await ts.store.updateTasks(ids.map((id) => ({ id, expected: 'pending' as const, patch: { state: 'running' as const, startedAt: 7 } })));
      expect(res).toEqual([true, true, false, true, true, true]);
      for (const [i, id] of ids.entries())
        expect(await ts.store.getTask(id)).toMatchObject(i === 2 ? { state: 'running', startedAt: 1, version: 1 } : { state: 'running', startedAt: 7, version: 1 });
    });

    it('a wave wider than one statement takes (70 alike), with a loser past the first 64, answers per task', async () => {
      const ids = await apply(70);
      await ts.store.updateTask(ids[66]!, 'pending', { state: 'cancelled', finishedAt: 1 });
      const res = await ts.store.updateTasks(ids.map((id) => ({ id, expected: 'pending' as const, patch: { state: 'running' as const, startedAt: 3 } })));
      expect(res).toEqual(ids.map((_, i) => i !== 66));
      const rows = await ts.store.listTasks((await ts.store.getTask(ids[0]!))!.operationId);
      expect(rows.filter((r) => r.state === 'running' && r.startedAt === 3 && r.version === 1)).toHaveLength(69);
      expect(rows.find((r) => r.id === ids[66])).toMatchObject({ state: 'cancelled', finishedAt: 1, version: 1 });
    });

    it('a wave whose writes differ per task (finish times, container ids, a null) gets each its own values, and a lost race leaves its task untouched', async () => {
      const ids = await apply(70);
      await ts.store.updateTasks(ids.map((id) => ({ id, expected: 'pending' as const, patch: { state: 'running' as const, startedAt: 3 } })));
      await ts.store.updateTask(ids[4]!, 'running', { state: 'failed', finishedAt: 4, error: 'boom' });
      const res = await ts.store.updateTasks(
        ids.map((id, i) => ({ id, expected: 'running' as const, patch: { state: 'succeeded' as const, finishedAt: 10_000_000_000_000 + i, result: i === 7 ? null : `ctr${i}` } })),
      );
      expect(res).toEqual(ids.map((_, i) => i !== 4));
      for (const [i, id] of ids.entries())
        expect(await ts.store.getTask(id)).toMatchObject(
          i === 4 ? { state: 'failed', finishedAt: 4, error: 'boom', result: null, version: 2 } : { state: 'succeeded', startedAt: 3, finishedAt: 10_000_000_000_000 + i, result: i === 7 ? null : `ctr${i}`, version: 2 },
        );
    });

    it('a wave whose writes differ per task, all winning, is written with each task’s own values', async () => {
      const ids = await apply(70);
      await ts.store.updateTasks(ids.map((id) => ({ id, expected: 'pending' as const, patch: { state: 'running' as const, startedAt: 3 } })));
      const res = await ts.store.updateTasks(ids.map((id, i) => ({ id, expected: 'running' as const, patch: { state: 'succeeded' as const, finishedAt: 20 + (i % 3), result: i % 5 ? `c${i}` : null } })));
      expect(res).toEqual(ids.map(() => true));
      for (const [i, id] of ids.entries()) expect(await ts.store.getTask(id)).toMatchObject({ state: 'succeeded', startedAt: 3, finishedAt: 20 + (i % 3), result: i % 5 ? `c${i}` : null, version: 2 });
    });

    it('a wave under a fence no longer held writes nothing', async () => {
      const ids = await apply(4);
      const token = await ts.store.claimLease('apply:x', 'me', 30_000);
      const fence = { lease: 'apply:x', holder: 'me', token: token! };
      await ts.store.releaseLease('apply:x', 'me');
      expect(await ts.store.updateTasks(ids.map((id) => ({ id, expected: 'pending' as const, patch: { state: 'running' as const } })), fence)).toEqual([false, false, false, false]);
      for (const id of ids) expect(await ts.store.getTask(id)).toMatchObject({ state: 'pending', version: 0 });
    });

    it('every shape of write (each optional column set to a value, to null or left out; one or several expected states) lands exactly as written', async () => {
      const columns = ['error', 'result', 'startedAt', 'finishedAt'] as const;
      const value = { error: 'boom', result: 'ctr1', startedAt: 11, finishedAt: 12 } as const;
      const cases: { patch: TaskPatch; expected: TaskState | TaskState[] }[] = [];
      for (let mask = 0; mask < 3 ** columns.length; mask++) {
        const patch: TaskPatch = { state: 'running' };
        columns.forEach((c, i) => {
          const pick = Math.floor(mask / 3 ** i) % 3;
          if (pick === 1) (patch as unknown as Record<string, unknown>)[c] = value[c];
          if (pick === 2) (patch as unknown as Record<string, unknown>)[c] = null;
        });
        cases.push({ patch, expected: mask % 2 ? 'pending' : ['failed', 'pending'] });
      }
      const ids = await apply(cases.length);
      expect(await ts.store.updateTasks(cases.map((c, i) => ({ id: ids[i]!, expected: c.expected, patch: c.patch })))).toEqual(cases.map(() => true));
      for (const [i, c] of cases.entries()) {
        const row = await ts.store.getTask(ids[i]!);
        const want = { version: 1, error: null, result: null, startedAt: null, finishedAt: null, ...c.patch };
        expect(row).toMatchObject(want);
      }
      // The same shapes refused where the expected state does not hold: nothing changes.
      expect(await ts.store.updateTasks(cases.map((c, i) => ({ id: ids[i]!, expected: c.expected, patch: { ...c.patch, state: 'succeeded' } })))).toEqual(cases.map(() => false));
      for (const id of ids) expect(await ts.store.getTask(id)).toMatchObject({ state: 'running', version: 1 });
    });
  });
}

describe('updateTasks on SQLite beside a transaction the store holds open', () => {
  it('waits for that transaction and is not part of it: its rollback leaves the journal write in place', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-batch-'));
    const db = await connect({ dialect: 'sqlite', path: join(dir, 'b.sqlite') });
    const store = await KyselyStore.open(db, 'sqlite');
    try {
      const created = await store.createApply({
        repo: 'a/b', pr: 1, environment: 'e', kind: 'apply', actor: 'x', headSha: null, desiredDigest: 'd', planFingerprint: null, desiredJson: '{}',
        operations: [{ target: 'local', tasks: [{ nodeId: 1, kind: 'StartContainer', resource: 'service:s:1', reason: 'missing', deps: [], nodeJson: '{}' }] }],
      });
      const id = created.operations[0]!.tasks[0]!.id;
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      let opened!: () => void;
      const isOpen = new Promise<void>((r) => (opened = r));
      // A transaction of the store's own (as startApply runs one) that spans an await, then rolls back.
      const held = db.transaction().execute(async (trx) => {
        await trx.insertInto('leases').values({ name: 'in-trx', holder: 'h', expires_at: 1, token: 't' }).execute();
        opened();
        await gate;
        throw new Error('rolled back on purpose');
      });
      await isOpen;
      let written = false;
      const write = store.updateTasks([{ id, expected: 'pending', patch: { state: 'running', startedAt: 7 } }]).then((r) => ((written = true), r));
      await new Promise((r) => setTimeout(r, 30));
      expect(written).toBe(false);
      release();
      await expect(held).rejects.toThrow('rolled back on purpose');
      expect(await write).toEqual([true]);
      expect(await store.getTask(id)).toMatchObject({ state: 'running', startedAt: 7, version: 1 });
      expect(await store.getLease('in-trx')).toBeUndefined();
    } finally {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('synchronous statements on SQLite beside a transaction another store of this process holds open on the file', () => {
  it('wait for it instead of waiting for its lock synchronously (which would block the event loop it needs to finish)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-batch-'));
    const path = join(dir, 'b.sqlite');
    // A short busy timeout: a write that waited for the lock synchronously would fail with SQLITE_BUSY in 300 ms.
    const a = await connect({ dialect: 'sqlite', path }, { busyTimeoutMs: 300 });
    const store = await KyselyStore.open(await connect({ dialect: 'sqlite', path }, { busyTimeoutMs: 300 }), 'sqlite');
    try {
      const created = await store.createApply({
        repo: 'a/b', pr: 1, environment: 'e', kind: 'apply', actor: 'x', headSha: null, desiredDigest: 'd', planFingerprint: null, desiredJson: '{}',
        operations: [{ target: 'local', tasks: [{ nodeId: 1, kind: 'StartContainer', resource: 'service:s:1', reason: 'missing', deps: [], nodeJson: '{}' }] }],
      });
      const id = created.operations[0]!.tasks[0]!.id;
      let opened!: () => void;
      const isOpen = new Promise<void>((r) => (opened = r));
      // Another connection of this process (a second store on the same file, as two replicas in one test process) holds the write lock across an await.
      const held = a.transaction().execute(async (trx) => {
        await trx.insertInto('leases').values({ name: 'other', holder: 'h', expires_at: 1, token: 't' }).execute();
        opened();
        await new Promise((r) => setTimeout(r, 600));
      });
      await isOpen;
      const journal = store.updateTasks([{ id, expected: 'pending', patch: { state: 'running', startedAt: 7 } }]);
      const lease = store.claimLease('target:local', 'me', 30_000);
      const operation = store.casOperationState(created.operations[0]!.id, 0, { state: 'running', startedAt: 8 });
      await held;
      expect(await journal).toEqual([true]);
      expect(typeof (await lease)).toBe('string');
      expect(await operation).toBe(true);
      expect(await store.getTask(id)).toMatchObject({ state: 'running', startedAt: 7 });
      expect(await store.getLease('other')).toMatchObject({ holder: 'h' });
    } finally {
      await store.close();
      await a.destroy();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

suite('SQLite', sqliteTestStore);
suite('MariaDB', mysqlTestStore, describeMysql);
suite('PostgreSQL', postgresTestStore, describePostgres);
