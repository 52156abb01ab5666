// Operations and tasks: reads in plan order, and the journal — every task
// transition a compare-and-set on its state, optionally fenced by the driver's
// lease (a driver that lost its lease writes nothing), several in one
// transaction (group commit).
import { lockingRead, writeTransaction, type Ctx } from '../dialect.js';
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
  const r = await ctx.db
    .updateTable('apply_operations')
    .set((eb) => ({ ...aggregateSet(patch), version: eb('version', '+', 1) }))
    .where('id', '=', id)
    .where('version', '=', expectedVersion)
    .executeTakeFirst();
  return Number(r.numUpdatedRows) === 1;
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
      const held = await lockingRead(
        trx.dialect,
        trx.db.selectFrom('leases').select('name').where('name', '=', fence.lease).where('holder', '=', fence.holder).where('token', '=', fence.token),
        'share',
      ).executeTakeFirst();
      if (!held) return updates.map(() => false);
    }
    const out: boolean[] = [];
    for (const { id, expected: expectedState, patch } of updates) {
      const expected = unique(typeof expectedState === 'string' ? [expectedState] : [...expectedState]);
      if (expected.length === 0) {
        out.push(false);
        continue;
      }
      // version = version + 1 makes every matched row a changed row (MySQL's FOUND_ROWS agrees).
      const r = await trx.db
        .updateTable('tasks')
        .set((eb) => ({ ...taskSet(patch), version: eb('version', '+', 1) }))
        .where('id', '=', id)
        .where('state', 'in', expected)
        .executeTakeFirst();
      out.push(Number(r.numUpdatedRows) === 1);
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
