// Operations and tasks: reads in plan order, and the journal — every task
// transition a compare-and-set on its state, optionally fenced by the driver's
// lease (a driver that lost its lease writes nothing), several in one
// transaction (group commit).
import { lockingRead, writeTransaction, type Ctx } from '../dialect.js';
import { prepared } from '../prepared.js';
import { toOperation, toTask, unique } from '../rows.js';
import type { AggregatePatch, Fence, OperationRow, TaskPatch, TaskRow, TaskUpdate } from '../store.js';
import { aggregateSet } from './applies.js';

export async function listOperations(ctx: Ctx, applyId: string): Promise<OperationRow[]> {
  return (await ctx.db.selectFrom('apply_operations').selectAll().where('apply_id', '=', applyId).orderBy('ordinal').execute()).map(toOperation);
}

export async function getOperation(ctx: Ctx, id: string): Promise<OperationRow | undefined> {
  const r = await ctx.db.selectFrom('apply_operations').selectAll().where('id', '=', id).executeTakeFirst();
  return r && toOperation(r);
}

export async function casOperationState(ctx: Ctx, id: string, expectedVersion: number, patch: AggregatePatch): Promise<boolean> {
  const set = aggregateSet(patch);
  const columns = Object.keys(set);
  const r = await ctx.db.executeQuery(
    prepared(
      ctx.dialect,
      `operation-cas:${columns.join(',')}`,
      (p) =>
        ctx.db
          .updateTable('apply_operations')
          .set((eb) => ({ ...Object.fromEntries(columns.map((c) => [c, p(c)])), version: eb('version', '+', 1) }))
          .where('id', '=', p('id'))
          .where('version', '=', p('expectedVersion')),
      { ...set, id, expectedVersion },
    ),
  );
  return Number(r.numAffectedRows ?? 0) === 1;
}

export async function listTasks(ctx: Ctx, operationId: string): Promise<TaskRow[]> {
  return (await ctx.db.selectFrom('tasks').selectAll().where('operation_id', '=', operationId).orderBy('node_id').execute()).map(toTask);
}

export async function listTasksForApply(ctx: Ctx, applyId: string): Promise<TaskRow[]> {
  const rows = await ctx.db
    .selectFrom('tasks as t')
    .innerJoin('apply_operations as o', 'o.id', 't.operation_id')
    .selectAll('t')
    .where('t.apply_id', '=', applyId)
    .orderBy('o.ordinal')
    .orderBy('t.node_id')
    .execute();
  return rows.map(toTask);
}

export async function getTask(ctx: Ctx, id: string): Promise<TaskRow | undefined> {
  const r = await ctx.db.selectFrom('tasks').selectAll().where('id', '=', id).executeTakeFirst();
  return r && toTask(r);
}

/** The SET of a journal write: state and version always, the rest only when present in the patch. */
function taskSet(patch: TaskPatch) {
  return {
    state: patch.state,
    ...(patch.error !== undefined ? { error: patch.error } : {}),
    ...(patch.result !== undefined ? { result: patch.result } : {}),
    ...(patch.startedAt !== undefined ? { started_at: patch.startedAt } : {}),
    ...(patch.finishedAt !== undefined ? { finished_at: patch.finishedAt } : {}),
  };
}

export async function updateTasks(ctx: Ctx, updates: readonly TaskUpdate[], fence?: Fence): Promise<boolean[]> {
  if (!updates.length) return [];
  return writeTransaction(ctx, async (trx) => {
    if (fence) {
      // A shared lock on the lease row: a takeover (an UPDATE of that row) waits for this batch, or this batch sees it.
      const held = await trx.db.executeQuery(
        prepared(
          trx.dialect,
          'fence',
          (p) => lockingRead(trx.dialect, trx.db.selectFrom('leases').select('name').where('name', '=', p('lease')).where('holder', '=', p('holder')).where('token', '=', p('token')), 'share'),
          { lease: fence.lease, holder: fence.holder, token: fence.token },
        ),
      );
      if (held.rows.length === 0) return updates.map(() => false);
    }
    const out: boolean[] = [];
    for (const { id, expected: expectedState, patch } of updates) {
      const expected = unique(typeof expectedState === 'string' ? [expectedState] : [...expectedState]);
      if (expected.length === 0) {
        out.push(false);
        continue;
      }
      // version = version + 1 makes every matched row a changed row (MySQL's FOUND_ROWS agrees).
      const set = taskSet(patch);
      const columns = Object.keys(set) as (keyof typeof set)[];
      const r = await trx.db.executeQuery(
        prepared(
          trx.dialect,
          `task:${columns.join(',')}:${expected.length}`,
          (p) =>
            trx.db
              .updateTable('tasks')
              .set((eb) => ({ ...Object.fromEntries(columns.map((c) => [c, p(c)])), version: eb('version', '+', 1) }))
              .where('id', '=', p('id'))
              .where('state', 'in', expected.map((_, i) => p(`expected${i}`))),
          { ...set, id, ...Object.fromEntries(expected.map((e, i) => [`expected${i}`, e])) },
        ),
      );
      out.push(Number(r.numAffectedRows ?? 0) === 1);
    }
    return out;
  });
}

export async function cancelPendingTasks(ctx: Ctx, applyId: string, finishedAt?: number): Promise<number> {
  const r = await ctx.db
    .updateTable('tasks')
    .set((eb) => ({ state: 'cancelled', version: eb('version', '+', 1), finished_at: finishedAt ?? ctx.now() }))
    .where('apply_id', '=', applyId)
    .where('state', '=', 'pending')
    .executeTakeFirst();
  return Number(r.numUpdatedRows);
}
