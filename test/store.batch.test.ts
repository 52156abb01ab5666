// updateTasks (the executor's group commit) on every backend: one transaction,
// each update the same compare-and-set as updateTask.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { describeMysql, describePostgres } from './helpers/env.js';
import { mysqlTestStore, postgresTestStore, sqliteTestStore } from './helpers/stores.js';
import type { TestStore } from './helpers/stores.js';

function suite(name: string, open: () => Promise<TestStore>, d: (name: string, fn: () => void) => void = describe) {
  d(`updateTasks on ${name}`, () => {
    let ts: TestStore;
    beforeEach(async () => void (ts = await open()));
    afterEach(async () => ts.dispose());

    async function apply() {
      const task = (nodeId: number) => ({ nodeId, kind: 'StartContainer', resource: `service:s:${nodeId}`, reason: 'missing', deps: [], nodeJson: '{}' });
      const created = await ts.store.createApply({
        repo: 'a/b', pr: 1, environment: 'e', kind: 'apply', actor: 'x', headSha: null, desiredDigest: 'd', planFingerprint: null, desiredJson: '{}',
        operations: [{ target: 'local', tasks: [task(1), task(2), task(3)] }],
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
  });
}

suite('SQLite', sqliteTestStore);
suite('MariaDB', mysqlTestStore, describeMysql);
suite('PostgreSQL', postgresTestStore, describePostgres);
